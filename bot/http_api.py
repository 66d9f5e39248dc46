"""opsbot's HTTP surface in the Slack modes: ``POST /slack/events`` (HTTP mode),
``GET /healthz``, ``GET /readyz``, ``GET /metrics`` and webhooks under ``POST /hooks/…``
(both modes).

Every Slack request is checked here before Bolt sees it: a missing, wrong or stale
signature (timestamp more than 5 minutes off) is a 401 and nothing runs; a body that is
not what Slack sends is a 400. Bolt checks the signature again, as defence in depth.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier
from werkzeug.wrappers import Request as HttpRequest
from werkzeug.wrappers import Response
from werkzeug.wsgi import ClosingIterator

from bot.app import hold_until_acked, start_all
from bot.metrics import CONTENT_TYPE, Metrics

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # Slack's payloads are far smaller; refuse anything bigger
SLACK_PATH = "/slack/events"


class SlackFrontEnd:
    """The WSGI app behind ``--host/--port`` in HTTP and Socket Mode."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        signing_secret: str | None,
        socket_connected: Callable[[], bool] | None = None,
        hooks: dict[str, Callable[[HttpRequest], Response]] | None = None,
    ) -> None:
        self.metrics = metrics
        self._hooks = dict(hooks or {})
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self._socket_connected = socket_connected
        self._app: App | None = None
        self._not_ready = "waiting for Slack's auth.test"
        self.mode = "socket" if socket_connected else "http"

    def set_app(self, app: App) -> None:
        """Slack answered auth.test: start passing requests to ``app``."""
        self._app = app

    def set_not_ready(self, reason: str) -> None:
        """Say why opsbot is not ready (shown by ``/readyz``)."""
        self._not_ready = reason

    def ready(self) -> tuple[bool, str]:
        """Ready when auth.test succeeded (and, in Socket Mode, the socket is up)."""
        if self._app is None:
            return False, self._not_ready
        if self._socket_connected is not None and not self._socket_connected():
            return False, "the Socket Mode connection is down; reconnecting"
        return True, "ready"

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        request = HttpRequest(environ)
        with hold_until_acked() as held:
            route, response = self._route(request)
        self.metrics.http_requests.labels(route=route, status=str(response.status_code)).inc()
        body = response(environ, start_response)
        if not held:
            return body
        # The server calls close() once the response is on the wire: only then start work.
        return ClosingIterator(body, [lambda: start_all(held)])

    def _route(self, request: HttpRequest) -> tuple[str, Response]:
        path, method = request.path, request.method
        routes: dict[str, tuple[str, Callable[[HttpRequest], Response]]] = {
            "/healthz": ("GET", self._health),
            "/readyz": ("GET", self._readiness),
            "/metrics": ("GET", self._metrics),
        }
        if self._verifier is not None:
            routes[SLACK_PATH] = ("POST", self._slack)
        for hook_path, hook in self._hooks.items():
            routes[hook_path] = ("POST", hook)
        if path not in routes:
            return "other", _json({"error": "not found"}, 404)
        allowed, handler = routes[path]
        if method != allowed:
            return path, _json({"error": f"use {allowed}"}, 405)
        try:
            return path, handler(request)
        except Exception:
            log.exception("%s %s failed", method, path)
            return path, _json({"error": "internal error; see opsbot's log"}, 500)

    def _health(self, request: HttpRequest) -> Response:
        body: dict[str, Any] = {"status": "ok", "mode": self.mode}
        if self._socket_connected is not None:
            connected = self._socket_connected()
            body["socket_connected"] = connected
            if not connected:
                return _json({**body, "status": "socket disconnected"}, 503)
        return _json(body)

    def _readiness(self, request: HttpRequest) -> Response:
        ready, reason = self.ready()
        return _json({"ready": ready, "reason": reason}, 200 if ready else 503)

    def _metrics(self, request: HttpRequest) -> Response:
        return Response(self.metrics.render(), content_type=CONTENT_TYPE)

    def _slack(self, request: HttpRequest) -> Response:
        started = time.perf_counter()
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _json({"error": "body too large"}, 413)
        body = request.get_data(cache=False)
        if len(body) > MAX_BODY_BYTES:
            return _json({"error": "body too large"}, 413)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body.decode("utf-8")  # the signature check itself decodes the body
        except UnicodeDecodeError:
            return _json({"error": "the body is not UTF-8"}, 400)
        if parse_qs(body.decode()).get("ssl_check") == ["1"]:
            return Response("", status=200)  # Slack's certificate probe: unsigned, answer 200
        assert self._verifier is not None
        if not self._verifier.is_valid_request(body, headers):
            log.warning("refused a request with a missing, wrong or stale Slack signature")
            return _json({"error": "invalid or stale signature"}, 401)
        kind, problem = _inspect(body, headers.get("content-type", ""))
        if problem:
            return _json({"error": problem}, 400)
        if self._app is None:
            return _json({"error": "not ready"}, 503, {"Retry-After": "1"})
        bolt = self._app.dispatch(
            BoltRequest(
                body=body.decode("utf-8"),
                query=request.query_string.decode("latin-1"),
                headers={k: [v] for k, v in headers.items()},
            )
        )
        self.metrics.ack_latency.labels(kind=kind).observe(time.perf_counter() - started)
        response = Response(bolt.body, status=bolt.status)
        for name, values in bolt.headers.items():
            for value in values:
                response.headers.add(name, value)
        return response


def _inspect(body: bytes, content_type: str) -> tuple[str, str | None]:
    """What kind of Slack request ``body`` is, or why it is not one."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid", "the body is not UTF-8"
    if content_type.startswith("application/json"):
        try:
            data = json.loads(text)
        except ValueError:
            return "event", "the JSON body does not parse"
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            return "event", "an Events API body needs a 'type'"
        return "event", None
    form = parse_qs(text, keep_blank_values=True)
    if "payload" in form:
        try:
            payload = json.loads(form["payload"][0])
        except ValueError:
            return "action", "the payload field is not JSON"
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            return "action", "an interaction payload needs a 'type'"
        return "action", None
    missing = [k for k in ("command", "user_id", "channel_id") if not form.get(k, [""])[0]]
    if missing:
        return "command", f"a slash command needs {', '.join(missing)}"
    return "command", None


def _json(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload), status=status, content_type="application/json", headers=headers
    )

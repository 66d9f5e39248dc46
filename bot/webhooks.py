"""Inbound webhooks under ``POST /hooks/…``: GitHub pull requests open and close
ephemeral environments.

A delivery is verified with ``X-Hub-Signature-256`` (HMAC-SHA256 of the body with the
secret from ``[github].webhook_secret_env``) before anything is read; a bad or missing
signature is 401. Accepted work runs through the same pipeline as a typed command, as
the PR author's Slack user (``[github].users``) or ``[github].actor``, so RBAC, locks and
the audit trail apply; GitHub redeliveries run nothing twice (``X-GitHub-Delivery``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request as HttpRequest
from werkzeug.wrappers import Response

from bot.channels import ChannelResponder
from bot.pipeline import Request
from handlers.durations import format_duration

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024  # GitHub caps payloads at 25 MB; PR events are far smaller
OPEN_ACTIONS = {"opened", "reopened", "labeled", "ready_for_review"}


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """True when ``header`` is ``sha256=`` + the HMAC-SHA256 of ``body`` under ``secret``."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256="))


class GitHubWebhook:
    """``POST /hooks/github``: pull request opened/labelled → env create; closed → destroy."""

    def __init__(self, runtime: Runtime, secret: str) -> None:
        self._runtime = runtime
        self._secret = secret

    def __call__(self, request: HttpRequest) -> Response:
        """Verify, acknowledge with 202, and hand the work to the workers."""
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _json({"error": "body too large"}, 413)
        body = request.get_data(cache=False)
        if not signature_ok(self._secret, body, request.headers.get("X-Hub-Signature-256")):
            log.warning("refused a GitHub delivery with a missing or wrong signature")
            return _json({"error": "invalid signature"}, 401)
        event = request.headers.get("X-GitHub-Event", "")
        if event == "ping":
            return _json({"ok": True, "pong": True})
        if event != "pull_request":
            return _json({"ignored": f"event {event or '(none)'}"}, 202)
        try:
            payload = json.loads(body)
            text = self._command(payload)
        except (ValueError, KeyError, TypeError) as error:
            return _json({"error": f"not a pull_request payload ({type(error).__name__})"}, 400)
        if text is None:
            return _json({"ignored": f"action {payload.get('action')}"}, 202)
        settings = self._runtime.settings
        assert settings.github is not None
        login = str(payload["pull_request"]["user"]["login"])
        actor = settings.github.users.get(login, settings.github.actor)
        channel = (
            (settings.ephemeral.channel if settings.ephemeral else None)
            or settings.slack.alerts_channel
            or "C0GITHUB"
        )
        delivery = request.headers.get("X-GitHub-Delivery")
        work = Request(
            text=text,
            actor=actor,
            channel=channel,
            source="github",
            idempotency_key=f"github:{delivery}" if delivery else None,
        )
        self._runtime.submit(work, ChannelResponder(self._runtime.channels, channel))
        return _json({"accepted": text, "ref": work.ref}, 202)

    def _command(self, payload: dict[str, Any]) -> str | None:
        """The command a pull_request event means, or None to ignore it."""
        settings = self._runtime.settings.github
        assert settings is not None
        action = str(payload["action"])
        pr = payload["pull_request"]
        name = settings.name.format(number=int(pr["number"]))
        labels = {str(label["name"]) for label in pr.get("labels") or []}
        if action == "closed":
            exists = self._runtime.store.db.execute(
                "SELECT 1 FROM environments WHERE name = ? AND state = 'active'", [name]
            ).fetchone()
            return f"env destroy {name}" if exists else None
        if action not in OPEN_ACTIONS:
            return None
        if settings.label and settings.label not in labels:
            return None
        if (
            action == "labeled"
            and settings.label
            and payload.get("label", {}).get("name") != settings.label
        ):
            return None
        app = settings.app or (
            self._runtime.settings.ephemeral.app if self._runtime.settings.ephemeral else ""
        )
        ref = str(pr["head"]["ref"])
        return f'env create {name} app={app} rev="{ref}" ttl={format_duration(settings.ttl)}'


def _json(payload: object, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")

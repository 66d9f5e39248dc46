"""A fake Slack Web API on 127.0.0.1: records every call, answers like Slack, and checks
each call against ``../shared/specs/slack/slack_web_openapi_v2.json``.

Tests tell it to fail (429 with Retry-After, 500) and wait on what it received instead
of sleeping. It also serves response_url POSTs and the files-upload-v2 upload URL.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from bot.httpserver import HttpServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

SPEC = (
    Path(__file__).resolve().parents[3] / "shared" / "specs" / "slack" / "slack_web_openapi_v2.json"
)
BOT_TOKEN = "xoxb-test-bot-token"
APP_TOKEN = "xapp-test-app-token"
#: Methods newer than the (2020) spec, with the arguments Slack's docs require.
NEWER_THAN_SPEC: dict[str, set[str]] = {
    "files.getUploadURLExternal": {"filename", "length"},
    "files.completeUploadExternal": {"files"},
    "apps.connections.open": set(),
}
MAX_BLOCKS = 50
SECTION_CHARS = 3000


@dataclass
class Call:
    """One request the fake received."""

    method: str
    params: dict[str, Any]
    token: str | None
    status: int = 200
    answer: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def blocks(self) -> list[dict[str, Any]]:
        blocks = self.params.get("blocks") or []
        return json.loads(blocks) if isinstance(blocks, str) else list(blocks)

    @property
    def text(self) -> str:
        """Everything readable in the call: text, blocks and file content."""
        return json.dumps(
            {k: v for k, v in self.params.items() if k != "token"}, ensure_ascii=False
        )


@dataclass
class _Fault:
    status: int
    times: int
    retry_after: int | None
    error: str


class FakeSlack:
    """The Slack Web API, response URLs and file uploads, on one loopback port."""

    def __init__(self, *, usergroups: dict[str, list[str]] | None = None) -> None:
        self.calls: list[Call] = []
        self.usergroups = usergroups or {}
        self.socket_url: str | None = None
        self.not_in: set[str] = set()  # channels where chat.postMessage says not_in_channel
        self._faults: dict[str, _Fault] = {}
        self._changed = threading.Condition()
        self._ts = itertools.count(1)
        self._files = itertools.count(1)
        self._server = HttpServer(self._wsgi, threads=16, name="fake-slack")
        self._spec = _load_spec()

    def start(self) -> FakeSlack:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def api_url(self) -> str:
        """What ``SLACK_API_URL`` should be."""
        return f"{self.url}/api/"

    def response_url(self, name: str = "r1") -> str:
        """A response_url that records what is posted to it (method ``response_url``)."""
        return f"{self.url}/response/{name}"

    def fail(
        self,
        method: str,
        status: int,
        *,
        times: int = 1,
        retry_after: int | None = None,
        error: str = "",
    ) -> None:
        """Answer the next ``times`` calls to ``method`` with ``status``."""
        default = "ratelimited" if status == 429 else "fatal_error"
        self._faults[method] = _Fault(status, times, retry_after, error or default)

    def calls_to(self, method: str) -> list[Call]:
        with self._changed:
            return [c for c in self.calls if c.method == method]

    def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] = lambda call: True,
        *,
        count: int = 1,
        timeout: float = 15,
    ) -> list[Call]:
        """Block until ``count`` successful calls to ``method`` match ``predicate``."""

        def matching() -> list[Call]:
            return [
                c for c in self.calls if c.method == method and c.status == 200 and predicate(c)
            ]

        with self._changed:
            if not self._changed.wait_for(lambda: len(matching()) >= count, timeout):
                seen = [(c.method, c.status) for c in self.calls]
                raise AssertionError(f"expected {count} × {method}; got {seen}")
            return matching()

    def spec_problems(self) -> list[str]:
        """Calls whose method or required arguments do not fit Slack's spec."""
        problems = []
        for call in list(self.calls):
            if call.method in ("response_url", "upload"):
                continue
            required = self._required(call.method)
            if required is None:
                problems.append(f"{call.method}: not a Slack Web API method")
                continue
            missing = sorted(required - set(call.params))
            if missing:
                problems.append(f"{call.method}: missing required {', '.join(missing)}")
            if call.method in ("chat.postMessage", "chat.update", "chat.postEphemeral") and not (
                call.params.get("text") or call.params.get("blocks")
            ):
                problems.append(f"{call.method}: needs text or blocks")
        return problems

    def _required(self, method: str) -> set[str] | None:
        if method in NEWER_THAN_SPEC:
            return NEWER_THAN_SPEC[method]
        if self._spec is None:
            return set()  # no spec on this machine: method names cannot be checked
        path = self._spec["paths"].get(f"/{method}")
        if path is None:
            return None
        required: set[str] = set()
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("required") and parameter["name"] != "token":
                    required.add(parameter["name"])
        return required

    # --- the HTTP side ---------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/upload/"):  # raw bytes, whatever the Content-Type says
            length = int(environ.get("CONTENT_LENGTH") or 0)
            params: dict[str, Any] = {"content": environ["wsgi.input"].read(length).decode()}
        else:
            params = _params(environ)
        token = _token(environ, params)
        if path.startswith("/api/"):
            method = path[len("/api/") :]
            status, answer, headers = self._answer(method, params, token)
        elif path.startswith("/response/"):
            method, (status, answer, headers) = "response_url", self._respond(params)
        elif path.startswith("/upload/"):
            method, status, answer, headers = "upload", 200, {"ok": True}, {}
        else:
            method, status, answer, headers = "unknown", 404, {"ok": False}, {}
        call = Call(method, params, token, status, answer, path)
        with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}.get(status, "Error")
        start_response(
            f"{status} {reason}",
            [("Content-Type", "application/json"), *headers.items()],
        )
        return [json.dumps(answer).encode()]

    def _fault(self, method: str) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        fault = self._faults.get(method)
        if fault is None or fault.times <= 0:
            return None
        fault.times -= 1
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        return fault.status, {"ok": False, "error": fault.error}, headers

    def _respond(self, params: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        return self._fault("response_url") or (200, {"ok": True}, {})

    def _answer(
        self, method: str, params: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        fault = self._fault(method)
        if fault:
            return fault
        wanted = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != wanted:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        handler = self._methods().get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        answer: dict[str, Any] = handler(params)
        return 200, answer, {}

    def _methods(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.open": self._views_open,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroups_users_list,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "apps.connections.open": self._apps_connections_open,
        }

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://opsbot-test.slack.com/",
            "team": "opsbot-test",
            "user": "opsbot",
            "team_id": "T0TEST",
            "user_id": "U0OPSBOT",
            "bot_id": "B0OPS",
        }

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("channel") in self.not_in:
            return {"ok": False, "error": "not_in_channel"}
        problem = _block_problem(params)
        if problem:
            return {"ok": False, "error": "invalid_blocks", "detail": problem}
        ts = f"1700000000.{next(self._ts):06d}"
        return {
            "ok": True,
            "channel": params.get("channel"),
            "ts": ts,
            "message": {"text": params.get("text", ""), "ts": ts},
        }

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        problem = _block_problem(params)
        if problem:
            return {"ok": False, "error": "invalid_blocks", "detail": problem}
        return {
            "ok": True,
            "channel": params.get("channel"),
            "ts": params.get("ts"),
            "text": params.get("text", ""),
        }

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": f"1700000000.{next(self._ts):06d}"}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "view": {"id": "V0TEST"}}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = str(params.get("user", ""))
        return {"ok": True, "user": {"id": user, "name": user.lower(), "real_name": user}}

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group = str(params.get("usergroup", ""))
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": self.usergroups[group]}

    def _files_get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._files):08d}"
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        files = json.loads(files) if isinstance(files, str) else files
        return {"ok": True, "files": files}

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.socket_url:
            return {"ok": False, "error": "socket_mode_not_enabled"}
        return {"ok": True, "url": self.socket_url}


def _load_spec() -> dict[str, Any] | None:
    return json.loads(SPEC.read_text()) if SPEC.exists() else None


def _params(environ: WSGIEnvironment) -> dict[str, Any]:
    params: dict[str, Any] = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    content_type = environ.get("CONTENT_TYPE", "")
    if content_type.startswith("application/json") and body:
        loaded = json.loads(body)
        if isinstance(loaded, dict):
            params.update(loaded)
    elif content_type.startswith("application/x-www-form-urlencoded") and body:
        params.update({k: v[0] for k, v in parse_qs(body.decode()).items()})
    elif body:
        params["body"] = body.decode("utf-8", "replace")
    return params


def _token(environ: WSGIEnvironment, params: dict[str, Any]) -> str | None:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if auth.startswith("Bearer "):
        return auth[len("Bearer ") :]
    token = params.get("token")
    return str(token) if token else None


def _block_problem(params: dict[str, Any]) -> str | None:
    """Slack's own limits, so a message Slack would reject fails here too."""
    blocks = params.get("blocks")
    if blocks is None:
        return None
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    if len(blocks) > MAX_BLOCKS:
        return f"{len(blocks)} blocks"
    for block in blocks:
        text = (block.get("text") or {}).get("text", "")
        if block.get("type") == "section" and len(text) > SECTION_CHARS:
            return "section text over 3000 characters"
    return None

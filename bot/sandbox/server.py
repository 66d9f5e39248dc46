"""The sandbox page: a local chat that renders opsbot's Block Kit replies in a browser.

``GET /`` serves the page; ``POST /api/commands`` and ``POST /api/actions`` play the part
of Slack's slash command and button click (acknowledged at once, run on a worker);
``GET /api/events`` streams message changes as Server-Sent Events so progress updates
replace messages live. A click runs the value stored in the rendered message, never a
value sent by the page, exactly as Slack would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from importlib import resources
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import BadRequest, HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request as HttpRequest
from werkzeug.wrappers import Response

from bot.commands import MAX_LENGTH
from bot.pipeline import Request
from bot.runtime import Runtime
from bot.sandbox.chat import Chat, ChatChannels, ChatMessage, ChatResponder

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "blockkit.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
HEARTBEAT_SECONDS = 15.0
DEFAULT_USERS = {"U0SANDBOX": "you"}


class SandboxApp:
    """The WSGI application behind the sandbox page."""

    def __init__(self, runtime: Runtime, chat: Chat | None = None) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.chat = chat or Chat(settings.sandbox.channel)
        runtime.channels = ChatChannels(self.chat)  # approval cards and notices land here
        self.users = dict(settings.sandbox.users) or dict(DEFAULT_USERS)
        self.url_map = Map(
            [
                Rule("/", endpoint="index", methods=["GET"]),
                Rule("/static/<name>", endpoint="static", methods=["GET"]),
                Rule("/healthz", endpoint="health", methods=["GET"]),
                Rule("/api/session", endpoint="session", methods=["GET"]),
                Rule("/api/messages", endpoint="messages", methods=["GET"]),
                Rule("/api/events", endpoint="events", methods=["GET"]),
                Rule("/api/commands", endpoint="command", methods=["POST"]),
                Rule("/api/actions", endpoint="action", methods=["POST"]),
            ]
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        request = HttpRequest(environ)
        try:
            endpoint, values = self.url_map.bind_to_environ(environ).match()
            response = getattr(self, f"on_{endpoint}")(request, **values)
        except HTTPException as error:
            response = _json({"error": error.description}, error.code or 500)
        except Exception:
            log.exception("sandbox request %s %s failed", request.method, request.path)
            response = _json({"error": "internal error; see opsbot's log"}, 500)
        return response(environ, start_response)

    def on_index(self, request: HttpRequest) -> Response:
        """The page."""
        return self.on_static(request, "index.html")

    def on_static(self, request: HttpRequest, name: str) -> Response:
        """The page's scripts and styles (a fixed list; nothing else is served)."""
        if name not in STATIC_FILES:
            raise NotFound()
        body = resources.files("bot.sandbox").joinpath("static", name).read_bytes()
        return Response(
            body, content_type=STATIC_FILES[name], headers={"Cache-Control": "no-store"}
        )

    def on_health(self, request: HttpRequest) -> Response:
        """Liveness for scripts and tests."""
        return _json({"ok": True})

    def on_session(self, request: HttpRequest) -> Response:
        """What the page needs to start: users to act as, the channel, the slash command."""
        return _json(
            {
                "users": [{"id": uid, "name": name} for uid, name in self.users.items()],
                "channel": self.chat.channel,
                "command": self.runtime.settings.slack.command,
                "version": self.chat.version,
            }
        )

    def on_messages(self, request: HttpRequest) -> Response:
        """Messages changed after ``?since=VERSION`` (polling, for scripts and old browsers)."""
        since = _int(request.args.get("since", "0"))
        return _json({"messages": [m.as_json() for m in self.chat.since(since)]})

    def on_events(self, request: HttpRequest) -> Response:
        """A Server-Sent Events stream of message changes after ``since``/Last-Event-ID."""
        since = _int(request.headers.get("Last-Event-ID") or request.args.get("since", "0"))
        return Response(
            self._stream(since),
            content_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def _stream(self, since: int) -> Iterator[bytes]:
        yield b"retry: 1000\n\n"
        version = since
        while not self.chat.closed:
            changes = self.chat.wait(version, HEARTBEAT_SECONDS)
            if not changes:
                yield b": keep-alive\n\n"
                continue
            for message in changes:
                version = max(version, message.version)
                yield _event(message)

    def on_command(self, request: HttpRequest) -> Response:
        """Play a slash command: record it, acknowledge, run it on a worker."""
        body = _body(request)
        user = self._user(body)
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BadRequest("text must be a non-empty string")
        if len(text) > MAX_LENGTH:
            raise BadRequest(f"text is longer than {MAX_LENGTH} characters")
        command = self.runtime.settings.slack.command
        self.chat.say(user, f"{command} {text.strip()}")
        return self._run(
            Request(text=text, actor=user, channel=self.chat.channel, source="sandbox")
        )

    def on_action(self, request: HttpRequest) -> Response:
        """Play a button click: find the button in the stored message and run its value."""
        body = _body(request)
        user = self._user(body)
        message = self.chat.get(str(body.get("message_id", "")))
        if message is None:
            raise BadRequest("that message no longer exists")
        if message.visible_to not in (None, user):
            raise BadRequest("that message is not visible to this user")
        value = _button_value(message, str(body.get("action_id", "")))
        if value is None:
            raise BadRequest("that button is no longer on the message")
        return self._run(
            Request(text=value, actor=user, channel=self.chat.channel, source="button")
        )

    def _run(self, request: Request) -> Response:
        self.runtime.submit(request, ChatResponder(self.chat, request.actor))
        return _json({"accepted": True, "ref": request.ref}, 202)

    def _user(self, body: dict[str, Any]) -> str:
        user = body.get("user")
        if user not in self.users:
            raise BadRequest(f"unknown user; act as one of: {', '.join(self.users)}")
        return str(user)


def _button_value(message: ChatMessage, action_id: str) -> str | None:
    for block in message.blocks:
        if block.get("type") != "actions":
            continue
        for element in block.get("elements", []):
            if element.get("action_id") == action_id and element.get("type") == "button":
                value = element.get("value")
                return value if isinstance(value, str) else None
    return None


def _body(request: HttpRequest) -> dict[str, Any]:
    if not request.is_json:
        raise BadRequest("send JSON (Content-Type: application/json)")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _int(text: str) -> int:
    try:
        return max(int(text), 0)
    except ValueError:
        raise BadRequest("since must be a whole number") from None


def _event(message: ChatMessage) -> bytes:
    data = json.dumps(message.as_json(), separators=(",", ":"))
    return f"id: {message.version}\nevent: message\ndata: {data}\n\n".encode()


def _json(payload: object, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")

"""A real ``opsbot serve`` (HTTP or Socket Mode) wired to the wire-level fakes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.backend import GateBackend
from tests.fakes.slack_requests import SIGNING_SECRET, signed_request
from tests.fakes.slack_socket import FakeSocketMode
from tests.fakes.slack_web import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.serve_helpers import Served, serving

CONFIG = """
[server]
workers = 8
handler_modules = ["tests.e2e_handlers"]

[environments.staging]
cluster = "staging"
[clusters.staging]
context = "staging"

[rbac.roles.everything]
allow = ["*:*"]
[rbac.users]
"*" = ["everything"]
"""


@dataclass
class Bot:
    served: Served
    fake: FakeSlack
    backend: GateBackend
    socket: FakeSocketMode | None = None

    @property
    def url(self) -> str:
        return self.served.url

    def post(self, body: dict[str, Any], **options: Any) -> httpx.Response:
        """Sign ``body`` as Slack would and POST it to /slack/events."""
        raw, headers = signed_request(body, **options)
        return httpx.post(f"{self.url}/slack/events", content=raw, headers=headers, timeout=10)


@contextmanager
def slack_bot(
    folder: Path,
    *,
    mode: str = "http",
    config: str = CONFIG,
    env: dict[str, str] | None = None,
    wait_connected: bool = True,
) -> Iterator[Bot]:
    """Start fake Slack (and fake Socket Mode), a gate backend and ``opsbot serve``."""
    fake = FakeSlack().start()
    backend = GateBackend().start()
    socket = FakeSocketMode().start() if mode == "socket" else None
    if socket is not None:
        fake.socket_url = socket.url
    (folder / "opsbot.toml").write_text(config)
    environ = {
        "SLACK_API_URL": fake.api_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "E2E_BACKEND_URL": backend.url,
        "OPSBOT_LOG_LEVEL": "INFO",
        **(
            {"SLACK_APP_TOKEN": APP_TOKEN}
            if mode == "socket"
            else {"SLACK_SIGNING_SECRET": SIGNING_SECRET}
        ),
        **(env or {}),
    }
    try:
        with serving("--mode", mode, "--port", "0", cwd=folder, env=environ) as served:
            bot = Bot(served, fake, backend, socket)
            if wait_connected:
                served.wait_for_output("connected to Slack as")
                if socket is not None:
                    socket.wait_connected()
            yield bot
    finally:
        backend.stop()
        if socket is not None:
            socket.stop()
        fake.stop()

"""Run the sandbox app in-process and follow its event stream."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot.clock import ManualClock
from bot.httpserver import HttpServer
from bot.runtime import Runtime
from bot.sandbox.server import SandboxApp
from handlers.registry import Registry
from handlers.settings import Settings
from tests.conftest import loaded_config


@dataclass
class Sandbox:
    url: str
    app: SandboxApp
    runtime: Runtime

    def command(self, text: str, user: str = "U0ALICE") -> httpx.Response:
        return httpx.post(f"{self.url}/api/commands", json={"user": user, "text": text})

    def click(self, message_id: str, action_id: str, user: str = "U0ALICE") -> httpx.Response:
        body = {"user": user, "message_id": message_id, "action_id": action_id}
        return httpx.post(f"{self.url}/api/actions", json=body)


@contextmanager
def running_sandbox(
    folder: Path, settings: Settings, registry: Registry | None = None
) -> Iterator[Sandbox]:
    runtime = Runtime.build(
        loaded_config(settings, folder), registry=registry, clock=ManualClock(), environ={}
    )
    app = SandboxApp(runtime)
    server = HttpServer(app, threads=16).start()
    try:
        yield Sandbox(server.url, app, runtime)
    finally:
        app.chat.close()
        server.stop()
        runtime.close()


class EventStream:
    """Reads the sandbox's Server-Sent Events on a thread; tests take messages from a queue."""

    def __init__(self, url: str) -> None:
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self._opened = threading.Event()
        self._thread.start()
        assert self._opened.wait(10), "the event stream did not open"

    def _read(self, url: str) -> None:
        with httpx.stream(
            "GET", f"{url}/api/events?since=0", timeout=httpx.Timeout(10, read=None)
        ) as response:
            self._opened.set()
            data: list[str] = []
            for line in response.iter_lines():
                if line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and data:
                    self.messages.put(json.loads("\n".join(data)))
                    data = []

    def next_where(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> dict[str, Any]:
        """The next streamed message satisfying ``predicate`` (others are skipped)."""
        while True:
            message = self.messages.get(timeout=timeout)
            if predicate(message):
                return message


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The buttons of a streamed message by label."""
    found = {}
    for block in message["blocks"]:
        if block["type"] == "actions":
            for element in block["elements"]:
                found[element["text"]["text"]] = element
    return found


def all_text(message: dict[str, Any]) -> str:
    """Every piece of text in a streamed message's blocks."""
    return json.dumps(message["blocks"], ensure_ascii=False)

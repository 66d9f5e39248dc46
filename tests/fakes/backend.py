"""A backend the test controls: ``GET /wait/NAME`` blocks until the test releases NAME."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import TYPE_CHECKING

from bot.httpserver import HttpServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class GateBackend:
    """Requests wait at named gates; :meth:`release` opens one, :meth:`arrived` waits for them."""

    def __init__(self) -> None:
        self._gates: defaultdict[str, threading.Event] = defaultdict(threading.Event)
        self._arrivals: defaultdict[str, int] = defaultdict(int)
        self._changed = threading.Condition()
        self._server = HttpServer(self._wsgi, threads=64, name="gate-backend")

    def start(self) -> GateBackend:
        self._server.start()
        return self

    @property
    def url(self) -> str:
        return self._server.url

    def release(self, name: str) -> None:
        with self._changed:
            gate = self._gates[name]
        gate.set()

    def arrived(self, name: str, count: int = 1, timeout: float = 15) -> None:
        """Block until ``count`` requests reached gate ``name``."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._arrivals[name] >= count, timeout):
                raise AssertionError(f"{count} request(s) expected at gate {name!r}")

    def stop(self) -> None:
        with self._changed:
            gates = list(self._gates.values())
        for gate in gates:
            gate.set()
        self._server.stop()

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        name = environ.get("PATH_INFO", "").rsplit("/", 1)[-1]
        with self._changed:
            gate = self._gates[name]
            self._arrivals[name] += 1
            self._changed.notify_all()
        opened = gate.wait(60)
        start_response(
            "200 OK" if opened else "504 Gateway Timeout", [("Content-Type", "text/plain")]
        )
        return [b"released" if opened else b"never released"]

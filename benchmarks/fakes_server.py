"""Fake Slack and a slow backend in their own process, so that serving opsbot's posts
does not compete with the load generator for the GIL.

``python -m benchmarks.fakes_server`` prints ``SLACK_API_URL BACKEND_URL RESPONSE_URL``.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import TYPE_CHECKING

from bot.httpserver import HttpServer
from tests.fakes.slack_web import FakeSlack

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

BACKEND_SECONDS = 2.0


def slow_backend(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """Every request takes BACKEND_SECONDS: the handler's slow external system."""
    time.sleep(BACKEND_SECONDS)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done"]


def main() -> None:
    fake = FakeSlack().start()
    backend = HttpServer(slow_backend, threads=128, name="slow-backend").start()
    print(fake.api_url, backend.url, fake.response_url("bench"), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    backend.stop()
    fake.stop()


if __name__ == "__main__":
    main()

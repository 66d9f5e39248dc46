"""A threaded WSGI server (cheroot) run in the background, for every HTTP opsbot serves.

The sandbox page, HTTP mode's Slack routes and webhooks, and the local emulators all
use it; port 0 picks a free port, read back from :attr:`HttpServer.port`.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from cheroot import wsgi

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger(__name__)


class HttpServer:
    """Serve a WSGI app on ``host:port`` from a background thread."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 16,
        name: str = "opsbot-http",
        shutdown_timeout: int = 5,
    ) -> None:
        self._server = wsgi.Server(
            (host, port),
            app,
            numthreads=threads,
            server_name=name,
            shutdown_timeout=shutdown_timeout,
            timeout=30,
            request_queue_size=128,
        )
        self._thread: threading.Thread | None = None
        self._name = name

    def start(self) -> HttpServer:
        """Bind the socket (raising OSError if the port is taken) and start serving."""
        self._server.prepare()
        self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        try:
            self._server.serve()
        except Exception:
            log.exception("HTTP server %s stopped on an error", self._name)

    @property
    def host(self) -> str:
        """The address actually bound."""
        return str(self._server.bind_addr[0])

    @property
    def port(self) -> int:
        """The port actually bound (useful after asking for port 0)."""
        return int(self._server.bind_addr[1])

    @property
    def url(self) -> str:
        """``http://host:port`` of this server."""
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop accepting connections and wait for in-flight requests (bounded)."""
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

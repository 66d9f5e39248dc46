"""A fake Socket Mode server: ``apps.connections.open`` points the client here; this
WebSocket server says hello, sends envelopes, collects the acks, and can drop the
connection to make the client reconnect."""

from __future__ import annotations

import itertools
import json
import queue
import threading
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve


class FakeSocketMode:
    """One WebSocket endpoint speaking Slack's Socket Mode envelope protocol."""

    def __init__(self) -> None:
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._acks: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Condition()
        self._connection: ServerConnection | None = None
        self.connections = 0
        self._ids = itertools.count(1)

    def start(self) -> FakeSocketMode:
        self._server = serve(self._handle, "127.0.0.1", 0, compression=None)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket=test"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(10)

    def wait_connected(self, count: int = 1, timeout: float = 15) -> None:
        """Block until the client has connected ``count`` times in all."""
        with self._lock:
            if not self._lock.wait_for(
                lambda: self.connections >= count and self._connection is not None, timeout
            ):
                raise AssertionError(f"expected {count} connections, saw {self.connections}")

    def send(self, kind: str, payload: dict[str, Any]) -> str:
        """Send an envelope (``slash_commands``, ``interactive``, ``events_api``)."""
        envelope_id = f"env-{next(self._ids)}"
        self._acks[envelope_id] = queue.Queue()
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
            "retry_reason": "",
        }
        with self._lock:
            connection = self._connection
        assert connection is not None, "no client connected"
        connection.send(json.dumps(envelope))
        return envelope_id

    def ack(self, envelope_id: str, timeout: float = 10) -> dict[str, Any]:
        """The client's ack for ``envelope_id``."""
        return self._acks[envelope_id].get(timeout=timeout)

    def drop(self) -> None:
        """Close the current connection from the server side."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            self.connections += 1
            self._connection = connection
            self._lock.notify_all()
        connection.send(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 3600},
                    "connection_info": {"app_id": "A0OPSBOT"},
                }
            )
        )
        try:
            for message in connection:
                data = json.loads(message)
                envelope_id = data.get("envelope_id")
                if envelope_id in self._acks:
                    self._acks[envelope_id].put(data)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                if self._connection is connection:
                    self._connection = None

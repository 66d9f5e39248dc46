"""Socket Mode: slack_sdk's client over a WebSocket Slack opens to us (no inbound port).

Bolt's handler reconnects by itself when the socket drops; ``/healthz`` reports whether
it is connected. Acks are timed into the same histogram as HTTP mode's.
"""

from __future__ import annotations

import time
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.socket_mode.builtin.client import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web import WebClient

from bot.app import hold_until_acked, start_all
from bot.metrics import Metrics

__all__ = ["SocketModeHandler", "TimedSocketModeHandler"]


class TimedSocketModeHandler(SocketModeHandler):
    """Bolt's Socket Mode handler, recording how long each envelope took to ack."""

    def __init__(
        self, app: App, app_token: str, *, web_client: WebClient, metrics: Metrics, **kwargs: Any
    ) -> None:
        super().__init__(app, app_token, web_client=web_client, **kwargs)
        self._metrics = metrics

    def open(self) -> None:
        """Connect (``apps.connections.open``, then the WebSocket); reconnects on its own."""
        self.connect()  # type: ignore[no-untyped-call]

    def shut(self) -> None:
        """Close the WebSocket and stop reconnecting."""
        self.close()  # type: ignore[no-untyped-call]

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        """Dispatch one envelope to Bolt and ack it, timing the ack."""
        started = time.perf_counter()
        with hold_until_acked() as held:
            super().handle(client, req)  # dispatches to Bolt and sends the ack
        self._metrics.ack_latency.labels(kind=f"socket-{req.type}").observe(
            time.perf_counter() - started
        )
        start_all(held)

"""The baseline for P1/P2: a Bolt app that only acks, on the same WSGI server opsbot uses.

Run as ``python -m benchmarks.bare_bolt PORT_FILE``; it writes its URL to PORT_FILE.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.httpserver import HttpServer
from bot.slack import web_client


def main(port_file: str) -> None:
    app = App(
        client=web_client(os.environ["SLACK_BOT_TOKEN"]),
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    )

    @app.command("/ops")
    def only_ack(ack: Ack) -> None:
        ack()

    server = HttpServer(SlackRequestHandler(app), threads=32, name="bare-bolt").start()
    Path(port_file).write_text(server.url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main(sys.argv[1])

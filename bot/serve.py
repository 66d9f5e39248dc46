"""``opsbot serve``: choose the mode, start the front end, stop cleanly on SIGTERM.

Modes (DESIGN.md §2): ``socket`` when ``SLACK_APP_TOKEN`` is set, ``http`` when only
``SLACK_SIGNING_SECRET`` is, else ``sandbox``. ``--mode`` forces one.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from types import FrameType

from bot.cli import EXIT_FAILED, EXIT_OK, load_config
from bot.config import LoadedConfig
from bot.httpserver import HttpServer
from bot.runtime import Runtime
from bot.sandbox.emulators import SANDBOX_EMULATORS
from bot.sandbox.server import SandboxApp
from bot.store import StoreError

log = logging.getLogger(__name__)

SANDBOX_THREADS = 32  # each open page holds one for its event stream


def resolve_mode(explicit: str | None, environ: Mapping[str, str]) -> str:
    """The serving mode: ``--mode``, else what the Slack variables imply."""
    if explicit:
        return explicit
    if environ.get("SLACK_APP_TOKEN"):
        return "socket"
    if environ.get("SLACK_SIGNING_SECRET"):
        return "http"
    return "sandbox"


def serve(args: argparse.Namespace) -> int:
    """Run opsbot until SIGTERM or SIGINT; return the exit code."""
    loaded = load_config(args.config)
    if loaded is None:
        return EXIT_FAILED
    mode = resolve_mode(args.mode, os.environ)
    if mode != "sandbox":
        print(
            f"opsbot serve: {mode} mode is not available in this build yet; "
            "run `opsbot serve --mode sandbox` for the local page",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if loaded.demo:
        log.info("no config file found: running on the built-in demo settings")
    return _serve_sandbox(args, loaded)


def _serve_sandbox(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    try:
        runtime = Runtime.build(loaded, emulators=SANDBOX_EMULATORS)
    except StoreError as error:
        print(f"opsbot: {error}", file=sys.stderr)
        return EXIT_FAILED
    app = SandboxApp(runtime)
    server = HttpServer(
        app, host=args.host, port=args.port, threads=SANDBOX_THREADS, name="opsbot-sandbox"
    )
    try:
        server.start()
    except OSError as error:
        runtime.close()
        print(
            f"opsbot: cannot listen on {args.host}:{args.port}: {error.strerror or error}; "
            "pass --port to use another port",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("the sandbox lets anyone who reaches %s act as any user", args.host)
    runtime.start()
    print(f"opsbot sandbox ready at {server.url}", flush=True)
    _wait_for_stop_signal()
    log.info("stopping: draining in-flight work")
    app.chat.close()
    server.stop()
    runtime.close(wait=True)
    return EXIT_OK


def _wait_for_stop_signal() -> None:
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    stop.wait()

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
from collections.abc import Callable, Mapping
from types import FrameType

from werkzeug.wrappers import Request as HttpRequest
from werkzeug.wrappers import Response

from bot.cli import EXIT_FAILED, EXIT_OK, load_config
from bot.config import LoadedConfig
from bot.http_api import SlackFrontEnd
from bot.httpserver import HttpServer
from bot.identity import UserGroups
from bot.metrics import Metrics
from bot.runtime import Runtime
from bot.sandbox.emulators import SANDBOX_EMULATORS
from bot.sandbox.server import SandboxApp
from bot.sender import Sender
from bot.slack import Outbox, SlackChannels, web_client
from bot.slack_connect import Stop, connect
from bot.socket_mode import TimedSocketModeHandler
from bot.store import StoreError
from bot.webhooks import GitHubWebhook

log = logging.getLogger(__name__)

SANDBOX_THREADS = 32  # each open page holds one for its event stream
HTTP_THREADS = 32  # acks are quick; this covers bursts of Slack requests and scrapes


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
    if mode == "sandbox":
        if loaded.demo:
            log.info("no config file found: running on the built-in demo settings")
        return _serve_sandbox(args, loaded)
    return _serve_slack(args, loaded, mode)


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
    runtime.drain(runtime.settings.server.drain_timeout.total_seconds())
    runtime.close()
    return EXIT_OK


def _wait_for_stop_signal(stop: Stop | None = None) -> int:
    stop = stop or Stop()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.request(0)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    stop.wait()
    return stop.code


def _serve_slack(args: argparse.Namespace, loaded: LoadedConfig, mode: str) -> int:
    """Socket Mode or HTTP mode: Slack in, the same pipeline behind."""
    wanted = ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN" if mode == "socket" else "SLACK_SIGNING_SECRET"]
    missing = [name for name in wanted if not os.environ.get(name)]
    if missing:
        print(
            f"opsbot: {mode} mode needs {' and '.join(missing)} in the environment", file=sys.stderr
        )
        return EXIT_FAILED
    client = web_client(os.environ["SLACK_BOT_TOKEN"])
    try:
        runtime = Runtime.build(loaded, groups=UserGroups(client))
    except StoreError as error:
        print(f"opsbot: {error}", file=sys.stderr)
        return EXIT_FAILED
    metrics = runtime.metrics
    outbox = Outbox(client, Sender(on_error=_count_errors(metrics)))
    runtime.channels = SlackChannels(outbox)
    signing_secret = os.environ.get("SLACK_SIGNING_SECRET") if mode == "http" else None
    socket: TimedSocketModeHandler | None = None

    def socket_connected() -> bool:
        return socket is not None and socket.client.is_connected()

    hooks = webhook_routes(runtime)
    separate_hooks = (
        mode == "socket"
        and runtime.settings.github is not None
        and (runtime.settings.github.port is not None)
    )
    front = SlackFrontEnd(
        metrics,
        signing_secret=signing_secret,
        socket_connected=socket_connected if mode == "socket" else None,
        hooks=None if separate_hooks else hooks,
    )
    server = HttpServer(
        front, host=args.host, port=args.port, threads=HTTP_THREADS, name=f"opsbot-{mode}"
    )
    try:
        server.start()
    except OSError as error:
        runtime.close()
        outbox.close()
        print(
            f"opsbot: cannot listen on {args.host}:{args.port}: {error.strerror or error}; "
            "pass --port to use another port",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(f"opsbot {mode} mode listening at {server.url}", flush=True)
    hook_server = None
    if separate_hooks and runtime.settings.github and runtime.settings.github.port:
        hook_server = HttpServer(
            SlackFrontEnd(metrics, signing_secret=None, hooks=hooks),
            host=args.host,
            port=runtime.settings.github.port,
            name="opsbot-hooks",
        ).start()
        print(f"opsbot webhooks listening at {hook_server.url}", flush=True)
    stop = Stop()

    def start_slack() -> None:
        nonlocal socket
        app = connect(
            runtime,
            client,
            outbox,
            signing_secret=signing_secret,
            stop=stop,
            on_ready=front.set_app if mode == "http" else (lambda app: None),
            on_waiting=front.set_not_ready,
        )
        if app is None or mode != "socket":
            return
        handler = TimedSocketModeHandler(
            app, os.environ["SLACK_APP_TOKEN"], web_client=client, metrics=metrics
        )
        try:
            handler.open()
        except Exception as error:  # retried by the handler's own reconnect loop
            log.warning("Socket Mode connection failed (%s); it will be retried", error)
        socket = handler
        front.set_app(app)

    runtime.start()  # workers warm before /readyz can say ready
    threading.Thread(target=start_slack, name="opsbot-slack-connect", daemon=True).start()
    code = _wait_for_stop_signal(stop)
    log.info("stopping: no new requests; draining in-flight work")
    if socket is not None:
        socket.shut()
    server.stop()
    if hook_server is not None:
        hook_server.stop()
    runtime.drain(runtime.settings.server.drain_timeout.total_seconds())
    if not outbox.close():
        log.error("some messages could not be sent before shutdown")
    runtime.close()
    return code


def webhook_routes(runtime: Runtime) -> dict[str, Callable[[HttpRequest], Response]]:
    """The webhooks configured, by path (the GitHub one needs its secret in the env)."""
    github = runtime.settings.github
    if github is None:
        return {}
    secret = os.environ.get(github.webhook_secret_env)
    if not secret:
        log.warning(
            "[github] is configured but %s is not set: POST /hooks/github is off",
            github.webhook_secret_env,
        )
        return {}
    return {"/hooks/github": GitHubWebhook(runtime, secret)}


def _count_errors(metrics: Metrics) -> Callable[[str, str], None]:
    def count(method: str, error: str) -> None:
        metrics.slack_api_errors.labels(method=method, error=error).inc()

    return count

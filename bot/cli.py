"""The ``opsbot`` command line: serve, run, config check, slack-manifest.

Only argparse is imported at the top so that ``opsbot --help`` stays fast; each command
imports what it needs (Bolt, kubernetes, hvac…) when it runs.

Exit codes: 0 ok; 1 refused, failed, or a bad config/database at start; 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import LoadedConfig

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``opsbot`` command."""
    parser = argparse.ArgumentParser(
        prog="opsbot",
        description="ChatOps for platform teams. With no Slack credentials, "
        "`opsbot serve` starts the local sandbox at http://127.0.0.1:3000.",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("OPSBOT_LOG_LEVEL"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default: $OPSBOT_LOG_LEVEL, else INFO for serve, WARNING otherwise)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the bot",
        description="Run the bot. The mode follows the environment: SLACK_APP_TOKEN → Socket "
        "Mode; SLACK_SIGNING_SECRET → HTTP; neither → the local sandbox page.",
    )
    serve.add_argument("--mode", choices=["socket", "http", "sandbox"], help="force a mode")
    _config_option(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (http, sandbox)")
    serve.add_argument("--port", type=int, default=3000, help="port (default 3000; 0 = any free)")

    run = commands.add_parser(
        "run",
        help="run one command as a user and print the reply",
        description="Run one command through the full pipeline (parsing, governance, handler) "
        "as USER and print the reply as text. Exit 0 ok, 1 refused or failed, 2 usage error.",
    )
    run.add_argument("text", metavar="TEXT", help='the command, e.g. "deploy payments staging"')
    run.add_argument("--user", required=True, help="Slack user ID to act as, e.g. U0ALICE")
    run.add_argument("--channel", default="C0CLI", help="Slack channel ID (default C0CLI)")
    _config_option(run)

    config = commands.add_parser("config", help="work with opsbot.toml")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_commands.add_parser(
        "check",
        help="validate the config file",
        description="Validate the config; print each problem as FILE: section.key: message. "
        "Exit 0 when clean (warnings allowed), 1 on any error.",
    )
    _config_option(check)

    audit = commands.add_parser("audit", help="check or export the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = audit_commands.add_parser(
        "verify",
        help="check the audit hash chain",
        description="Walk the audit trail's hash chain. Prints `ok N entries` (exit 0), or "
        "the first bad entry's id and why (exit 1): an edited, deleted, inserted or reordered "
        "entry is caught.",
    )
    export = audit_commands.add_parser(
        "export", help="export audit entries", description="Print audit entries, oldest first."
    )
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--since", metavar="ISO", help="only entries at or after this time")
    for sub in (verify, export):
        sub.add_argument("--db", metavar="FILE", help="the database (default: [store].path)")
        _config_option(sub)

    manifest = commands.add_parser(
        "slack-manifest",
        help="print the Slack app manifest (YAML)",
        description="Print a Slack app manifest with the slash command, bot scopes and "
        "Socket Mode on. Create the app from it at https://api.slack.com/apps.",
    )
    _config_option(manifest)
    manifest.add_argument("--name", default="opsbot", help="the app's name in Slack")
    manifest.add_argument(
        "--request-url",
        help="public base URL for HTTP mode (turns Socket Mode off), e.g. https://opsbot.example.com",
    )
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="config file (default: $OPSBOT_CONFIG or ./opsbot.toml)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``opsbot`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level or ("INFO" if args.command == "serve" else "WARNING"))
    if args.command == "serve":
        from bot.serve import serve

        return serve(args)
    if args.command == "run":
        return _run(args)
    if args.command == "config":
        return _config_check(args)
    if args.command == "slack-manifest":
        return _manifest(args)
    if args.command == "audit":
        return _audit(args)
    raise AssertionError(args.command)


def _configure_logging(level: str) -> None:
    import logging

    from bot.governance.dlp import RedactingFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    for noisy in ("apscheduler", "cheroot", "urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def load_config(explicit: str | None) -> LoadedConfig | None:
    """The config to run on (the demo settings when there is no file); None after
    printing the problems of a bad one."""
    from bot import config

    path = config.locate(explicit, os.environ)
    if path is None:
        return config.demo()
    try:
        return config.load(path)
    except config.ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        print(
            f"opsbot: {len(error.problems)} problem(s) in the config; nothing started",
            file=sys.stderr,
        )
        return None


def _run(args: argparse.Namespace) -> int:
    import re

    from bot.channels import PrintChannels
    from bot.pipeline import Request
    from bot.render import to_text
    from bot.runtime import Runtime
    from bot.sandbox.emulators import SANDBOX_EMULATORS
    from bot.store import StoreError
    from handlers.reply import Reply, Status

    if not re.fullmatch(r"[UW][A-Z0-9]{2,}", args.user):
        print(
            f"opsbot run: --user must be a Slack user ID such as U0ALICE, not {args.user!r}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    loaded = load_config(args.config)
    if loaded is None:
        return EXIT_FAILED
    try:
        runtime = Runtime.build(loaded, emulators=SANDBOX_EMULATORS if loaded.demo else None)
    except StoreError as error:
        print(f"opsbot: {error}", file=sys.stderr)
        return EXIT_FAILED

    runtime.channels = PrintChannels()

    class ProgressPrinter:
        def post(self, reply: Reply) -> str | None:
            print(f"… {to_text(reply).splitlines()[0] if to_text(reply) else ''}", file=sys.stderr)
            return "cli"

        def update(self, message_id: str, reply: Reply) -> None:
            self.post(reply)

    with runtime:
        request = Request(text=args.text, actor=args.user, channel=args.channel, source="cli")
        reply = runtime.pipeline.handle(request, ProgressPrinter(), deliver=False)
    print(to_text(reply))
    if reply.status is Status.USAGE:
        return EXIT_USAGE
    return EXIT_OK if reply.ok else EXIT_FAILED


def _config_check(args: argparse.Namespace) -> int:
    from bot import config

    path = config.locate(args.config, os.environ)
    if path is None:
        print(
            "opsbot config check: no config file: pass --config FILE, set OPSBOT_CONFIG, "
            "or create ./opsbot.toml",
            file=sys.stderr,
        )
        return EXIT_FAILED
    problems = config.check(path, os.environ)
    for problem in problems:
        print(problem)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        print(f"{len(errors)} error(s)", file=sys.stderr)
        return EXIT_FAILED
    print(f"{path}: ok")
    return EXIT_OK


def _audit(args: argparse.Namespace) -> int:
    import sqlite3
    from pathlib import Path

    from bot.governance import audit

    if args.db:
        path = Path(args.db)
    else:
        loaded = load_config(args.config)
        if loaded is None:
            return EXIT_FAILED
        path = loaded.store_path
    if not path.exists():
        print(f"opsbot audit: no database at {path}", file=sys.stderr)
        return EXIT_FAILED
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        with conn:
            if args.audit_command == "verify":
                verdict = audit.verify(conn)
                if verdict.ok:
                    print(f"ok {verdict.count} entries")
                    return EXIT_OK
                print(f"bad entry {verdict.bad_id}: {verdict.reason}")
                return EXIT_FAILED
            try:
                since = audit.parse_since(args.since) if args.since else None
            except ValueError:
                print(
                    f"opsbot audit export: --since {args.since!r} is not an ISO date or time",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            where, params = ("WHERE ts >= ?", [since]) if since else ("", [])
            cursor = conn.execute(f"SELECT * FROM audit {where} ORDER BY id", params)  # noqa: S608
            names = [c[0] for c in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor]
            for chunk in audit.export(rows, args.format):
                sys.stdout.write(chunk)
            return EXIT_OK
    except sqlite3.DatabaseError as error:
        print(f"opsbot audit: cannot read {path}: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        conn.close()


def _manifest(args: argparse.Namespace) -> int:
    from bot import manifest
    from handlers.registry import Registry

    loaded = load_config(args.config)
    if loaded is None:
        return EXIT_FAILED
    built = manifest.build(
        Registry.discover(), loaded.settings, name=args.name, request_url=args.request_url
    )
    sys.stdout.write(manifest.to_yaml(built))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())

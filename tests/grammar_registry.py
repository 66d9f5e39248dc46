"""Every usage line of DESIGN.md §3, declared as its own command in a test registry.

The lines are copied from DESIGN.md as literals (lines that combine several commands
with ``|`` are split into one command each), so the grammar tests check the parser
against the grammar the design promises, not against whatever handlers exist today.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from handlers.context import Command, Context
from handlers.registry import CommandSpec, Registry, RegistryError
from handlers.reply import Reply

#: (path, usage line) for every command DESIGN.md §3 lists, in the order it lists them.
DESIGN_COMMANDS: tuple[tuple[str, str], ...] = (
    ("help", "help [verb]"),
    ("deploy", "deploy APP ENV [rev=REV] [--dry-run] [--prune]"),
    ("rollback", "rollback APP ENV [to=HISTORY_ID]"),
    ("promote", "promote APP from=ENV to=ENV"),
    ("status", "status APP [ENV]"),
    ("history", "history APP ENV"),
    ("apps", "apps"),
    ("env create", "env create NAME [app=APP] [rev=BRANCH] [ttl=24h]"),
    ("env list", "env list"),
    ("env extend", "env extend NAME [ttl=12h]"),
    ("env share", "env share NAME @user"),
    ("env destroy", "env destroy NAME"),
    ("env report", "env report"),
    (
        "chaos run",
        "chaos run KIND target=NAMESPACE/SELECTOR [env=E] [duration=5m] [mode=one|fixed-percent…]",
    ),
    ("chaos list", "chaos list [env=E]"),
    ("chaos stop", "chaos stop ID"),
    ("chaos pause", "chaos pause ID"),
    ("chaos resume", "chaos resume ID"),
    ("chaos schedule", 'chaos schedule KIND target=… cron="0 3 * * 1"'),
    ("chaos unschedule", "chaos unschedule ID"),
    ("secret status", "secret status PATH [env=E]"),
    ("secret versions", "secret versions PATH"),
    ("secret rotate", "secret rotate PATH [env=E]"),
    ("secret schedule", "secret schedule PATH every=30d"),
    ("secret unschedule", "secret unschedule PATH"),
    ("canary start", "canary start APP ENV [steps=10,25,50,100] [interval=5m]"),
    ("canary status", "canary status APP ENV"),
    ("canary promote", "canary promote APP ENV"),
    ("canary abort", "canary abort APP ENV"),
    ("mesh audit", "mesh audit [NAMESPACE] [env=E]"),
    ("maint schedule", 'maint schedule TARGET start=ISO|in=2h duration=1h [reason="…"]'),
    ("maint list", "maint list"),
    ("maint cancel", "maint cancel ID"),
    ("alerts", "alerts"),
    ("silence", "silence ALERT for=2h"),
    ("unsilence", "unsilence ID"),
    ("audit", "audit [actor=@user] [verb=V] [since=ISO]"),
    ("locks", "locks"),
)


def _handler() -> Callable[[Command, Context], Reply]:
    def handle(cmd: Command, ctx: Context) -> Reply:
        return Reply(text=cmd.path)

    return handle


def declare(registry: Registry, path: str, usage: str) -> CommandSpec:
    """Declare ``usage`` as command ``path`` in ``registry``; return its spec."""
    registry.command(path, usage=usage, summary=f"{path} (DESIGN.md §3)")(_handler())
    spec = registry.find(*path.split())
    assert spec is not None
    return spec


def design_registry() -> Registry:
    """A fresh registry holding every DESIGN.md §3 command.

    A line the registry refuses is left out so the grammar tests still run against every
    other command; ``test_registry.test_design_usage_line_declares`` reports such a line.
    """
    registry = Registry()
    for path, usage in DESIGN_COMMANDS:
        with contextlib.suppress(RegistryError):
            declare(registry, path, usage)
    return registry

"""Commands that exist only in end-to-end tests, loaded through
``[server].handler_modules`` into a real ``opsbot serve`` process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from handlers.context import Command, Context
from handlers.registry import command
from handlers.reply import Button, Field, Preview, Reply, code

PLANTED_SECRET = "hunter2-planted-secret-value"
_backend = httpx.Client(timeout=60)  # one client: building one per call costs CPU


@command("slow", usage="slow [name]", summary="report progress, wait for the test backend, finish")
def slow(cmd: Command, ctx: Context) -> Reply:
    """Wait on the test's backend (``E2E_BACKEND_URL``) between two phases."""
    name = cmd.arg("name") or "slow"
    ctx.progress(Reply(text=f":hourglass: {name}: phase 1 of 2"))
    backend = os.environ["E2E_BACKEND_URL"]
    _backend.get(f"{backend}/wait/{name}").raise_for_status()
    return Reply(
        text=f":white_check_mark: {name}: done", buttons=(Button("Again", f"slow {name}"),)
    )


@command("boom", usage="boom", summary="fail with an unexpected error")
def boom(cmd: Command, ctx: Context) -> Reply:
    """Raise an error whose message must never reach Slack."""
    raise RuntimeError(f"backend said: password={PLANTED_SECRET}")


@command("echo", usage="echo WORDS…", summary="say the words in the channel")
def echo(cmd: Command, ctx: Context) -> Reply:
    """Post the words, with a button that echoes them again."""
    words = " ".join(cmd.rest("words"))
    return Reply(text=f"echo: {words}", buttons=(Button("Echo again", f"echo {words}"),))


@command("long", usage="long [lines]", summary="reply with output too long for a message")
def long(cmd: Command, ctx: Context) -> Reply:
    """Return many lines, which Slack receives as a preview plus a file."""
    count = int(cmd.arg("lines") or "800")
    return Reply(title="long output", text="\n".join(f"line {i:05d}" for i in range(count)))


def _revision(app: str) -> str:
    """The revision ``app`` would be shipped at: from ``E2E_STATE_FILE``, which tests edit
    to move the target between approval and execution."""
    state = os.environ.get("E2E_STATE_FILE")
    if not state or not Path(state).exists():
        return "rev-1"
    return str(json.loads(Path(state).read_text()).get(app, "rev-1"))


def ship_preview(cmd: Command, ctx: Context) -> Preview:
    """What ``ship`` will do, bound to the app, environment and resolved revision."""
    app, env = cmd.arg("app") or "", cmd.arg("env") or ""
    revision = cmd.option("rev") or _revision(app)
    return Preview(
        text=f"Ship {code(app)} to *{env}* at {code(revision)}",
        fields=(Field("Revision", code(revision)),),
        fingerprint=f"{app}@{env}:{revision}",
    )


@command(
    "ship",
    usage="ship APP ENV [rev=REV] [gate=NAME]",
    summary="pretend to deploy an app (end-to-end tests only)",
    mutating=True,
    env_arg="env",
    preview=ship_preview,
    locks=("app:{app}@{env}",),
)
def ship(cmd: Command, ctx: Context) -> Reply:
    """Record the shipment in ``E2E_LOG`` (so tests can count runs across restarts),
    optionally waiting at a gate of the test backend first."""
    app, env = cmd.arg("app") or "", cmd.arg("env") or ""
    revision = cmd.option("rev") or _revision(app)
    ctx.progress(Reply(text=f":rocket: shipping {app} to {env} at {revision}"))
    if cmd.option("gate"):
        _backend.get(f"{os.environ['E2E_BACKEND_URL']}/wait/{cmd.option('gate')}")
    log = os.environ.get("E2E_LOG")
    if log:
        with Path(log).open("a") as out:
            out.write(f"{app} {env} {revision} {ctx.actor} {ctx.ref}\n")
    return Reply(text=f":white_check_mark: shipped {app} to {env} at {revision}")


@command("leak", usage="leak", summary="echo what a careless backend returned (tests only)")
def leak(cmd: Command, ctx: Context) -> Reply:
    """Return text that holds the planted secrets of ``E2E_PLANTED`` (space-separated),
    as a backend might: the egress filter must keep them out of Slack."""
    planted = os.environ.get("E2E_PLANTED", "").split()
    ctx.progress(
        Reply(text="reading the backend's config: " + " ".join(f"secret={p}" for p in planted))
    )
    return Reply(
        title="backend config",
        text="\n".join(f"token={value}" for value in planted),
        buttons=(Button("Again", "leak"),),
    )

"""Commands that exist only in end-to-end tests, loaded through
``[server].handler_modules`` into a real ``opsbot serve`` process."""

from __future__ import annotations

import os

import httpx

from handlers.context import Command, Context
from handlers.registry import command
from handlers.reply import Button, Reply

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

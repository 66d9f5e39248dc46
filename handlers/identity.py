"""``whoami``: who opsbot thinks you are, where, and what you may run."""

from __future__ import annotations

from handlers.context import Command, Context
from handlers.registry import command
from handlers.reply import Button, Field, Reply


@command(
    "whoami",
    usage="whoami",
    summary="show your Slack user ID, this channel, and how many commands you may run",
)
def whoami(cmd: Command, ctx: Context) -> Reply:
    """Echo the identity and channel the request arrived with."""
    allowed = [spec for spec in ctx.registry if ctx.permits(spec)]
    return Reply(
        title="whoami",
        fields=(
            Field("User", f"<@{ctx.actor}> (`{ctx.actor}`)"),
            Field("Channel", f"<#{ctx.channel}> (`{ctx.channel}`)"),
            Field("Commands you may run", str(len(allowed))),
            Field("Request", f"`{ctx.ref}`"),
        ),
        buttons=(Button("Show my commands", "help"),),
        ephemeral=True,
    )

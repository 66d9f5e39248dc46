"""``help [verb]``: generated from the registry, showing only what the asker may run."""

from __future__ import annotations

import difflib

from handlers.context import Command, Context
from handlers.errors import UsageError
from handlers.registry import CommandSpec, command
from handlers.reply import Button, Reply, code, escape


@command(
    "help",
    usage="help [verb]",
    summary="list the commands you may run, or explain one",
    examples=("help", "help deploy"),
)
def show_help(cmd: Command, ctx: Context) -> Reply:
    """List every command the actor may run, or the details of one verb."""
    verb = cmd.arg("verb")
    if verb:
        return _verb_help(verb.lower(), ctx)
    prefix = ctx.settings.slack.command
    allowed = [spec for spec in ctx.registry if ctx.permits(spec)]
    lines = [f"{code(spec.usage)} {escape(spec.summary)}{_marks(spec)}" for spec in allowed]
    verbs = sorted({spec.verb for spec in allowed} - {"help"})
    return Reply(
        title="opsbot commands",
        text="\n".join(lines) or "You may not run any command yet: ask an opsbot admin.",
        buttons=tuple(Button(f"help {v}", f"help {v}") for v in verbs),
        footer=(
            f"Type `{prefix} help VERB` for details. :lock: changes something "
            "(may need approval); `[…]` is optional."
        ),
        ephemeral=True,
    )


def _verb_help(verb: str, ctx: Context) -> Reply:
    specs = [spec for spec in ctx.registry.for_verb(verb) if ctx.permits(spec)]
    if not specs:
        known = sorted({spec.verb for spec in ctx.registry if ctx.permits(spec)})
        close = difflib.get_close_matches(verb, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}"
        raise UsageError(f"no command '{verb}' you may run; {hint}", "help [verb]")
    gated = sorted(name for name, env in ctx.settings.environments.items() if env.approvals)
    blocks = []
    for spec in specs:
        part = [f"{code(spec.usage)}{_marks(spec)}", escape(spec.summary)]
        if spec.examples:
            prefix = ctx.settings.slack.command
            part.append("e.g. " + ", ".join(code(f"{prefix} {e}") for e in spec.examples))
        if spec.mutating and spec.env_arg and gated:
            part.append(f"needs approval in: {', '.join(gated)}")
        blocks.append("\n".join(part))
    return Reply(title=f"help: {verb}", text="\n\n".join(blocks), ephemeral=True)


def _marks(spec: CommandSpec) -> str:
    return " :lock:" if spec.mutating else ""

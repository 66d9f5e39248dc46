"""Governance's own commands: ``approve``, ``deny``, ``approvals``, ``locks``, ``audit``.

They are ordinary registry entries (so help, RBAC and the manifest see them) built around
the runtime's governance services, which handlers outside ``bot`` cannot reach.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.clock import from_iso
from bot.governance.audit import parse_since
from handlers.context import Command, Context
from handlers.errors import UsageError
from handlers.registry import CommandSpec, build_spec
from handlers.reply import Attachment, Field, Reply, code, escape

if TYPE_CHECKING:
    from bot.runtime import Runtime

AUDIT_ROWS = 20
#: The verbs defined here, for checking config before any runtime exists.
GOVERNANCE_VERBS = frozenset({"approve", "deny", "approvals", "locks", "audit"})


def governance_commands(runtime: Runtime) -> list[CommandSpec]:
    """The governance commands bound to ``runtime``."""

    def approve(cmd: Command, ctx: Context) -> Reply:
        return runtime.approvals.vote(cmd.arg("id") or "", ctx.actor, approve=True)

    def deny(cmd: Command, ctx: Context) -> Reply:
        reason = " ".join(cmd.rest("reason"))
        return runtime.approvals.vote(cmd.arg("id") or "", ctx.actor, approve=False, reason=reason)

    def approvals(cmd: Command, ctx: Context) -> Reply:
        waiting = runtime.approvals.pending()
        if not waiting:
            return Reply(text="No request is waiting for approval.", ephemeral=True)
        lines = [
            f"`{a.id}` {code(a.command_redacted)} by <@{a.requester}>: "
            f"{len(runtime.approvals.approvers(a.id))} of {a.needed}, "
            f"expires {a.expires_at:%H:%M} UTC"
            for a in waiting
        ]
        return Reply(title="Waiting for approval", text="\n".join(lines), ephemeral=True)

    def locks(cmd: Command, ctx: Context) -> Reply:
        held = runtime.locks.held()
        if not held:
            return Reply(text="Nothing is locked.", ephemeral=True)
        lines = [
            f"{code(row['target'])}: <@{row['holder']}> since "
            f"{from_iso(row['acquired_at']):%Y-%m-%d %H:%M} UTC, running "
            f"{code(row['command'])} (ref {escape(row['ref'])})"
            for row in held
        ]
        return Reply(title="Locks", text="\n".join(lines), ephemeral=True)

    def audit(cmd: Command, ctx: Context) -> Reply:
        actor = cmd.option("actor")
        if actor:
            actor = actor.strip("<>@").split("|")[0]
        since = cmd.option("since")
        if since:
            try:
                since = parse_since(since)
            except ValueError:
                raise UsageError(f"since={since} is not an ISO date or time", cmd.usage) from None
        rows = runtime.audit.entries(
            since=since, actor=actor, verb=cmd.option("verb"), limit=AUDIT_ROWS, newest_first=True
        )
        if not rows:
            return Reply(text="No audit entries match.", ephemeral=True)
        lines = [
            f"{row['ts'][:19]} <@{row['actor']}> {code(row['command'])} → "
            f"{escape(row['decision'])}, {escape(row['outcome'])} (ref {escape(row['ref'])})"
            for row in rows
        ]
        full = "\n".join(
            f"{row['id']}\t{row['ts']}\t{row['actor']}\t{row['command']}\t{row['decision']}\t"
            f"{row['outcome']}\t{row['ref']}\t{row['detail']}"
            for row in rows
        )
        return Reply(
            title=f"Audit: the newest {len(rows)} entries",
            text="\n".join(lines),
            fields=(Field("Chain", "`opsbot audit verify` checks it"),),
            attachment=Attachment("audit.tsv", full, "Audit entries") if len(rows) > 10 else None,
            ephemeral=True,
        )

    return [
        build_spec(
            "approve",
            usage="approve ID",
            summary="approve a waiting change (needs approve:ENV; never your own)",
            handler=approve,
        ),
        build_spec(
            "deny",
            usage="deny ID [reason…]",
            summary="deny a waiting change, or withdraw your own",
            handler=deny,
        ),
        build_spec(
            "approvals",
            usage="approvals",
            summary="list changes waiting for approval",
            handler=approvals,
        ),
        build_spec(
            "locks", usage="locks", summary="who holds which target, since when", handler=locks
        ),
        build_spec(
            "audit",
            usage="audit [actor=@user] [verb=V] [since=ISO]",
            summary="recent audit entries (needs audit:*)",
            handler=audit,
        ),
    ]

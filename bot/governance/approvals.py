"""Change-bound approvals: a mutating command in an environment with ``approvals = N``
runs exactly once, after N distinct approvers holding ``approve:ENV``, never the requester.

The request lives in the ``approvals`` table and survives restarts. Its card (posted to
``[slack].approvals_channel``, else where the command was typed) shows who asked and what
exactly will happen (the handler's preview) and is updated in place on every change;
its buttons go once it is decided. Each approval is bound to the preview's fingerprint:
if the change differs when the approved command is about to run, the approval is void.
Every transition is a conditional UPDATE, so two clicks can never both run the command.
A request that was running when opsbot stopped is marked failed at the next start, never
run again. Expiry (``approval_ttl``) is a scheduled job, and a sweep every minute catches
requests made by another process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.channels import ChannelResponder
from bot.clock import from_iso, iso
from bot.governance.dlp import scan
from bot.pipeline import Invocation, Next, Request, Step, new_ref
from bot.scheduler import Job
from handlers.context import Command, Context
from handlers.durations import format_duration
from handlers.errors import CommandFailed, Refused
from handlers.registry import CommandSpec
from handlers.reply import Button, Field, Preview, Reply, Status, code, escape

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

TITLES = {
    "pending": "Approval needed",
    "executing": "Approved: running",
    "executed": "Approved and done",
    "failed": "Approved, but it failed",
    "denied": "Denied",
    "withdrawn": "Withdrawn",
    "expired": "Expired",
    "void": "Approval void: the change moved",
}
ICONS = {
    "pending": ":hourglass:",
    "executing": ":rocket:",
    "executed": ":white_check_mark:",
    "failed": ":x:",
    "denied": ":no_entry:",
    "withdrawn": ":no_entry:",
    "expired": ":clock3:",
    "void": ":warning:",
}
SWEEP_CRON = "* * * * *"


@dataclass(frozen=True)
class Approval:
    """One row of the ``approvals`` table."""

    id: str
    created_at: datetime
    expires_at: datetime
    requester: str
    channel: str
    command: str
    command_redacted: str
    permission: str
    environment: str
    needed: int
    fingerprint: str
    preview: dict[str, Any]
    state: str
    reason: str
    card_channel: str | None
    card_ts: str | None
    ref: str

    @classmethod
    def from_row(cls, row: sqlite3.Row | dict[str, Any]) -> Approval:
        data = dict(row)
        return cls(
            id=data["id"],
            created_at=from_iso(data["created_at"]),
            expires_at=from_iso(data["expires_at"]),
            requester=data["requester"],
            channel=data["channel"],
            command=data["command"],
            command_redacted=data["command_redacted"],
            permission=data["permission"],
            environment=data["environment"],
            needed=int(data["needed"]),
            fingerprint=data["fingerprint"],
            preview=json.loads(data["preview"]),
            state=data["state"],
            reason=data["reason"],
            card_channel=data["card_channel"],
            card_ts=data["card_ts"],
            ref=data["ref"],
        )


def default_preview(command: Command, ctx: Context) -> Preview:
    """For commands without their own preview: the exact command, bound to its text."""
    return Preview(
        text=f"Will run {code(command.text)}",
        fingerprint=hashlib.sha256(command.text.encode()).hexdigest(),
    )


class Approvals:
    """Requests, votes, expiry, execution and the card, for one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    # --- the pipeline step ---------------------------------------------------------

    def step(self) -> Step:
        """Hold mutating commands in gated environments for approval; run approved ones."""

        def gate(invocation: Invocation, proceed: Next) -> Reply:
            spec, env = invocation.spec, invocation.environment
            assert spec is not None
            assert invocation.command is not None
            if not spec.mutating or env is None or invocation.command.flag("dry-run"):
                return proceed(invocation)  # a dry run changes nothing: no approval
            environment = self._runtime.settings.environments.get(env)
            if environment is None or environment.approvals == 0:
                return proceed(invocation)
            if invocation.request.approval_id:
                return self._run_approved(invocation, proceed)
            return self._request(invocation, spec, environment.approvals)

        return gate

    # --- asking --------------------------------------------------------------------

    def _request(self, invocation: Invocation, spec: CommandSpec, needed: int) -> Reply:
        request, command = invocation.request, invocation.command
        assert command is not None
        if scan(request.text):
            raise Refused(
                "This command needs an approval, and its text contains data opsbot will not "
                "store (personal data). Write it without that and try again."
            )
        env = invocation.environment or ""
        preview = self._preview(spec, invocation)
        settings = self._runtime.settings
        now = self._runtime.clock()
        ttl = settings.environments[env].approval_ttl
        approval_id = self._insert(
            {
                "created_at": iso(now),
                "expires_at": iso(now + ttl),
                "requester": request.actor,
                "channel": request.channel,
                "command": request.text,
                "command_redacted": invocation.redacted_text or request.text,
                "permission": spec.permission,
                "environment": env,
                "needed": needed,
                "fingerprint": preview.fingerprint,
                "preview": json.dumps(
                    {"text": preview.text, "fields": [[f.label, f.value] for f in preview.fields]}
                ),
                "state": "pending",
                "ref": request.ref,
            }
        )
        approval = self.get(approval_id)
        assert approval is not None
        card_channel = settings.slack.approvals_channel or request.channel
        card_ts = self._runtime.channels.post(card_channel, self.card(approval))
        with self._db() as db:
            db.execute(
                "UPDATE approvals SET card_channel = ?, card_ts = ? WHERE id = ?",
                [card_channel, card_ts, approval_id],
            )
        self._runtime.scheduler.schedule(self._expiry_job(approval))
        invocation.decision = "approval requested"
        invocation.detail = f"approval {approval_id}: {needed} of approve:{env}"
        where = "" if card_channel == request.channel else f" The card is in <#{card_channel}>."
        return Reply(
            text=(
                f":hourglass: {code(invocation.redacted_text or request.text)} needs "
                f"{needed} approval(s) from people with `approve:{escape(env)}` before it runs "
                f"(request `{approval_id}`, expires in {format_duration(ttl)}).{where}"
            ),
            status=Status.PENDING,
            ephemeral=card_channel == request.channel,
        )

    def _preview(self, spec: CommandSpec, invocation: Invocation) -> Preview:
        assert invocation.command is not None
        context = self._runtime.pipeline.context_for(invocation)
        make = spec.preview or default_preview
        return make(invocation.command, context)

    def _insert(self, values: dict[str, Any]) -> str:
        for _ in range(5):
            approval_id = new_ref()[:6]
            try:
                with self._db() as db:
                    db.execute(
                        f"INSERT INTO approvals (id, {', '.join(values)}) "  # noqa: S608
                        f"VALUES (?, {', '.join('?' for _ in values)})",
                        [approval_id, *values.values()],
                    )
                return approval_id
            except sqlite3.IntegrityError:
                continue  # an ID collision: draw another
        raise RuntimeError("could not allocate an approval ID")

    # --- deciding ------------------------------------------------------------------

    def vote(self, approval_id: str, actor: str, *, approve: bool, reason: str = "") -> Reply:
        """Record ``actor``'s approval or denial of ``approval_id``."""
        approval = self._current(approval_id.upper())
        if approval.state != "pending":
            self._refresh_card(approval)
            raise CommandFailed(
                f"Request {approval.id} is already {TITLES[approval.state].lower()}"
                + (f": {approval.reason}" if approval.reason else "")
                + ". Nothing changed."
            )
        if actor == approval.requester:
            if approve:
                raise Refused(
                    f"You asked for request {approval.id}, so you cannot approve it: another "
                    f"person with approve:{approval.environment} must."
                )
            return self._close(approval, "withdrawn", actor, "withdrawn by the requester")
        rbac = self._runtime.rbac
        if not rbac.allows(actor, "approve", approval.environment):
            raise Refused(rbac.refusal(actor, "approve", approval.environment), markup=True)
        if not approve:
            why = f"denied by <@{actor}>" + (f": {escape(reason)}" if reason else "")
            return self._close(approval, "denied", actor, why)
        return self._approve(approval, actor)

    def _approve(self, approval: Approval, actor: str) -> Reply:
        now = self._runtime.clock()
        with self._db(immediate=True) as db:
            state = db.execute("SELECT state FROM approvals WHERE id = ?", [approval.id]).fetchone()
            if state[0] != "pending":
                raise CommandFailed(
                    f"Request {approval.id} was decided a moment ago. Nothing changed."
                )
            added = db.execute(
                "INSERT OR IGNORE INTO approval_votes (approval_id, approver, decision, at)"
                " VALUES (?, ?, 'approve', ?)",
                [approval.id, actor, iso(now)],
            ).rowcount
            count = db.execute(
                "SELECT count(*) FROM approval_votes"
                " WHERE approval_id = ? AND decision = 'approve'",
                [approval.id],
            ).fetchone()[0]
            run = count >= approval.needed and (
                db.execute(
                    "UPDATE approvals SET state = 'executing', decided_at = ? "
                    "WHERE id = ? AND state = 'pending'",
                    [iso(now), approval.id],
                ).rowcount
                == 1
            )
        if not added:
            raise CommandFailed(
                f"You already approved request {approval.id}; it has {count} of {approval.needed}."
            )
        self._audit(approval, actor, f"approved ({count} of {approval.needed})", "ok")
        current = self._current(approval.id)
        self._refresh_card(current)
        if not run:
            return Reply(
                text=f"You approved request {approval.id}: {count} of {approval.needed}.",
                ephemeral=True,
            )
        self._runtime.scheduler.cancel(self._expiry_id(approval.id))
        self._runtime.submit(
            Request(
                text=approval.command,
                actor=approval.requester,
                channel=approval.channel,
                source="approval",
                approval_id=approval.id,
            ),
            ChannelResponder(self._runtime.channels, approval.channel),
        )
        return Reply(
            text=(
                f"You approved request {approval.id}; it runs now as <@{approval.requester}> "
                f"asked: {code(approval.command_redacted)}."
            ),
            ephemeral=True,
        )

    def _close(self, approval: Approval, state: str, actor: str, why: str) -> Reply:
        now = self._runtime.clock()
        with self._db(immediate=True) as db:
            changed = db.execute(
                "UPDATE approvals SET state = ?, reason = ?, decided_at = ? "
                "WHERE id = ? AND state = 'pending'",
                [state, why, iso(now), approval.id],
            ).rowcount
            if changed:
                db.execute(
                    "INSERT OR REPLACE INTO approval_votes (approval_id, approver, decision, at)"
                    " VALUES (?, ?, ?, ?)",
                    [approval.id, actor, state, iso(now)],
                )
        if not changed:
            raise CommandFailed(f"Request {approval.id} was decided a moment ago. Nothing changed.")
        self._runtime.scheduler.cancel(self._expiry_id(approval.id))
        self._audit(approval, actor, state, "ok", why)
        self._refresh_card(self._current(approval.id))
        return Reply(text=f"Request {approval.id} is {state}.", ephemeral=True)

    # --- running what was approved ---------------------------------------------------

    def _run_approved(self, invocation: Invocation, proceed: Next) -> Reply:
        request, spec = invocation.request, invocation.spec
        assert spec is not None
        approval = self.get(request.approval_id or "")
        if approval is None or approval.state != "executing" or approval.command != request.text:
            invocation.decision = "refused"
            raise Refused("This approval cannot run: it is not an approved, waiting request.")
        approvers = self.approvers(approval.id)
        invocation.decision = f"approved by {', '.join(approvers)}"
        invocation.detail = f"approval {approval.id}"
        try:
            preview = self._preview(spec, invocation)
        except Exception as error:
            self._finish(approval, "failed", f"could not check the change (ref {request.ref})")
            raise error
        if preview.fingerprint != approval.fingerprint:
            why = (
                "the change is no longer the one approved (it moved between approval and "
                "execution); ask again to approve what it is now"
            )
            self._finish(approval, "void", why)
            invocation.decision = "void"
            raise Refused(f"Request {approval.id} did not run: {why}.")
        try:
            reply = proceed(invocation)
        except Exception as error:
            self._finish(
                approval, "failed", f"it failed (ref {request.ref}): {type(error).__name__}"
            )
            raise
        if reply.ok:
            self._finish(approval, "executed", f"ran as ref {request.ref}")
        else:
            self._finish(approval, "failed", f"it did not succeed (ref {request.ref})")
        return reply

    def _finish(self, approval: Approval, state: str, why: str) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE approvals SET state = ?, reason = ? WHERE id = ? AND state = 'executing'",
                [state, why, approval.id],
            )
        self._refresh_card(self._current(approval.id))

    # --- expiry and recovery --------------------------------------------------------

    def expire(self, approval_id: str) -> bool:
        """Expire ``approval_id`` if it is still pending; True if it was."""
        now = self._runtime.clock()
        with self._db() as db:
            changed = db.execute(
                "UPDATE approvals SET state = 'expired', reason = ?, decided_at = ? "
                "WHERE id = ? AND state = 'pending'",
                ["nobody decided in time", iso(now), approval_id],
            ).rowcount
        if changed:
            approval = self._current(approval_id)
            self._audit(approval, "opsbot", "expired", "expired")
            self._refresh_card(approval)
        return bool(changed)

    def sweep(self) -> None:
        """Expire every pending request past its time (including other processes')."""
        now = iso(self._runtime.clock())
        rows = self._runtime.store.db.execute(
            "SELECT id FROM approvals WHERE state = 'pending' AND expires_at <= ?", [now]
        ).fetchall()
        for (approval_id,) in rows:
            self.expire(approval_id)

    def recover(self) -> int:
        """At start: what was running when opsbot stopped is failed, never run again."""
        rows = self._runtime.store.db.execute(
            "SELECT id FROM approvals WHERE state = 'executing'"
        ).fetchall()
        for (approval_id,) in rows:
            approval = self._current(approval_id)
            why = (
                "opsbot stopped while this was running, so whether it finished is unknown; "
                "check the target, then ask again if needed"
            )
            self._finish(approval, "failed", why)
            self._audit(approval, "opsbot", "failed after restart", "failed", why)
        return len(rows)

    def jobs(self) -> list[Job]:
        """Scheduler source: an expiry for each pending request, and the minute sweep."""
        jobs = [self._expiry_job(a) for a in self.pending()]
        jobs.append(Job("approvals:sweep", self.sweep, cron=SWEEP_CRON))
        return jobs

    def _expiry_job(self, approval: Approval) -> Job:
        return Job(
            self._expiry_id(approval.id),
            lambda: self.expire(approval.id),
            at=approval.expires_at,
        )

    @staticmethod
    def _expiry_id(approval_id: str) -> str:
        return f"approval-expiry:{approval_id}"

    # --- reading and showing ---------------------------------------------------------

    def get(self, approval_id: str) -> Approval | None:
        """The request ``approval_id``, or None."""
        rows = list(
            self._runtime.store.db.query("SELECT * FROM approvals WHERE id = ?", [approval_id])
        )
        return Approval.from_row(rows[0]) if rows else None

    def pending(self) -> list[Approval]:
        """Every request still waiting for approvers, oldest first."""
        rows = self._runtime.store.db.query(
            "SELECT * FROM approvals WHERE state = 'pending' ORDER BY created_at"
        )
        return [Approval.from_row(row) for row in rows]

    def _current(self, approval_id: str) -> Approval:
        approval = self.get(approval_id)
        if approval is None:
            raise CommandFailed(f"There is no approval request {approval_id}.")
        if approval.state == "pending" and self._runtime.clock() >= approval.expires_at:
            self.expire(approval.id)
            approval = self.get(approval_id)
            assert approval is not None
        return approval

    def approvers(self, approval_id: str) -> list[str]:
        """Who approved ``approval_id`` so far, in order."""
        rows = self._runtime.store.db.execute(
            "SELECT approver FROM approval_votes WHERE approval_id = ? AND decision = 'approve'"
            " ORDER BY at",
            [approval_id],
        ).fetchall()
        return [r[0] for r in rows]

    def card(self, approval: Approval) -> Reply:
        """The approval card for ``approval`` in its current state."""
        approvers = self.approvers(approval.id)
        votes = f"{len(approvers)} of {approval.needed}"
        if approvers:
            votes += ": " + ", ".join(f"<@{a}>" for a in approvers)
        fields = [
            Field("Requested by", f"<@{approval.requester}>"),
            Field("Environment", escape(approval.environment)),
            Field("Approvals", votes),
            Field("Request", f"`{approval.id}`"),
        ]
        fields += [Field(label, value) for label, value in approval.preview.get("fields", [])]
        if approval.state == "pending":
            fields.append(Field("Expires", f"{approval.expires_at:%Y-%m-%d %H:%M} UTC"))
        text = approval.preview.get("text", "")
        if approval.reason:
            text += f"\n{ICONS[approval.state]} {approval.reason}"
        buttons: tuple[Button, ...] = ()
        if approval.state == "pending":
            buttons = (
                Button("Approve", f"approve {approval.id}", style="primary"),
                Button(
                    "Deny",
                    f"deny {approval.id}",
                    style="danger",
                    confirm=f"Deny request {approval.id}? It will not run.",
                ),
            )
        return Reply(
            title=f"{TITLES[approval.state]}: {approval.permission} in {approval.environment}",
            text=f"{ICONS[approval.state]} {text}",
            fields=tuple(fields),
            buttons=buttons,
            footer=(
                f"Needs {approval.needed} approver(s) with approve:{escape(approval.environment)};"
                f" never the requester. Ref {approval.ref}."
            ),
        )

    def _refresh_card(self, approval: Approval) -> None:
        if approval.card_channel and approval.card_ts:
            self._runtime.channels.update(
                approval.card_channel, approval.card_ts, self.card(approval)
            )

    def _audit(
        self, approval: Approval, actor: str, decision: str, outcome: str, detail: str = ""
    ) -> None:
        self._runtime.audit.record(
            self._runtime.clock(),
            actor=actor,
            channel=approval.card_channel or approval.channel,
            command=approval.command_redacted,
            decision=f"{decision} (request {approval.id})",
            outcome=outcome,
            ref=approval.ref,
            detail=detail,
        )

    @contextmanager
    def _db(self, *, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        conn = self._runtime.store.db.conn
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

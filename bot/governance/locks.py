"""Locks on what commands change: one mutating command per target at a time.

Handlers declare their targets (``locks=("app:{app}@{env}",)``). The lock step takes all
of a command's targets in one transaction before the handler runs and releases them when
it ends. A second command on a locked target is refused with who holds it, since when
and what they are running. A lock whose holder died is released: at once when that
process is gone (same host), else when its lease runs out (``[server].lock_lease``).
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.clock import from_iso, iso
from bot.pipeline import Invocation, Next, Step
from bot.store import Store
from handlers.context import Clock
from handlers.errors import Refused
from handlers.reply import Reply, code

log = logging.getLogger(__name__)

#: This process's identity beside its PID: a restarted container may get the same PID
#: (often 1) and must still see its earlier incarnation's locks as dead.
_PROCESS_BOOT = uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Held:
    """A lock someone else holds."""

    target: str
    holder: str
    ref: str
    command: str
    since: datetime


class Locks:
    """The ``locks`` table: acquire all-or-nothing, release, list, clean up after the dead."""

    def __init__(self, store: Store, clock: Clock, lease: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._lease = lease
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{_PROCESS_BOOT}"

    def acquire(self, targets: list[str], *, holder: str, ref: str, command: str) -> Held | None:
        """Take every target, or none; return the first lock someone else holds."""
        if not targets:
            return None
        now = self._clock()
        conn = self._store.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._release_dead(conn, now)
            for target in targets:
                row = conn.execute(
                    "SELECT holder, ref, command, acquired_at FROM locks WHERE target = ?",
                    [target],
                ).fetchone()
                if row is not None:
                    conn.execute("ROLLBACK")
                    return Held(target, row[0], row[1], row[2], from_iso(row[3]))
            for target in targets:
                conn.execute(
                    "INSERT INTO locks (target, holder, ref, command, acquired_at, expires_at,"
                    " boot) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [target, holder, ref, command, iso(now), iso(now + self._lease), self._owner],
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return None

    def release(self, targets: list[str], ref: str) -> None:
        """Release the ``targets`` held under ``ref``."""
        db = self._store.db
        with db.atomic():
            for target in targets:
                db.execute("DELETE FROM locks WHERE target = ? AND ref = ?", [target, ref])

    def held(self) -> list[dict[str, Any]]:
        """Every lock currently held (dead holders' locks released first)."""
        conn = self._store.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._release_dead(conn, self._clock())
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return list(
            self._store.db.query(
                "SELECT target, holder, ref, command, acquired_at, expires_at FROM locks"
                " ORDER BY target"
            )
        )

    def _release_dead(self, conn: sqlite3.Connection, now: datetime) -> None:
        conn.execute("DELETE FROM locks WHERE expires_at <= ?", [iso(now)])
        host = socket.gethostname()
        for (owner,) in conn.execute("SELECT DISTINCT boot FROM locks").fetchall():
            owner_host, _, rest = str(owner).partition(":")
            pid, _, boot = rest.partition(":")
            if owner_host != host or not pid.isdigit():
                continue  # another host: its lease decides
            earlier_me = int(pid) == os.getpid() and boot != _PROCESS_BOOT
            if earlier_me or not _alive(int(pid)):
                log.warning("releasing locks of process %s, which is gone", pid)
                conn.execute("DELETE FROM locks WHERE boot = ?", [owner])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_step(locks: Locks) -> Step:
    """The step that holds the command's targets while its handler runs."""

    def hold(invocation: Invocation, proceed: Next) -> Reply:
        spec, command = invocation.spec, invocation.command
        assert spec is not None
        assert command is not None
        targets = spec.lock_targets(command) if spec.mutating else []
        request = invocation.request
        text = invocation.redacted_text or command.path
        held = locks.acquire(targets, holder=request.actor, ref=request.ref, command=text)
        if held is not None:
            invocation.decision = "refused"
            invocation.detail = f"locked: {held.target} by {held.holder} ({held.ref})"
            raise Refused(
                f"{code(held.target)} is locked by <@{held.holder}> since "
                f"{held.since:%Y-%m-%d %H:%M} UTC, running {code(held.command)} "
                f"(ref {held.ref}). Try again when it has finished; `locks` shows every lock.",
                markup=True,
            )
        try:
            return proceed(invocation)
        finally:
            locks.release(targets, request.ref)

    return hold

"""The tamper-evident audit trail: an append-only table, each entry chained by SHA-256.

Every entry's hash covers a canonical JSON encoding of all its fields, including the
previous entry's hash, so editing, deleting, inserting or reordering rows breaks the
chain at the first bad entry. ``audit_head`` holds the newest hash and count, updated in
the same transaction, so removing entries from the end is caught too; each append also
logs the new head, which anchors the chain outside the database.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database

from bot.clock import iso
from bot.governance.dlp import redact
from bot.pipeline import Invocation, Next, Step, failure_reply
from bot.store import Store
from handlers.context import Clock
from handlers.reply import Reply, Status

log = logging.getLogger(__name__)

GENESIS = "0" * 64  # the prev_hash of entry 1 (also set by migration 0002)
FIELDS = ("id", "ts", "actor", "channel", "command", "decision", "outcome", "ref", "detail")


@dataclass(frozen=True)
class Entry:
    """One audit entry, as written."""

    ts: str
    actor: str
    channel: str
    command: str  # redacted command text
    decision: str  # allowed, refused, approval requested, approved, denied, expired…
    outcome: str  # ok, usage, refused, failed, pending…
    ref: str
    detail: str = ""


def canonical(row: dict[str, Any]) -> bytes:
    """The bytes an entry's hash covers: every field but ``hash``, as sorted JSON."""
    body = {key: row[key] for key in (*FIELDS, "prev_hash")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(row: dict[str, Any]) -> str:
    """The SHA-256 of an entry's canonical encoding."""
    return hashlib.sha256(canonical(row)).hexdigest()


class AuditTrail:
    """Appends and reads the chained audit table."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def append(self, entry: Entry) -> int:
        """Append ``entry``; return its id. Serialised across threads and processes."""
        conn = self._store.db.conn
        conn.execute("BEGIN IMMEDIATE")  # read the head and write the entry atomically
        try:
            count, prev_hash = conn.execute("SELECT count, hash FROM audit_head").fetchone()
            row: dict[str, Any] = {
                "id": count + 1,
                **{key: getattr(entry, key) for key in FIELDS if key != "id"},
                "prev_hash": prev_hash,
            }
            row["hash"] = digest(row)
            columns = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            conn.execute(f"INSERT INTO audit ({columns}) VALUES ({marks})", list(row.values()))  # noqa: S608
            conn.execute("UPDATE audit_head SET count = ?, hash = ?", [row["id"], row["hash"]])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.debug("audit head %d %s", row["id"], row["hash"])
        return int(row["id"])

    def record(
        self,
        now: datetime,
        *,
        actor: str,
        channel: str,
        command: str,
        decision: str,
        outcome: str,
        ref: str,
        detail: str = "",
    ) -> int:
        """Append an entry stamped ``now``."""
        return self.append(Entry(iso(now), actor, channel, command, decision, outcome, ref, detail))

    def entries(
        self,
        *,
        since: str | None = None,
        actor: str | None = None,
        verb: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Entries filtered by time, actor and verb (the first word of the command)."""
        where, params = ["1=1"], []
        if since:
            where.append("ts >= ?")
            params.append(since)
        if actor:
            where.append("actor = ?")
            params.append(actor)
        if verb:
            where.append("(command = ? OR command LIKE ?)")
            params.extend([verb, f"{verb} %"])
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT * FROM audit WHERE {' AND '.join(where)} ORDER BY id {order}"  # noqa: S608
        if limit:
            sql += f" LIMIT {int(limit)}"
        return list(self._store.db.query(sql, params))


@dataclass(frozen=True)
class Verdict:
    """What ``audit verify`` found."""

    ok: bool
    count: int
    bad_id: int | None = None
    reason: str = ""


def verify(db: Database | sqlite3.Connection) -> Verdict:
    """Walk the chain; the first entry whose id, link or hash is wrong makes it fail."""
    conn = db.conn if isinstance(db, Database) else db
    cursor = conn.execute(f"SELECT {', '.join(FIELDS)}, prev_hash, hash FROM audit ORDER BY rowid")  # noqa: S608
    names = [c[0] for c in cursor.description]
    expected_prev, expected_id, count = GENESIS, 1, 0
    for values in cursor:
        row = dict(zip(names, values, strict=True))
        if row["id"] != expected_id:
            return Verdict(False, count, row["id"], f"expected entry {expected_id} here")
        if row["prev_hash"] != expected_prev:
            return Verdict(False, count, row["id"], "does not link to the entry before it")
        if digest(row) != row["hash"]:
            return Verdict(False, count, row["id"], "its content does not match its hash")
        expected_prev, expected_id, count = row["hash"], expected_id + 1, count + 1
    head = conn.execute("SELECT count, hash FROM audit_head").fetchone()
    if head is None:
        return Verdict(False, count, count + 1, "the audit head is missing")
    if head[0] > count:
        return Verdict(
            False, count, count + 1, f"the head says {head[0]} entries; some are missing"
        )
    if head[0] < count:
        return Verdict(False, count, head[0] + 1, "this entry was added behind the head's back")
    if head[1] != expected_prev:
        return Verdict(False, count, max(count, 1), "the head does not match this entry")
    return Verdict(True, count)


def export(rows: list[dict[str, Any]], fmt: str) -> Iterator[str]:
    """Render entries as JSON Lines or CSV (header first)."""
    columns = [*FIELDS, "prev_hash", "hash"]
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps({key: row[key] for key in columns}, ensure_ascii=False) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        yield buffer.getvalue()


def audit_step(trail: AuditTrail, clock: Clock) -> Step:
    """The step that writes one entry per command: who, where, the redacted text, what
    governance decided and how it ended. It sees every outcome, errors included."""

    def record(invocation: Invocation, proceed: Next) -> Reply:
        request = invocation.request
        try:
            reply = proceed(invocation)
        except Exception as error:
            reply = failure_reply(error, request.ref)
        if reply.status is Status.IGNORED:
            return reply
        text = invocation.redacted_text
        decision = invocation.decision
        if reply.status is Status.REFUSED and decision == "allowed":
            decision = "refused"
        try:
            trail.record(
                clock(),
                actor=request.actor,
                channel=request.channel,
                command=text if text is not None else redact(request.text),
                decision=decision,
                outcome=reply.status.value,
                ref=request.ref,
                detail=invocation.detail,
            )
        except Exception:
            log.exception("could not write the audit entry ref=%s", request.ref)
        return reply

    return record


def parse_since(text: str) -> str:
    """An ISO date or time (a time without a zone is UTC) as the store's timestamp format,
    so that ``since`` compares as instants, whatever form it was written in."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso(moment)

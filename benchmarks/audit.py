"""P3: what the hash chain costs. Audit appends per second (``AuditTrail.append``: read
the head, hash the canonical entry, insert, move the head, all in one ``BEGIN IMMEDIATE``
transaction) against plain sqlite-utils inserts of the same rows into a table with the
same columns and indexes, in a file beside it on the same disk, with the store's own
settings (WAL, ``synchronous=NORMAL``) and one transaction per row. For context: bare
sqlite3 inserts (no sqlite-utils overhead, the floor under both) and sqlite-utils' batched
``insert_all`` (what the chain gives up by committing each entry on its own).
"""

from __future__ import annotations

import contextlib
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from benchmarks.table import Row
from bot.clock import iso
from bot.governance.audit import AuditTrail, Entry, verify
from bot.store import Store

ROWS = 5000
ROUNDS = 3
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
#: The chain may cost up to this much. One entry per command at thousands per second is
#: far beyond any team's command rate; what matters is that it stays the same order of
#: magnitude as a plain insert.
MIN_RATIO = 0.30


def _entries(count: int) -> list[Entry]:
    return [
        Entry(
            ts=iso(START + timedelta(milliseconds=k)),
            actor=f"U0USER{k % 7}",
            channel="C0OPS",
            command=f"deploy payments staging rev=3f786850e387550fdab836ed7e6dc881de2{k:05d}",
            decision="allowed",
            outcome="ok",
            ref=f"REF{k:05d}",
            detail="",
        )
        for k in range(count)
    ]


def _chained(folder: Path, entries: list[Entry]) -> tuple[float, list[dict[str, Any]], float]:
    """Appends per second, the rows written, and verify's entries per second."""
    store = Store.open(folder / "chained.db")
    try:
        trail = AuditTrail(store)
        started = time.perf_counter()
        for item in entries:
            trail.append(item)
        elapsed = time.perf_counter() - started
        rows = trail.entries()
        with contextlib.closing(sqlite3.connect(folder / "chained.db")) as conn:
            checked = time.perf_counter()
            verdict = verify(conn)
            verified = time.perf_counter() - checked
        assert verdict.ok, verdict
        assert verdict.count == len(entries), verdict
    finally:
        store.close()
    return len(entries) / elapsed, rows, len(entries) / verified


def _plain_db(path: Path) -> Database:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    db = Database(conn, execute_plugins=False)
    db["plain"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "ts": str,
            "actor": str,
            "channel": str,
            "command": str,
            "decision": str,
            "outcome": str,
            "ref": str,
            "detail": str,
            "prev_hash": str,
            "hash": str,
        },
        pk="id",
    )
    db["plain"].create_index(["ts"])  # type: ignore[union-attr]
    db["plain"].create_index(["actor"])  # type: ignore[union-attr]
    return db


def _plain(path: Path, rows: list[dict[str, Any]], *, batched: bool) -> float:
    """sqlite-utils inserts per second: one transaction per row, or its default batches."""
    db = _plain_db(path)
    try:
        table = db["plain"]
        started = time.perf_counter()
        if batched:
            table.insert_all(rows)  # type: ignore[union-attr]
        else:
            for row in rows:
                table.insert(row)  # type: ignore[union-attr]
        elapsed = time.perf_counter() - started
        assert db.execute("SELECT count(*) FROM plain").fetchone()[0] == len(rows)
    finally:
        db.conn.close()
    return len(rows) / elapsed


def _raw(path: Path, rows: list[dict[str, Any]]) -> float:
    """Bare sqlite3 inserts per second, one transaction per row: the floor under both."""
    db = _plain_db(path)
    conn = db.conn
    columns = list(rows[0])
    sql = f"INSERT INTO plain ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"  # noqa: S608
    try:
        started = time.perf_counter()
        for row in rows:
            conn.execute("BEGIN")
            conn.execute(sql, [row[c] for c in columns])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return len(rows) / elapsed


def measure(count: int = ROWS, rounds: int = ROUNDS) -> dict[str, float]:
    """Median rates over ``rounds`` fresh databases: chained, plain per row, batched, bare
    sqlite3 per row, verify."""
    entries = _entries(count)
    chained: list[float] = []
    per_row: list[float] = []
    batched: list[float] = []
    bare: list[float] = []
    verified: list[float] = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="opsbot-bench-audit-") as name:
            folder = Path(name)
            rate, rows, verify_rate = _chained(folder, entries)
            chained.append(rate)
            verified.append(verify_rate)
            per_row.append(_plain(folder / "plain.db", rows, batched=False))
            batched.append(_plain(folder / "batched.db", rows, batched=True))
            bare.append(_raw(folder / "bare.db", rows))
    return {
        "chained": statistics.median(chained),
        "per_row": statistics.median(per_row),
        "batched": statistics.median(batched),
        "bare": statistics.median(bare),
        "verify": statistics.median(verified),
    }


def run() -> list[Row]:
    rates = measure()
    ratio = rates["chained"] / rates["per_row"]
    return [
        Row(
            "audit: chained appends vs plain sqlite-utils inserts (1 txn/row)",
            f"chained {rates['chained']:,.0f}/s, plain {rates['per_row']:,.0f}/s, "
            f"ratio {ratio:.0%} (median of {ROUNDS} × {ROWS} rows)",
            f"chained ≥ {MIN_RATIO:.0%} of plain",
            ratio >= MIN_RATIO,
        ),
        Row(
            "audit: bare sqlite3 inserts, 1 txn/row (context)",
            f"{rates['bare']:,.0f} rows/s; chained is {rates['chained'] / rates['bare']:.0%} of it",
            "context only",
            True,
        ),
        Row(
            "audit: plain sqlite-utils insert_all (batches of 100, context)",
            f"{rates['batched']:,.0f} rows/s",
            "context only",
            True,
        ),
        Row(
            "audit verify: entries checked",
            f"{rates['verify']:,.0f} entries/s",
            "≥ 20,000/s",
            rates["verify"] >= 20_000,
        ),
    ]

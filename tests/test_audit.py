"""The audit trail: chained appends, ``verify`` against every kind of tampering (done with
a raw sqlite3 connection, as an attacker with the file would), concurrent writers,
export, the ``opsbot audit`` command line, and the pipeline step that writes entries."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import itertools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import ManualClock, iso
from bot.governance.audit import (
    FIELDS,
    GENESIS,
    AuditTrail,
    Entry,
    Verdict,
    audit_step,
    canonical,
    digest,
    export,
    verify,
)
from bot.pipeline import Invocation, Next, Pipeline, Request
from bot.runtime import Runtime
from bot.store import Store
from handlers.context import Command, Context
from handlers.registry import Registry
from handlers.reply import Reply, Status
from tests.conftest import RecordingResponder, run_opsbot

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
COLUMNS = [*FIELDS, "prev_hash", "hash"]


def entry(k: int, *, actor: str = "U0ALICE", at: datetime | None = None) -> Entry:
    """The k-th test entry, one minute after the one before."""
    when = at or START + timedelta(minutes=k)
    return Entry(
        ts=iso(when),
        actor=actor,
        channel="C0OPS",
        command=f"deploy payments staging rev=r{k}",
        decision="allowed",
        outcome="ok",
        ref=f"REF{k:05d}",
        detail="",
    )


def fill(store: Store, count: int) -> AuditTrail:
    trail = AuditTrail(store)
    for k in range(1, count + 1):
        trail.append(entry(k))
    return trail


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the file, committed and closed at the end."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        yield conn


def rows(path: Path) -> list[dict[str, Any]]:
    with raw(path) as conn:
        cursor = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY id")  # noqa: S608
        return [dict(zip(COLUMNS, values, strict=True)) for values in cursor]


def head(path: Path) -> tuple[int, str]:
    with raw(path) as conn:
        count, hash_ = conn.execute("SELECT count, hash FROM audit_head").fetchone()
        return int(count), str(hash_)


def write_row(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    marks = ", ".join("?" for _ in COLUMNS)
    conn.execute(
        f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({marks})",  # noqa: S608
        [row[c] for c in COLUMNS],
    )


def check(store: Store) -> Verdict:
    """verify() on a fresh connection of its own, as ``opsbot audit verify`` does."""
    with contextlib.closing(sqlite3.connect(store.path)) as conn:
        return verify(conn)


# --- appending and chaining ------------------------------------------------------------------


def test_an_empty_trail_verifies_with_zero_entries(store: Store) -> None:
    assert verify(store.db) == Verdict(True, 0)
    assert head(store.path) == (0, GENESIS)


def test_appends_get_consecutive_ids_and_verify_counts_them(store: Store) -> None:
    trail = AuditTrail(store)

    ids = [trail.append(entry(k)) for k in range(1, 8)]

    assert ids == list(range(1, 8))
    assert verify(store.db) == Verdict(True, 7)
    assert check(store) == Verdict(True, 7)


def test_each_entry_links_to_the_one_before_and_hashes_its_own_content(store: Store) -> None:
    fill(store, 5)
    written = rows(store.path)

    assert written[0]["prev_hash"] == GENESIS
    for before, after in itertools.pairwise(written):
        assert after["prev_hash"] == before["hash"]
    for row in written:
        assert row["hash"] == digest(row)
        assert row["hash"] == hashlib.sha256(canonical(row)).hexdigest()
    assert head(store.path) == (5, written[-1]["hash"])


def test_entries_keep_every_field_as_written(store: Store) -> None:
    trail = AuditTrail(store)
    written = Entry(
        ts=iso(START),
        actor="U0BOB",
        channel="C0PROD",
        command="rollback checkout prod",
        decision="approved by U0ALICE",
        outcome="pending",
        ref="ABCD2345",
        detail="approvals 1/1",
    )

    trail.append(written)

    (row,) = trail.entries()
    assert {key: row[key] for key in FIELDS if key != "id"} == written.__dict__
    assert row["id"] == 1


def test_record_stamps_the_entry_with_the_time_given(store: Store) -> None:
    trail = AuditTrail(store)
    when = datetime(2026, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)

    trail.record(
        when, actor="U0A", channel="C0", command="help", decision="allowed", outcome="ok", ref="R"
    )

    (row,) = trail.entries()
    assert row["ts"] == "2026-03-01T12:30:15.250000+00:00"
    assert row["detail"] == ""


def test_canonical_covers_every_field_but_the_hash() -> None:
    row: dict[str, Any] = {key: f"v-{key}" for key in FIELDS} | {"prev_hash": GENESIS}
    row["id"] = 1

    assert canonical({**row, "hash": "anything"}) == canonical({**row, "hash": "else"})
    for key in (*FIELDS, "prev_hash"):
        changed = {**row, key: 2 if key == "id" else "changed"}
        assert digest(changed) != digest(row), key
    assert json.loads(canonical(row)) == row


def test_entries_filter_by_actor_verb_and_time(store: Store) -> None:
    trail = AuditTrail(store)
    trail.append(entry(1, actor="U0ALICE"))
    trail.append(entry(2, actor="U0BOB"))
    trail.record(
        START + timedelta(minutes=3),
        actor="U0BOB",
        channel="C0OPS",
        command="status payments",
        decision="allowed",
        outcome="ok",
        ref="R3",
    )

    assert [r["id"] for r in trail.entries(actor="U0BOB")] == [2, 3]
    assert [r["id"] for r in trail.entries(verb="deploy")] == [1, 2]
    assert [r["id"] for r in trail.entries(verb="dep")] == []
    assert [r["id"] for r in trail.entries(since=iso(START + timedelta(minutes=2)))] == [2, 3]
    assert [r["id"] for r in trail.entries(limit=2, newest_first=True)] == [3, 2]


# --- tampering: one test per kind of change ---------------------------------------------------

EDITS: dict[str, object] = {
    "actor": "U0MALLORY",
    "channel": "C0ELSEWHERE",
    "command": "status payments",
    "decision": "refused",
    "outcome": "failed",
    "ref": "FORGED00",
    "detail": "nothing to see",
    "ts": iso(START + timedelta(days=1)),
    "prev_hash": "f" * 64,
}


@pytest.mark.parametrize("field", list(EDITS))
def test_an_edited_field_is_caught_at_its_entry(store: Store, field: str) -> None:
    fill(store, 5)

    with raw(store.path) as conn:
        conn.execute(f"UPDATE audit SET {field} = ? WHERE id = 3", [EDITS[field]])  # noqa: S608

    verdict = check(store)
    assert (verdict.ok, verdict.bad_id, verdict.count) == (False, 3, 2)
    assert verdict.reason


def test_an_edited_entry_with_its_hash_recomputed_breaks_the_next_link(store: Store) -> None:
    fill(store, 5)
    third = rows(store.path)[2]
    forged = {**third, "command": "status payments"}
    forged["hash"] = digest(forged)

    with raw(store.path) as conn:
        conn.execute(
            "UPDATE audit SET command = ?, hash = ? WHERE id = 3",
            [forged["command"], forged["hash"]],
        )

    assert check(store) == Verdict(False, 3, 4, "does not link to the entry before it")


def test_the_last_entry_edited_with_its_hash_recomputed_is_named(store: Store) -> None:
    fill(store, 5)
    last = rows(store.path)[-1]
    forged = {**last, "outcome": "ok", "decision": "refused"}
    forged["hash"] = digest(forged)

    with raw(store.path) as conn:
        conn.execute(
            "UPDATE audit SET decision = ?, hash = ? WHERE id = 5",
            [forged["decision"], forged["hash"]],
        )

    verdict = check(store)
    assert not verdict.ok
    assert verdict.bad_id == 5  # the edited entry: nothing is missing, entry 6 never existed


def test_a_deleted_entry_in_the_middle_is_caught_where_the_gap_is(store: Store) -> None:
    fill(store, 5)

    with raw(store.path) as conn:
        conn.execute("DELETE FROM audit WHERE id = 3")

    verdict = check(store)
    assert (verdict.ok, verdict.bad_id, verdict.count) == (False, 4, 2)
    assert "expected entry 3" in verdict.reason


def test_a_deleted_entry_with_the_rest_renumbered_is_caught(store: Store) -> None:
    fill(store, 5)

    with raw(store.path) as conn:
        conn.execute("DELETE FROM audit WHERE id = 3")
        for old in (4, 5):
            conn.execute("UPDATE audit SET id = ? WHERE id = ?", [old - 1, old])
        conn.execute("UPDATE audit_head SET count = 4")

    verdict = check(store)
    assert (verdict.ok, verdict.bad_id) == (False, 3)


def test_the_last_entry_deleted_is_caught_by_the_head(store: Store) -> None:
    fill(store, 5)

    with raw(store.path) as conn:
        conn.execute("DELETE FROM audit WHERE id = 5")

    verdict = check(store)
    assert (verdict.ok, verdict.bad_id, verdict.count) == (False, 5, 4)
    assert "missing" in verdict.reason


def test_a_forged_entry_squeezed_in_with_the_rest_renumbered_is_caught(store: Store) -> None:
    """The forged entry itself is consistent (it links to entry 2 and hashes right), so
    the first entry that can be seen to be wrong is the one after it."""
    fill(store, 5)
    second = rows(store.path)[1]
    forged: dict[str, Any] = {
        **second,
        "id": 3,
        "ts": iso(START + timedelta(minutes=2, seconds=30)),
        "command": "approve ABCD",
        "decision": "approved",
        "prev_hash": second["hash"],
    }
    forged["hash"] = digest(forged)

    with raw(store.path) as conn:
        for old in (5, 4, 3):  # make room, highest first (id is the primary key)
            conn.execute("UPDATE audit SET id = ? WHERE id = ?", [old + 1, old])
        write_row(conn, forged)
        conn.execute("UPDATE audit_head SET count = 6")

    assert [r["id"] for r in rows(store.path)] == [1, 2, 3, 4, 5, 6]
    verdict = check(store)
    assert (verdict.ok, verdict.bad_id, verdict.count) == (False, 4, 3)


def test_a_forged_entry_before_the_first_is_caught(store: Store) -> None:
    fill(store, 3)
    forged: dict[str, Any] = {**rows(store.path)[0], "id": 0, "prev_hash": GENESIS}
    forged["hash"] = digest(forged)

    with raw(store.path) as conn:
        write_row(conn, forged)

    verdict = check(store)
    assert (verdict.ok, verdict.bad_id) == (False, 0)


def test_a_forged_entry_appended_without_the_head_is_named(store: Store) -> None:
    fill(store, 5)
    last = rows(store.path)[-1]
    forged: dict[str, Any] = {
        **last,
        "id": 6,
        "command": "approve ABCD",
        "prev_hash": last["hash"],
    }
    forged["hash"] = digest(forged)

    with raw(store.path) as conn:
        write_row(conn, forged)

    verdict = check(store)
    assert not verdict.ok
    assert verdict.bad_id == 6  # the entry the head does not cover, not a missing entry 7


def test_two_entries_swapped_are_caught_at_the_first(store: Store) -> None:
    fill(store, 5)
    second, third = rows(store.path)[1:3]
    contents = [c for c in COLUMNS if c != "id"]
    assignments = ", ".join(f"{c} = ?" for c in contents)

    with raw(store.path) as conn:
        for target, source in ((2, third), (3, second)):
            conn.execute(
                f"UPDATE audit SET {assignments} WHERE id = ?",  # noqa: S608
                [*(source[c] for c in contents), target],
            )

    verdict = check(store)
    assert (verdict.ok, verdict.bad_id, verdict.count) == (False, 2, 1)


def test_two_timestamps_swapped_are_caught(store: Store) -> None:
    fill(store, 5)
    second, third = rows(store.path)[1:3]

    with raw(store.path) as conn:
        conn.execute("UPDATE audit SET ts = ? WHERE id = 2", [third["ts"]])
        conn.execute("UPDATE audit SET ts = ? WHERE id = 3", [second["ts"]])

    assert (check(store).ok, check(store).bad_id) == (False, 2)


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("UPDATE audit_head SET hash = ?", ["e" * 64]),
        ("UPDATE audit_head SET count = 6", []),
        ("UPDATE audit_head SET count = 4", []),
        ("DELETE FROM audit_head", []),
    ],
    ids=["hash", "count-up", "count-down", "deleted"],
)
def test_an_edited_head_is_caught(store: Store, sql: str, params: list[str]) -> None:
    fill(store, 5)

    with raw(store.path) as conn:
        conn.execute(sql, params)

    verdict = check(store)
    assert not verdict.ok
    assert "head" in verdict.reason


def test_appending_after_a_good_check_keeps_the_chain_whole(store: Store) -> None:
    trail = fill(store, 3)
    assert verify(store.db) == Verdict(True, 3)

    trail.append(entry(4))

    assert verify(store.db) == Verdict(True, 4)


# --- concurrency -------------------------------------------------------------------------------


def test_threads_and_a_second_store_appending_at_once_keep_one_chain(store: Store) -> None:
    second = Store.open(store.path)  # another connection pool on the file, like a 2nd process
    try:
        writers = [(AuditTrail(store), f"U0A{n}") for n in range(4)]
        writers += [(AuditTrail(second), f"U0B{n}") for n in range(4)]
        start = threading.Barrier(len(writers))

        def write(trail: AuditTrail, actor: str) -> list[int]:
            start.wait(10)
            return [trail.append(entry(k, actor=actor)) for k in range(50)]

        with ThreadPoolExecutor(len(writers)) as pool:
            futures = [pool.submit(write, trail, actor) for trail, actor in writers]
            ids = [future.result(60) for future in futures]
    finally:
        second.close()

    for own in ids:
        assert own == sorted(own)  # each writer's entries are in its order
    assert sorted(i for own in ids for i in own) == list(range(1, 401))
    assert verify(store.db) == Verdict(True, 400)
    assert head(store.path)[0] == 400
    written = rows(store.path)
    for _, actor in writers:
        mine = [r["command"] for r in written if r["actor"] == actor]
        assert mine == [f"deploy payments staging rev=r{k}" for k in range(50)]


# --- export ---------------------------------------------------------------------------------

TRICKY = [
    'deploy "payments", staging',
    "note: café ✓ 日本",
    "multi\nline; with ' quotes",
    "plain",
]


def _tricky_trail(store: Store) -> AuditTrail:
    trail = AuditTrail(store)
    for k, command in enumerate(TRICKY, start=1):
        trail.append(Entry(iso(START + timedelta(minutes=k)), "U0A", "C0", command, "a", "ok", "R"))
    return trail


def test_jsonl_export_round_trips_every_field(store: Store) -> None:
    trail = _tricky_trail(store)
    entries = trail.entries()

    lines = "".join(export(entries, "jsonl")).splitlines()

    assert len(lines) == len(TRICKY)
    assert [json.loads(line) for line in lines] == entries
    assert [list(json.loads(line)) for line in lines] == [COLUMNS] * len(TRICKY)
    assert verify(store.db).ok


def test_csv_export_has_a_header_and_one_record_per_entry(store: Store) -> None:
    trail = _tricky_trail(store)
    entries = trail.entries()

    text = "".join(export(entries, "csv"))

    records = list(csv.reader(io.StringIO(text)))
    assert records[0] == COLUMNS
    assert len(records) == len(TRICKY) + 1
    assert [dict(zip(COLUMNS, r, strict=True)) for r in records[1:]] == [
        {key: str(value) for key, value in e.items()} for e in entries
    ]


def test_csv_export_of_plain_entries_is_one_line_each(store: Store) -> None:
    trail = fill(store, 4)

    lines = "".join(export(trail.entries(), "csv")).splitlines()

    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == 5
    assert lines[1].startswith("1,2026-01-05T09:01:00.000000+00:00,U0ALICE,C0OPS,")


def test_export_of_nothing_is_empty_or_just_the_header() -> None:
    assert "".join(export([], "jsonl")) == ""
    assert "".join(export([], "csv")).splitlines() == [",".join(COLUMNS)]


# --- the command line ---------------------------------------------------------------------


def test_cli_verify_prints_ok_and_the_count(store: Store, tmp_path: Path) -> None:
    fill(store, 5)

    done = run_opsbot("audit", "verify", "--db", str(store.path), cwd=tmp_path)

    assert (done.returncode, done.stdout) == (0, "ok 5 entries\n")


def test_cli_verify_names_the_first_bad_entry_and_exits_1(store: Store, tmp_path: Path) -> None:
    fill(store, 5)
    with raw(store.path) as conn:
        conn.execute("UPDATE audit SET actor = 'U0MALLORY' WHERE id = 2")

    done = run_opsbot("audit", "verify", "--db", str(store.path), cwd=tmp_path)

    assert done.returncode == 1
    assert done.stdout.startswith("bad entry 2: ")
    assert "hash" in done.stdout


def test_cli_verify_of_an_empty_trail_and_a_closed_store(tmp_path: Path) -> None:
    path = tmp_path / "closed.db"
    opened = Store.open(path)
    fill(opened, 2)
    opened.close()  # the bot stopped: no -wal or -shm beside the file

    done = run_opsbot("audit", "verify", "--db", str(path), cwd=tmp_path)

    assert (done.returncode, done.stdout) == (0, "ok 2 entries\n")


def test_cli_verify_of_a_missing_file_says_so_and_exits_1(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "opsbot.db"

    done = run_opsbot("audit", "verify", "--db", str(missing), cwd=tmp_path)

    assert done.returncode == 1
    assert done.stdout == ""
    assert f"no database at {missing}" in done.stderr
    assert not missing.exists()  # looking did not create it


def test_cli_verify_of_a_file_that_is_not_a_database_exits_1(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("this is not sqlite\n" * 100)

    done = run_opsbot("audit", "verify", "--db", str(junk), cwd=tmp_path)

    assert done.returncode == 1
    assert "cannot read" in done.stderr
    assert "Traceback" not in done.stderr


def _timeline(store: Store) -> None:
    trail = AuditTrail(store)
    for k, at in enumerate(
        [
            datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
            datetime(2026, 1, 5, 10, 0, tzinfo=UTC),
            datetime(2026, 1, 5, 10, 0, 0, 500000, tzinfo=UTC),
            datetime(2026, 1, 5, 11, 0, tzinfo=UTC),
        ],
        start=1,
    ):
        trail.append(entry(k, at=at))


def _export_ids(path: Path, cwd: Path, *options: str) -> list[str]:
    done = run_opsbot("audit", "export", "--db", str(path), *options, cwd=cwd)
    assert done.returncode == 0, done.stderr
    records = list(csv.DictReader(io.StringIO(done.stdout)))
    return [r["id"] for r in records]


def test_cli_export_csv_filters_by_time(store: Store, tmp_path: Path) -> None:
    _timeline(store)

    assert _export_ids(store.path, tmp_path, "--format", "csv") == ["1", "2", "3", "4"]
    since = ["--format", "csv", "--since"]
    assert _export_ids(store.path, tmp_path, *since, "2026-01-05T09:30:00") == ["2", "3", "4"]
    assert _export_ids(store.path, tmp_path, *since, "2026-01-05T10:00:00+00:00") == [
        "2",
        "3",
        "4",
    ]
    assert _export_ids(store.path, tmp_path, *since, "2026-01-05T10:30") == ["4"]
    assert _export_ids(store.path, tmp_path, *since, "2026-01-06") == []


@pytest.mark.parametrize(
    "since", ["2026-01-05T10:00:00Z", "2026-01-05T12:00:00+02:00", "2026-01-05T05:00:00-05:00"]
)
def test_cli_export_since_accepts_any_iso_form_of_the_same_instant(
    store: Store, tmp_path: Path, since: str
) -> None:
    _timeline(store)

    # "only entries at or after this time": 10:00 UTC, however it is written.
    assert _export_ids(store.path, tmp_path, "--format", "csv", "--since", since) == [
        "2",
        "3",
        "4",
    ]


def test_cli_export_jsonl_is_the_default_and_matches_the_store(
    store: Store, tmp_path: Path
) -> None:
    trail = _tricky_trail(store)

    done = run_opsbot("audit", "export", "--db", str(store.path), cwd=tmp_path)

    assert done.returncode == 0
    assert [json.loads(line) for line in done.stdout.splitlines()] == trail.entries()


# --- the pipeline step ---------------------------------------------------------------------


def test_a_crashing_handler_is_audited_as_failed(
    runtime: Runtime, responder: RecordingResponder
) -> None:
    @runtime.registry.command("crash", usage="crash", summary="raise")
    def crash(cmd: Command, ctx: Context) -> Reply:
        raise RuntimeError("kaboom")

    request = Request(text="crash", actor="U0ALICE", channel="C0OPS")
    reply = runtime.handle(request, responder)

    assert reply.status is Status.FAILED
    (row,) = runtime.audit.entries()
    assert (row["command"], row["decision"], row["outcome"]) == ("crash", "allowed", "failed")
    assert (row["actor"], row["channel"], row["ref"]) == ("U0ALICE", "C0OPS", request.ref)
    assert row["ts"] == iso(runtime.clock())
    assert "kaboom" not in json.dumps(row)


def test_a_usage_error_is_audited_with_its_decision(
    runtime: Runtime, responder: RecordingResponder
) -> None:
    @runtime.registry.command("pair", usage="pair A B", summary="needs two")
    def pair(cmd: Command, ctx: Context) -> Reply:
        return Reply(text="paired")

    reply = runtime.handle(Request(text="pair one", actor="U0BOB", channel="C0OPS"), responder)

    assert reply.status is Status.USAGE
    (row,) = runtime.audit.entries()
    assert (row["command"], row["decision"], row["outcome"]) == ("pair one", "usage error", "usage")


def test_every_command_through_the_runtime_extends_one_verified_chain(
    runtime: Runtime, responder: RecordingResponder
) -> None:
    for text in ("help", "nosuchverb", "help", "locks"):
        runtime.handle(Request(text=text, actor="U0ALICE", channel="C0OPS"), responder)

    assert [r["command"] for r in runtime.audit.entries()] == [
        "help",
        "nosuchverb",
        "help",
        "locks",
    ]
    assert verify(runtime.store.db) == Verdict(True, 4)


def _pipeline_with(runtime: Runtime, clock: ManualClock, later: Callable[..., Reply]) -> Pipeline:
    """A pipeline whose only steps are audit_step and ``later`` after it."""
    registry = Registry()

    @registry.command("noop", usage="noop", summary="nothing")
    def noop(cmd: Command, ctx: Context) -> Reply:
        return Reply(text="done")

    return Pipeline(
        registry=registry,
        settings=runtime.settings,
        adapters=runtime.adapters,
        store=runtime.store,
        clock=clock,
        early_steps=[audit_step(AuditTrail(runtime.store), clock), later],
    )


def test_audit_step_records_a_step_that_raises_as_failed(
    runtime: Runtime, clock: ManualClock, responder: RecordingResponder
) -> None:
    def explode(invocation: Invocation, proceed: Next) -> Reply:
        raise RuntimeError("a governance step broke")

    request = Request(text="noop", actor="U0ALICE", channel="C0OPS")
    reply = _pipeline_with(runtime, clock, explode).handle(request, responder)

    assert reply.status is Status.FAILED
    assert request.ref in reply.text
    (row,) = AuditTrail(runtime.store).entries()
    assert (row["outcome"], row["ref"]) == ("failed", request.ref)


def test_audit_step_records_refusals_and_skips_ignored_repeats(
    runtime: Runtime, clock: ManualClock, responder: RecordingResponder
) -> None:
    def refuse_or_ignore(invocation: Invocation, proceed: Next) -> Reply:
        if invocation.request.actor == "U0REPEAT":
            return Reply(text="already handled", status=Status.IGNORED)
        return Reply(text="no", status=Status.REFUSED, ephemeral=True)

    pipeline = _pipeline_with(runtime, clock, refuse_or_ignore)
    pipeline.handle(Request(text="noop", actor="U0NOPE", channel="C0OPS"), responder)
    pipeline.handle(Request(text="noop", actor="U0REPEAT", channel="C0OPS"), responder)

    (row,) = AuditTrail(runtime.store).entries()
    assert (row["actor"], row["decision"], row["outcome"]) == ("U0NOPE", "refused", "refused")

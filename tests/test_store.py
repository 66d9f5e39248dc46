"""The store: opening, migrating, refusing what it cannot use, idempotency keys, threads."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlite_utils import Database

from bot.store import Store, StoreError, known_migrations

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LATEST = int(known_migrations()[-1][:4])
TTL = timedelta(minutes=10)
WAIT = 10.0

OpenStore = Callable[[Path], Store]


@pytest.fixture
def open_store() -> Iterator[OpenStore]:
    """``Store.open`` that closes every store it opened when the test ends."""
    opened: list[Store] = []

    def open_(path: Path) -> Store:
        store = Store.open(path)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def raw_query(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Rows from ``sql`` on a plain sqlite3 connection of our own, closed afterwards."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


def raw_execute(path: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    """Run and commit ``sql`` on a plain sqlite3 connection of our own."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(sql, params)


def keys(db: Database) -> list[str]:
    """The idempotency keys the connection ``db`` can see."""
    return [row[0] for row in db.execute("SELECT key FROM idempotency ORDER BY key")]


# Opening and migrating


def test_open_creates_the_file_and_its_folder(tmp_path: Path, open_store: OpenStore) -> None:
    path = tmp_path / "state" / "opsbot.db"

    open_store(path)

    assert path.is_file()


def test_open_puts_the_database_in_wal_mode(tmp_path: Path, open_store: OpenStore) -> None:
    path = tmp_path / "opsbot.db"
    store = open_store(path)

    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw_query(path, "PRAGMA journal_mode") == [("wal",)]


def test_open_applies_the_first_migration(tmp_path: Path, open_store: OpenStore) -> None:
    path = tmp_path / "opsbot.db"
    store = open_store(path)

    applied = raw_query(
        path, "SELECT name FROM _sqlite_migrations WHERE migration_set = 'opsbot' ORDER BY id"
    )
    assert [name for (name,) in applied] == known_migrations()
    assert "0001_idempotency" in known_migrations()
    assert store.schema_version == LATEST


def test_reopening_applies_nothing_twice_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "opsbot.db"
    store = Store.open(path)
    assert store.claim("kept", NOW, TTL) is True
    store.close()
    migrations_before = raw_query(path, "SELECT * FROM _sqlite_migrations ORDER BY id")

    reopened = Store.open(path)
    try:
        assert raw_query(path, "SELECT * FROM _sqlite_migrations ORDER BY id") == migrations_before
        assert reopened.schema_version == LATEST
        assert keys(reopened.db) == ["kept"]
        assert reopened.claim("kept", NOW, TTL) is False
    finally:
        reopened.close()


def test_a_database_from_a_newer_opsbot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "opsbot.db"
    Store.open(path).close()
    raw_execute(
        path,
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES (?, ?, ?)",
        ("opsbot", "0999_future", "2030-01-01 00:00:00+00:00"),
    )

    with pytest.raises(StoreError, match="newer opsbot") as refused:
        Store.open(path)

    assert "0999_future" in str(refused.value)
    assert str(path) in str(refused.value)


def test_migrations_of_another_set_are_not_a_newer_opsbot(
    tmp_path: Path, open_store: OpenStore
) -> None:
    path = tmp_path / "opsbot.db"
    Store.open(path).close()
    raw_execute(
        path,
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES (?, ?, ?)",
        ("some-plugin", "0999_future", "2030-01-01 00:00:00+00:00"),
    )

    assert open_store(path).schema_version == LATEST


def test_a_file_of_random_bytes_is_not_an_opsbot_database(tmp_path: Path) -> None:
    path = tmp_path / "opsbot.db"
    garbage = random.Random(20260105).randbytes(8192)
    path.write_bytes(garbage)

    with pytest.raises(StoreError, match="is not an opsbot database") as refused:
        Store.open(path)

    assert str(path) in str(refused.value)
    assert refused.value.__cause__ is None
    assert path.read_bytes() == garbage


def test_a_path_under_a_regular_file_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be\n")

    with pytest.raises(StoreError, match="cannot create the folder") as refused:
        Store.open(blocker / "opsbot.db")

    assert "[store].path" in str(refused.value)


def test_a_path_two_levels_under_a_regular_file_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be\n")

    with pytest.raises(StoreError, match="cannot create the folder"):
        Store.open(blocker / "state" / "opsbot.db")


# Idempotency keys


def test_first_claim_wins_and_a_repeat_is_refused(store: Store) -> None:
    assert store.claim("slack:retry:1", NOW, TTL) is True
    assert store.claim("slack:retry:1", NOW + timedelta(seconds=1), TTL) is False


def test_claims_of_different_keys_are_independent(store: Store) -> None:
    assert store.claim("a", NOW, TTL) is True
    assert store.claim("b", NOW, TTL) is True


def test_a_key_is_held_until_just_before_its_expiry(store: Store) -> None:
    store.claim("click:42", NOW, TTL)

    assert store.claim("click:42", NOW + TTL - timedelta(microseconds=1), TTL) is False


def test_a_key_can_be_claimed_again_after_its_expiry(store: Store) -> None:
    store.claim("click:42", NOW, TTL)

    assert store.claim("click:42", NOW + TTL + timedelta(seconds=1), TTL) is True
    assert store.claim("click:42", NOW + TTL + timedelta(seconds=2), TTL) is False


def test_purge_expired_removes_only_expired_keys(store: Store) -> None:
    store.claim("short", NOW, timedelta(minutes=1))
    store.claim("long", NOW, timedelta(hours=1))

    assert store.purge_expired(NOW + timedelta(minutes=30)) == 1

    assert keys(store.db) == ["long"]
    assert store.purge_expired(NOW + timedelta(minutes=30)) == 0


# Threads and other readers


def test_eight_threads_claiming_one_key_get_exactly_one_true(store: Store) -> None:
    threads = 8
    start_together = threading.Barrier(threads)

    def claim() -> bool:
        start_together.wait(WAIT)
        return store.claim("slack:event:Ev123", NOW, TTL)

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(claim) for _ in range(threads)]
        outcomes = [future.result(timeout=WAIT) for future in futures]

    assert sorted(outcomes) == [False] * (threads - 1) + [True]


def test_each_thread_gets_its_own_connection(store: Store) -> None:
    here = store.db

    with ThreadPoolExecutor(1) as pool:
        there = pool.submit(lambda: store.db).result(timeout=WAIT)

    assert store.db is here
    assert there is not here
    assert there.conn is not here.conn


def test_threads_see_each_others_committed_claims(store: Store) -> None:
    assert store.claim("from-main", NOW, TTL) is True

    def in_other_thread() -> tuple[bool, bool]:
        return store.claim("from-main", NOW, TTL), store.claim("from-worker", NOW, TTL)

    with ThreadPoolExecutor(1) as pool:
        seen_main, claimed_own = pool.submit(in_other_thread).result(timeout=WAIT)

    assert seen_main is False
    assert claimed_own is True
    assert store.claim("from-worker", NOW, TTL) is False


def test_using_a_closed_store_is_a_store_error(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "opsbot.db")
    store.close()

    with pytest.raises(StoreError, match="closed"):
        _ = store.db
    with pytest.raises(StoreError, match="closed"):
        store.claim("late", NOW, TTL)


def test_close_closes_connections_of_other_threads_too(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "opsbot.db")
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: store.db).result(timeout=WAIT)

        store.close()

        with pytest.raises(StoreError, match="closed"):
            pool.submit(lambda: store.db).result(timeout=WAIT)


def test_a_second_store_reads_beside_an_open_writer(tmp_path: Path, open_store: OpenStore) -> None:
    path = tmp_path / "opsbot.db"
    writer = open_store(path)
    writer.claim("committed", NOW, TTL)

    with writer.db.atomic():
        writer.db.execute(
            "INSERT INTO idempotency (key, created_at, expires_at) VALUES ('pending', '', '')"
        )
        reader = open_store(path)  # opens and checks while the writer holds the write lock
        assert keys(reader.db) == ["committed"]

    assert keys(reader.db) == ["committed", "pending"]


def test_an_older_database_is_migrated_forward_keeping_its_data(
    tmp_path: Path, open_store: OpenStore
) -> None:
    from bot.store import MIGRATIONS

    path = tmp_path / "opsbot.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        old = Database(conn)
        MIGRATIONS.apply(old, stop_before=known_migrations()[1])  # as the first release left it
        old["idempotency"].insert(  # type: ignore[union-attr]
            {"key": "kept", "created_at": "2026", "expires_at": "2027"}
        )
        assert old.execute("SELECT version FROM schema_version").fetchone() == (1,)

    store = open_store(path)

    assert store.schema_version == LATEST
    assert keys(store.db) == ["kept"]
    assert store.db["audit"].exists()

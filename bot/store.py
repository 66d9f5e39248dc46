"""The store: one SQLite file through sqlite-utils, in WAL mode, the source of truth.

Each thread gets its own connection (SQLite connections are not shared across threads);
WAL lets ``opsbot audit verify`` and other readers run beside a serving bot. Schema
changes are numbered migrations (sqlite-utils' ``Migrations``); the ``schema_version``
view reports the highest one applied. A database written by a newer opsbot, a file that
is not a database, or a path that cannot be written is a :class:`StoreError` at start.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from bot.clock import iso

MigrationFunction = Callable[[Database], None]
MIGRATION_SET = "opsbot"
MIGRATIONS = Migrations(MIGRATION_SET)
BUSY_TIMEOUT_SECONDS = 10.0
_MIGRATION_NAMES: list[str] = []


class StoreError(Exception):
    """The database cannot be used; the message says which file and what to do."""


def migration(name: str) -> Callable[[MigrationFunction], MigrationFunction]:
    """Register a schema migration; ``name`` starts with its 4-digit version number."""
    if not (name[:4].isdigit() and name[4] == "_"):
        raise ValueError(f"migration {name!r} must start with a 4-digit version, e.g. 0002_")
    _MIGRATION_NAMES.append(name)
    return MIGRATIONS(name=name)


@migration("0001_idempotency")
def _m0001_idempotency(db: Database) -> None:
    db["idempotency"].create(  # type: ignore[union-attr]
        {"key": str, "created_at": str, "expires_at": str}, pk="key"
    )
    db["idempotency"].create_index(["expires_at"])  # type: ignore[union-attr]
    db.execute(
        "CREATE VIEW schema_version AS SELECT max(CAST(substr(name, 1, 4) AS INTEGER)) "
        "AS version FROM _sqlite_migrations WHERE migration_set = 'opsbot'"
    )


@migration("0002_audit")
def _m0002_audit(db: Database) -> None:
    """The chained audit trail (bot/governance/audit.py) and its head."""
    db.execute(
        "CREATE TABLE audit ("
        " id INTEGER PRIMARY KEY, ts TEXT NOT NULL, actor TEXT NOT NULL, channel TEXT NOT NULL,"
        " command TEXT NOT NULL, decision TEXT NOT NULL, outcome TEXT NOT NULL,"
        " ref TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX audit_ts ON audit (ts)")
    db.execute("CREATE INDEX audit_actor ON audit (actor)")
    db.execute(
        "CREATE TABLE audit_head (one INTEGER PRIMARY KEY CHECK (one = 1),"
        " count INTEGER NOT NULL, hash TEXT NOT NULL)"
    )
    db.execute("INSERT INTO audit_head (one, count, hash) VALUES (1, 0, ?)", ["0" * 64])


@migration("0003_approvals_and_locks")
def _m0003_approvals_and_locks(db: Database) -> None:
    """Pending approvals with their votes (bot/governance/approvals.py), and target locks."""
    db.execute(
        "CREATE TABLE approvals ("
        " id TEXT PRIMARY KEY, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,"
        " requester TEXT NOT NULL, channel TEXT NOT NULL, command TEXT NOT NULL,"
        " command_redacted TEXT NOT NULL, permission TEXT NOT NULL, environment TEXT NOT NULL,"
        " needed INTEGER NOT NULL, fingerprint TEXT NOT NULL, preview TEXT NOT NULL,"
        " state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',"
        " card_channel TEXT, card_ts TEXT, decided_at TEXT, ref TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX approvals_state ON approvals (state, expires_at)")
    db.execute(
        "CREATE TABLE approval_votes ("
        " approval_id TEXT NOT NULL REFERENCES approvals (id), approver TEXT NOT NULL,"
        " decision TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (approval_id, approver))"
    )
    db.execute(
        "CREATE TABLE locks ("
        " target TEXT PRIMARY KEY, holder TEXT NOT NULL, ref TEXT NOT NULL,"
        " command TEXT NOT NULL, acquired_at TEXT NOT NULL, expires_at TEXT NOT NULL,"
        " boot TEXT NOT NULL)"
    )


@migration("0004_environments")
def _m0004_environments(db: Database) -> None:
    """Ephemeral environments (handlers/envs.py): owners, TTL, sharing, lifecycle."""
    db.execute(
        "CREATE TABLE environments ("
        " name TEXT PRIMARY KEY, app TEXT NOT NULL, revision TEXT NOT NULL,"
        " argocd_app TEXT NOT NULL, owner TEXT NOT NULL, coowners TEXT NOT NULL DEFAULT '[]',"
        " channel TEXT NOT NULL, source TEXT NOT NULL, created_at TEXT NOT NULL,"
        " expires_at TEXT NOT NULL, warned INTEGER NOT NULL DEFAULT 0,"
        " state TEXT NOT NULL, ended_at TEXT, ended_by TEXT,"
        " attempts INTEGER NOT NULL DEFAULT 0, next_attempt TEXT, last_error TEXT)"
    )
    db.execute("CREATE INDEX environments_state ON environments (state, expires_at)")
    db.execute("CREATE INDEX environments_owner ON environments (owner, state)")


def known_migrations() -> list[str]:
    """Names of every migration this opsbot knows, in order."""
    return list(_MIGRATION_NAMES)


class Store:
    """The opsbot database: per-thread connections, migrated at open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating if needed) and migrate the database at ``path``."""
        store = cls(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"cannot create the folder for the database {path}: {error.strerror}; "
                "set [store].path to a writable location"
            ) from None
        try:
            db = store.db
            store._check(db)
            MIGRATIONS.apply(db)
        except sqlite3.DatabaseError as error:
            store.close()
            raise StoreError(_explain(path, error)) from None
        except StoreError:
            store.close()
            raise
        return store

    @property
    def db(self) -> Database:
        """This thread's connection to the database."""
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            if self._closed:
                raise StoreError(f"the database {self.path} is closed")
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            db = Database(conn, execute_plugins=False)
            self._local.db = db
            with self._lock:
                self._connections.append(conn)
        return db

    @property
    def schema_version(self) -> int:
        """The number of the newest migration applied."""
        row = self.db.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0] or 0)

    def claim(self, key: str, now: datetime, ttl: timedelta) -> bool:
        """Record ``key`` as seen until ``now + ttl``; False if it was already seen.

        The idempotency check behind Slack retries, repeated clicks and replays.
        """
        db = self.db
        with db.atomic():
            db.execute("DELETE FROM idempotency WHERE key = ? AND expires_at <= ?", [key, iso(now)])
            cursor = db.execute(
                "INSERT OR IGNORE INTO idempotency (key, created_at, expires_at) VALUES (?, ?, ?)",
                [key, iso(now), iso(now + ttl)],
            )
            return cursor.rowcount == 1

    def purge_expired(self, now: datetime) -> int:
        """Delete idempotency keys past their expiry; return how many."""
        db = self.db
        with db.atomic():
            cursor = db.execute("DELETE FROM idempotency WHERE expires_at <= ?", [iso(now)])
        return cursor.rowcount

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def _check(self, db: Database) -> None:
        result = db.execute("PRAGMA quick_check").fetchone()
        if not result or result[0] != "ok":
            raise StoreError(
                f"the database {self.path} is damaged "
                f"(quick_check: {result[0] if result else 'no answer'}); "
                "restore it from a backup or move it aside"
            )
        if db["_sqlite_migrations"].exists():
            applied = {
                row[0]
                for row in db.execute(
                    "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [MIGRATION_SET]
                )
            }
            unknown = sorted(applied - set(known_migrations()))
            if unknown:
                raise StoreError(
                    f"the database {self.path} was written by a newer opsbot (migration "
                    f"{unknown[-1]}); upgrade opsbot or point [store].path elsewhere"
                )


def _explain(path: Path, error: sqlite3.DatabaseError) -> str:
    text = str(error)
    if "not a database" in text or "malformed" in text:
        return (
            f"{path} is not an opsbot database ({text}); move it aside or set [store].path "
            "to another file"
        )
    if "readonly" in text or "unable to open" in text:
        return f"cannot write the database {path} ({text}); check the path and its permissions"
    return f"cannot use the database {path}: {text}"

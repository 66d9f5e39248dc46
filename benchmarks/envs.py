"""P8: 10,000 ephemeral environments in the store — how long rebuilding their jobs takes at
start, and how far from their deadlines the expiries actually run."""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.table import Row
from bot import config
from bot.clock import from_iso, iso
from bot.config import LoadedConfig
from bot.httpserver import HttpServer
from bot.runtime import Runtime
from bot.sandbox.argocd import DEMO_REPO, ArgoCDEmulator
from bot.store import Store

COUNT = 10_000
SPREAD_SECONDS = 60.0  # the expiries fall due over this minute
LEAD_SECONDS = 5.0  # after start, before the first one
CONFIG = f"""
[environments.staging]
cluster = "c"
[clusters.c]
in_cluster = true
[apps.payments]
[argocd]
url = "http://127.0.0.1:9"
[ephemeral]
app = "payments"
repo_url = "{DEMO_REPO}"
per_user = 100000
total = 100000
"""


def seed(path: Path, now: datetime) -> list[datetime]:
    """COUNT active environments whose expiries spread over SPREAD_SECONDS."""
    store = Store.open(path)
    deadlines = [
        now + timedelta(seconds=LEAD_SECONDS + SPREAD_SECONDS * i / COUNT) for i in range(COUNT)
    ]
    db = store.db
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO environments (name, app, revision, argocd_app, owner, channel, source,"
            " created_at, expires_at, warned, state) VALUES (?, 'payments', 'main', ?, 'U0BENCH',"
            " 'C0BENCH', 'benchmark', ?, ?, 1, 'active')",
            [
                (f"b-{i}", f"env-b-{i}", iso(now - timedelta(hours=1)), iso(d))
                for i, d in enumerate(deadlines)
            ],
        )
    store.close()
    return deadlines


def run() -> list[Row]:
    emulator = ArgoCDEmulator()
    server = HttpServer(emulator.wsgi_app(), threads=16, name="argocd-emulator").start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            settings, environ = emulator.configure(config.parse(CONFIG, "bench.toml"), server.url)
            loaded = LoadedConfig(settings, Path(folder) / "opsbot.toml", Path(folder))
            seed(loaded.store_path, datetime.now(UTC))
            runtime = Runtime.build(loaded, environ=environ)
            started = time.perf_counter()
            jobs = runtime.timed.jobs()
            read = time.perf_counter() - started
            runtime.scheduler.start()
            rebuilt = time.perf_counter() - started
            db = runtime.store.db
            deadline = time.monotonic() + LEAD_SECONDS + SPREAD_SECONDS + 120
            while time.monotonic() < deadline:
                left = db.execute("SELECT count(*) FROM environments WHERE state = 'active'")
                if left.fetchone()[0] == 0:
                    break
                time.sleep(0.25)  # measuring, not synchronising a test
            rows = db.execute(
                "SELECT expires_at, ended_at FROM environments WHERE ended_at IS NOT NULL"
            ).fetchall()
            runtime.close()
    finally:
        server.stop()
    errors = sorted((from_iso(end) - from_iso(due)).total_seconds() for due, end in rows)
    p99 = errors[int(0.99 * (len(errors) - 1))] if errors else float("nan")
    median = statistics.median(errors) if errors else float("nan")
    return [
        Row(
            "P8 rebuild 10,000 environments' jobs at start",
            f"{rebuilt * 1000:.0f} ms ({len(jobs):,} jobs; reading the table {read * 1000:.0f} ms)",
            "< 5 s",
            rebuilt < 5,
        ),
        Row(
            "P8 expiry timing error (10,000 due over 60 s, Argo CD delete each)",
            f"median {median * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {errors[-1] * 1000:.0f} ms; {len(errors):,} of {COUNT:,} expired"
            if errors
            else "none expired",
            "p99 < 5 s, all expired",
            bool(errors) and p99 < 5 and len(errors) == COUNT,
        ),
    ]

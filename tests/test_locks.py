"""Locks: one mutating command per target, released on completion, after the holder's
lease, or at once when the holder's process is gone; and the lock step in the pipeline."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot import config
from bot.clock import ManualClock, iso
from bot.governance.locks import Held, Locks
from bot.pipeline import Request
from bot.runtime import Runtime
from bot.store import Store
from handlers.context import Command, Context
from handlers.registry import Registry
from handlers.reply import Reply, Status
from handlers.settings import Settings
from tests.conftest import ALLOW_ALL, RecordingResponder, loaded_config
from tests.fakes.backend import GateBackend

LEASE = timedelta(minutes=10)


@pytest.fixture
def locks(store: Store, clock: ManualClock) -> Locks:
    return Locks(store, clock, LEASE)


def take(locks: Locks, *targets: str, holder: str = "U0ALICE", ref: str = "REF1") -> Held | None:
    return locks.acquire(list(targets), holder=holder, ref=ref, command=f"ship by {holder}")


def targets_held(locks: Locks) -> list[str]:
    return [row["target"] for row in locks.held()]


def test_acquire_takes_every_target_or_none(locks: Locks) -> None:
    assert take(locks, "app:web@prod", "ns:web-prod") is None
    assert targets_held(locks) == ["app:web@prod", "ns:web-prod"]

    blocked = take(locks, "app:api@prod", "ns:web-prod", holder="U0BOB", ref="REF2")

    assert blocked is not None
    assert blocked.target == "ns:web-prod"
    assert targets_held(locks) == ["app:web@prod", "ns:web-prod"]  # app:api@prod not taken
    assert take(locks, "app:api@prod", holder="U0BOB", ref="REF2") is None


def test_acquiring_nothing_always_succeeds(locks: Locks) -> None:
    assert take(locks) is None
    assert locks.held() == []


def test_a_held_target_says_who_holds_it_since_when_and_running_what(
    locks: Locks, clock: ManualClock
) -> None:
    since = clock()
    assert take(locks, "app:web@staging", holder="U0ALICE", ref="REF1") is None
    clock.advance(timedelta(minutes=3))

    held = take(locks, "app:web@staging", holder="U0BOB", ref="REF2")

    assert held == Held("app:web@staging", "U0ALICE", "REF1", "ship by U0ALICE", since)


def test_the_same_holder_cannot_take_a_target_twice(locks: Locks) -> None:
    assert take(locks, "app:web@staging") is None
    held = take(locks, "app:web@staging")
    assert held is not None
    assert held.ref == "REF1"


def test_release_frees_only_what_that_ref_holds(locks: Locks) -> None:
    assert take(locks, "a", "b", ref="REF1") is None
    assert take(locks, "c", holder="U0BOB", ref="REF2") is None

    locks.release(["a", "b", "c"], "REF-OTHER")
    assert targets_held(locks) == ["a", "b", "c"]

    locks.release(["a", "c"], "REF1")
    assert targets_held(locks) == ["b", "c"]

    locks.release(["b"], "REF1")
    locks.release(["c"], "REF2")
    assert locks.held() == []


def test_an_expired_lease_is_released_on_the_next_acquire(locks: Locks, clock: ManualClock) -> None:
    assert take(locks, "app:web@prod", ref="REF1") is None

    clock.advance(LEASE - timedelta(seconds=1))
    still = take(locks, "app:web@prod", holder="U0BOB", ref="REF2")
    assert still is not None
    assert still.ref == "REF1"

    clock.advance(timedelta(seconds=2))
    assert take(locks, "app:web@prod", holder="U0BOB", ref="REF2") is None
    [row] = locks.held()
    assert (row["holder"], row["ref"]) == ("U0BOB", "REF2")
    assert row["expires_at"] == iso(clock() + LEASE)


def test_the_lease_comes_from_server_lock_lease(
    tmp_path: Path, settings: Settings, clock: ManualClock
) -> None:
    server = settings.server.model_copy(update={"lock_lease": timedelta(minutes=2)})
    built = Runtime.build(
        loaded_config(settings.model_copy(update={"server": server}), tmp_path),
        clock=clock,
        environ={},
    )
    try:
        assert take(built.locks, "app:web@prod") is None
        clock.advance(timedelta(minutes=2, seconds=1))
        assert take(built.locks, "app:web@prod", holder="U0BOB", ref="REF2") is None
    finally:
        built.close()


def dead_pid() -> int:
    """The ID of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def insert_lock(store: Store, target: str, boot: str, clock: ManualClock) -> None:
    store.db.execute(
        "INSERT INTO locks (target, holder, ref, command, acquired_at, expires_at, boot)"
        " VALUES (?, 'U0GONE', 'REFGONE', 'ship web prod', ?, ?, ?)",
        [target, iso(clock()), iso(clock() + timedelta(days=1)), boot],
    )
    store.db.conn.commit()


def test_a_lock_whose_process_is_gone_is_released(
    locks: Locks, store: Store, clock: ManualClock
) -> None:
    insert_lock(store, "app:web@prod", f"{socket.gethostname()}:{dead_pid()}:deadbeef", clock)

    assert take(locks, "app:web@prod", holder="U0BOB", ref="REF2") is None
    [row] = locks.held()
    assert row["ref"] == "REF2"


def test_held_releases_locks_of_a_process_that_is_gone(
    locks: Locks, store: Store, clock: ManualClock
) -> None:
    insert_lock(store, "app:web@prod", f"{socket.gethostname()}:{dead_pid()}:deadbeef", clock)

    assert locks.held() == []


def test_a_lock_of_a_live_process_or_of_another_host_is_kept_until_its_lease(
    locks: Locks, store: Store, clock: ManualClock
) -> None:
    live = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        insert_lock(store, "app:web@prod", f"{socket.gethostname()}:{live.pid}:feedface", clock)
        insert_lock(store, "app:api@prod", f"elsewhere.invalid:{dead_pid()}:deadbeef", clock)

        assert take(locks, "app:web@prod", holder="U0BOB", ref="REF2") is not None
        assert take(locks, "app:api@prod", holder="U0BOB", ref="REF2") is not None
        assert targets_held(locks) == ["app:api@prod", "app:web@prod"]
    finally:
        assert live.stdin is not None
        live.stdin.close()
        live.wait(timeout=30)

    clock.advance(timedelta(days=1))
    assert take(locks, "app:api@prod", holder="U0BOB", ref="REF2") is None


def test_a_lock_left_by_an_earlier_process_with_this_same_pid_is_released(
    locks: Locks, store: Store, clock: ManualClock
) -> None:
    """A container restarted in place runs opsbot again on the same host name with the same
    PID (often 1). The lock its previous incarnation held must go at once, as for any
    process that is gone, not wait out the lease: the boot part of the owner says it is
    another process."""
    previous = f"{socket.gethostname()}:{os.getpid()}:0ldb00t0"
    insert_lock(store, "app:web@prod", previous, clock)

    assert take(locks, "app:web@prod", holder="U0BOB", ref="REF2") is None


def test_concurrent_acquires_of_one_target_let_exactly_one_win(store: Store) -> None:
    clock = ManualClock()
    contenders = 8
    start = threading.Barrier(contenders)
    results: list[Held | None] = [None] * contenders
    failures: list[BaseException] = []

    def contend(index: int) -> None:
        mine = Locks(store, clock, LEASE)
        try:
            start.wait(timeout=30)
            results[index] = take(mine, "app:web@prod", "ns:web", ref=f"REF{index}")
        except BaseException as error:  # reported below, on the test thread
            failures.append(error)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    winners = [i for i, held in enumerate(results) if held is None]
    assert len(winners) == 1
    rows = Locks(store, clock, LEASE).held()
    assert {row["ref"] for row in rows} == {f"REF{winners[0]}"}
    assert all(held.ref == f"REF{winners[0]}" for held in results if held is not None)


def test_held_lists_every_lock_by_target(locks: Locks, clock: ManualClock) -> None:
    assert take(locks, "b-target", holder="U0ALICE", ref="REF1") is None
    clock.advance(timedelta(minutes=1))
    assert take(locks, "a-target", holder="U0BOB", ref="REF2") is None

    rows = locks.held()

    assert [(r["target"], r["holder"], r["ref"], r["command"]) for r in rows] == [
        ("a-target", "U0BOB", "REF2", "ship by U0BOB"),
        ("b-target", "U0ALICE", "REF1", "ship by U0ALICE"),
    ]
    assert rows[0]["acquired_at"] == iso(clock())
    assert rows[1]["expires_at"] == iso(clock() - timedelta(minutes=1) + LEASE)


# --- the lock step in the pipeline ----------------------------------------------------

LOCKS_TOML = """
[environments.staging]
cluster = "staging"
[environments.prod]
cluster = "prod"
[clusters.staging]
context = "staging"
[clusters.prod]
context = "prod"
"""


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[GateBackend]:
    started = GateBackend().start()
    monkeypatch.setenv("E2E_BACKEND_URL", started.url)
    yield started
    started.stop()


@pytest.fixture
def lock_runtime(
    tmp_path: Path, clock: ManualClock, backend: GateBackend, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    """A runtime with ``ship`` (locks ``app:{app}@{env}``), no approvals, everyone allowed,
    and ``explode APP ENV``, which takes the same lock and then raises."""
    monkeypatch.setenv("E2E_LOG", str(tmp_path / "ship.log"))
    monkeypatch.delenv("E2E_STATE_FILE", raising=False)
    registry = Registry.discover(extra=["tests.e2e_handlers"])

    @registry.command(
        "explode",
        usage="explode APP ENV",
        summary="take the app's lock, then fail",
        mutating=True,
        env_arg="env",
        locks=("app:{app}@{env}",),
    )
    def explode(cmd: Command, ctx: Context) -> Reply:
        raise RuntimeError("the handler broke")

    settings = config.parse(LOCKS_TOML, "opsbot.toml").model_copy(update={"rbac": ALLOW_ALL})
    built = Runtime.build(
        loaded_config(settings, tmp_path), registry=registry, clock=clock, environ={}
    )
    yield built
    backend.stop()  # let any handler still waiting at a gate finish
    built.close()


def run(runtime: Runtime, actor: str, text: str) -> Reply:
    return runtime.handle(Request(text=text, actor=actor, channel="C0TEST"), RecordingResponder())


def shipped(tmp_path: Path) -> list[str]:
    log = tmp_path / "ship.log"
    return log.read_text().splitlines() if log.exists() else []


def test_a_second_command_on_a_locked_target_is_refused_until_the_first_ends(
    lock_runtime: Runtime, backend: GateBackend, tmp_path: Path
) -> None:
    first = Request(text="ship web staging gate=g1", actor="U0ALICE", channel="C0TEST")
    first_responder = RecordingResponder()
    running = lock_runtime.submit(first, first_responder)
    backend.arrived("g1")

    second = run(lock_runtime, "U0BOB", "ship web staging")

    assert second.status is Status.REFUSED
    assert "`app:web@staging`" in second.text
    assert "<@U0ALICE>" in second.text
    assert f"ref {first.ref}" in second.text
    assert "since 2026-01-05 09:00 UTC" in second.text
    assert "`ship web staging gate=g1`" in second.text
    assert shipped(tmp_path) == []

    listed = run(lock_runtime, "U0CAROL", "locks")
    assert listed.status is Status.OK
    assert "`app:web@staging`: <@U0ALICE>" in listed.text
    assert first.ref in listed.text

    other_target = run(lock_runtime, "U0BOB", "ship web prod")
    assert other_target.status is Status.OK, other_target.text
    assert [line.split()[:3] for line in shipped(tmp_path)] == [["web", "prod", "rev-1"]]

    backend.release("g1")
    assert running.result(timeout=30).status is Status.OK
    assert lock_runtime.locks.held() == []

    third = run(lock_runtime, "U0BOB", "ship web staging")
    assert third.status is Status.OK, third.text
    assert [line.split()[1] for line in shipped(tmp_path)] == ["prod", "staging", "staging"]

    nothing = run(lock_runtime, "U0CAROL", "locks")
    assert nothing.text == "Nothing is locked."


def test_a_lock_refusal_is_audited_with_the_holder(
    lock_runtime: Runtime, backend: GateBackend
) -> None:
    first = Request(text="ship web staging gate=g2", actor="U0ALICE", channel="C0TEST")
    running = lock_runtime.submit(first, RecordingResponder())
    backend.arrived("g2")

    refused = run(lock_runtime, "U0BOB", "ship web staging")
    backend.release("g2")
    running.result(timeout=30)

    assert refused.status is Status.REFUSED
    [entry] = lock_runtime.audit.entries(actor="U0BOB")
    assert (entry["decision"], entry["outcome"]) == ("refused", "refused")
    assert entry["detail"] == f"locked: app:web@staging by U0ALICE ({first.ref})"


def test_a_handler_that_raises_still_releases_its_lock(
    lock_runtime: Runtime, tmp_path: Path
) -> None:
    failed = run(lock_runtime, "U0ALICE", "explode web staging")

    assert failed.status is Status.FAILED
    assert "the handler broke" not in failed.text
    assert lock_runtime.locks.held() == []
    after = run(lock_runtime, "U0BOB", "ship web staging")
    assert after.status is Status.OK, after.text
    assert len(shipped(tmp_path)) == 1


def test_a_command_that_fails_at_its_gate_releases_its_lock(
    lock_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("E2E_BACKEND_URL")  # ship's gate then raises KeyError

    failed = run(lock_runtime, "U0ALICE", "ship web staging gate=g3")

    assert failed.status is Status.FAILED
    assert lock_runtime.locks.held() == []


def test_a_read_only_command_takes_no_lock(lock_runtime: Runtime, backend: GateBackend) -> None:
    running = lock_runtime.submit(
        Request(text="slow s1", actor="U0ALICE", channel="C0TEST"), RecordingResponder()
    )
    backend.arrived("s1")
    try:
        assert lock_runtime.locks.held() == []
        assert run(lock_runtime, "U0BOB", "ship web staging").status is Status.OK
    finally:
        backend.release("s1")
    assert running.result(timeout=30).status is Status.OK

"""Change-bound approvals through a real runtime: every path of the state machine."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from bot import config
from bot.clock import ManualClock
from bot.pipeline import Request
from bot.runtime import Runtime
from handlers.registry import Registry
from handlers.reply import Reply, Status
from tests.conftest import RecordingResponder, loaded_config

SETTINGS = """
[slack]
approvals_channel = "C0APPROVALS"

[environments.staging]
cluster = "c"
[environments.prod]
cluster = "c"
approvals = {approvals}
approval_ttl = "1h"
[clusters.c]
in_cluster = true

[rbac.roles.shipper]
allow = ["ship:*", "approvals:*", "audit:*"]
[rbac.roles.approver]
allow = ["approve:prod"]
[rbac.users]
U0ALICE = ["shipper"]
U0BOB = ["shipper", "approver"]
U0CAROL = ["approver"]
U0DAVE = ["shipper"]
"""


@dataclass
class RecordingChannels:
    """Channels that keep every post and update, by message ID."""

    posts: list[tuple[str, str, Reply]] = field(default_factory=list)
    updates: list[tuple[str, str, Reply]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def post(self, channel: str, reply: Reply) -> str | None:
        with self.changed:
            message_id = f"msg-{len(self.posts) + 1}"
            self.posts.append((channel, message_id, reply))
            self.changed.notify_all()
            return message_id

    def update(self, channel: str, message_id: str, reply: Reply) -> None:
        with self.changed:
            self.updates.append((channel, message_id, reply))
            self.changed.notify_all()

    def latest(self, message_id: str) -> Reply:
        """The newest content of ``message_id``."""
        with self.changed:
            for _, mid, reply in reversed(self.updates):
                if mid == message_id:
                    return reply
            return next(r for _, mid, r in self.posts if mid == message_id)

    def wait_until(self, message_id: str, title_start: str, timeout: float = 10) -> Reply:
        """Block until ``message_id`` shows a title starting with ``title_start``."""
        with self.changed:
            ok = self.changed.wait_for(
                lambda: (self.latest(message_id).title or "").startswith(title_start), timeout
            )
        assert ok, f"card never became {title_start!r}: {self.latest(message_id).title}"
        return self.latest(message_id)


@dataclass
class World:
    runtime: Runtime
    channels: RecordingChannels
    clock: ManualClock
    log: Path
    state: Path

    def run(self, text: str, actor: str, channel: str = "C0OPS") -> Reply:
        return self.runtime.pipeline.handle(Request(text, actor, channel), RecordingResponder())

    def submit(self, text: str, actor: str) -> Future[Reply]:
        return self.runtime.submit(Request(text, actor, "C0OPS"), RecordingResponder())

    def shipped(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def card_id(self) -> str:
        (channel, message_id, _) = self.channels.posts[0]
        assert channel == "C0APPROVALS"
        return message_id

    def request_id(self) -> str:
        card = self.channels.posts[0][2]
        approve = next(b for b in card.buttons if b.label == "Approve")
        return approve.command.split()[1]

    def wait_for_runs(self, count: int) -> None:
        """Wait until every worker is idle (all earlier work done), then count shipments.

        One task per worker meeting at a barrier can only all run once no earlier task
        holds a worker: the pool takes tasks in order.
        """
        workers = self.runtime.settings.server.workers
        everyone = threading.Barrier(workers)
        tasks = [self.runtime.executor.submit(everyone.wait, 10) for _ in range(workers)]
        for task in tasks:
            task.result(15)
        assert len(self.shipped()) == count, self.shipped()


def build_world(folder: Path, monkeypatch: pytest.MonkeyPatch, approvals: int = 1) -> World:
    log, state = folder / "shipped.log", folder / "state.json"
    monkeypatch.setenv("E2E_LOG", str(log))
    monkeypatch.setenv("E2E_STATE_FILE", str(state))
    state.write_text(json.dumps({"web": "rev-1"}))
    settings = config.parse(SETTINGS.format(approvals=approvals), "opsbot.toml")
    clock = ManualClock()
    runtime = Runtime.build(
        loaded_config(settings, folder),
        registry=Registry.discover(extra=["tests.e2e_handlers"]),
        clock=clock,
        environ={},
    )
    channels = RecordingChannels()
    runtime.channels = channels
    runtime.start()
    return World(runtime, channels, clock, log, state)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    built = build_world(tmp_path, monkeypatch)
    yield built
    built.runtime.close()


def test_a_gated_command_waits_with_a_card_and_runs_nothing(world: World) -> None:
    reply = world.run("ship web prod", "U0ALICE")

    assert reply.status is Status.PENDING
    assert "needs 1 approval(s)" in reply.text
    assert "<#C0APPROVALS>" in reply.text
    card = world.channels.posts[0][2]
    assert (card.title or "").startswith("Approval needed: ship in prod")
    assert "Ship `web` to *prod* at `rev-1`" in card.text
    assert ("Requested by", "<@U0ALICE>") in [(f.label, f.value) for f in card.fields]
    assert [b.label for b in card.buttons] == ["Approve", "Deny"]
    assert world.shipped() == []


def test_staging_without_approvals_runs_at_once(world: World) -> None:
    reply = world.run("ship web staging", "U0ALICE")
    assert reply.status is Status.OK
    assert world.channels.posts == []
    assert len(world.shipped()) == 1


def test_one_approval_runs_it_exactly_once_and_the_card_follows(world: World) -> None:
    world.run("ship web prod", "U0ALICE")
    request_id = world.request_id()

    answer = world.run(f"approve {request_id}", "U0BOB")

    assert "it runs now as <@U0ALICE> asked" in answer.text
    card = world.channels.wait_until(world.card_id(), "Approved and done")
    assert card.buttons == ()
    assert "<@U0BOB>" in next(f.value for f in card.fields if f.label == "Approvals")
    world.wait_for_runs(1)
    assert world.shipped()[0].split()[:4] == ["web", "prod", "rev-1", "U0ALICE"]
    again = world.run(f"approve {request_id}", "U0CAROL")
    assert again.status is Status.FAILED
    assert "already approved and done" in again.text
    world.wait_for_runs(1)


def test_the_requester_can_never_approve_their_own_request(world: World) -> None:
    world.run("ship web prod", "U0BOB")  # bob is an approver, but he asked
    reply = world.run(f"approve {world.request_id()}", "U0BOB")
    assert reply.status is Status.REFUSED
    assert "cannot approve it" in reply.text
    assert world.runtime.approvals.get(world.request_id()).state == "pending"  # type: ignore[union-attr]


def test_an_approver_needs_approve_in_that_environment(world: World) -> None:
    world.run("ship web prod", "U0ALICE")
    reply = world.run(f"approve {world.request_id()}", "U0DAVE")
    assert reply.status is Status.REFUSED
    assert "`approve:prod`" in reply.text
    assert world.shipped() == []


def test_two_approvals_need_two_distinct_people(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = build_world(tmp_path, monkeypatch, approvals=2)
    try:
        world.run("ship web prod", "U0ALICE")
        request_id = world.request_id()
        first = world.run(f"approve {request_id}", "U0BOB")
        assert "1 of 2" in first.text
        twice = world.run(f"approve {request_id}", "U0BOB")
        assert twice.status is Status.FAILED
        assert "already approved" in twice.text
        world.wait_for_runs(0)
        world.run(f"approve {request_id}", "U0CAROL")
        world.channels.wait_until(world.card_id(), "Approved and done")
        world.wait_for_runs(1)
    finally:
        world.runtime.close()


def test_a_denial_ends_it_and_removes_the_buttons(world: World) -> None:
    world.run("ship web prod", "U0ALICE")
    request_id = world.request_id()

    world.run(f"deny {request_id} not during the freeze", "U0CAROL")

    card = world.channels.latest(world.card_id())
    assert (card.title or "").startswith("Denied")
    assert "denied by <@U0CAROL>: not during the freeze" in card.text
    assert card.buttons == ()
    late = world.run(f"approve {request_id}", "U0BOB")
    assert "already denied" in late.text
    world.wait_for_runs(0)


def test_the_requester_may_withdraw(world: World) -> None:
    world.run("ship web prod", "U0ALICE")
    world.run(f"deny {world.request_id()}", "U0ALICE")
    assert (world.channels.latest(world.card_id()).title or "").startswith("Withdrawn")


def test_an_unanswered_request_expires_and_a_stale_card_click_changes_nothing(
    world: World,
) -> None:
    world.run("ship web prod", "U0ALICE")
    request_id = world.request_id()

    world.clock.advance(timedelta(hours=1, seconds=1))
    card = world.channels.wait_until(world.card_id(), "Expired")

    assert card.buttons == ()
    stale = world.run(f"approve {request_id}", "U0BOB")
    assert stale.status is Status.FAILED
    assert "already expired" in stale.text
    world.wait_for_runs(0)


def test_a_change_that_moved_after_approval_is_void(world: World) -> None:
    world.run("ship web prod", "U0ALICE")
    world.state.write_text(json.dumps({"web": "rev-2"}))  # someone pushed in between

    world.run(f"approve {world.request_id()}", "U0BOB")

    card = world.channels.wait_until(world.card_id(), "Approval void")
    assert "no longer the one approved" in card.text
    world.wait_for_runs(0)


def test_simultaneous_approvals_run_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = build_world(tmp_path, monkeypatch, approvals=1)
    try:
        world.run("ship web prod", "U0ALICE")
        request_id = world.request_id()
        start = threading.Barrier(2)
        replies: list[Reply] = []

        def click(who: str) -> None:
            start.wait(5)
            replies.append(world.run(f"approve {request_id}", who))

        clickers = [threading.Thread(target=click, args=(who,)) for who in ("U0BOB", "U0CAROL")]
        for thread in clickers:
            thread.start()
        for thread in clickers:
            thread.join(10)
        world.channels.wait_until(world.card_id(), "Approved and done")
        world.wait_for_runs(1)
        assert sorted(r.status.value for r in replies) in (["failed", "ok"], ["ok", "ok"])
    finally:
        world.runtime.close()


def test_a_pending_request_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_world(tmp_path, monkeypatch)
    first.run("ship web prod", "U0ALICE")
    request_id = first.request_id()
    first.runtime.close()

    second = build_world(tmp_path, monkeypatch)
    try:
        second.run(f"approve {request_id}", "U0BOB")
        second.wait_for_runs(1)
        assert second.runtime.approvals.get(request_id).state == "executed"  # type: ignore[union-attr]
    finally:
        second.runtime.close()


def test_a_request_running_when_opsbot_stopped_is_failed_not_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_world(tmp_path, monkeypatch)
    first.run("ship web prod", "U0ALICE")
    request_id = first.request_id()
    first.runtime.store.db.execute(  # approved, then the process died before it finished
        "UPDATE approvals SET state = 'executing' WHERE id = ?", [request_id]
    )
    first.runtime.store.db.conn.commit()
    first.runtime.close()

    second = build_world(tmp_path, monkeypatch)
    try:
        approval = second.runtime.approvals.get(request_id)
        assert approval is not None
        assert approval.state == "failed"
        assert "opsbot stopped while this was running" in approval.reason
        second.wait_for_runs(0)
        again = second.run(f"approve {request_id}", "U0CAROL")
        assert "already approved, but it failed" in again.text
    finally:
        second.runtime.close()


def test_every_step_is_in_the_audit_trail(world: World) -> None:
    world.run("ship web prod", "U0ALICE")
    request_id = world.request_id()
    world.run(f"approve {request_id}", "U0BOB")
    world.channels.wait_until(world.card_id(), "Approved and done")
    world.wait_for_runs(1)

    decisions = [row["decision"] for row in world.runtime.audit.entries()]

    assert decisions[0] == "approval requested"
    assert f"approved (1 of 1) (request {request_id})" in decisions
    assert "approved by U0BOB" in decisions
    assert all(row["actor"] for row in world.runtime.audit.entries())


def test_approvals_lists_what_waits(world: World) -> None:
    world.run("ship web prod", "U0ALICE")
    listing = world.run("approvals", "U0BOB")
    assert world.request_id() in listing.text
    assert "0 of 1" in listing.text


def test_an_unknown_request_id_is_a_clear_failure(world: World) -> None:
    reply = world.run("approve NOPE42", "U0BOB")
    assert reply.status is Status.FAILED
    assert "There is no approval request NOPE42" in reply.text

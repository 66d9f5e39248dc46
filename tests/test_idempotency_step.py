"""Exactly-once: a delivery or click already seen runs nothing again, across restarts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.pipeline import Request
from bot.runtime import Runtime
from handlers.context import Command, Context
from handlers.registry import Registry
from handlers.reply import Reply, Status
from handlers.settings import Settings
from tests.conftest import RecordingResponder, loaded_config


class Counter:
    """A registry whose ``count WORD`` command records each run."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.registry = Registry.discover()

        @self.registry.command("count", usage="count WORD", summary="record a run")
        def count(cmd: Command, ctx: Context) -> Reply:
            self.runs.append(cmd.arg("word") or "")
            return Reply(text=f"counted {cmd.arg('word')}")


def build(folder: Path, settings: Settings, clock: ManualClock, counter: Counter) -> Runtime:
    return Runtime.build(
        loaded_config(settings, folder), registry=counter.registry, clock=clock, environ={}
    )


@pytest.fixture
def counter() -> Counter:
    return Counter()


@pytest.fixture
def counted(
    tmp_path: Path, settings: Settings, clock: ManualClock, counter: Counter
) -> Iterator[Runtime]:
    built = build(tmp_path, settings, clock, counter)
    yield built
    built.close()


def send(
    runtime: Runtime,
    word: str,
    responder: RecordingResponder,
    *,
    idempotency_key: str | None = None,
    debounce_key: str | None = None,
) -> Reply:
    request = Request(
        text=f"count {word}",
        actor="U0ALICE",
        channel="C0TEST",
        source="slack",
        idempotency_key=idempotency_key,
        debounce_key=debounce_key,
    )
    return runtime.handle(request, responder)


def test_the_same_delivery_twice_runs_once_and_shows_nothing_the_second_time(
    counted: Runtime, counter: Counter, responder: RecordingResponder
) -> None:
    first = send(counted, "a", responder, idempotency_key="Ev0001")
    shown = len(responder.events)
    again = send(counted, "a", responder, idempotency_key="Ev0001")

    assert first.status is Status.OK
    assert again.status is Status.IGNORED
    assert counter.runs == ["a"]
    assert shown == 1
    assert len(responder.events) == shown  # nothing posted or updated for the repeat
    assert [e["outcome"] for e in counted.audit.entries()] == ["ok"]  # the repeat not audited


def test_a_repeated_delivery_is_ignored_long_after_the_double_click_window(
    counted: Runtime, counter: Counter, clock: ManualClock, responder: RecordingResponder
) -> None:
    send(counted, "a", responder, idempotency_key="Ev0001")
    clock.advance(timedelta(hours=1))

    assert send(counted, "a", responder, idempotency_key="Ev0001").status is Status.IGNORED
    assert counter.runs == ["a"]


def test_the_same_click_within_five_seconds_runs_once_and_again_after_six(
    counted: Runtime, counter: Counter, clock: ManualClock, responder: RecordingResponder
) -> None:
    assert send(counted, "a", responder, debounce_key="m1:b1:U0ALICE").status is Status.OK
    clock.advance(timedelta(seconds=4))
    assert send(counted, "a", responder, debounce_key="m1:b1:U0ALICE").status is Status.IGNORED
    assert counter.runs == ["a"]
    shown = len(responder.events)

    clock.advance(timedelta(seconds=6))
    assert send(counted, "a", responder, debounce_key="m1:b1:U0ALICE").status is Status.OK

    assert counter.runs == ["a", "a"]
    assert len(responder.events) == shown + 1


def test_the_double_click_window_counts_from_the_first_click(
    counted: Runtime, counter: Counter, clock: ManualClock, responder: RecordingResponder
) -> None:
    send(counted, "a", responder, debounce_key="m1:b1:U0ALICE")
    clock.advance(timedelta(seconds=6))

    assert send(counted, "a", responder, debounce_key="m1:b1:U0ALICE").status is Status.OK
    assert counter.runs == ["a", "a"]


def test_different_keys_both_run(
    counted: Runtime, counter: Counter, responder: RecordingResponder
) -> None:
    assert send(counted, "a", responder, idempotency_key="Ev0001").status is Status.OK
    assert send(counted, "b", responder, idempotency_key="Ev0002").status is Status.OK
    assert send(counted, "c", responder, debounce_key="m1:b1:U0ALICE").status is Status.OK
    assert send(counted, "d", responder, debounce_key="m1:b1:U0BOB").status is Status.OK
    assert send(counted, "e", responder).status is Status.OK
    assert send(counted, "e", responder).status is Status.OK  # no key: nothing to dedupe

    assert counter.runs == ["a", "b", "c", "d", "e", "e"]


def test_keys_survive_a_restart_on_the_same_store(
    tmp_path: Path, settings: Settings, clock: ManualClock, responder: RecordingResponder
) -> None:
    before = Counter()
    first = build(tmp_path, settings, clock, before)
    try:
        send(first, "a", responder, idempotency_key="Ev0001")
        send(first, "b", responder, debounce_key="m1:b1:U0ALICE")
    finally:
        first.close()
    assert before.runs == ["a", "b"]

    after = Counter()
    second = build(tmp_path, settings, clock, after)
    try:
        assert send(second, "a", responder, idempotency_key="Ev0001").status is Status.IGNORED
        assert send(second, "b", responder, debounce_key="m1:b1:U0ALICE").status is Status.IGNORED
        assert send(second, "c", responder, idempotency_key="Ev0002").status is Status.OK
    finally:
        second.close()

    assert after.runs == ["c"]


def test_a_usage_error_also_claims_its_key(
    counted: Runtime, counter: Counter, responder: RecordingResponder
) -> None:
    request = Request(text="count", actor="U0ALICE", channel="C0TEST", idempotency_key="Ev0009")

    assert counted.handle(request, responder).status is Status.USAGE
    assert counted.handle(request, responder).status is Status.IGNORED
    assert len(responder.events) == 1

"""The outgoing-message sender: paced, ordered lanes, retries, coalescing, nothing lost."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import pytest

from bot.sender import DeliveryError, Sender

WAIT = 10.0  # seconds any synchronisation may take before the test fails


@pytest.fixture
def errors() -> list[tuple[str, str]]:
    """What the sender reported through ``on_error``."""
    return []


@pytest.fixture
def sender(errors: list[tuple[str, str]]) -> Iterator[Sender]:
    """A sender with a short interval, quick backoff and 3 attempts per call."""
    started = Sender(
        interval=0.05,
        workers=4,
        max_attempts=3,
        backoff=0.01,
        on_error=lambda method, error: errors.append((method, error)),
    )
    try:
        yield started
    finally:
        started.close(timeout=WAIT)


def returning(value: object, stamps: list[float] | None = None) -> Callable[[], object]:
    """A call that records when it started and returns ``value``."""

    def call() -> object:
        if stamps is not None:
            stamps.append(time.monotonic())
        return value

    return call


def blocking(gate: threading.Event, started: threading.Event | None = None) -> Callable[[], str]:
    """A call that stays in flight until ``gate`` is set."""

    def call() -> str:
        if started is not None:
            started.set()
        if not gate.wait(WAIT):
            raise AssertionError("the test never opened the gate")
        return "unblocked"

    return call


def test_calls_on_one_lane_run_in_order_one_at_a_time(sender: Sender) -> None:
    order: list[int] = []
    running = 0
    most = 0
    lock = threading.Lock()

    def call(n: int) -> Callable[[], int]:
        def run() -> int:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            order.append(n)
            with lock:
                running -= 1
            return n

        return run

    futures = [sender.submit("C0OPS", "chat.postMessage", call(n)) for n in range(6)]

    assert [f.result(WAIT) for f in futures] == list(range(6))
    assert order == list(range(6))
    assert most == 1


def test_two_calls_on_one_lane_are_at_least_an_interval_apart(sender: Sender) -> None:
    stamps: list[float] = []
    first = sender.submit("C0OPS", "chat.postMessage", returning("a", stamps))
    second = sender.submit("C0OPS", "chat.postMessage", returning("b", stamps))

    assert (first.result(WAIT), second.result(WAIT)) == ("a", "b")
    assert stamps[1] - stamps[0] >= 0.05


def test_a_busy_lane_does_not_hold_up_another_lane(sender: Sender) -> None:
    gate, started = threading.Event(), threading.Event()
    blocked = sender.submit("C0SLOW", "chat.postMessage", blocking(gate, started))
    assert started.wait(WAIT)

    other = sender.submit("C0FAST", "chat.postMessage", returning("fast"))

    assert other.result(WAIT) == "fast"
    assert not blocked.done()
    gate.set()
    assert blocked.result(WAIT) == "unblocked"


def test_a_retryable_error_is_retried_after_retry_after(sender: Sender) -> None:
    stamps: list[float] = []

    def call() -> str:
        stamps.append(time.monotonic())
        if len(stamps) == 1:
            raise DeliveryError("chat.postMessage", "ratelimited", retryable=True, retry_after=0.2)
        return "delivered"

    future = sender.submit("C0OPS", "chat.postMessage", call)

    assert future.result(WAIT) == "delivered"
    assert len(stamps) == 2
    assert stamps[1] - stamps[0] >= 0.2


def test_a_permanent_error_fails_the_future_and_logs_channel_and_error(
    sender: Sender, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise DeliveryError("chat.postMessage", "invalid_auth")

    with caplog.at_level(logging.ERROR, logger="bot.sender"):
        future = sender.submit("C0PERM", "chat.postMessage", call)
        error = future.exception(WAIT)

    assert isinstance(error, DeliveryError)
    assert error.error == "invalid_auth"
    assert calls == [1]
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("C0PERM" in line and "invalid_auth" in line for line in logged), logged


def test_retries_stop_after_max_attempts(sender: Sender) -> None:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise DeliveryError("chat.postMessage", "fatal_error", status=500, retryable=True)

    error = sender.submit("C0OPS", "chat.postMessage", call).exception(WAIT)

    assert isinstance(error, DeliveryError)
    assert error.error == "fatal_error"
    assert len(calls) == 3


def test_queued_updates_with_one_key_collapse_to_the_newest(sender: Sender) -> None:
    gate, started = threading.Event(), threading.Event()
    ran: list[str] = []

    def update(content: str) -> Callable[[], str]:
        def call() -> str:
            ran.append(content)
            return content

        return call

    busy = sender.submit("C0OPS", "chat.postMessage", blocking(gate, started))
    assert started.wait(WAIT)
    older = sender.submit("C0OPS", "chat.update", update("50%"), coalesce="update:1")
    newer = sender.submit("C0OPS", "chat.update", update("100%"), coalesce="update:1")
    gate.set()

    assert older is newer
    assert busy.result(WAIT) == "unblocked"
    assert newer.result(WAIT) == "100%"
    assert ran == ["100%"]


def test_updates_with_different_keys_are_not_coalesced(sender: Sender) -> None:
    gate, started = threading.Event(), threading.Event()
    sender.submit("C0OPS", "chat.postMessage", blocking(gate, started))
    assert started.wait(WAIT)
    one = sender.submit("C0OPS", "chat.update", returning("one"), coalesce="update:1")
    two = sender.submit("C0OPS", "chat.update", returning("two"), coalesce="update:2")
    gate.set()

    assert one is not two
    assert (one.result(WAIT), two.result(WAIT)) == ("one", "two")


def test_an_unexpected_exception_fails_its_future_is_logged_and_the_lane_goes_on(
    sender: Sender, errors: list[tuple[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise ValueError("a bug in the call")

    with caplog.at_level(logging.ERROR, logger="bot.sender"):
        failed = sender.submit("C0BUG", "chat.postMessage", broken)
        after = sender.submit("C0BUG", "chat.postMessage", returning("still working"))

        assert isinstance(failed.exception(WAIT), ValueError)
        assert after.result(WAIT) == "still working"

    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("C0BUG" in r.getMessage() and r.exc_info for r in logged), logged
    assert ("chat.postMessage", "ValueError") in errors


def test_on_error_hears_the_method_and_error_of_every_failed_attempt(
    sender: Sender, errors: list[tuple[str, str]]
) -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise DeliveryError("chat.update", "fatal_error", status=500, retryable=True)
        return "ok"

    def refused() -> None:
        raise DeliveryError("chat.postEphemeral", "user_not_in_channel")

    assert sender.submit("C0OPS", "chat.update", flaky).result(WAIT) == "ok"
    assert sender.submit("C0OPS", "chat.postEphemeral", refused).exception(WAIT) is not None

    assert errors == [("chat.update", "fatal_error"), ("chat.postEphemeral", "user_not_in_channel")]


def test_pending_counts_queued_and_in_flight_calls(sender: Sender) -> None:
    gate, started = threading.Event(), threading.Event()
    busy = sender.submit("C0OPS", "chat.postMessage", blocking(gate, started))
    assert started.wait(WAIT)
    queued = sender.submit("C0OPS", "chat.postMessage", returning("next"))

    assert sender.pending() == 2
    gate.set()
    assert (busy.result(WAIT), queued.result(WAIT)) == ("unblocked", "next")


def test_close_sends_what_is_queued_and_returns_true() -> None:
    sender = Sender(interval=0.05, backoff=0.01)
    futures: list[Future[object]] = [
        sender.submit(lane, "chat.postMessage", returning(f"{lane}-{n}"))
        for n in range(3)
        for lane in ("C0ONE", "C0TWO")
    ]

    assert sender.close(timeout=WAIT) is True
    assert all(f.done() for f in futures)
    assert sorted(str(f.result(0)) for f in futures) == sorted(
        f"{lane}-{n}" for n in range(3) for lane in ("C0ONE", "C0TWO")
    )
    assert sender.pending() == 0


def test_submit_after_close_raises() -> None:
    sender = Sender(interval=0.01)
    assert sender.close(timeout=WAIT) is True

    with pytest.raises(RuntimeError, match="closed"):
        sender.submit("C0OPS", "chat.postMessage", returning("late"))


def test_close_that_runs_out_of_time_fails_what_is_left_and_returns_false(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sender = Sender(interval=0.01)
    gate, started = threading.Event(), threading.Event()
    busy = sender.submit("C0OPS", "chat.postMessage", blocking(gate, started))
    assert started.wait(WAIT)
    left = sender.submit("C0OPS", "chat.update", returning("never sent"))
    outcome: list[bool] = []
    closer = threading.Thread(target=lambda: outcome.append(sender.close(timeout=0.1)))

    with caplog.at_level(logging.ERROR, logger="bot.sender"):
        closer.start()
        error = left.exception(WAIT)  # failed once close() gave up waiting
        gate.set()
        closer.join(WAIT)

    assert not closer.is_alive()
    assert outcome == [False]
    assert isinstance(error, DeliveryError)
    assert busy.result(WAIT) == "unblocked"
    assert any(
        "chat.update" in r.getMessage() and "C0OPS" in r.getMessage() for r in caplog.records
    )


def test_a_call_failing_retryably_after_close_gave_up_is_failed_not_left_pending() -> None:
    """Shutdown while Slack is slow: the call in flight when close() stops waiting fails
    with a retryable error. It must end (sent or failed), never stay pending."""
    sender = Sender(interval=0.01, backoff=0.01)
    gate, started = threading.Event(), threading.Event()

    def slow_then_rate_limited() -> None:
        started.set()
        if not gate.wait(WAIT):
            raise AssertionError("the test never opened the gate")
        raise DeliveryError("chat.postMessage", "ratelimited", retryable=True, retry_after=2.0)

    in_flight = sender.submit("C0OPS", "chat.postMessage", slow_then_rate_limited)
    assert started.wait(WAIT)
    left = sender.submit("C0OPS", "chat.update", returning("never sent"))
    outcome: list[bool] = []
    closer = threading.Thread(target=lambda: outcome.append(sender.close(timeout=0.1)))
    closer.start()
    assert left.exception(WAIT) is not None  # close() has given up waiting
    gate.set()
    closer.join(WAIT)

    assert outcome == [False]
    assert isinstance(in_flight.exception(WAIT), DeliveryError)

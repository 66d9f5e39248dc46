"""The scheduler: clock-time deadlines, catch-up at start, cron cadence, cancel, failures.

Real threads throughout (APScheduler's BackgroundScheduler) with a ManualClock. Nothing
sleeps: a test waits for a run with a timeout, and shows that something did *not* run
with a positive barrier: a job due now that it waits for. Schedulers here have one worker
unless a test needs more, so jobs run one at a time in the order they fell due; once the
barrier has run, whatever fell due before it (and the rescheduling after it) has finished.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import ManualClock, from_iso, iso
from bot.scheduler import Job, Scheduler, cron_trigger
from bot.store import Store

WAIT = 10.0
MONDAY_9AM = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TUESDAY_3AM = datetime(2026, 1, 6, 3, 0, tzinfo=UTC)
WEDNESDAY_3AM = datetime(2026, 1, 7, 3, 0, tzinfo=UTC)
NIGHTLY = "0 3 * * *"

MakeScheduler = Callable[..., Scheduler]
_serial = itertools.count(1)


class Runs:
    """A job's ``run``: records the clock time of every run; the test waits for them."""

    def __init__(self, clock: ManualClock, name: str = "job") -> None:
        self._clock = clock
        self._name = name
        self._times: queue.Queue[datetime] = queue.Queue()

    def __call__(self) -> None:
        self._times.put(self._clock())

    def wait(self) -> datetime:
        """The clock time of the next run; fails if none comes within ``WAIT`` seconds."""
        try:
            return self._times.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"{self._name} did not run within {WAIT} s") from None

    def unseen(self) -> list[datetime]:
        """Runs not yet waited for (call after a barrier to show nothing more ran)."""
        seen: list[datetime] = []
        while not self._times.empty():
            seen.append(self._times.get_nowait())
        return seen


def barrier(scheduler: Scheduler, clock: ManualClock) -> None:
    """Schedule a job due now and wait for it to run."""
    done = threading.Event()
    # "~" sorts after letters, so the barrier also comes last among jobs due the same instant
    scheduler.schedule(Job(f"~barrier-{next(_serial)}", done.set, at=clock()))
    assert done.wait(WAIT), "the barrier job did not run"


@pytest.fixture
def monday(clock: ManualClock) -> ManualClock:
    """The manual clock at Monday 2026-01-05 09:00 UTC."""
    clock.set(MONDAY_9AM)
    return clock


@pytest.fixture
def make_scheduler(monday: ManualClock) -> Iterator[MakeScheduler]:
    """Build schedulers on the manual clock; every one is shut down when the test ends."""
    made: list[Scheduler] = []

    def make(workers: int = 1) -> Scheduler:
        scheduler = Scheduler(monday, workers=workers)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.shutdown(wait=True)


@pytest.fixture
def scheduler(make_scheduler: MakeScheduler) -> Scheduler:
    """A started scheduler with one worker and no sources."""
    started = make_scheduler()
    assert started.start() == 0
    return started


# One-off deadlines


def test_a_one_off_job_waits_for_the_clock_to_reach_its_deadline(
    scheduler: Scheduler, monday: ManualClock
) -> None:
    runs = Runs(monday)
    deadline = monday() + timedelta(hours=1)

    assert scheduler.schedule(Job("maint-1", runs, at=deadline)) == deadline
    barrier(scheduler, monday)
    monday.advance(timedelta(minutes=59))
    barrier(scheduler, monday)

    assert runs.unseen() == []
    assert scheduler.due("maint-1") == deadline


def test_a_one_off_job_runs_once_when_the_clock_passes_its_deadline(
    scheduler: Scheduler, monday: ManualClock
) -> None:
    runs = Runs(monday)
    deadline = monday() + timedelta(hours=1)
    scheduler.schedule(Job("maint-1", runs, at=deadline))

    monday.advance(timedelta(hours=1, seconds=1))

    assert runs.wait() >= deadline
    monday.advance(timedelta(hours=1))
    barrier(scheduler, monday)
    assert runs.unseen() == []
    assert scheduler.due("maint-1") is None
    assert "maint-1" not in scheduler.job_ids()


def test_a_one_off_job_whose_deadline_passed_runs_at_start(
    make_scheduler: MakeScheduler, monday: ManualClock
) -> None:
    runs = Runs(monday)
    scheduler = make_scheduler()
    scheduler.add_source(lambda: [Job("overdue", runs, at=monday() - timedelta(hours=1))])

    assert scheduler.start() == 1

    assert runs.wait() == MONDAY_9AM
    barrier(scheduler, monday)
    assert runs.unseen() == []


def test_deadlines_missed_while_stopped_run_once_after_a_restart(
    make_scheduler: MakeScheduler, monday: ManualClock, store: Store
) -> None:
    deadline = monday() + timedelta(hours=1)
    store.db["deadlines"].create({"id": str, "due": str}, pk="id")  # type: ignore[union-attr]
    store.db["deadlines"].insert({"id": "maint-1", "due": iso(deadline)})  # type: ignore[union-attr]
    runs = Runs(monday, "maint-1")

    def from_the_table() -> list[Job]:
        rows = store.db.execute("SELECT id, due FROM deadlines ORDER BY id").fetchall()
        return [Job(job_id, runs, at=from_iso(due)) for job_id, due in rows]

    first = make_scheduler()
    first.add_source(from_the_table)
    assert first.start() == 1
    barrier(first, monday)
    assert first.due("maint-1") == deadline
    first.shutdown(wait=True)

    monday.advance(timedelta(hours=2))  # the deadline passes while opsbot is stopped
    second = make_scheduler()
    second.add_source(from_the_table)

    assert second.start() == 1
    assert runs.wait() == MONDAY_9AM + timedelta(hours=2)
    barrier(second, monday)
    assert runs.unseen() == []
    assert second.due("maint-1") is None


# Recurring (cron) jobs


def test_a_cron_job_that_missed_ticks_runs_once_at_start(
    make_scheduler: MakeScheduler, monday: ManualClock
) -> None:
    runs = Runs(monday, "nightly")
    scheduler = make_scheduler()
    three_days_ago = MONDAY_9AM - timedelta(days=3)
    scheduler.add_source(lambda: [Job("nightly", runs, cron=NIGHTLY, last_run=three_days_ago)])

    assert scheduler.start() == 1

    assert runs.wait() == MONDAY_9AM
    barrier(scheduler, monday)
    assert runs.unseen() == []  # coalesced: not once per missed night
    assert scheduler.due("nightly") == TUESDAY_3AM


def test_a_cron_job_that_never_ran_waits_for_its_first_tick(
    make_scheduler: MakeScheduler, monday: ManualClock
) -> None:
    runs = Runs(monday, "nightly")
    scheduler = make_scheduler()
    scheduler.add_source(lambda: [Job("nightly", runs, cron=NIGHTLY)])

    assert scheduler.start() == 1
    barrier(scheduler, monday)

    assert runs.unseen() == []
    assert scheduler.due("nightly") == TUESDAY_3AM


def test_a_cron_job_runs_at_each_tick_and_moves_on_a_day(
    scheduler: Scheduler, monday: ManualClock
) -> None:
    runs = Runs(monday, "nightly")
    assert scheduler.schedule(Job("nightly", runs, cron=NIGHTLY)) == TUESDAY_3AM

    monday.set(TUESDAY_3AM + timedelta(minutes=30))

    assert runs.wait() == TUESDAY_3AM + timedelta(minutes=30)
    barrier(scheduler, monday)
    assert runs.unseen() == []
    assert scheduler.due("nightly") == WEDNESDAY_3AM

    monday.set(WEDNESDAY_3AM + timedelta(minutes=30))

    assert runs.wait() == WEDNESDAY_3AM + timedelta(minutes=30)
    barrier(scheduler, monday)
    assert runs.unseen() == []
    assert scheduler.due("nightly") == WEDNESDAY_3AM + timedelta(days=1)


def test_a_cron_job_run_exactly_on_its_tick_moves_on_a_day(
    scheduler: Scheduler, monday: ManualClock
) -> None:
    runs = Runs(monday, "nightly")
    scheduler.schedule(Job("nightly", runs, cron=NIGHTLY))

    monday.set(TUESDAY_3AM)

    assert runs.wait() == TUESDAY_3AM
    barrier(scheduler, monday)
    assert scheduler.due("nightly") == WEDNESDAY_3AM
    assert runs.unseen() == []


def test_moving_the_clock_while_a_cron_job_runs_does_not_run_it_again(
    make_scheduler: MakeScheduler, monday: ManualClock
) -> None:
    scheduler = make_scheduler(workers=2)  # one worker held by the running job, one free
    scheduler.start()
    started: queue.Queue[datetime] = queue.Queue()
    release = threading.Event()
    run_numbers = itertools.count(1)

    def slow_nightly() -> None:
        started.put(monday())
        if next(run_numbers) == 1:  # only the first run holds its worker
            release.wait(WAIT)

    scheduler.schedule(Job("nightly", slow_nightly, cron=NIGHTLY))
    try:
        monday.set(TUESDAY_3AM + timedelta(minutes=30))
        assert started.get(timeout=WAIT) == TUESDAY_3AM + timedelta(minutes=30)

        monday.advance(timedelta(minutes=1))  # while the nightly job is still running
        barrier(scheduler, monday)

        assert started.empty(), f"started again while running, at {started.get_nowait()}"
    finally:
        release.set()
    # Both workers free at once means the nightly run (and its rescheduling) has ended.
    both = threading.Barrier(2)
    done = [threading.Event(), threading.Event()]
    for index, event in enumerate(done):

        def meet(event: threading.Event = event) -> None:
            both.wait(WAIT)
            event.set()

        scheduler.schedule(Job(f"~drain-{index}", meet, at=monday()))
    assert all(event.wait(WAIT) for event in done)
    assert scheduler.due("nightly") == WEDNESDAY_3AM


# Cancel and replace


def test_cancel_stops_a_job_from_running(scheduler: Scheduler, monday: ManualClock) -> None:
    runs = Runs(monday)
    scheduler.schedule(Job("maint-1", runs, at=monday() + timedelta(hours=1)))

    assert scheduler.cancel("maint-1") is True
    monday.advance(timedelta(hours=2))
    barrier(scheduler, monday)

    assert runs.unseen() == []
    assert scheduler.due("maint-1") is None
    assert scheduler.job_ids() == []


def test_cancel_of_an_unknown_job_returns_false(scheduler: Scheduler) -> None:
    assert scheduler.cancel("no-such-job") is False


def test_cancel_twice_returns_false_the_second_time(
    scheduler: Scheduler, monday: ManualClock
) -> None:
    scheduler.schedule(Job("maint-1", Runs(monday), at=monday() + timedelta(hours=1)))

    assert scheduler.cancel("maint-1") is True
    assert scheduler.cancel("maint-1") is False


def test_scheduling_the_same_id_again_replaces_the_deadline(
    scheduler: Scheduler, monday: ManualClock
) -> None:
    old, new = Runs(monday, "old"), Runs(monday, "new")
    first, second = monday() + timedelta(hours=1), monday() + timedelta(hours=2)
    scheduler.schedule(Job("maint-1", old, at=first))

    assert scheduler.schedule(Job("maint-1", new, at=second)) == second
    assert scheduler.due("maint-1") == second
    assert scheduler.job_ids() == ["maint-1"]

    monday.set(first + timedelta(minutes=1))
    barrier(scheduler, monday)
    assert old.unseen() == []
    assert new.unseen() == []
    assert scheduler.due("maint-1") == second

    monday.set(second + timedelta(minutes=1))
    assert new.wait() == second + timedelta(minutes=1)
    barrier(scheduler, monday)
    assert old.unseen() == []
    assert new.unseen() == []


# Failures


def test_a_failing_job_is_logged_and_later_jobs_still_run(
    scheduler: Scheduler, monday: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    attempted = threading.Event()
    later = Runs(monday, "later")

    def explode() -> None:
        attempted.set()
        raise RuntimeError("vault unreachable")

    with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
        scheduler.schedule(Job("rotate-db-creds", explode, at=monday()))
        scheduler.schedule(Job("later", later, at=monday() + timedelta(minutes=1)))
        assert attempted.wait(WAIT)

        monday.advance(timedelta(minutes=1))

        assert later.wait() == MONDAY_9AM + timedelta(minutes=1)

    failures = [r for r in caplog.records if r.name == "bot.scheduler" and r.exc_info]
    assert len(failures) == 1
    assert "rotate-db-creds" in failures[0].getMessage()
    assert failures[0].levelno == logging.ERROR
    exc_info = failures[0].exc_info
    assert exc_info is not None
    assert isinstance(exc_info[1], RuntimeError)


# Shutdown


def test_shutdown_right_after_jobs_ran_leaves_the_timer_thread_clean(
    make_scheduler: MakeScheduler, monday: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashes: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)
    scheduler = make_scheduler(workers=4)
    ran = threading.Event()
    for number in range(50):  # all due at once: the timer thread hands them out in one pass
        scheduler.schedule(Job(f"notice-{number}", ran.set, at=monday()))
    scheduler.start()
    assert ran.wait(WAIT)

    scheduler.shutdown(wait=True)  # stop while the timer thread may still be handing out jobs

    assert [f"{crash.thread}: {crash.exc_value!r}" for crash in crashes] == []


# Validation


def test_a_job_with_both_at_and_cron_is_refused(monday: ManualClock) -> None:
    with pytest.raises(ValueError, match="exactly one of at= or cron="):
        Job("both", Runs(monday), at=monday(), cron=NIGHTLY)


def test_a_job_with_neither_at_nor_cron_is_refused(monday: ManualClock) -> None:
    with pytest.raises(ValueError, match="exactly one of at= or cron="):
        Job("neither", Runs(monday))


def test_an_invalid_crontab_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="fields"):
        cron_trigger("not a cron")


def test_a_valid_crontab_fires_at_its_next_tick() -> None:
    assert cron_trigger(NIGHTLY).get_next_fire_time(None, MONDAY_9AM) == TUESDAY_3AM

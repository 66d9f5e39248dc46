"""Timed work: APScheduler's BackgroundScheduler driven by an injectable clock.

The store is the source of truth; the scheduler holds no state of its own worth keeping.
Features register a *source*, a function that reads their table and returns
:class:`Job` objects. At :meth:`Scheduler.start` every source is read: a deadline that
passed while opsbot was stopped runs at once, and a recurring job that missed a tick
runs once (coalesced) before resuming its cadence.

Deadlines are in clock time. Each is handed to APScheduler as a real-time date trigger
"so many seconds from now"; when a :class:`~bot.clock.ManualClock` moves, every job is
re-timed and whatever became due runs. A job that fires before its clock-time deadline
(the clock is behind real time) is re-timed instead of run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.cron import CronTrigger

from handlers.context import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One piece of timed work: a one-off deadline (``at``) or a crontab (``cron``)."""

    id: str
    run: Callable[[], object]
    at: datetime | None = None
    cron: str | None = None  # five-field crontab in UTC, e.g. "0 3 * * 1"
    last_run: datetime | None = None  # recurring jobs: when it last ran, for catch-up

    def __post_init__(self) -> None:
        if (self.at is None) == (self.cron is None):
            raise ValueError(f"job {self.id}: give exactly one of at= or cron=")


JobSource = Callable[[], Iterable[Job]]


class _BackgroundScheduler(BackgroundScheduler):  # type: ignore[misc]
    """APScheduler removes a fired date job after handing it to a worker; a shutdown in
    between makes that removal raise in the timer thread (agronholm/apscheduler#104).
    Once stopped, that one error is expected and ignored."""

    def remove_job(self, job_id: str, jobstore: str | None = None) -> None:
        try:
            super().remove_job(job_id, jobstore)
        except JobLookupError:
            if self.state != STATE_STOPPED:
                raise


def cron_trigger(expression: str) -> CronTrigger:
    """Parse a five-field crontab (UTC); raises ValueError with APScheduler's reason."""
    return CronTrigger.from_crontab(expression, timezone=UTC)


class Scheduler:
    """Runs :class:`Job` objects at their clock-time deadlines; rebuilt from sources at start."""

    def __init__(self, clock: Clock, *, workers: int = 4) -> None:
        self._clock = clock
        self._aps = _BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._jobs: dict[str, Job] = {}
        self._due: dict[str, datetime] = {}
        self._armed: dict[str, str] = {}  # job ID → the APScheduler job currently timing it
        self._serial = 0
        self._sources: list[JobSource] = []
        self._lock = threading.RLock()
        subscribe = getattr(clock, "subscribe", None)
        if callable(subscribe):
            subscribe(self.retime)

    def add_source(self, source: JobSource) -> None:
        """Read ``source`` at start (and again on :meth:`reload`) to rebuild its jobs."""
        self._sources.append(source)

    def start(self) -> int:
        """Start the timer thread and rebuild every job from the sources; return the count."""
        self._aps.start()
        return self.reload()

    def reload(self) -> int:
        """Schedule every job the sources list now; overdue ones run at once."""
        count = 0
        for source in self._sources:
            for job in source():
                self.schedule(job)
                count += 1
        return count

    def schedule(self, job: Job) -> datetime:
        """Add or replace ``job``; return its next deadline in clock time."""
        with self._lock:
            now = self._clock()
            due = job.at if job.at is not None else self._next_tick(job, now)
            self._jobs[job.id] = job
            self._due[job.id] = due
            self._arm(job.id, due, now)
            return due

    def cancel(self, job_id: str) -> bool:
        """Forget ``job_id``; return False if it was not scheduled."""
        with self._lock:
            self._due.pop(job_id, None)
            self._disarm(job_id)
            return self._jobs.pop(job_id, None) is not None

    def due(self, job_id: str) -> datetime | None:
        """The next deadline of ``job_id`` in clock time, or None."""
        with self._lock:
            return self._due.get(job_id)

    def job_ids(self) -> list[str]:
        """IDs of every scheduled job."""
        with self._lock:
            return sorted(self._jobs)

    def retime(self) -> None:
        """Re-time every waiting job against the clock (called when a manual clock moves).

        A job that is running right now is left alone: it re-arms itself when it ends.
        """
        with self._lock:
            now = self._clock()
            for job_id in list(self._armed):
                self._arm(job_id, self._due[job_id], now)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the timer thread; with ``wait``, let running jobs finish first."""
        if self._aps.running:
            self._aps.shutdown(wait=wait)

    def _next_tick(self, job: Job, now: datetime) -> datetime:
        assert job.cron is not None
        trigger = cron_trigger(job.cron)
        if job.last_run is not None:
            missed = trigger.get_next_fire_time(None, job.last_run + timedelta(microseconds=1))
            if missed is not None and missed <= now:
                return now  # a tick was missed while stopped: run once now
        # Strictly after the last run: a tick at exactly ``now`` that just ran is not next.
        start = now if job.last_run is None else max(now, job.last_run + timedelta(microseconds=1))
        nxt: datetime | None = trigger.get_next_fire_time(None, start)
        if nxt is None:
            raise ValueError(f"job {job.id}: crontab {job.cron!r} never fires")
        return nxt.astimezone(UTC)

    def _arm(self, job_id: str, due: datetime, now: datetime) -> None:
        # A fresh APScheduler ID per arming: APScheduler removes a fired date job after
        # submitting it, which would otherwise race with a re-arm from inside the job.
        self._disarm(job_id)
        self._serial += 1
        aps_id = f"{job_id}#{self._serial}"
        self._armed[job_id] = aps_id
        delay = max((due - now).total_seconds(), 0.0)
        self._aps.add_job(
            self._fire,
            trigger="date",
            run_date=datetime.now(UTC) + timedelta(seconds=delay),
            args=[job_id, aps_id],
            id=aps_id,
        )

    def _disarm(self, job_id: str) -> None:
        aps_id = self._armed.pop(job_id, None)
        if aps_id is not None:
            with contextlib.suppress(JobLookupError):
                self._aps.remove_job(aps_id)

    def _fire(self, job_id: str, aps_id: str) -> None:
        with self._lock:
            if self._armed.get(job_id) != aps_id:
                return  # cancelled or re-timed since this timer was set
            del self._armed[job_id]
            job, due, now = self._jobs[job_id], self._due[job_id], self._clock()
            if due > now:
                self._arm(job_id, due, now)  # the clock is behind real time: wait for it
                return
            if job.cron is None:
                del self._jobs[job_id], self._due[job_id]
        try:
            job.run()
        except Exception:
            log.exception("scheduled job %s failed", job_id)
        if job.cron is not None:
            with self._lock:
                if self._jobs.get(job_id) is job:
                    # The tick it ran for, not when it finished: a tick that fell due while
                    # it ran (the clock moved on) is then caught up, once.
                    self.schedule(Job(job.id, job.run, cron=job.cron, last_run=due))

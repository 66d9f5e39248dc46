"""Clocks: the real one, and a manual one tests (and benchmarks) move by hand.

Everything that reasons about time (TTLs, expiries, schedules) takes a clock, a callable
returning an aware UTC datetime, instead of calling ``datetime.now``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def system_clock() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to, and tells its subscribers when it does."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[], None]] = []

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta``; return the new time."""
        return self.set(self() + delta)

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` and notify subscribers (the scheduler runs what became due)."""
        with self._lock:
            self._now = when
            subscribers = list(self._subscribers)
        for notify in subscribers:
            notify()
        return when

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every move."""
        with self._lock:
            self._subscribers.append(callback)


def iso(when: datetime) -> str:
    """UTC ISO-8601 with microseconds: the store's sortable timestamp format."""
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def from_iso(text: str) -> datetime:
    """Read a timestamp written by :func:`iso`."""
    return datetime.fromisoformat(text).astimezone(UTC)

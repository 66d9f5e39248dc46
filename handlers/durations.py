"""Durations as people type them: ``30s``, ``15m``, ``24h``, ``7d``, ``2w``, ``1h30m``
(and ``500ms``, for poll intervals in config).

This is the one place durations are parsed, for command options and config values alike.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d{1,6})(ms|[smhdw])")
_WHOLE = re.compile(r"(?:\d{1,6}(?:ms|[smhdw]))+")
#: Longer than any TTL, schedule or silence opsbot deals with; stops typos like ``9999999d``.
MAX_DURATION = timedelta(days=3660)

EXAMPLES = "30s, 15m, 24h, 7d or 1h30m"


class DurationError(ValueError):
    """A text that is not a duration; the message says what a duration looks like."""


def parse_duration(text: str) -> timedelta:
    """Parse ``text`` such as ``15m`` or ``1h30m`` into a positive timedelta."""
    cleaned = text.strip().lower()
    if not _WHOLE.fullmatch(cleaned):
        raise DurationError(f"'{text}' is not a duration: use a number and a unit, e.g. {EXAMPLES}")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(cleaned))
    if seconds == 0:
        raise DurationError(f"'{text}' is zero: a duration must be longer than that")
    if seconds > MAX_DURATION.total_seconds():  # checked before timedelta() can overflow
        raise DurationError(f"'{text}' is longer than the maximum of {MAX_DURATION.days}d")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Render a timedelta the way :func:`parse_duration` reads it, largest units first."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        millis = round(value.total_seconds() * 1000)
        return f"{millis}ms" if millis > 0 else "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)

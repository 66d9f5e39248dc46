"""Durations as people type them: parse_duration and format_duration."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.durations import MAX_DURATION, DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_parses_each_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_upper_case_units_are_read() -> None:
    assert parse_duration("1H30M") == timedelta(hours=1, minutes=30)


def test_surrounding_blanks_are_ignored() -> None:
    assert parse_duration(" 15m ") == timedelta(minutes=15)


def test_exactly_the_maximum_is_accepted() -> None:
    assert parse_duration(f"{MAX_DURATION.days}d") == MAX_DURATION


@pytest.mark.parametrize("text", ["", "5x", "-1h", "1.5h", "h", "15", "1h 30m", "1h-30m"])
def test_malformed_text_is_refused_naming_it(text: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert f"'{text}'" in str(caught.value)


@pytest.mark.parametrize("text", ["0s", "0h0m", "00d"])
def test_zero_is_refused(text: str) -> None:
    with pytest.raises(DurationError, match="zero") as caught:
        parse_duration(text)
    assert f"'{text}'" in str(caught.value)


def test_longer_than_the_maximum_is_refused_naming_it() -> None:
    text = f"{MAX_DURATION.days + 1}d"
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert f"'{text}'" in str(caught.value)
    assert "maximum" in str(caught.value)


def test_just_over_the_maximum_by_one_second_is_refused() -> None:
    with pytest.raises(DurationError):
        parse_duration(f"{MAX_DURATION.days}d1s")


def test_a_huge_sum_of_parts_is_a_duration_error_not_a_crash() -> None:
    # Each part is within the six-digit limit; their sum overflows timedelta. A command
    # such as `env extend pr-1 ttl=999999w999999w…` (~1000 characters) fits in a slash
    # command, so this must be a DurationError (a usage error), not an OverflowError.
    text = "999999w" * 150
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(seconds=30), "30s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(weeks=2), "14d"),
        (timedelta(days=1, seconds=5), "1d5s"),
    ],
)
def test_format_uses_largest_units_first_and_skips_zero_parts(
    value: timedelta, expected: str
) -> None:
    assert format_duration(value) == expected


def test_format_of_nothing_is_zero_seconds() -> None:
    assert format_duration(timedelta(0)) == "0s"


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=int(MAX_DURATION.total_seconds())))
def test_format_then_parse_round_trips(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


_TOKENISH = st.from_regex(r"\s*-?(\d{1,7}(\.\d)?[smhdwSMHDWx ]?){1,8}\s*", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), _TOKENISH))
def test_parse_raises_only_duration_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except DurationError:
        return
    assert timedelta(0) < value <= MAX_DURATION

"""Slack user groups for RBAC: asked from usergroups.users.list, cached briefly, and
empty (deny by default) when nothing is known."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bot.identity import FAILURE_CACHE_SECONDS, GROUP_CACHE_SECONDS, StaticGroups, UserGroups
from bot.slack import web_client
from tests.fakes.slack_web import BOT_TOKEN, FakeSlack

LIST = "usergroups.users.list"


class Ticker:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    started = FakeSlack(usergroups={"S0ONCALL": ["U0BOB"], "S0ADMINS": ["U0ALICE", "U0BOB"]})
    started.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def groups(fake: FakeSlack, ticker: Ticker) -> UserGroups:
    client = web_client(token=BOT_TOKEN, environ={"SLACK_API_URL": fake.api_url})
    return UserGroups(client, ttl=60.0, monotonic=ticker)


def asked(fake: FakeSlack) -> list[str]:
    """The groups Slack was asked about, in order (failed calls included)."""
    return [str(call.params.get("usergroup")) for call in fake.calls_to(LIST)]


def test_members_come_from_usergroups_users_list(groups: UserGroups, fake: FakeSlack) -> None:
    assert groups.members("S0ONCALL") == frozenset({"U0BOB"})
    assert groups.members("S0ADMINS") == frozenset({"U0ALICE", "U0BOB"})
    assert asked(fake) == ["S0ONCALL", "S0ADMINS"]
    assert fake.spec_problems() == []


def test_groups_of_names_the_groups_a_user_belongs_to(groups: UserGroups) -> None:
    wanted = ["S0ONCALL", "S0ADMINS"]

    assert groups.groups_of("U0BOB", wanted) == {"S0ONCALL", "S0ADMINS"}
    assert groups.groups_of("U0ALICE", wanted) == {"S0ADMINS"}
    assert groups.groups_of("U0CAROL", wanted) == set()
    assert groups.groups_of("U0BOB", []) == set()


def test_a_second_lookup_within_the_ttl_does_not_ask_slack(
    groups: UserGroups, fake: FakeSlack, ticker: Ticker
) -> None:
    groups.members("S0ONCALL")
    ticker.advance(59.0)

    assert groups.members("S0ONCALL") == frozenset({"U0BOB"})
    assert groups.groups_of("U0BOB", ["S0ONCALL"]) == {"S0ONCALL"}
    assert asked(fake) == ["S0ONCALL"]


def test_after_the_ttl_slack_is_asked_again(
    groups: UserGroups, fake: FakeSlack, ticker: Ticker
) -> None:
    groups.members("S0ONCALL")
    fake.usergroups["S0ONCALL"] = ["U0BOB", "U0CAROL"]  # someone joined on-call
    ticker.advance(60.0)

    assert groups.members("S0ONCALL") == frozenset({"U0BOB", "U0CAROL"})
    assert asked(fake) == ["S0ONCALL", "S0ONCALL"]


def test_the_cache_is_per_group(groups: UserGroups, fake: FakeSlack) -> None:
    groups.members("S0ONCALL")
    groups.members("S0ADMINS")
    groups.members("S0ONCALL")
    groups.members("S0ADMINS")

    assert asked(fake) == ["S0ONCALL", "S0ADMINS"]


def test_when_slack_fails_the_last_known_members_are_kept(
    groups: UserGroups, fake: FakeSlack, ticker: Ticker, caplog: pytest.LogCaptureFixture
) -> None:
    assert groups.members("S0ONCALL") == frozenset({"U0BOB"})
    ticker.advance(120.0)
    fake.fail(LIST, 500, times=5)

    with caplog.at_level(logging.WARNING, logger="bot.identity"):
        assert groups.members("S0ONCALL") == frozenset({"U0BOB"})

    assert [call.status for call in fake.calls_to(LIST)] == [200, 500]
    assert any("S0ONCALL" in r.getMessage() for r in caplog.records)


def test_when_slack_fails_with_nothing_cached_the_group_is_empty(
    groups: UserGroups, fake: FakeSlack
) -> None:
    fake.fail(LIST, 500, times=5)

    assert groups.members("S0ONCALL") == frozenset()
    assert groups.groups_of("U0BOB", ["S0ONCALL"]) == set()


def test_a_failure_is_remembered_briefly_then_slack_is_asked_again(
    groups: UserGroups, fake: FakeSlack, ticker: Ticker
) -> None:
    fake.fail(LIST, 500, times=1)
    assert groups.members("S0ONCALL") == frozenset()
    assert groups.members("S0ONCALL") == frozenset()  # no second wait on a failing Slack
    assert [call.status for call in fake.calls_to(LIST)] == [500]

    ticker.advance(FAILURE_CACHE_SECONDS + 0.1)
    assert groups.members("S0ONCALL") == frozenset({"U0BOB"})
    assert [call.status for call in fake.calls_to(LIST)] == [500, 200]


def test_an_unknown_group_is_empty(groups: UserGroups, fake: FakeSlack) -> None:
    assert groups.members("S0NOSUCH") == frozenset()

    [call] = fake.calls_to(LIST)
    assert call.answer == {"ok": False, "error": "no_such_subteam"}
    assert groups.groups_of("U0BOB", ["S0NOSUCH", "S0ONCALL"]) == {"S0ONCALL"}


def test_the_default_cache_is_short() -> None:
    assert 0 < GROUP_CACHE_SECONDS <= 300


def test_static_groups_answer_from_their_mapping() -> None:
    static = StaticGroups({"S0ONCALL": ["U0BOB"], "S0ADMINS": ("U0ALICE", "U0BOB")})

    assert static.members("S0ONCALL") == frozenset({"U0BOB"})
    assert static.members("S0NOSUCH") == frozenset()
    assert static.groups_of("U0BOB", ["S0ONCALL", "S0ADMINS", "S0NOSUCH"]) == {
        "S0ONCALL",
        "S0ADMINS",
    }
    assert static.groups_of("U0CAROL", ["S0ONCALL"]) == set()


def test_static_groups_without_a_mapping_are_empty() -> None:
    assert StaticGroups().members("S0ONCALL") == frozenset()
    assert StaticGroups(None).groups_of("U0BOB", ["S0ONCALL"]) == set()

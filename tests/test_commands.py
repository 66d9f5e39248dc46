"""The command grammar: text → Command, checked against the DESIGN.md §3 commands."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import MAX_LENGTH, parse, suggest, tokenize
from handlers.context import Command, Context
from handlers.errors import UsageError
from handlers.registry import CommandSpec, Registry
from handlers.reply import Reply
from tests.grammar_registry import design_registry

REGISTRY = design_registry()


@pytest.fixture
def grammar() -> Registry:
    """A fresh registry holding every DESIGN.md §3 command."""
    return design_registry()


def usage_error(text: str, registry: Registry) -> UsageError:
    with pytest.raises(UsageError) as caught:
        parse(text, registry)
    return caught.value


def spec_of(registry: Registry, path: str) -> CommandSpec:
    spec = registry.find(*path.split())
    assert spec is not None
    return spec


# --- what parses -----------------------------------------------------------------------


def test_positionals_bind_in_order(grammar: Registry) -> None:
    cmd = parse("deploy web prod", grammar)
    assert (cmd.verb, cmd.subverb, cmd.args) == ("deploy", None, ("web", "prod"))
    assert cmd.arg("app") == "web"
    assert cmd.arg("env") == "prod"


def test_key_value_options(grammar: Registry) -> None:
    cmd = parse("deploy web prod rev=abc123", grammar)
    assert dict(cmd.options) == {"rev": "abc123"}
    assert cmd.args == ("web", "prod")


def test_option_value_may_contain_equals_signs(grammar: Registry) -> None:
    cmd = parse("chaos run pod-kill target=shop/app=web", grammar)
    assert cmd.option("target") == "shop/app=web"


def test_options_may_come_before_positionals(grammar: Registry) -> None:
    cmd = parse("deploy rev=abc123 web prod", grammar)
    assert cmd.args == ("web", "prod")
    assert cmd.option("rev") == "abc123"


def test_flags(grammar: Registry) -> None:
    cmd = parse("deploy web prod --dry-run", grammar)
    assert cmd.flag("dry-run")
    assert not cmd.flag("prune")
    assert cmd.flags == frozenset({"dry-run"})


def test_flags_are_case_insensitive(grammar: Registry) -> None:
    assert parse("deploy web prod --DRY-RUN", grammar).flag("dry-run")


def test_subverb_selects_the_command(grammar: Registry) -> None:
    cmd = parse("env create pr-123 ttl=48h", grammar)
    assert cmd.path == "env create"
    assert cmd.arg("name") == "pr-123"
    assert cmd.option("ttl") == "48h"


def test_double_quotes_group_words(grammar: Registry) -> None:
    cmd = parse('maint schedule db in=2h duration=1h reason="two words"', grammar)
    assert cmd.option("reason") == "two words"


def test_single_quotes_group_words(grammar: Registry) -> None:
    cmd = parse("maint schedule db in=2h duration=1h reason='two words'", grammar)
    assert cmd.option("reason") == "two words"


@pytest.mark.parametrize("quoted", ["“two words”", "„two words”", "‘two words’", '“two words"'])
def test_curly_quotes_work_like_straight_ones(grammar: Registry, quoted: str) -> None:
    cmd = parse(f"maint schedule db in=2h duration=1h reason={quoted}", grammar)
    assert cmd.option("reason") == "two words"


def test_quoted_positional_keeps_its_blanks(grammar: Registry) -> None:
    cmd = parse('status "my app"', grammar)
    assert cmd.arg("app") == "my app"


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_text_means_help(grammar: Registry, text: str) -> None:
    cmd = parse(text, grammar)
    assert cmd.path == "help"
    assert cmd.args == ()


@pytest.mark.parametrize("text", ["DEPLOY web prod", "Deploy web prod"])
def test_verb_is_case_insensitive(grammar: Registry, text: str) -> None:
    assert parse(text, grammar).verb == "deploy"


def test_subverb_is_case_insensitive(grammar: Registry) -> None:
    assert parse("ENV Create pr-1", grammar).path == "env create"


def test_positional_values_keep_their_case(grammar: Registry) -> None:
    assert parse("status Web PROD", grammar).args == ("Web", "PROD")


def test_command_records_text_usage_and_argument_names(grammar: Registry) -> None:
    cmd = parse("  rollback web prod to=7  ", grammar)
    assert cmd.text == "rollback web prod to=7"
    assert cmd.usage == spec_of(grammar, "rollback").usage
    assert cmd.arg_names == ("app", "env")


def test_optional_positional_may_be_left_out(grammar: Registry) -> None:
    cmd = parse("status web", grammar)
    assert cmd.arg("app") == "web"
    assert cmd.arg("env") is None


def test_mention_positional(grammar: Registry) -> None:
    cmd = parse("env share pr-1 <@U123>", grammar)
    assert cmd.arg("user") == "<@U123>"


def test_one_of_group_accepts_either_option(grammar: Registry) -> None:
    assert parse("maint schedule db start=2030-01-01T00:00 duration=1h", grammar).option("start")
    assert parse("maint schedule db in=2h duration=1h", grammar).option("in") == "2h"


def test_free_text_key_value_is_a_positional_for_a_command_without_options(
    grammar: Registry,
) -> None:
    cmd = parse("status app=web", grammar)
    assert cmd.arg("app") == "app=web"


# --- usage errors ----------------------------------------------------------------------


def test_unknown_verb_suggests_the_closest(grammar: Registry) -> None:
    error = usage_error("depoly web prod", grammar)
    assert "depoly" in error.message
    assert "'deploy'" in error.message


def test_unknown_verb_far_from_any_points_to_help(grammar: Registry) -> None:
    error = usage_error("xyzzy", grammar)
    assert "help" in error.message


def test_unknown_verb_that_is_not_a_word_gets_no_suggestion(grammar: Registry) -> None:
    error = usage_error("deploy!", grammar)
    assert "did you mean" not in error.message


def test_long_unknown_verb_is_shortened_in_the_message(grammar: Registry) -> None:
    error = usage_error("x" * 500, grammar)
    assert len(error.message) < 200


def test_unknown_subverb_suggests_the_closest(grammar: Registry) -> None:
    error = usage_error("env creat pr-1", grammar)
    assert "'env create'" in error.message
    assert error.usage is not None
    assert spec_of(grammar, "env create").usage in error.usage.splitlines()


def test_unknown_subverb_far_from_any_lists_the_choices(grammar: Registry) -> None:
    error = usage_error("env zzzzzz", grammar)
    assert all(sub in error.message for sub in grammar.subverbs("env"))


def test_verb_needing_a_subverb_alone_lists_the_subverbs(grammar: Registry) -> None:
    error = usage_error("chaos", grammar)
    assert all(sub in error.message for sub in grammar.subverbs("chaos"))
    assert error.usage is not None
    assert set(error.usage.splitlines()) == {s.usage for s in grammar.for_verb("chaos")}


def test_missing_positional_names_the_placeholder(grammar: Registry) -> None:
    error = usage_error("deploy web", grammar)
    assert "ENV" in error.message
    assert error.usage == spec_of(grammar, "deploy").usage


def test_missing_mention_names_the_placeholder(grammar: Registry) -> None:
    error = usage_error("env share pr-1", grammar)
    assert "@user" in error.message


def test_too_many_positionals(grammar: Registry) -> None:
    error = usage_error("history web prod extra", grammar)
    assert "extra" in error.message
    assert error.usage == spec_of(grammar, "history").usage


def test_command_without_parameters_refuses_any(grammar: Registry) -> None:
    error = usage_error("apps now", grammar)
    assert "now" in error.message


def test_unknown_option_suggests_the_closest(grammar: Registry) -> None:
    error = usage_error("deploy web prod revv=abc", grammar)
    assert "revv=" in error.message
    assert "'rev='" in error.message
    assert error.usage == spec_of(grammar, "deploy").usage


def test_unknown_option_far_from_any_lists_the_options(grammar: Registry) -> None:
    error = usage_error("env create pr-1 colour=blue", grammar)
    assert all(f"{o}=" in error.message for o in ("app", "rev", "ttl"))


def test_option_written_as_a_flag_shows_the_right_form(grammar: Registry) -> None:
    error = usage_error("deploy web prod --rev=abc", grammar)
    assert "rev=VALUE" in error.message
    assert error.usage == spec_of(grammar, "deploy").usage


def test_unknown_flag_suggests_the_closest(grammar: Registry) -> None:
    error = usage_error("deploy web prod --dryrun", grammar)
    assert "'--dry-run'" in error.message


def test_flag_on_a_command_without_flags(grammar: Registry) -> None:
    error = usage_error("history web prod --force", grammar)
    assert "--force" in error.message


def test_duplicated_option(grammar: Registry) -> None:
    error = usage_error("deploy web prod rev=a rev=b", grammar)
    assert "rev=" in error.message
    assert "twice" in error.message


def test_empty_option_value(grammar: Registry) -> None:
    error = usage_error("deploy web prod rev=", grammar)
    assert "rev=" in error.message
    assert error.usage == spec_of(grammar, "deploy").usage


def test_missing_required_option(grammar: Registry) -> None:
    error = usage_error("promote web from=staging", grammar)
    assert "to=ENV" in error.message
    assert error.usage == spec_of(grammar, "promote").usage


@pytest.mark.parametrize(
    "text",
    [
        "maint schedule db duration=1h",
        "maint schedule db start=2030-01-01T00:00 in=2h duration=1h",
    ],
)
def test_one_of_group_needs_exactly_one(grammar: Registry, text: str) -> None:
    error = usage_error(text, grammar)
    assert "start=" in error.message
    assert "in=" in error.message
    assert error.usage == spec_of(grammar, "maint schedule").usage


@pytest.mark.parametrize("text", ['deploy "web prod', "deploy 'web prod", "deploy “web prod"])
def test_unbalanced_quote(grammar: Registry, text: str) -> None:
    error = usage_error(text, grammar)
    assert "quote" in error.message


def test_text_longer_than_the_limit_is_refused(grammar: Registry) -> None:
    error = usage_error("status " + "x" * MAX_LENGTH, grammar)
    assert "too long" in error.message


def test_text_at_the_limit_is_read(grammar: Registry) -> None:
    text = "status " + "x" * (MAX_LENGTH - len("status "))
    assert len(text) == MAX_LENGTH
    assert parse(text, grammar).arg("app") == "x" * (MAX_LENGTH - len("status "))


def test_tokenize_honours_quotes() -> None:
    assert tokenize("a \"b c\" d='e f'") == ["a", "b c", "d=e f"]


def test_suggest_returns_none_when_nothing_is_close() -> None:
    assert suggest("zzz", ["deploy", "status"]) is None
    assert suggest("stauts", ["deploy", "status"]) == "status"


# --- Command helpers -------------------------------------------------------------------


def test_arg_of_an_unknown_name_is_none(grammar: Registry) -> None:
    assert parse("deploy web prod", grammar).arg("rev") is None


def test_value_reads_a_positional_or_an_option(grammar: Registry) -> None:
    cmd = parse("deploy web prod rev=abc", grammar)
    assert cmd.value("app") == "web"
    assert cmd.value("rev") == "abc"
    assert cmd.value("nothing") is None


def test_option_default(grammar: Registry) -> None:
    cmd = parse("deploy web prod", grammar)
    assert cmd.option("rev") is None
    assert cmd.option("rev", "main") == "main"


def _lock(cmd: Command, ctx: Context) -> Reply:
    return Reply(text=" ".join(cmd.args))


def test_rest_collects_a_variadic_argument() -> None:
    registry = Registry()
    registry.command("lock", usage="lock TARGET… [for=1h]", summary="lock targets")(_lock)
    cmd = parse("lock a b c for=2h", registry)
    assert cmd.rest("target") == ("a", "b", "c")
    assert cmd.rest("nothing") == ()
    assert cmd.option("for") == "2h"


def test_duration_reads_an_option(grammar: Registry) -> None:
    cmd = parse("env create pr-1 ttl=48h", grammar)
    assert cmd.duration("ttl", timedelta(hours=24)) == timedelta(hours=48)


def test_duration_default_when_absent(grammar: Registry) -> None:
    cmd = parse("env create pr-1", grammar)
    assert cmd.duration("ttl", timedelta(hours=24)) == timedelta(hours=24)


def test_bad_duration_is_a_usage_error_with_the_usage(grammar: Registry) -> None:
    cmd = parse("env create pr-1 ttl=soon", grammar)
    with pytest.raises(UsageError) as caught:
        cmd.duration("ttl", timedelta(hours=24))
    assert "ttl=soon" in caught.value.message
    assert caught.value.usage == spec_of(grammar, "env create").usage


# --- properties ------------------------------------------------------------------------


def _parse_or_usage_error(text: str, registry: Registry) -> Command | UsageError:
    try:
        return parse(text, registry)
    except UsageError as error:
        return error


def _assert_parses_or_usage_error(text: str, registry: Registry) -> None:
    outcome = _parse_or_usage_error(text, registry)
    if isinstance(outcome, UsageError):
        assert outcome.message
    else:
        assert registry.find(outcome.verb, outcome.subverb) is not None


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_parses_or_is_a_usage_error(text: str) -> None:
    _assert_parses_or_usage_error(text, REGISTRY)


_QUOTE_HEAVY = st.text(alphabet=st.sampled_from(list("ab =-\"'“”„‘’\\\n\t\x00\x1b#é")))

_VERBS = REGISTRY.verbs()
_SUBVERBS = sorted({s.subverb for s in REGISTRY if s.subverb})
_OPTIONS = sorted({p.name for s in REGISTRY for p in s.signature.options})
_FLAGS = sorted({p.name for s in REGISTRY for p in s.signature.flags})
_WORDS = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters=" "),
    min_size=1,
    max_size=12,
)
_TOKEN = st.one_of(
    st.sampled_from(_VERBS),
    st.sampled_from(_VERBS).map(str.upper),
    st.sampled_from(_SUBVERBS),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(_OPTIONS), _WORDS | st.just("")),
    st.builds(lambda k, v: f'{k}="{v} {v}"', st.sampled_from(_OPTIONS), _WORDS),
    st.sampled_from(_FLAGS).map(lambda f: f"--{f}"),
    st.sampled_from(_OPTIONS).map(lambda o: f"--{o}=x"),
    _WORDS,
)
_SENTENCE = st.builds(
    lambda first, rest: " ".join([first, *rest]),
    st.sampled_from(_VERBS),
    st.lists(_TOKEN, max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(_QUOTE_HEAVY)
def test_quote_heavy_text_parses_or_is_a_usage_error(text: str) -> None:
    _assert_parses_or_usage_error(text, REGISTRY)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_SENTENCE)
def test_command_like_text_parses_or_is_a_usage_error(text: str) -> None:
    _assert_parses_or_usage_error(text, REGISTRY)

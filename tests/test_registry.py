"""The registry: usage lines → signatures, declarations → specs, and lookups."""

from __future__ import annotations

import pytest

from handlers.context import Command, Context
from handlers.registry import (
    SPEC_ATTRIBUTE,
    CommandSpec,
    Param,
    Registry,
    RegistryError,
    Signature,
    build_spec,
    command,
)
from handlers.reply import Reply
from tests.grammar_registry import DESIGN_COMMANDS, declare, design_registry


def _noop(cmd: Command, ctx: Context) -> Reply:
    return Reply(text=cmd.path)


def _spec(
    path: str, usage: str, *, env_arg: str | None = None, mutating: bool = False
) -> CommandSpec:
    return build_spec(
        path, usage=usage, summary="a summary", handler=_noop, env_arg=env_arg, mutating=mutating
    )


# --- Signature.parse -------------------------------------------------------------------


def test_required_and_optional_positionals() -> None:
    signature = Signature.parse(["APP", "[ENV]"])
    assert signature.positionals == (
        Param("app", "positional", "APP", required=True),
        Param("env", "positional", "ENV", required=False),
    )


def test_positional_names_are_lower_case_with_dashes() -> None:
    signature = Signature.parse(["HISTORY_ID"])
    assert signature.positionals[0].name == "history-id"
    assert signature.positionals[0].placeholder == "HISTORY_ID"


@pytest.mark.parametrize("word", ["TARGET…", "TARGET...", "[TARGET…]"])
def test_variadic_positional(word: str) -> None:
    (param,) = Signature.parse([word]).positionals
    assert param.name == "target"
    assert param.variadic
    assert param.required is (not word.startswith("["))


def test_user_mention_positional() -> None:
    (param,) = Signature.parse(["@user"]).positionals
    assert param.name == "user"
    assert param.placeholder == "@user"
    assert param.required


def test_optional_option_keeps_its_placeholder() -> None:
    signature = Signature.parse(["[rev=REV]"])
    assert signature.options == (Param("rev", "option", "REV", required=False),)
    assert signature.positionals == ()


def test_required_option() -> None:
    signature = Signature.parse(["from=ENV", "to=ENV"])
    assert [(p.name, p.required) for p in signature.options] == [("from", True), ("to", True)]


def test_one_of_group_declares_each_option_optional_and_a_group() -> None:
    signature = Signature.parse(["start=ISO|in=2h"])
    assert [(p.name, p.placeholder, p.required) for p in signature.options] == [
        ("start", "ISO", False),
        ("in", "2h", False),
    ]
    assert signature.one_of == (("start", "in"),)


def test_optional_alternatives_form_no_required_group() -> None:
    signature = Signature.parse(["[start=ISO|in=2h]"])
    assert {p.name for p in signature.options} == {"start", "in"}
    assert signature.one_of == ()


def test_placeholder_containing_a_bar_stays_one_option() -> None:
    signature = Signature.parse(["[mode=one|fixed-percent…]"])
    assert signature.options == (Param("mode", "option", "one|fixed-percent…", required=False),)
    assert signature.one_of == ()


def test_optional_flag() -> None:
    signature = Signature.parse(["[--dry-run]"])
    assert signature.flags == (Param("dry-run", "flag", required=False),)


def test_a_required_flag_is_refused() -> None:
    with pytest.raises(RegistryError, match="optional"):
        Signature.parse(["--dry-run"])


def test_names_lists_positionals_then_options_then_flags() -> None:
    signature = Signature.parse(["[--prune]", "APP", "[rev=REV]"])
    assert signature.names == ("app", "rev", "prune")


def test_required_positional_after_optional_is_refused() -> None:
    with pytest.raises(RegistryError, match="follows an optional"):
        Signature.parse(["[ENV]", "APP"])


@pytest.mark.parametrize("after", ["ENV", "[ENV]", "MORE…"])
def test_positional_after_variadic_is_refused(after: str) -> None:
    with pytest.raises(RegistryError, match="nothing may follow"):
        Signature.parse(["TARGET…", after])


def test_options_and_flags_may_follow_a_variadic() -> None:
    signature = Signature.parse(["TARGET…", "[env=E]", "[--force]"])
    assert signature.names == ("target", "env", "force")


@pytest.mark.parametrize(
    "words",
    [
        ["APP", "APP"],
        ["APP", "[app=X]"],
        ["[env=E]", "[env=F]"],
        ["[--x]", "[--x]"],
        ["start=ISO|start=2h"],
        ["ENV", "[--env]"],
    ],
)
def test_duplicate_names_are_refused(words: list[str]) -> None:
    with pytest.raises(RegistryError, match="named twice"):
        Signature.parse(words)


@pytest.mark.parametrize("word", ["[REV=x]", "3", "[]", "{APP}", "[1=x]"])
def test_unreadable_words_are_refused(word: str) -> None:
    with pytest.raises(RegistryError):
        Signature.parse([word])


# --- build_spec ------------------------------------------------------------------------


def test_build_spec_for_a_verb() -> None:
    spec = _spec("deploy", "deploy  APP ENV   [--dry-run]", env_arg="env", mutating=True)
    assert (spec.verb, spec.subverb, spec.path) == ("deploy", None, "deploy")
    assert spec.usage == "deploy APP ENV [--dry-run]"
    assert spec.env_arg == "env"
    assert spec.mutating
    assert spec.signature == Signature.parse(["APP", "ENV", "[--dry-run]"])


def test_build_spec_for_verb_and_subverb() -> None:
    spec = _spec("env create", "env create NAME")
    assert (spec.verb, spec.subverb, spec.path) == ("env", "create", "env create")


def test_permission_joins_verb_and_subverb_with_a_dot() -> None:
    assert _spec("env create", "env create NAME").permission == "env.create"
    assert _spec("deploy", "deploy APP").permission == "deploy"


def test_summary_is_stripped_and_examples_kept() -> None:
    spec = build_spec(
        "apps", usage="apps", summary="  every app  ", handler=_noop, examples=["apps"]
    )
    assert spec.summary == "every app"
    assert spec.examples == ("apps",)


def test_env_arg_may_name_an_option() -> None:
    assert _spec("chaos list", "chaos list [env=E]", env_arg="env").env_arg == "env"


def test_env_arg_naming_no_parameter_is_refused() -> None:
    with pytest.raises(RegistryError, match="env_arg"):
        _spec("deploy", "deploy APP ENV", env_arg="environment")


@pytest.mark.parametrize(
    ("path", "usage"),
    [
        ("deploy", "rollout APP"),
        ("deploy", "APP deploy"),
        ("deploy", ""),
        ("env create", "env APP"),
        ("env create", "create env NAME"),
    ],
)
def test_usage_must_start_with_the_path(path: str, usage: str) -> None:
    with pytest.raises(RegistryError, match="must start with"):
        _spec(path, usage)


@pytest.mark.parametrize("path", ["env create now", "", "Deploy", "2fa", "env  Create"])
def test_path_must_be_one_or_two_lower_case_words(path: str) -> None:
    with pytest.raises(RegistryError, match="one or two"):
        _spec(path, f"{path} X")


@pytest.mark.parametrize("summary", ["", "   "])
def test_empty_summary_is_refused(summary: str) -> None:
    with pytest.raises(RegistryError, match="summary"):
        build_spec("apps", usage="apps", summary=summary, handler=_noop)


def test_command_decorator_attaches_the_spec_and_returns_the_handler() -> None:
    handler = command("apps", usage="apps", summary="every app")(_noop)
    assert handler is _noop
    spec = getattr(handler, SPEC_ATTRIBUTE)
    assert isinstance(spec, CommandSpec)
    assert spec.handler is _noop


# --- DESIGN.md §3 ----------------------------------------------------------------------


@pytest.mark.parametrize(("path", "usage"), DESIGN_COMMANDS, ids=[p for p, _ in DESIGN_COMMANDS])
def test_design_usage_line_declares(path: str, usage: str) -> None:
    registry = Registry()
    spec = declare(registry, path, usage)
    assert spec.path == path
    assert spec.usage == " ".join(usage.split())


def test_design_registry_is_fresh_each_call() -> None:
    first, second = design_registry(), design_registry()
    first.add(_spec("extra", "extra"))
    assert first.find("extra") is not None
    assert second.find("extra") is None


# --- Registry --------------------------------------------------------------------------


def test_discover_holds_the_built_in_commands() -> None:
    registry = Registry.discover()
    assert registry.find("help") is not None
    assert registry.find("whoami") is not None


def test_discover_returns_a_fresh_registry_each_call() -> None:
    first, second = Registry.discover(), Registry.discover()
    assert first is not second
    first.add(_spec("extra", "extra"))
    assert first.find("extra") is not None
    assert second.find("extra") is None
    assert len(first) == len(second) + 1


def test_the_registry_fixture_is_a_discovered_registry(registry: Registry) -> None:
    assert [s.path for s in registry] == [s.path for s in Registry.discover()]


def test_declaring_a_path_twice_is_refused() -> None:
    registry = Registry()
    registry.add(_spec("deploy", "deploy APP"))
    with pytest.raises(RegistryError, match="twice"):
        registry.add(_spec("deploy", "deploy APP ENV"))
    kept = registry.find("deploy")
    assert kept is not None
    assert kept.usage == "deploy APP"


def test_registry_command_declares_into_that_registry_only() -> None:
    registry, other = Registry(), Registry()
    registry.command("apps", usage="apps", summary="every app")(_noop)
    assert registry.find("apps") is not None
    assert other.find("apps") is None


def test_registry_command_twice_is_refused() -> None:
    registry = Registry()
    registry.command("apps", usage="apps", summary="every app")(_noop)
    with pytest.raises(RegistryError):
        registry.command("apps", usage="apps", summary="again")(_noop)


def _lookup_registry() -> Registry:
    return Registry(
        [
            _spec("env list", "env list"),
            _spec("deploy", "deploy APP"),
            _spec("env create", "env create NAME"),
            _spec("audit", "audit"),
            _spec("mesh", "mesh"),
            _spec("mesh audit", "mesh audit"),
        ]
    )


def test_verbs_are_sorted_and_unique() -> None:
    assert _lookup_registry().verbs() == ["audit", "deploy", "env", "mesh"]


def test_subverbs_are_sorted_and_empty_for_a_plain_verb() -> None:
    registry = _lookup_registry()
    assert registry.subverbs("env") == ["create", "list"]
    assert registry.subverbs("deploy") == []
    assert registry.subverbs("nothing") == []


def test_for_verb_puts_the_bare_form_first_then_subverbs() -> None:
    assert [s.path for s in _lookup_registry().for_verb("mesh")] == ["mesh", "mesh audit"]
    assert [s.path for s in _lookup_registry().for_verb("env")] == ["env create", "env list"]


def test_find_by_verb_and_subverb() -> None:
    registry = _lookup_registry()
    found = registry.find("env", "create")
    assert found is not None
    assert found.path == "env create"
    assert registry.find("env") is None
    assert registry.find("audit", "mesh") is None


def test_iteration_is_sorted_by_verb_then_subverb() -> None:
    paths = [s.path for s in _lookup_registry()]
    assert paths == ["audit", "deploy", "env create", "env list", "mesh", "mesh audit"]
    assert len(_lookup_registry()) == 6

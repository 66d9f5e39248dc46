"""help: generated from the registry, filtered by what the asker may run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.pipeline import Pipeline, Request
from bot.runtime import Runtime
from handlers.context import Command, Context
from handlers.registry import CommandSpec, Registry
from handlers.reply import Reply, Status
from tests.conftest import RecordingResponder


@pytest.fixture
def registry() -> Registry:
    registry = Registry.discover()

    @registry.command(
        "launch",
        usage="launch APP ENV [rev=REV]",
        summary="sync an app",
        mutating=True,
        env_arg="env",
    )
    def launch(cmd: Command, ctx: Context) -> Reply:
        return Reply(text="ok")

    @registry.command(
        "box create", usage="box create NAME [ttl=24h]", summary="new env", mutating=True
    )
    def box_create(cmd: Command, ctx: Context) -> Reply:
        return Reply(text="ok")

    @registry.command("box list", usage="box list", summary="list envs")
    def box_list(cmd: Command, ctx: Context) -> Reply:
        return Reply(text="ok")

    return registry


def ask(runtime: Runtime, registry: Registry, text: str, permits=None) -> Reply:  # type: ignore[no-untyped-def]
    pipeline = Pipeline(
        registry=registry,
        settings=runtime.settings,
        adapters=runtime.adapters,
        store=runtime.store,
        clock=runtime.clock,
        permits=permits,
    )
    return pipeline.handle(Request(text, "U0ALICE", "C0X"), RecordingResponder())


def test_help_lists_every_registered_usage(runtime: Runtime, registry: Registry) -> None:
    reply = ask(runtime, registry, "help")
    for spec in registry:
        assert f"`{spec.usage}`" in reply.text
        assert spec.summary in reply.text
    assert reply.ephemeral
    verbs = {spec.verb for spec in registry} - {"help"}
    assert {b.command for b in reply.buttons} == {f"help {verb}" for verb in verbs}
    assert {"help launch", "help box", "help whoami"} <= {b.command for b in reply.buttons}


def test_mutating_commands_are_marked(runtime: Runtime, registry: Registry) -> None:
    lines = ask(runtime, registry, "help").text.splitlines()
    launch_line = next(line for line in lines if line.startswith("`launch"))
    list_line = next(line for line in lines if line.startswith("`box list"))
    assert launch_line.endswith(":lock:")
    assert not list_line.endswith(":lock:")


def test_help_verb_shows_every_subcommand_and_where_approval_is_needed(
    runtime: Runtime, registry: Registry
) -> None:
    reply = ask(runtime, registry, "help box")
    assert reply.title == "help: box"
    assert "`box create NAME [ttl=24h]`" in reply.text
    assert "`box list`" in reply.text
    launch = ask(runtime, registry, "help launch")
    assert "needs approval in: prod" in launch.text  # the demo settings gate prod


def test_help_shows_only_what_the_asker_may_run(runtime: Runtime, registry: Registry) -> None:
    def no_mutations(actor: str, spec: CommandSpec) -> bool:
        return not spec.mutating

    reply = ask(runtime, registry, "help", permits=no_mutations)
    assert "launch" not in reply.text
    assert "`box list`" in reply.text
    refused = ask(runtime, registry, "help launch", permits=no_mutations)
    assert refused.status is Status.USAGE
    assert "no command 'launch' you may run" in refused.text


def test_help_for_a_misspelt_verb_suggests_the_closest(
    runtime: Runtime, registry: Registry
) -> None:
    reply = ask(runtime, registry, "help lanuch")
    assert reply.status is Status.USAGE
    assert "did you mean 'launch'?" in reply.text


def test_help_uses_the_configured_slash_command(tmp_path: Path, registry: Registry) -> None:
    from bot import config
    from tests.conftest import loaded_config

    settings = config.parse('[slack]\ncommand = "/platform"\n', "x.toml")
    with Runtime.build(loaded_config(settings, tmp_path), registry=registry, environ={}) as rt:
        assert "`/platform help VERB`" in (ask(rt, registry, "help").footer or "")

"""The README's promises: two commands first, CI runs the second, every command listed."""

from __future__ import annotations

import re

from handlers.registry import Registry
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def opening_commands() -> list[str]:
    before_prose = README.split("\n\nThe first command", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", before_prose, re.DOTALL)]


def test_the_readme_opens_with_exactly_two_commands() -> None:
    run, test = opening_commands()
    assert "opsbot serve" in run
    assert "pytest" in test
    assert "\n" not in run
    assert "\n" not in test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, test = opening_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci.splitlines()


def test_every_registered_command_is_in_the_readme() -> None:
    for spec in Registry.discover():
        assert f"`{spec.usage}`" in README, spec.usage

"""The opsbot command line, run as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_opsbot


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = run_opsbot("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("serve", "run", "config", "slack-manifest"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve", "--help"], "--mode {socket,http,sandbox}"),
        (["run", "--help"], "--user USER"),
        (["config", "check", "--help"], "FILE: section.key: message"),
        (["slack-manifest", "--help"], "--request-url"),
    ],
)
def test_each_command_has_help(tmp_path: Path, args: list[str], expected: str) -> None:
    result = run_opsbot(*args, cwd=tmp_path)
    assert result.returncode == 0
    assert expected in " ".join(result.stdout.split())


def test_importing_the_cli_loads_no_heavy_client() -> None:
    probe = (
        "import sys, bot.cli; bot.cli.build_parser().format_help(); "
        "heavy = [m for m in ('kubernetes', 'hvac', 'slack_bolt', 'slack_sdk', 'pydantic', "
        "'apscheduler', 'sqlite_utils', 'httpx') if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_run_prints_the_reply_and_exits_0(tmp_path: Path) -> None:
    result = run_opsbot("run", "help", "--user", "U0ALICE", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("opsbot commands\n")
    assert "whoami" in result.stdout
    assert "[help whoami] → help whoami" in result.stdout


def test_run_acts_as_the_given_user_in_the_given_channel(tmp_path: Path) -> None:
    result = run_opsbot("run", "whoami", "--user", "U0BOB", "--channel", "C0OPS", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "User: @U0BOB (`U0BOB`)" in result.stdout
    assert "Channel: #C0OPS (`C0OPS`)" in result.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("depoly payments staging", "unknown command 'depoly'"),
        ("help help extra", "unexpected 'extra'"),
        ("whoami 'unterminated", "a quote is not closed"),
        ("whoami --verbose", "this command takes no flags"),
    ],
)
def test_run_exits_2_on_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    result = run_opsbot("run", text, "--user", "U0ALICE", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_run_refuses_a_user_that_is_not_a_slack_id(tmp_path: Path) -> None:
    result = run_opsbot("run", "help", "--user", "alice", cwd=tmp_path)
    assert result.returncode == 2
    assert "Slack user ID" in result.stderr


def test_run_with_a_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "opsbot.db").write_bytes(b"this is not sqlite" * 100)
    (tmp_path / "opsbot.toml").write_text('[store]\npath = "opsbot.db"\n')
    result = run_opsbot("run", "help", "--user", "U0ALICE", cwd=tmp_path)
    assert result.returncode == 1
    assert "is not an opsbot database" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_an_unwritable_database_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    (tmp_path / "opsbot.toml").write_text('[store]\npath = "blocker/opsbot.db"\n')
    result = run_opsbot("run", "help", "--user", "U0ALICE", cwd=tmp_path)
    assert result.returncode == 1
    assert "set [store].path to a writable location" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_uses_the_config_file_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "opsbot.toml").write_text('[slack]\ncommand = "/platform"\n')
    result = run_opsbot("run", "help", "--user", "U0ALICE", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Type `/platform help VERB`" in result.stdout
    assert (tmp_path / "opsbot.db").exists()

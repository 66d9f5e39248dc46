"""``opsbot serve`` as a real process: modes, readiness, clean stop, startup errors."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from bot.serve import resolve_mode
from tests.conftest import run_opsbot
from tests.serve_helpers import serving


@pytest.mark.parametrize(
    ("explicit", "environ", "mode"),
    [
        (None, {}, "sandbox"),
        (None, {"SLACK_SIGNING_SECRET": "s"}, "http"),
        (None, {"SLACK_APP_TOKEN": "xapp-1", "SLACK_SIGNING_SECRET": "s"}, "socket"),
        ("sandbox", {"SLACK_APP_TOKEN": "xapp-1"}, "sandbox"),
        ("http", {}, "http"),
    ],
)
def test_the_mode_follows_the_slack_variables(
    explicit: str | None, environ: dict[str, str], mode: str
) -> None:
    assert resolve_mode(explicit, environ) == mode


def test_without_credentials_serve_starts_the_sandbox_on_demo_settings(tmp_path: Path) -> None:
    with serving("--port", "0", cwd=tmp_path) as served:
        assert served.url.startswith("http://127.0.0.1:")
        page = httpx.get(served.url + "/")
        assert page.status_code == 200
        assert "opsbot sandbox" in page.text
        users = httpx.get(served.url + "/api/session").json()["users"]
        assert [u["id"] for u in users] == ["U0ALICE", "U0BOB", "U0CAROL"]
        assert served.stop() == 0
    assert "running on the built-in demo settings" in "".join(served.stderr)
    assert list(tmp_path.iterdir()) == []  # the demo store lives in a temp folder


def test_sigterm_drains_and_exits_0(tmp_path: Path) -> None:
    with serving("--mode", "sandbox", "--port", "0", cwd=tmp_path) as served:
        accepted = httpx.post(
            served.url + "/api/commands", json={"user": "U0ALICE", "text": "whoami"}
        )
        assert accepted.status_code == 202
        assert served.stop() == 0
    assert "stopping: draining in-flight work" in "".join(served.stderr)


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_opsbot("serve", "--port", str(port), cwd=tmp_path)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "pass --port" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_corrupt_database_stops_serve_before_it_listens(tmp_path: Path) -> None:
    (tmp_path / "opsbot.db").write_bytes(b"\x00garbage" * 512)
    (tmp_path / "opsbot.toml").write_text("")
    result = run_opsbot("serve", "--port", "0", cwd=tmp_path)
    assert result.returncode == 1
    assert "is not an opsbot database" in result.stderr
    assert "ready" not in result.stdout
    assert "Traceback" not in result.stderr


def test_a_config_file_is_served_with_its_own_store(tmp_path: Path) -> None:
    (tmp_path / "opsbot.toml").write_text(
        '[store]\npath = "state/opsbot.db"\n[sandbox.users]\nU0DANA = "dana"\n'
    )
    with serving("--port", "0", cwd=tmp_path) as served:
        users = httpx.get(served.url + "/api/session").json()["users"]
        assert users == [{"id": "U0DANA", "name": "dana"}]
        assert served.stop() == 0
    assert (tmp_path / "state" / "opsbot.db").exists()

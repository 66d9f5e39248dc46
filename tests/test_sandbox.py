"""The sandbox page's HTTP API: commands, clicks, live updates, bad input."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from handlers.context import Command, Context
from handlers.registry import Registry
from handlers.reply import Button, Reply
from handlers.settings import Settings
from tests.sandbox_helpers import EventStream, all_text, buttons, running_sandbox


def slow_registry(release: threading.Event) -> Registry:
    registry = Registry.discover()

    @registry.command("slow", usage="slow", summary="reports progress, waits, finishes")
    def slow(cmd: Command, ctx: Context) -> Reply:
        ctx.progress(Reply(text="phase 1 of 2: syncing"))
        assert release.wait(10)
        return Reply(text="all done", buttons=(Button("Again", "slow"),))

    return registry


def test_the_page_and_its_assets_are_served(tmp_path: Path, settings: Settings) -> None:
    with running_sandbox(tmp_path, settings) as sandbox:
        page = httpx.get(sandbox.url + "/")
        assert page.status_code == 200
        assert "<title>opsbot sandbox</title>" in page.text
        for asset in ("app.js", "blockkit.js", "style.css"):
            assert httpx.get(f"{sandbox.url}/static/{asset}").status_code == 200
        assert httpx.get(sandbox.url + "/static/../config.py").status_code == 404
        session = httpx.get(sandbox.url + "/api/session").json()
        assert session["command"] == "/ops"
        assert {"id": "U0BOB", "name": "bob (deployer, approver)"} in session["users"]


def test_a_command_is_acknowledged_before_its_work_is_done(
    tmp_path: Path, settings: Settings
) -> None:
    release = threading.Event()
    with running_sandbox(tmp_path, settings, slow_registry(release)) as sandbox:
        stream = EventStream(sandbox.url)
        response = sandbox.command("slow")
        assert response.status_code == 202  # answered while the handler is still blocked
        assert not release.is_set()
        typed = stream.next_where(lambda m: m["user"] == "U0ALICE")
        assert typed["text"] == "/ops slow"
        progress = stream.next_where(lambda m: m["user"] == "opsbot")
        assert "phase 1 of 2" in all_text(progress)
        release.set()
        final = stream.next_where(lambda m: m["id"] == progress["id"] and "all done" in all_text(m))
        assert final["version"] > progress["version"]
        assert final["edited"] is True


def test_a_click_runs_the_value_stored_in_the_message(tmp_path: Path, settings: Settings) -> None:
    with running_sandbox(tmp_path, settings) as sandbox:
        stream = EventStream(sandbox.url)
        sandbox.command("help")
        reply = stream.next_where(lambda m: m["user"] == "opsbot")
        button = buttons(reply)["help whoami"]
        response = sandbox.click(reply["id"], button["action_id"])
        assert response.status_code == 202
        answer = stream.next_where(lambda m: m["user"] == "opsbot")
        assert "help: whoami" in all_text(answer)


def test_a_click_on_a_button_that_is_not_there_is_refused(
    tmp_path: Path, settings: Settings
) -> None:
    with running_sandbox(tmp_path, settings) as sandbox:
        stream = EventStream(sandbox.url)
        sandbox.command("help")
        reply = stream.next_where(lambda m: m["user"] == "opsbot")
        forged = sandbox.click(reply["id"], "opsbot.run.99")
        assert forged.status_code == 400
        assert "no longer on the message" in forged.json()["error"]
        gone = sandbox.click("no-such-message", "opsbot.run.0")
        assert gone.status_code == 400


def test_ephemeral_replies_are_visible_to_their_user_only(
    tmp_path: Path, settings: Settings
) -> None:
    with running_sandbox(tmp_path, settings) as sandbox:
        stream = EventStream(sandbox.url)
        sandbox.command("help", user="U0ALICE")
        reply = stream.next_where(lambda m: m["user"] == "opsbot")
        assert reply["visible_to"] == "U0ALICE"
        button = buttons(reply)["help whoami"]
        assert sandbox.click(reply["id"], button["action_id"], user="U0BOB").status_code == 400


def test_bad_requests_get_a_clear_400_and_the_server_keeps_serving(
    tmp_path: Path, settings: Settings
) -> None:
    with running_sandbox(tmp_path, settings) as sandbox:
        url = sandbox.url
        cases = [
            httpx.post(f"{url}/api/commands", content=b"text=help"),
            httpx.post(f"{url}/api/commands", json=["help"]),
            httpx.post(f"{url}/api/commands", json={"user": "U0MALLORY", "text": "help"}),
            httpx.post(f"{url}/api/commands", json={"user": "U0ALICE", "text": "  "}),
            httpx.post(f"{url}/api/commands", json={"user": "U0ALICE", "text": "x" * 5000}),
            httpx.get(f"{url}/api/messages?since=abc"),
        ]
        assert [c.status_code for c in cases] == [400] * len(cases)
        assert "act as one of" in cases[2].json()["error"]
        assert httpx.get(f"{url}/api/nothing").status_code == 404
        assert httpx.get(f"{url}/healthz").json() == {"ok": True}


def test_a_usage_error_reaches_the_page_as_an_ephemeral_message(
    tmp_path: Path, settings: Settings
) -> None:
    with running_sandbox(tmp_path, settings) as sandbox:
        stream = EventStream(sandbox.url)
        sandbox.command("depoly payments", user="U0BOB")
        reply = stream.next_where(lambda m: m["user"] == "opsbot")
        assert reply["visible_to"] == "U0BOB"
        assert "unknown command" in all_text(reply)


def test_messages_can_be_polled_since_a_version(tmp_path: Path, settings: Settings) -> None:
    with running_sandbox(tmp_path, settings) as sandbox:
        stream = EventStream(sandbox.url)
        sandbox.command("whoami")
        bot = stream.next_where(lambda m: m["user"] == "opsbot")
        polled = httpx.get(f"{sandbox.url}/api/messages?since=0").json()["messages"]
        assert [m["id"] for m in polled][-1] == bot["id"]
        newer = httpx.get(f"{sandbox.url}/api/messages?since={bot['version']}").json()
        assert newer["messages"] == []

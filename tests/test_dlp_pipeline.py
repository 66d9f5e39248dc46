"""DLP in place: the pipeline step refuses secrets and redacts what it stores or logs, and
a real ``opsbot serve --mode http`` warns people who post secrets in a channel."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.pipeline import Request
from bot.runtime import Runtime
from handlers.context import Command, Context
from handlers.reply import Reply, Status
from tests.conftest import ROOT, RecordingResponder, run_opsbot
from tests.fakes.slack_requests import message_event
from tests.fakes.slack_web import Call
from tests.slack_e2e import slack_bot

GITHUB_TOKEN = "ghp_R8kZpQ2vX7nW4mY1tL9sJ3hF6dC0bA5eGu2i"
EMAIL = "dana.planted@example.org"

SECRETS = {
    "GitHub token": GITHUB_TOKEN,
    "AWS access key": "AKIAQ3EGT7XK5NWM2PLR",
    "Slack webhook URL": "https://hooks.slack.com/services/T0TESTAAA/B0TESTBBB/Zx9QwErTyUiOpAsD",
    "Vault token": "hvs.CAESIJlWh2Ad8xVb3x9yL0aMh4vB6eFgHiJkL",
}


@pytest.fixture
def notified(runtime: Runtime) -> list[str]:
    """Register ``notify WORDS…`` on the runtime; the list holds what each run received."""
    seen: list[str] = []

    @runtime.registry.command("notify", usage="notify WORDS…", summary="pass words on")
    def notify(cmd: Command, ctx: Context) -> Reply:
        seen.append(" ".join(cmd.rest("words")))
        return Reply(text="notified")

    return seen


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records)


@pytest.mark.parametrize("kind", list(SECRETS))
def test_a_command_holding_a_secret_is_refused_and_stored_redacted(
    kind: str,
    runtime: Runtime,
    notified: list[str],
    responder: RecordingResponder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = SECRETS[kind]
    request = Request(text=f"notify ops use {secret} today", actor="U0ALICE", channel="C0OPS")

    with caplog.at_level(logging.DEBUG):
        reply = runtime.handle(request, responder)

    assert reply.status is Status.REFUSED
    assert reply.ephemeral
    assert notified == []  # the handler never ran
    assert kind in reply.text
    assert "rotate" in reply.text
    assert secret not in reply.text
    (posted,) = responder.events
    assert posted.reply == reply
    (row,) = runtime.audit.entries()
    assert row["command"] == f"notify ops use [REDACTED {kind}] today"
    assert (row["actor"], row["channel"], row["ref"]) == ("U0ALICE", "C0OPS", request.ref)
    assert (row["decision"], row["outcome"]) == ("refused", "refused")
    assert row["detail"] == f"DLP: {kind}"
    assert secret not in json.dumps(row)
    assert secret not in _logged(caplog)


def test_a_password_value_is_refused_and_its_key_is_kept(
    runtime: Runtime, notified: list[str], responder: RecordingResponder
) -> None:
    reply = runtime.handle(
        Request(text="notify password=Tr0ub4dor-3x", actor="U0ALICE", channel="C0OPS"), responder
    )

    assert reply.status is Status.REFUSED
    assert "a password or token" in reply.text
    assert notified == []
    (row,) = runtime.audit.entries()
    assert row["command"] == "notify password=[REDACTED password or token]"


def test_a_command_with_an_e_mail_address_runs_but_is_stored_and_logged_redacted(
    runtime: Runtime,
    notified: list[str],
    responder: RecordingResponder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = Request(text=f"notify {EMAIL} the deploy is done", actor="U0BOB", channel="C0OPS")

    with caplog.at_level(logging.DEBUG):
        reply = runtime.handle(request, responder)

    assert reply.status is Status.OK
    assert notified == [f"{EMAIL} the deploy is done"]  # the handler needs the address
    (row,) = runtime.audit.entries()
    assert row["command"] == "notify [REDACTED e-mail address] the deploy is done"
    assert (row["decision"], row["outcome"]) == ("allowed", "ok")
    assert EMAIL not in json.dumps(row)
    logged = _logged(caplog)
    assert f"ref={request.ref}" in logged  # the pipeline did log the command
    assert EMAIL not in logged
    assert "dana.planted" not in logged


def test_a_malformed_command_with_personal_data_is_stored_redacted(
    runtime: Runtime, responder: RecordingResponder
) -> None:
    reply = runtime.handle(
        Request(text=f"notifyy {EMAIL}", actor="U0BOB", channel="C0OPS"), responder
    )

    assert reply.status is Status.USAGE
    (row,) = runtime.audit.entries()
    assert row["command"] == "notifyy [REDACTED e-mail address]"
    assert row["decision"] == "usage error"


# --- over HTTP, end to end -------------------------------------------------------------------


def _texts(calls: list[Call]) -> str:
    return "\n".join(call.text for call in calls)


def _opsbot(*args: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """``opsbot ARGS --config FOLDER/opsbot.toml``, with ``tests.e2e_handlers`` importable
    (the config names it)."""
    config = str(folder / "opsbot.toml")
    return run_opsbot(*args, "--config", config, cwd=folder, env={"PYTHONPATH": str(ROOT)})


def _audit_rows(folder: Path) -> list[dict[str, Any]]:
    """The audit trail of the stopped bot, as ``opsbot audit export`` prints it."""
    exported = _opsbot("audit", "export", folder=folder)
    assert exported.returncode == 0, exported.stderr
    return [json.loads(line) for line in exported.stdout.splitlines()]


def test_a_secret_posted_in_a_channel_gets_a_private_warning_in_its_thread(
    tmp_path: Path,
) -> None:
    event = message_event(f"try my token {GITHUB_TOKEN} please", user="U0CAROL", channel="C0DEV")
    ts = event["event"]["ts"]

    with slack_bot(tmp_path) as bot:
        assert bot.post(event).status_code == 200
        (warning,) = bot.fake.wait_for("chat.postEphemeral")
        assert bot.served.stop() == 0  # drained: the detection is audited by now
        calls, output = list(bot.fake.calls), bot.served.output

    assert warning.params["channel"] == "C0DEV"
    assert warning.params["user"] == "U0CAROL"
    assert warning.params["thread_ts"] == ts
    assert "GitHub token" in warning.text
    assert "rotate" in warning.text
    assert [c.method for c in calls if c.method.startswith("chat.")] == ["chat.postEphemeral"]
    assert GITHUB_TOKEN not in _texts(calls)
    assert GITHUB_TOKEN[4:20] not in _texts(calls)
    assert GITHUB_TOKEN not in output

    rows = _audit_rows(tmp_path)
    (detection,) = [row for row in rows if row["decision"] == "DLP detection"]
    assert (detection["actor"], detection["channel"]) == ("U0CAROL", "C0DEV")
    assert (detection["outcome"], detection["detail"]) == ("warned", "GitHub token")
    assert detection["ref"] == ts
    assert GITHUB_TOKEN not in json.dumps(rows)
    verified = _opsbot("audit", "verify", folder=tmp_path)
    assert (verified.returncode, verified.stdout.strip()) == (0, f"ok {len(rows)} entries")


def test_clean_messages_bots_and_edits_get_no_warning(tmp_path: Path) -> None:
    clean = message_event(
        "deployed payments-7d9f8b6c5-x2x9z at 3f786850e387550fdab836ed7e6dc881de23001b, "
        "thanks <@U0BOB> (ts 1700000000.000100, ttl=24h)",
        channel="C0DEV",
    )
    from_a_bot = message_event(f"CI leaked {GITHUB_TOKEN}", channel="C0DEV")
    from_a_bot["event"]["bot_id"] = "B0CI"
    edited = message_event(f"edited to {GITHUB_TOKEN}", channel="C0DEV")
    edited["event"].update(
        subtype="message_changed",
        hidden=True,
        message={"type": "message", "user": "U0ALICE", "text": f"edited to {GITHUB_TOKEN}"},
    )
    barrier = message_event(f"last one mail {EMAIL}", user="U0DAVE", channel="C0BARRIER")

    with slack_bot(tmp_path) as bot:
        for event in (clean, from_a_bot, edited, barrier):
            assert bot.post(event).status_code == 200
        bot.fake.wait_for("chat.postEphemeral")
        assert bot.served.stop() == 0  # every request, and work started after it, is done
        calls = list(bot.fake.calls)

    (warning,) = [c for c in calls if c.method.startswith("chat.")]
    assert warning.method == "chat.postEphemeral"
    assert (warning.params["user"], warning.params["channel"]) == ("U0DAVE", "C0BARRIER")
    assert warning.params["thread_ts"] == barrier["event"]["ts"]
    assert "an e-mail address" in warning.text
    assert EMAIL not in _texts(calls)
    detections = [row for row in _audit_rows(tmp_path) if row["decision"] == "DLP detection"]
    assert [(row["actor"], row["detail"]) for row in detections] == [("U0DAVE", "e-mail address")]

"""HTTP mode end to end: a real ``opsbot serve --mode http`` driven by signed requests,
asserting on what the fake Slack received."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from tests.e2e_handlers import PLANTED_SECRET
from tests.fakes.slack_requests import block_action, message_event, slash_command
from tests.fakes.slack_web import Call
from tests.slack_e2e import Bot, slack_bot


def texts(calls: list[Call]) -> str:
    return "\n".join(call.text for call in calls)


def assert_clean(bot: Bot) -> None:
    """Every call fits Slack's spec and nothing secret reached Slack."""
    assert bot.fake.spec_problems() == []
    assert PLANTED_SECRET not in texts(bot.fake.calls)


def test_help_is_acked_and_answered_ephemerally(tmp_path: Path) -> None:
    with slack_bot(tmp_path) as bot:
        started = time.monotonic()
        ack = bot.post(slash_command("help", response_url=bot.fake.response_url("help")))
        assert ack.status_code == 200
        assert time.monotonic() - started < 3
        (answer,) = bot.fake.wait_for("response_url")
        assert answer.params["response_type"] == "ephemeral"
        assert "opsbot commands" in answer.text
        assert "slow" in answer.text  # the e2e handler module is registered too
        assert_clean(bot)


def test_an_unknown_verb_gets_a_suggestion_and_runs_nothing(tmp_path: Path) -> None:
    with slack_bot(tmp_path) as bot:
        bot.post(slash_command("sloww", response_url=bot.fake.response_url("typo")))
        (answer,) = bot.fake.wait_for("response_url")
        assert "unknown command" in answer.text
        assert "did you mean" in answer.text
        assert "slow" in answer.text
        assert bot.fake.calls_to("chat.postMessage") == []


def test_a_slow_command_is_acked_at_once_then_updated_in_place(tmp_path: Path) -> None:
    with slack_bot(tmp_path) as bot:
        started = time.monotonic()
        ack = bot.post(slash_command("slow deploy", channel="C0SLOW"))
        assert ack.status_code == 200
        assert time.monotonic() - started < 3
        bot.backend.arrived("deploy")  # the handler is now blocked on its backend
        (posted,) = bot.fake.wait_for("chat.postMessage")
        assert "deploy: phase 1 of 2" in posted.text
        bot.backend.release("deploy")
        (updated,) = bot.fake.wait_for("chat.update", lambda c: "done" in c.text)
        assert updated.params["ts"] == posted.answer["ts"]
        assert updated.params["channel"] == "C0SLOW"
        assert len(bot.fake.calls_to("chat.postMessage")) == 1
        assert_clean(bot)


def test_a_failing_handler_shows_a_reference_and_logs_the_traceback(tmp_path: Path) -> None:
    with slack_bot(tmp_path) as bot:
        bot.post(slash_command("boom", channel="C0BOOM"))
        (posted,) = bot.fake.wait_for("chat.postMessage")
        ref = re.search(r"ref ([A-Z0-9]{8})", posted.text)
        assert ref, posted.text
        assert "Something went wrong" in posted.text
        bot.served.wait_for_output(f"unexpected error ref={ref.group(1)}")
        assert "Traceback" in bot.served.output
        assert_clean(bot)


def test_a_button_click_runs_its_value_as_the_clicker(tmp_path: Path) -> None:
    with slack_bot(tmp_path) as bot:
        ack = bot.post(block_action("echo clicked by bob", user="U0BOB", channel="C0CLICK"))
        assert ack.status_code == 200
        (posted,) = bot.fake.wait_for("chat.postMessage")
        assert "echo: clicked by bob" in posted.text
        assert posted.params["channel"] == "C0CLICK"
        assert_clean(bot)


def test_a_retried_delivery_runs_nothing_again(tmp_path: Path) -> None:
    with slack_bot(tmp_path) as bot:
        first = slash_command("echo once", channel="C0RETRY")
        assert bot.post(first).status_code == 200
        bot.fake.wait_for("chat.postMessage")
        assert bot.post(first, retry_num=1).status_code == 200
        bot.served.wait_for_output("dropped a repeated delivery")
        bot.post(slash_command("echo barrier", channel="C0OTHER"))
        bot.fake.wait_for("chat.postMessage", lambda c: "barrier" in c.text)
        assert len(bot.fake.calls_to("chat.postMessage")) == 2
        assert_clean(bot)


def test_a_double_click_runs_once(tmp_path: Path) -> None:
    with slack_bot(tmp_path) as bot:
        for _ in range(2):
            bot.post(block_action("echo double", channel="C0DOUBLE", message_ts="1.000001"))
        bot.served.wait_for_output("dropped a repeated delivery")
        bot.post(slash_command("echo barrier", channel="C0OTHER"))
        bot.fake.wait_for("chat.postMessage", lambda c: "barrier" in c.text)
        doubles = bot.fake.calls_to("chat.postMessage")
        assert ["double" in c.text for c in doubles].count(True) == 1


def test_forged_and_stale_signatures_are_refused_and_run_nothing(tmp_path: Path) -> None:
    with slack_bot(tmp_path) as bot:
        forged = bot.post(slash_command("echo forged"), secret="not-the-secret")
        stale = bot.post(slash_command("echo stale"), timestamp=int(time.time()) - 6 * 60)
        unsigned = httpx.post(f"{bot.url}/slack/events", data=slash_command("echo unsigned"))
        assert [forged.status_code, stale.status_code, unsigned.status_code] == [401, 401, 401]
        bot.post(slash_command("echo barrier"))
        bot.fake.wait_for("chat.postMessage", lambda c: "barrier" in c.text)
        assert len(bot.fake.calls_to("chat.postMessage")) == 1
        metrics = httpx.get(f"{bot.url}/metrics").text
        assert 'opsbot_http_requests_total{route="/slack/events",status="401"} 3.0' in metrics


def test_malformed_bodies_get_400(tmp_path: Path) -> None:
    from tests.fakes.slack_requests import sign

    with slack_bot(tmp_path) as bot:
        for raw, content_type in [
            (b"payload=not-json", "application/x-www-form-urlencoded"),
            (b"text=help", "application/x-www-form-urlencoded"),
            (b'{"type":', "application/json"),
        ]:
            headers = sign(raw, content_type=content_type)
            answer = httpx.post(f"{bot.url}/slack/events", content=raw, headers=headers)
            assert answer.status_code == 400, raw
        assert httpx.get(f"{bot.url}/healthz").status_code == 200  # still serving


def test_message_events_are_acknowledged(tmp_path: Path) -> None:
    with slack_bot(tmp_path) as bot:
        assert bot.post(message_event("hello channel")).status_code == 200


def test_health_readiness_and_metrics(tmp_path: Path) -> None:
    with slack_bot(tmp_path) as bot:
        assert httpx.get(f"{bot.url}/healthz").json() == {"status": "ok", "mode": "http"}
        assert httpx.get(f"{bot.url}/readyz").json() == {"ready": True, "reason": "ready"}
        bot.post(slash_command("echo counted", channel="C0METRICS"))
        bot.fake.wait_for("chat.postMessage")
        metrics = httpx.get(f"{bot.url}/metrics").text
        assert 'opsbot_commands_total{outcome="ok",verb="echo"} 1.0' in metrics
        assert 'opsbot_ack_latency_seconds_count{kind="command"} 1.0' in metrics


def test_slack_rate_limits_and_errors_delay_but_never_lose_a_message(tmp_path: Path) -> None:
    with slack_bot(tmp_path) as bot:
        bot.fake.fail("chat.postMessage", 429, retry_after=1, times=2)
        bot.post(slash_command("echo patient", channel="C0LIMIT"))
        (posted,) = bot.fake.wait_for("chat.postMessage")
        assert "patient" in posted.text
        statuses = [c.status for c in bot.fake.calls if c.method == "chat.postMessage"]
        assert statuses == [429, 429, 200]
        bot.fake.fail("chat.postMessage", 500, times=1)
        bot.post(slash_command("echo after-500", channel="C0LIMIT2"))
        bot.fake.wait_for("chat.postMessage", lambda c: "after-500" in c.text)
        metrics = httpx.get(f"{bot.url}/metrics").text
        assert 'opsbot_slack_api_errors_total{error="fatal_error",method="chat.postMessage"}' in (
            metrics
        )


def test_long_output_is_uploaded_as_a_file_in_the_thread(tmp_path: Path) -> None:
    with slack_bot(tmp_path) as bot:
        bot.post(slash_command("long 1500", channel="C0LONG"))
        (posted,) = bot.fake.wait_for("chat.postMessage")
        (completed,) = bot.fake.wait_for("files.completeUploadExternal")
        assert completed.params["thread_ts"] == posted.answer["ts"]
        (upload,) = bot.fake.wait_for("upload")
        assert "line 01499" in upload.text
        assert len(posted.blocks) <= 50
        assert_clean(bot)


def test_sigterm_finishes_in_flight_work_then_exits_0(tmp_path: Path) -> None:
    with slack_bot(tmp_path) as bot:
        bot.post(slash_command("slow drain", channel="C0DRAIN"))
        bot.backend.arrived("drain")
        bot.served.process.send_signal(15)
        bot.served.wait_for_output("stopping: no new requests")
        bot.backend.release("drain")
        assert bot.served.process.wait(30) == 0
        updates = bot.fake.calls_to("chat.update")
        assert any("drain: done" in c.text for c in updates)


def test_a_token_slack_refuses_stops_opsbot_with_a_clear_message(tmp_path: Path) -> None:
    with slack_bot(
        tmp_path, env={"SLACK_BOT_TOKEN": "xoxb-revoked-token"}, wait_connected=False
    ) as bot:
        assert bot.served.process.wait(30) == 1
        assert "Slack refused the bot token (invalid_auth)" in bot.served.output
        assert "xoxb-revoked-token" not in bot.served.output


def test_an_unreachable_slack_leaves_opsbot_up_but_not_ready(tmp_path: Path) -> None:
    with slack_bot(
        tmp_path, env={"SLACK_API_URL": "http://127.0.0.1:9/api/"}, wait_connected=False
    ) as bot:
        bot.served.wait_for_output("cannot reach Slack")
        ready = httpx.get(f"{bot.url}/readyz")
        assert ready.status_code == 503
        assert "cannot reach Slack" in ready.json()["reason"]
        assert httpx.get(f"{bot.url}/healthz").status_code == 200
        early = bot.post(slash_command("help"))
        assert early.status_code == 503
        assert bot.served.stop() == 0

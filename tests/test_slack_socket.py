"""Socket Mode end to end: a real ``opsbot serve --mode socket`` connected to the fake
Socket Mode server, acking envelopes, answering through the fake Web API."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from tests.e2e_handlers import PLANTED_SECRET
from tests.fakes.slack_requests import block_action, slash_command
from tests.slack_e2e import Bot, slack_bot


def assert_clean(bot: Bot) -> None:
    assert bot.fake.spec_problems() == []
    assert all(PLANTED_SECRET not in call.text for call in bot.fake.calls)


def send(bot: Bot, kind: str, payload: dict) -> dict:  # type: ignore[type-arg]
    assert bot.socket is not None
    envelope_id = bot.socket.send(kind, payload)
    ack = bot.socket.ack(envelope_id)
    assert ack["envelope_id"] == envelope_id
    return ack


def test_help_over_socket_mode(tmp_path: Path) -> None:
    with slack_bot(tmp_path, mode="socket") as bot:
        started = time.monotonic()
        send(bot, "slash_commands", slash_command("help", response_url=bot.fake.response_url()))
        assert time.monotonic() - started < 3
        (answer,) = bot.fake.wait_for("response_url")
        assert "opsbot commands" in answer.text
        assert_clean(bot)


def test_an_unknown_verb_over_socket_mode(tmp_path: Path) -> None:
    with slack_bot(tmp_path, mode="socket") as bot:
        send(bot, "slash_commands", slash_command("ecco hi", response_url=bot.fake.response_url()))
        (answer,) = bot.fake.wait_for("response_url")
        assert "did you mean 'echo'" in answer.text


def test_a_slow_command_over_socket_mode_is_acked_then_updated(tmp_path: Path) -> None:
    with slack_bot(tmp_path, mode="socket") as bot:
        send(bot, "slash_commands", slash_command("slow sock", channel="C0SOCK"))
        bot.backend.arrived("sock")
        (posted,) = bot.fake.wait_for("chat.postMessage")
        assert "sock: phase 1 of 2" in posted.text
        bot.backend.release("sock")
        (updated,) = bot.fake.wait_for("chat.update", lambda c: "sock: done" in c.text)
        assert updated.params["ts"] == posted.answer["ts"]


def test_a_failing_handler_over_socket_mode(tmp_path: Path) -> None:
    with slack_bot(tmp_path, mode="socket") as bot:
        send(bot, "slash_commands", slash_command("boom", channel="C0BOOM"))
        (posted,) = bot.fake.wait_for("chat.postMessage")
        assert re.search(r"Something went wrong \(ref [A-Z0-9]{8}\)", posted.text)
        assert_clean(bot)


def test_a_button_click_over_socket_mode(tmp_path: Path) -> None:
    with slack_bot(tmp_path, mode="socket") as bot:
        send(bot, "interactive", block_action("echo from a socket click", channel="C0CLICK"))
        (posted,) = bot.fake.wait_for("chat.postMessage")
        assert "echo: from a socket click" in posted.text


def test_a_redelivered_envelope_runs_once(tmp_path: Path) -> None:
    with slack_bot(tmp_path, mode="socket") as bot:
        command = slash_command("echo only-once", channel="C0ONCE")
        send(bot, "slash_commands", command)
        bot.fake.wait_for("chat.postMessage")
        send(bot, "slash_commands", command)  # Slack redelivers an unacked envelope
        bot.served.wait_for_output("dropped a repeated delivery")
        send(bot, "slash_commands", slash_command("echo barrier", channel="C0BARRIER"))
        bot.fake.wait_for("chat.postMessage", lambda c: "barrier" in c.text)
        assert len(bot.fake.calls_to("chat.postMessage")) == 2


def test_a_dropped_socket_reconnects_and_keeps_working(tmp_path: Path) -> None:
    with slack_bot(tmp_path, mode="socket") as bot:
        assert bot.socket is not None
        health = httpx.get(f"{bot.url}/healthz").json()
        assert health["socket_connected"] is True
        bot.socket.drop()
        bot.socket.wait_connected(count=2)
        assert len(bot.fake.calls_to("apps.connections.open")) >= 2
        send(bot, "slash_commands", slash_command("echo reconnected", channel="C0RE"))
        (posted,) = bot.fake.wait_for("chat.postMessage")
        assert "reconnected" in posted.text


def test_socket_mode_serves_health_readiness_and_metrics(tmp_path: Path) -> None:
    with slack_bot(tmp_path, mode="socket") as bot:
        send(bot, "slash_commands", slash_command("echo metered", channel="C0METER"))
        bot.fake.wait_for("chat.postMessage")
        assert httpx.get(f"{bot.url}/readyz").json()["ready"] is True
        assert httpx.get(f"{bot.url}/slack/events").status_code == 404  # no inbound Slack route
        metrics = httpx.get(f"{bot.url}/metrics").text
        assert 'opsbot_ack_latency_seconds_count{kind="socket-slash_commands"}' in metrics
        assert bot.served.stop() == 0


def test_socket_mode_serves_the_github_webhook_on_its_own_port(tmp_path: Path) -> None:
    import hashlib
    import hmac
    import socket

    from tests.slack_e2e import CONFIG

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        hook_port = probe.getsockname()[1]
    config = CONFIG + (
        '\n[apps.web]\n[argocd]\nurl = "http://127.0.0.1:9"\n'
        '[ephemeral]\napp = "web"\nrepo_url = "https://git.example/deploy.git"\n'
        f"[github]\nport = {hook_port}\n"
    )
    secret = "socket-mode-webhook-secret"
    with slack_bot(
        tmp_path, mode="socket", config=config, env={"GITHUB_WEBHOOK_SECRET": secret}
    ) as bot:
        hooks = bot.served.wait_for_output(r"webhooks listening at (http://\S+)").group(1)
        body = b'{"zen": "Keep it logically awesome."}'
        good = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        ping = {"X-GitHub-Event": "ping", "X-Hub-Signature-256": good}
        assert httpx.post(f"{hooks}/hooks/github", content=body, headers=ping).json()["pong"]
        forged = {**ping, "X-Hub-Signature-256": "sha256=" + "0" * 64}
        assert httpx.post(f"{hooks}/hooks/github", content=body, headers=forged).status_code == 401
        assert httpx.post(f"{bot.url}/hooks/github", content=body, headers=ping).status_code == 404

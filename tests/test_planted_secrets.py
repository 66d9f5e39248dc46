"""The planted value test: known secrets go into inputs, handler output, errors and
messages across the end-to-end flows; none may appear in any Slack call, log line or
audit row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from tests.e2e_handlers import PLANTED_SECRET
from tests.fakes.slack_requests import block_action, message_event, slash_command
from tests.slack_e2e import CONFIG, slack_bot

PLANTED = {
    "slack": "xoxb-1111111111-2222222222-PLANTEDslackTOKEN",
    "github": "ghp_PLANTEDgithubTOKEN000000000000000000000",
    "aws": "AKIAPLANTED000000000",
    "vault": "hvs.PLANTEDvaultTOKEN00000000",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQTEFOVEVEIn0.PLANTEDsignature00000",
    "password": "PLANTEDpassw0rd",
}
PLANTED_VALUES = [*PLANTED.values(), PLANTED_SECRET]


def leaks(text: str) -> list[str]:
    return [value for value in PLANTED_VALUES if value in text]


def test_no_planted_secret_reaches_slack_logs_or_the_audit_trail(tmp_path: Path) -> None:
    env = {"E2E_PLANTED": " ".join(PLANTED.values())}
    with slack_bot(tmp_path, config=CONFIG, env=env) as bot:
        reply_to = bot.fake.response_url("planted")
        flows = [
            slash_command("help", response_url=reply_to),
            slash_command(f"echo {PLANTED['slack']}", response_url=reply_to, channel="C0A"),
            slash_command(f"echo password={PLANTED['password']}", response_url=reply_to),
            slash_command(f"depoly {PLANTED['github']}", response_url=reply_to),
            slash_command("boom", channel="C0BOOM"),
            slash_command("leak", channel="C0LEAK"),
            block_action("leak", channel="C0CLICK"),
            block_action(f"echo {PLANTED['aws']}", channel="C0CLICK2", response_url=reply_to),
            message_event(f"here is the vault token {PLANTED['vault']}"),
            message_event(f"jwt for you: {PLANTED['jwt']}", channel="C0MSG"),
        ]
        for body in flows:
            assert bot.post(body).status_code == 200
        bot.fake.wait_for("chat.update", lambda c: "backend config" in c.text, count=2)
        bot.fake.wait_for("chat.postMessage", lambda c: "Something went wrong" in c.text)
        bot.fake.wait_for("chat.postEphemeral", lambda c: "Vault token" in c.text)
        bot.fake.wait_for("chat.postEphemeral", lambda c: "JSON web token" in c.text)
        bot.fake.wait_for("response_url", count=5)
        bot.served.wait_for_output("unexpected error ref=")
        metrics = httpx.get(f"{bot.url}/metrics").text
        assert bot.served.stop() == 0

    slack_traffic = "\n".join(call.text for call in bot.fake.calls)
    assert "REDACTED" in slack_traffic  # the flows did carry secrets, and they were caught
    assert leaks(slack_traffic) == []
    assert leaks(bot.served.output) == []
    assert leaks(metrics) == []
    conn = sqlite3.connect(f"file:{tmp_path / 'opsbot.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT * FROM audit").fetchall()
    finally:
        conn.close()
    assert len(rows) >= len(flows) - 1
    assert leaks(repr(rows)) == []

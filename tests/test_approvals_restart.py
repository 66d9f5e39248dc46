"""Approvals across a real crash: ``opsbot serve --mode http`` killed with SIGKILL and
started again on the same store, driven by signed requests, checked at the fake Slack."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes.backend import GateBackend
from tests.fakes.slack_requests import SIGNING_SECRET, block_action, signed_request, slash_command
from tests.fakes.slack_web import BOT_TOKEN, Call, FakeSlack
from tests.serve_helpers import Served, serving

CONFIG = """
[slack]
approvals_channel = "C0APPROVALS"
[server]
handler_modules = ["tests.e2e_handlers"]
[environments.prod]
cluster = "c"
approvals = 1
[clusters.c]
in_cluster = true
[rbac.roles.shipper]
allow = ["ship:*"]
[rbac.roles.approver]
allow = ["approve:prod"]
[rbac.users]
U0ALICE = ["shipper"]
U0BOB = ["approver"]
"""


@dataclass
class Stage:
    folder: Path
    fake: FakeSlack
    backend: GateBackend

    @property
    def log(self) -> Path:
        return self.folder / "shipped.log"

    def shipped(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    @contextmanager
    def bot(self) -> Iterator[Served]:
        env = {
            "SLACK_API_URL": self.fake.api_url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "E2E_BACKEND_URL": self.backend.url,
            "E2E_LOG": str(self.log),
            "OPSBOT_LOG_LEVEL": "INFO",
        }
        with serving("--mode", "http", "--port", "0", cwd=self.folder, env=env) as served:
            served.wait_for_output("connected to Slack as")
            yield served

    def post(self, served: Served, body: dict) -> httpx.Response:  # type: ignore[type-arg]
        raw, headers = signed_request(body)
        return httpx.post(f"{served.url}/slack/events", content=raw, headers=headers)

    def card(self) -> Call:
        """The approval card, once the request is fully recorded (the requester's notice
        is posted after the card's ID is stored)."""
        (card,) = self.fake.wait_for(
            "chat.postMessage", lambda c: c.params.get("channel") == "C0APPROVALS"
        )
        self.fake.wait_for("chat.postMessage", lambda c: "needs 1 approval" in c.text)
        return card


def approve_button(card: Call) -> str:
    for block in card.blocks:
        for element in block.get("elements", []):
            if element.get("type") == "button" and element["text"]["text"] == "Approve":
                return str(element["value"])
    raise AssertionError("the card has no Approve button")


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    (tmp_path / "opsbot.toml").write_text(CONFIG)
    fake, backend = FakeSlack().start(), GateBackend().start()
    try:
        yield Stage(tmp_path, fake, backend)
    finally:
        backend.stop()
        fake.stop()


def kill(served: Served) -> None:
    served.process.send_signal(signal.SIGKILL)
    assert served.process.wait(30) == -signal.SIGKILL


def test_a_pending_approval_survives_sigkill_and_runs_once(stage: Stage) -> None:
    with stage.bot() as first:
        stage.post(first, slash_command("ship web prod", user="U0ALICE", channel="C0OPS"))
        card = stage.card()
        approve = approve_button(card)
        kill(first)

    with stage.bot() as second:
        stage.post(
            second,
            block_action(
                approve, user="U0BOB", channel="C0APPROVALS", message_ts=card.answer["ts"]
            ),
        )
        done = stage.fake.wait_for("chat.update", lambda c: "Approved and done" in c.text)
        assert done[0].params["ts"] == card.answer["ts"]
        assert stage.fake.spec_problems() == []
    assert [line.split()[:4] for line in stage.shipped()] == [["web", "prod", "rev-1", "U0ALICE"]]


def test_a_crash_between_approval_and_completion_is_marked_failed_never_rerun(
    stage: Stage,
) -> None:
    with stage.bot() as first:
        stage.post(first, slash_command("ship web prod gate=g1", user="U0ALICE"))
        card = stage.card()
        stage.post(
            first,
            block_action(
                approve_button(card),
                user="U0BOB",
                channel="C0APPROVALS",
                message_ts=card.answer["ts"],
            ),
        )
        stage.backend.arrived("g1")  # approved and running, blocked mid-way
        kill(first)

    with stage.bot() as second:
        second.wait_for_output("marked failed")
        failed = stage.fake.wait_for(
            "chat.update", lambda c: "opsbot stopped while this was running" in c.text
        )
        assert failed[-1].params["ts"] == card.answer["ts"]
        stage.post(
            second,
            block_action(
                approve_button(card), user="U0BOB", channel="C0APPROVALS", message_ts="1.2"
            ),
        )
        second.wait_for_output("command=approve status=failed")  # "already failed"
        assert second.stop() == 0
    stage.backend.release("g1")
    assert stage.shipped() == []  # it never completed, and it was never started again


def test_a_forged_approval_click_is_refused_and_changes_nothing(stage: Stage) -> None:
    with stage.bot() as served:
        stage.post(served, slash_command("ship web prod", user="U0ALICE"))
        card = stage.card()
        forged_body, headers = signed_request(
            block_action(approve_button(card), user="U0BOB", channel="C0APPROVALS"),
            secret="an attacker's guess",
        )
        forged = httpx.post(f"{served.url}/slack/events", content=forged_body, headers=headers)
        assert forged.status_code == 401
        # Alice clicking her own card is refused too; wait for that answer as a barrier.
        stage.post(
            served,
            block_action(
                approve_button(card),
                user="U0ALICE",
                channel="C0APPROVALS",
                message_ts=card.answer["ts"],
            ),
        )
        (refusal,) = stage.fake.wait_for("chat.postEphemeral")
        assert "cannot approve it" in refusal.text
        assert stage.fake.calls_to("chat.update") == []
        assert served.stop() == 0
    assert stage.shipped() == []

"""Ephemeral environments end to end: create, warn, extend, expire (with a moved clock and
across a restart), failed deletions retried, quotas, sharing, reports, and the GitHub
pull request webhook with good and bad signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bot.clock import ManualClock
from bot.sandbox.argocd import ArgoCDEmulator
from tests.argocd_contract import crd_validator
from tests.fakes.slack_requests import block_action, slash_command
from tests.gitops_harness import WEBHOOK_SECRET, GitOps, button, gitops

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def create(world: GitOps, name: str, *, user: str = "U0ALICE", extra: str = "") -> str:
    """``env create`` through Slack; returns the card's ts once it says it was created."""
    world.post(slash_command(f"env create {name} {extra}".strip(), user=user, channel="C0ENV"))
    card = world.card("C0ENV", f"environment {name}")
    world.updated(str(card.answer["ts"]), "created")
    return str(card.answer["ts"])


def test_env_create_makes_an_argo_application_from_the_template(tmp_path: Path) -> None:
    clock = ManualClock(START)
    with gitops(tmp_path, clock=clock, argo=ArgoCDEmulator.demo(clock=clock)) as world:
        ts = create(world, "pr-1", extra="rev=pr-42 ttl=8h")
        final = world.updated(ts, "created")
        assert "Extend 12h" in final.text
        app = world.argo.application("env-pr-1")
        assert app["spec"]["source"]["targetRevision"] == "pr-42"
        assert app["spec"]["syncPolicy"]["syncOptions"] == ["CreateNamespace=true"]
        assert app["spec"]["syncPolicy"]["automated"]["prune"] is True
        assert app["spec"]["destination"]["namespace"] == "env-pr-1"
        created = next(
            r
            for r in world.argo.requests
            if r.method == "POST" and r.path == "/api/v1/applications"
        )
        validator = crd_validator()
        assert list(validator.iter_errors(created.body)) == []


def test_warning_then_extend_then_expiry_with_a_moved_clock(tmp_path: Path) -> None:
    clock = ManualClock(START)
    with gitops(tmp_path, clock=clock, argo=ArgoCDEmulator.demo(clock=clock)) as world:
        create(world, "pr-2", extra="ttl=2h")
        clock.advance(timedelta(hours=1, minutes=31))  # inside warn_before (30m)
        warning = world.card("C0ENV", "expires in")
        extend = button(warning, "Extend 12h")
        assert extend["value"] == "env extend pr-2 ttl=12h"
        world.post(
            block_action(
                extend["value"], user="U0ALICE", channel="C0ENV", message_ts=warning.answer["ts"]
            )
        )
        world.card("C0ENV", "extended by <@U0ALICE>")
        clock.advance(timedelta(hours=1))  # past the first expiry
        world.post(
            slash_command(
                "env list",
                user="U0BOB",
                channel="C0ENV",
                response_url=world.fake.response_url("list"),
            )
        )
        listing = world.fake.wait_for("response_url", lambda c: "pr-2" in c.text)[0]
        assert "expires in" in listing.text
        assert "env-pr-2" in world.argo.applications()
        clock.advance(timedelta(hours=12))
        gone = world.card("C0ENV", "pr-2 expired")
        assert "<@U0ALICE>" in gone.text
        assert "env-pr-2" not in world.argo.applications() or (
            world.argo.application("env-pr-2")["metadata"].get("deletionTimestamp")
        )


def test_an_expiry_missed_while_opsbot_was_down_runs_at_start(tmp_path: Path) -> None:
    clock = ManualClock(START)
    argo = ArgoCDEmulator.demo(clock=clock)
    with gitops(tmp_path, clock=clock, argo=argo) as world:
        create(world, "pr-3", extra="ttl=1h")
    clock.advance(timedelta(hours=3))  # opsbot is down while pr-3 expires
    with gitops(tmp_path, clock=clock, argo=argo) as world:
        gone = world.card("C0ENV", "pr-3 expired")
        assert "pr-3" in gone.text
        deletes = [r for r in argo.requests if r.method == "DELETE" and "env-pr-3" in r.path]
        assert len(deletes) == 1
        assert deletes[0].query["cascade"] == "true"


def test_a_failed_deletion_is_retried_with_backoff_and_reported(tmp_path: Path) -> None:
    clock = ManualClock(START)
    with gitops(tmp_path, clock=clock, argo=ArgoCDEmulator.demo(clock=clock)) as world:
        create(world, "pr-4", extra="ttl=1h")
        world.argo.respond_with(503, times=1)
        clock.advance(timedelta(hours=1, seconds=1))
        alert = world.card("C0ENV", "could not delete pr-4")
        assert "retries in 1m" in alert.text
        clock.advance(timedelta(minutes=1, seconds=1))
        world.card("C0ALERTS", "pr-4 expired")


def test_quotas_names_ttl_caps_and_ownership(tmp_path: Path) -> None:
    clock = ManualClock(START)
    with gitops(tmp_path, clock=clock, argo=ArgoCDEmulator.demo(clock=clock)) as world:
        capped = create(world, "pr-5", extra="ttl=30d")
        assert "capped at 2d" in world.updated(capped, "capped").text
        create(world, "pr-6")
        reply_to = world.fake.response_url("quota")
        world.post(
            slash_command("env create pr-7", user="U0ALICE", channel="C0Q", response_url=reply_to)
        )
        over = world.fake.wait_for("response_url", lambda c: "the limit is 2" in c.text)
        assert "pr-5" in over[0].text
        world.post(
            slash_command(
                "env create Bad_Name", channel="C0BAD", response_url=world.fake.response_url("bad")
            )
        )
        world.fake.wait_for("response_url", lambda c: "not a valid environment name" in c.text)
        world.post(
            slash_command(
                "env destroy pr-5",
                user="U0BOB",
                channel="C0OWN",
                response_url=world.fake.response_url("own"),
            )
        )
        world.fake.wait_for("response_url", lambda c: "only <@U0ALICE> may destroy" in c.text)
        world.post(slash_command("env share pr-5 <@U0BOB|bob>", user="U0ALICE", channel="C0SH"))
        world.card("C0SH", "<@U0BOB> now co-owns it")
        world.post(slash_command("env destroy pr-5", user="U0BOB", channel="C0DEL"))
        world.card("C0DEL", "pr-5 destroyed")
        world.post(slash_command("env report", user="U0BOB", channel="C0REP"))
        report = world.card("C0REP", "the last 7 days")
        assert "*Created*\\n2" in report.text


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def pull_request(action: str, number: int) -> bytes:
    return json.dumps(
        {
            "action": action,
            "number": number,
            "pull_request": {
                "number": number,
                "user": {"login": "octocat"},
                "head": {"ref": "pr-42"},
                "labels": [],
                "html_url": f"https://github.example/org/repo/pull/{number}",
            },
        }
    ).encode()


def test_the_github_webhook_opens_and_closes_an_environment(tmp_path: Path) -> None:
    clock = ManualClock(START)
    with gitops(tmp_path, clock=clock, argo=ArgoCDEmulator.demo(clock=clock)) as world:
        url = f"{world.url}/hooks/github"
        opened = pull_request("opened", 42)
        headers = {
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": "d-1",
            "Content-Type": "application/json",
        }
        forged = httpx.post(
            url, content=opened, headers={**headers, "X-Hub-Signature-256": sign(opened, "wrong")}
        )
        assert forged.status_code == 401
        unsigned = httpx.post(url, content=opened, headers=headers)
        assert unsigned.status_code == 401
        good = httpx.post(
            url, content=opened, headers={**headers, "X-Hub-Signature-256": sign(opened)}
        )
        assert good.status_code == 202
        card = world.card("C0ALERTS", "environment pr-42")
        world.updated(str(card.answer["ts"]), "created")
        app = world.argo.application("env-pr-42")
        assert app["metadata"]["annotations"]["opsbot.io/owner"] == "U0ALICE"
        again = httpx.post(
            url, content=opened, headers={**headers, "X-Hub-Signature-256": sign(opened)}
        )
        assert again.status_code == 202  # a redelivery: accepted, runs nothing
        closed = pull_request("closed", 42)
        httpx.post(
            url,
            content=closed,
            headers={**headers, "X-GitHub-Delivery": "d-2", "X-Hub-Signature-256": sign(closed)},
        )
        world.card("C0ALERTS", "pr-42 destroyed")
        creates = [
            r
            for r in world.argo.requests
            if r.method == "POST" and r.path == "/api/v1/applications"
        ]
        assert len(creates) == 1
        assert not [r for r in world.argo.requests if "env-pr-99" in r.path]


def test_an_environment_written_by_another_process_still_expires(tmp_path: Path) -> None:
    clock = ManualClock(START)
    with gitops(tmp_path, clock=clock, argo=ArgoCDEmulator.demo(clock=clock)) as world:
        db = world.runtime.store.db
        with db.atomic():  # as `opsbot run "env create …"` would, beside the server
            db.execute(
                "INSERT INTO environments (name, app, revision, argocd_app, owner, channel,"
                " source, created_at, expires_at, warned, state) VALUES ('pr-9', 'payments',"
                " 'main', 'env-pr-9', 'U0ALICE', 'C0ENV', 'chat', ?, ?, 1, 'active')",
                [
                    (START - timedelta(hours=2)).isoformat(),
                    (START + timedelta(seconds=30)).isoformat(),
                ],
            )
        clock.advance(timedelta(minutes=1, seconds=1))  # the minute sweep comes round
        gone = world.card("C0ENV", "pr-9 expired")
        assert "<@U0ALICE>" in gone.text

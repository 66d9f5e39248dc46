"""GitOps end to end through signed Slack requests: deploy, approval, failure, cancel,
rollback, promote, status and apps, against the Argo CD emulator."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.fakes.slack_requests import block_action, slash_command
from tests.gitops_harness import button, buttons, gitops


def test_deploy_without_approval_updates_one_card_to_success(tmp_path: Path) -> None:
    with gitops(tmp_path) as world:
        world.argo.push(
            "https://git.example.internal/platform/deploy.git",
            author="Carol <carol@example.com>",
            message="checkout: new feature",
            paths=["apps/checkout"],
        )
        assert (
            world.post(slash_command("deploy checkout staging", channel="C0OPS")).status_code == 200
        )
        card = world.card("C0OPS", "Deploy checkout")
        done = world.updated(card.answer["ts"], "finished in")
        assert "Succeeded" in done.text
        assert button(done, "Rollback")["value"] == "rollback checkout staging"
        assert "Cancel" not in [b["text"]["text"] for b in buttons(done)]
        syncs = [r for r in world.argo.requests if r.path.endswith("/sync")]
        assert len(syncs) == 1
        assert world.fake.spec_problems() == []


def test_deploy_in_prod_runs_only_after_a_second_person_approves(tmp_path: Path) -> None:
    with gitops(tmp_path) as world:
        world.post(slash_command("deploy payments prod", user="U0ALICE", channel="C0OPS"))
        approval = world.card("C0APPROVALS", "Approval needed")
        assert "Now:" in approval.text
        assert "Target:" in approval.text
        assert "payments: bump the image to 1.4.2" in approval.text  # the target commit
        assert not [r for r in world.argo.requests if r.path.endswith("/sync")]
        approve = button(approval, "Approve")
        world.post(
            block_action(
                approve["value"],
                user="U0BOB",
                channel="C0APPROVALS",
                message_ts=approval.answer["ts"],
            )
        )
        progress = world.card("C0OPS", "Deploy payments")
        world.updated(progress.answer["ts"], "finished in")
        world.updated(approval.answer["ts"], "Approved and done")
        assert world.argo.application("payments-prod")["status"]["sync"]["status"] == "Synced"


def test_a_failing_sync_shows_the_failed_resource_and_argos_message(tmp_path: Path) -> None:
    with gitops(tmp_path) as world:
        world.argo.fail_next_sync("checkout-staging", message="admission webhook denied it")
        world.post(slash_command("deploy checkout staging --prune", channel="C0FAIL"))
        card = world.card("C0FAIL", "Deploy checkout")
        failed = world.updated(card.answer["ts"], "failed after")
        assert "admission webhook denied it" in failed.text
        assert "SyncFailed" in failed.text
        assert button(failed, "Rollback")["value"] == "rollback checkout staging"


def test_cancel_terminates_a_running_sync(tmp_path: Path) -> None:
    with gitops(tmp_path) as world:
        world.argo.slow("checkout-staging", ticks_per_resource=400)
        world.post(slash_command("deploy checkout staging rev=main", channel="C0CANCEL"))
        card = world.card("C0CANCEL", "Deploy checkout")
        cancel = button(world.updated(card.answer["ts"], "Running"), "Cancel")
        world.post(block_action(cancel["value"], user="U0BOB", channel="C0CANCEL"))
        ended = world.updated(card.answer["ts"], "Operation terminated")
        assert "Failed" in ended.text


def test_rollback_is_refused_plainly_while_auto_sync_is_on(tmp_path: Path) -> None:
    with gitops(tmp_path) as world:
        reply_to = world.fake.response_url("rb")
        world.post(
            slash_command("rollback payments staging", channel="C0RB", response_url=reply_to)
        )
        refused = world.fake.wait_for("chat.postMessage", lambda c: "auto-sync" in c.text)[0]
        assert "Turn auto-sync off" in refused.text
        world.argo.set_auto_sync("payments-staging", False)
        world.post(slash_command("rollback payments staging", channel="C0RB2"))
        card = world.card("C0RB2", "Rollback payments")
        world.updated(card.answer["ts"], "finished in")


def test_promote_deploys_the_exact_revision_the_source_runs(tmp_path: Path) -> None:
    with gitops(tmp_path) as world:
        staging = world.argo.application("payments-staging")["status"]["history"][-1]["revision"]
        world.post(
            slash_command(
                "promote payments from=staging to=prod", user="U0ALICE", channel="C0PROMO"
            )
        )
        approval = world.card("C0APPROVALS", "Promote *payments*")
        world.post(
            block_action(
                button(approval, "Approve")["value"],
                user="U0BOB",
                channel="C0APPROVALS",
                message_ts=approval.answer["ts"],
            )
        )
        world.updated(approval.answer["ts"], "Approved and done")
        prod = world.argo.application("payments-prod")["status"]["history"][-1]["revision"]
        assert prod == staging


def test_status_history_and_apps(tmp_path: Path) -> None:
    with gitops(tmp_path) as world:
        reply_to = world.fake.response_url("read")
        for text in ("status payments", "history payments prod", "apps"):
            world.post(slash_command(text, channel=f"C0{text[:4].upper()}", response_url=reply_to))
        status = world.card("C0STAT", "status: payments")
        assert "*staging*: Synced, Healthy" in status.text
        assert "*prod*: OutOfSync" in status.text
        history = world.card("C0HIST", "history: payments in prod")
        assert "payments: run 3 replicas" in history.text
        apps = world.card("C0APPS", "apps")
        assert "behind staging by" in apps.text


def test_unknown_apps_and_environments_list_the_known_ones(tmp_path: Path) -> None:
    with gitops(tmp_path) as world:
        world.post(slash_command("deploy payment staging", channel="C0UNK"))
        unknown = world.card("C0UNK", "unknown app")
        assert "known apps: checkout, payments" in unknown.text
        world.post(
            slash_command(
                "status payments qa", channel="C0QA", response_url=world.fake.response_url("qa")
            )
        )
        answer = world.fake.wait_for("response_url", lambda c: "unknown environment" in c.text)
        assert "staging, prod" in answer[0].text


def test_argo_cd_answering_401_garbage_or_nothing_gets_a_plain_message(tmp_path: Path) -> None:
    with gitops(tmp_path) as world:
        world.argo.respond_with(401, times=1)
        world.post(slash_command("status checkout staging", channel="C0E1"))
        refused = world.card("C0E1", "Argo CD")
        assert "refused opsbot's token (HTTP 401" in refused.text
        assert world.argo.token not in refused.text
        assert "ref " in refused.text
        world.argo.respond_with(200, b"<html>sign in</html>", times=1, content_type="text/html")
        world.post(slash_command("status checkout staging", channel="C0E2"))
        garbage = world.card("C0E2", "Argo CD")
        assert "answered something that is not its API" in garbage.text
        world.argo.respond_with(503, times=3)
        world.post(slash_command("status checkout staging", channel="C0E3"))
        down = world.card("C0E3", "Argo CD")
        assert "HTTP 503" in down.text
        world.post(
            slash_command("whoami", channel="C0E4", response_url=world.fake.response_url("alive"))
        )
        world.fake.wait_for("response_url", lambda c: "whoami" in c.text)  # still serving


def test_argo_cd_unreachable_is_said_plainly_and_opsbot_keeps_serving(tmp_path: Path) -> None:
    from tests.fakes.slack_requests import SIGNING_SECRET
    from tests.fakes.slack_web import BOT_TOKEN, FakeSlack
    from tests.serve_helpers import serving

    fake = FakeSlack().start()
    (tmp_path / "opsbot.toml").write_text(
        '[environments.staging]\ncluster = "c"\n[clusters.c]\nin_cluster = true\n'
        '[apps.web]\n[argocd]\nurl = "http://127.0.0.1:9"\ntimeout = "1s"\n'
        '[rbac.roles.all]\nallow = ["*:*"]\n[rbac.users]\n"*" = ["all"]\n'
    )
    env = {
        "SLACK_API_URL": fake.api_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "ARGOCD_TOKEN": "argocd-token-for-this-test",
    }
    try:
        with serving("--mode", "http", "--port", "0", cwd=tmp_path, env=env) as served:
            served.wait_for_output("connected to Slack as")
            from tests.fakes.slack_requests import signed_request

            raw, headers = signed_request(slash_command("deploy web staging", channel="C0DOWN"))
            assert (
                httpx.post(f"{served.url}/slack/events", content=raw, headers=headers).status_code
                == 200
            )
            (posted,) = fake.wait_for("chat.postMessage")
            assert "Argo CD: cannot reach http://127.0.0.1:9" in posted.text
            assert httpx.get(f"{served.url}/readyz").status_code == 200
            assert served.stop() == 0
        assert "argocd-token-for-this-test" not in served.output
    finally:
        fake.stop()

"""The Argo CD emulator, driven over real HTTP: applications, syncs tick by tick, failures,
slow syncs, termination, rollbacks, deletion, diffs, trees, commit metadata, faults.

Every answer the emulator gives in these tests is checked against Argo CD's swagger (and
every Application against its CRD) when ``../shared/specs`` is present; the ``contract``
tests at the end check the same explicitly and show that the checks catch mistakes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bot.clock import ManualClock
from bot.httpserver import HttpServer
from bot.sandbox.argocd import (
    DEFAULT_TOKEN,
    DEMO_BRANCH,
    DEMO_REPO,
    ArgoCDEmulator,
    RecordedRequest,
)
from bot.sandbox.emulators import SANDBOX_EMULATORS, start_emulators
from handlers.settings import ArgoCDSettings, Settings
from tests.argocd_contract import (
    check_application,
    check_request,
    check_response,
    crd_validator,
    find_operation,
    problems,
    specs_present,
    swagger_validator,
)
from tests.conftest import ROOT

REPO = "https://git.example.internal/team/web.git"
APPS = "/api/v1/applications"
#: Operations whose 200 answer is an Application (checked against the CRD too).
APPLICATION_ANSWERS = {
    ("GET", "/api/v1/applications/{name}"),
    ("POST", "/api/v1/applications"),
    ("POST", "/api/v1/applications/{name}/sync"),
    ("POST", "/api/v1/applications/{name}/rollback"),
}


def check_answers(requests: list[RecordedRequest]) -> None:
    """Every JSON answer fits the swagger; every Application fits the CRD."""
    for request in requests:
        if request.answer is None:
            continue  # a canned non-JSON answer (respond_with), deliberately not Argo CD
        try:
            template, _ = find_operation(request.method, request.path)
        except AssertionError:
            continue  # a path Argo CD does not have, asked for on purpose
        check_response(request.method, request.path, request.status, request.answer)
        if request.status != 200:
            continue
        if (request.method, template) in APPLICATION_ANSWERS:
            check_application(request.answer)
        if (request.method, template) == ("GET", APPS):
            for item in request.answer["items"]:
                check_application(item)


@pytest.fixture
def emulator(clock: ManualClock) -> Iterator[ArgoCDEmulator]:
    """``web-staging`` and ``web-prod``, deployed from one commit, on a manual clock."""
    emulator = ArgoCDEmulator(clock=clock)
    emulator.push(REPO, message="Initial manifests")
    for env in ("staging", "prod"):
        emulator.add_application(
            f"web-{env}",
            repo_url=REPO,
            path=f"apps/web/{env}",
            namespace=f"web-{env}",
            labels={"app": "web", "env": env},
        )
    yield emulator
    if specs_present():
        check_answers(emulator.requests)


@pytest.fixture
def server(emulator: ArgoCDEmulator) -> Iterator[HttpServer]:
    running = HttpServer(emulator.wsgi_app(), name="argocd-emulator").start()
    yield running
    emulator.release()
    running.stop()


@pytest.fixture
def api(server: HttpServer) -> Iterator[httpx.Client]:
    """An HTTP client holding the emulator's token."""
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}, timeout=10
    ) as client:
        yield client


def get_app(api: httpx.Client, name: str) -> dict[str, Any]:
    response = api.get(f"{APPS}/{name}")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def sync(api: httpx.Client, name: str, **body: Any) -> httpx.Response:
    return api.post(f"{APPS}/{name}/sync", json={"name": name, **body})


def operation(app: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = app["status"]["operationState"]
    return state


def results(app: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["kind"], r["status"]) for r in operation(app)["syncResult"]["resources"]]


def history_revisions(app: dict[str, Any]) -> list[str]:
    return [entry["revision"] for entry in app["status"].get("history", [])]


def error(response: httpx.Response) -> tuple[int, int, str]:
    body = response.json()
    assert body["error"] == body["message"]
    return response.status_code, body["code"], body["message"]


def read_until_done(api: httpx.Client, name: str, limit: int = 50) -> dict[str, Any]:
    for _ in range(limit):
        app = get_app(api, name)
        if "operation" not in app:
            return app
    raise AssertionError(f"{name}'s operation did not finish in {limit} reads")


# --- authentication and faults ------------------------------------------------------------


def test_every_api_call_needs_the_bearer_token(server: HttpServer) -> None:
    anonymous = httpx.get(f"{server.url}{APPS}")
    assert error(anonymous) == (401, 16, "no session information")
    wrong = httpx.get(f"{server.url}{APPS}", headers={"Authorization": "Bearer nope"})
    assert error(wrong)[:2] == (401, 16)
    assert "invalid session" in error(wrong)[2]
    for method, path in (("POST", f"{APPS}/web-prod/sync"), ("DELETE", f"{APPS}/web-prod")):
        assert httpx.request(method, server.url + path).status_code == 401
    right = httpx.get(f"{server.url}{APPS}", headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})
    assert right.status_code == 200


def test_canned_answers_replace_the_next_requests_then_service_resumes(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    emulator.respond_with(200, b"<html>login</html>", content_type="text/html")
    garbage = api.get(f"{APPS}/web-prod")
    assert garbage.status_code == 200
    assert garbage.content == b"<html>login</html>"
    assert garbage.headers["content-type"].startswith("text/html")

    emulator.respond_with(500, times=2)
    assert [api.get(APPS).status_code for _ in range(3)] == [500, 500, 200]

    emulator.respond_with(401)
    expired = api.get(APPS)
    assert error(expired)[:2] == (401, 16)
    assert "expired" in error(expired)[2]
    # the canned answers changed nothing: web-prod was read only once for real
    assert emulator.application("web-prod")["status"]["sync"]["status"] == "Synced"


def test_a_stalled_request_waits_for_release_so_clients_time_out(
    server: HttpServer, emulator: ArgoCDEmulator
) -> None:
    emulator.stall()
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{server.url}{APPS}", headers=headers, timeout=0.3)
    emulator.release()
    served = emulator.wait_for(lambda r: r.path == APPS)
    assert served[0].status == 200
    assert httpx.get(f"{server.url}{APPS}", headers=headers).status_code == 200


def test_paths_outside_the_api_get_the_ui_and_unknown_api_paths_a_grpc_404(
    api: httpx.Client,
) -> None:
    page = api.get("/applications")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert error(api.get("/api/v1/nothing-here"))[:2] == (404, 5)
    assert error(api.put(f"{APPS}/web-prod/sync"))[:2] == (405, 12)


def test_requests_are_recorded_and_can_be_waited_for(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    def deploy() -> None:
        sync(api, "web-prod", prune=True)

    worker = threading.Thread(target=deploy)
    worker.start()
    [request] = emulator.wait_for(lambda r: r.path.endswith("/sync"), timeout=10)
    worker.join(10)
    assert request.method == "POST"
    assert request.body == {"name": "web-prod", "prune": True}
    assert request.headers["Authorization"] == f"Bearer {DEFAULT_TOKEN}"
    assert request.status == 200
    assert request.answer["operation"]["sync"]["prune"] is True

    api.delete(f"{APPS}/web-prod", params={"cascade": "false"})
    deleted = emulator.requests[-1]
    assert (deleted.method, deleted.query, deleted.body) == ("DELETE", {"cascade": "false"}, None)
    with pytest.raises(AssertionError, match="expected 1 matching"):
        emulator.wait_for(lambda r: r.method == "PATCH", timeout=0.05)


# --- applications: CRUD -----------------------------------------------------------------


def new_application(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": "web", "env": "pr-7"}},
        "spec": {
            "project": "default",
            "source": {"repoURL": REPO, "path": "apps/web/staging", "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
            **spec,
        },
    }


def test_create_get_list_and_upsert(api: httpx.Client, clock: ManualClock) -> None:
    body = new_application("web-pr-7")
    created = api.post(APPS, json=body)
    assert created.status_code == 200
    app = created.json()
    assert app["metadata"]["name"] == "web-pr-7"
    assert app["metadata"]["namespace"] == "argocd"
    assert app["metadata"]["creationTimestamp"] == "2026-01-05T09:00:00Z"
    assert app["spec"] == body["spec"]
    assert app["status"]["sync"]["status"] == "OutOfSync"  # nothing deployed yet
    assert app["status"]["health"]["status"] == "Missing"
    assert "history" not in app["status"]

    assert get_app(api, "web-pr-7")["spec"] == body["spec"]
    assert api.post(APPS, json=body).json()["metadata"]["uid"] == app["metadata"]["uid"]

    changed = new_application("web-pr-7", syncPolicy={"automated": {"prune": True}})
    assert error(api.post(APPS, json=changed)) == (
        400,
        3,
        "existing application spec is different; use upsert flag to force update",
    )
    upserted = api.post(APPS, params={"upsert": "true"}, json=changed)
    assert upserted.status_code == 200
    assert upserted.json()["spec"]["syncPolicy"] == {"automated": {"prune": True}}
    assert upserted.json()["metadata"]["generation"] == 2

    names = [item["metadata"]["name"] for item in api.get(APPS).json()["items"]]
    assert names == ["web-pr-7", "web-prod", "web-staging"]


def test_an_invalid_application_is_refused(api: httpx.Client) -> None:
    no_destination = new_application("web-pr-8")
    del no_destination["spec"]["destination"]
    status, code, message = error(api.post(APPS, json=no_destination))
    assert (status, code) == (400, 3)
    assert "application spec for web-pr-8 is invalid" in message
    bad_name = new_application("Web_PR")
    assert error(api.post(APPS, json=bad_name))[:2] == (400, 3)
    assert error(api.post(APPS, content=b"{not json"))[:2] == (400, 3)
    assert error(api.post(APPS, params={"upsert": "perhaps"}, json=new_application("x")))[:2] == (
        400,
        3,
    )


def test_an_unknown_application_is_404(api: httpx.Client) -> None:
    for method, path in (
        ("GET", f"{APPS}/nope"),
        ("DELETE", f"{APPS}/nope"),
        ("POST", f"{APPS}/nope/sync"),
        ("GET", f"{APPS}/nope/resource-tree"),
        ("GET", f"{APPS}/nope/managed-resources"),
    ):
        response = api.request(method, path, json={} if method == "POST" else None)
        assert error(response) == (404, 5, 'applications.argoproj.io "nope" not found')


def test_the_list_filters_by_label_selector_project_and_name(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    emulator.add_application(
        "api-prod",
        repo_url=REPO,
        path="apps/api/prod",
        namespace="api-prod",
        project="platform",
        labels={"app": "api", "env": "prod", "tier": "backend"},
    )

    def names(**params: str) -> list[str]:
        response = api.get(APPS, params=params)
        assert response.status_code == 200, response.text
        return [item["metadata"]["name"] for item in response.json()["items"]]

    assert names() == ["api-prod", "web-prod", "web-staging"]
    assert names(selector="env=prod") == ["api-prod", "web-prod"]
    assert names(selector="app=web,env=prod") == ["web-prod"]
    assert names(selector="app==web, env!=prod") == ["web-staging"]
    assert names(selector="tier") == ["api-prod"]
    assert names(selector="!tier") == ["web-prod", "web-staging"]
    assert names(selector="env=qa") == []
    assert names(projects="platform") == ["api-prod"]
    assert names(projects="default", selector="env=prod") == ["web-prod"]
    assert names(name="web-staging") == ["web-staging"]
    assert error(api.get(APPS, params={"selector": "env in (prod)"}))[:2] == (400, 3)


# --- syncs ----------------------------------------------------------------------------


def test_a_sync_applies_one_resource_per_read_then_health_settles(
    api: httpx.Client, emulator: ArgoCDEmulator, clock: ManualClock
) -> None:
    before = get_app(api, "web-prod")
    assert history_revisions(before) == [before["status"]["sync"]["revision"]]
    head = emulator.push(REPO, author="Bob Example <bob@example.com>", message="web: v2")
    assert get_app(api, "web-prod")["status"]["sync"] == {
        "status": "OutOfSync",
        "revision": head,
        "comparedTo": {
            "source": before["spec"]["source"],
            "destination": before["spec"]["destination"],
        },
    }

    clock.advance(timedelta(minutes=1))
    requested = sync(api, "web-prod")
    assert requested.status_code == 200
    answer = requested.json()
    assert answer["operation"]["sync"]["revision"] == head
    assert answer["operation"]["initiatedBy"] == {"username": "opsbot"}
    assert "operationState" not in answer["status"]  # cleared until the controller starts it

    timeline = []
    for _ in range(5):
        clock.advance(timedelta(seconds=10))
        app = get_app(api, "web-prod")
        timeline.append(
            (
                operation(app)["phase"],
                results(app),
                app["status"]["sync"]["status"],
                app["status"]["health"]["status"],
                "operation" in app,
            )
        )
    assert timeline == [
        ("Running", [("ConfigMap", "Synced")], "OutOfSync", "Healthy", True),
        ("Running", [("ConfigMap", "Synced"), ("Service", "Synced")], "OutOfSync", "Healthy", True),
        (
            "Succeeded",
            [("ConfigMap", "Synced"), ("Service", "Synced"), ("Deployment", "Synced")],
            "Synced",
            "Progressing",
            False,
        ),
        ("Succeeded", timeline[2][1], "Synced", "Healthy", False),
        ("Succeeded", timeline[2][1], "Synced", "Healthy", False),
    ]
    done = get_app(api, "web-prod")
    state = operation(done)
    assert state["message"] == "successfully synced (all tasks run)"
    assert state["startedAt"] == "2026-01-05T09:01:10Z"
    assert state["finishedAt"] == "2026-01-05T09:01:30Z"
    assert state["syncResult"]["revision"] == head
    messages = [r["message"] for r in state["syncResult"]["resources"]]
    assert messages == [
        "configmap/web-prod configured",
        "service/web-prod unchanged",
        "deployment.apps/web-prod configured",
    ]
    last = done["status"]["history"][-1]
    assert (last["id"], last["revision"]) == (2, head)
    assert (last["deployStartedAt"], last["deployedAt"]) == (
        state["startedAt"],
        state["finishedAt"],
    )
    assert last["source"] == done["spec"]["source"]
    assert done["status"]["summary"]["images"] == [f"registry.example.internal/web-prod:{head[:7]}"]


def test_a_sync_to_a_named_revision_and_to_an_unknown_one(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    first = get_app(api, "web-prod")["status"]["sync"]["revision"]
    emulator.tag(REPO, "v1.0.0", first)
    head = emulator.push(REPO, message="web: v2")
    assert sync(api, "web-prod", revision=head[:10]).json()["operation"]["sync"]["revision"] == head
    read_until_done(api, "web-prod")
    sync(api, "web-prod", revision="v1.0.0")
    app = read_until_done(api, "web-prod")
    assert history_revisions(app) == [first, head, first]
    assert app["status"]["sync"]["status"] == "OutOfSync"  # main is ahead of what runs
    assert error(sync(api, "web-prod", revision="no-such-branch")) == (
        400,
        9,
        "unable to resolve 'no-such-branch' to a commit SHA",
    )
    assert error(sync(api, "web-prod", dryRun="yes"))[:2] == (400, 3)
    assert error(api.post(f"{APPS}/web-prod/sync", json={"dry_run": True})) == (
        400,
        3,
        'unknown field "dry_run" in application.ApplicationSyncRequest',
    )


def test_a_second_sync_while_one_runs_is_refused(api: httpx.Client) -> None:
    assert sync(api, "web-prod").status_code == 200
    assert error(sync(api, "web-prod")) == (400, 9, "another operation is already in progress")
    get_app(api, "web-prod")
    assert error(sync(api, "web-prod"))[0] == 400
    read_until_done(api, "web-prod")
    assert sync(api, "web-prod").status_code == 200


def test_a_dry_run_reports_and_changes_nothing(api: httpx.Client, emulator: ArgoCDEmulator) -> None:
    emulator.push(REPO, message="web: v2")
    sync(api, "web-prod", dryRun=True)
    app = read_until_done(api, "web-prod")
    assert operation(app)["phase"] == "Succeeded"
    assert operation(app)["operation"]["sync"]["dryRun"] is True
    assert [r["message"] for r in operation(app)["syncResult"]["resources"]] == [
        "configmap/web-prod configured (dry run)",
        "service/web-prod unchanged (dry run)",
        "deployment.apps/web-prod configured (dry run)",
    ]
    assert len(app["status"]["history"]) == 1
    assert app["status"]["sync"]["status"] == "OutOfSync"


def test_a_failing_sync_names_the_resource_and_argo_cds_message(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    emulator.push(REPO, message="web: v2")
    emulator.fail_next_sync("web-prod", at_resource=2, message='Service "web-prod" is invalid')
    sync(api, "web-prod")
    app = read_until_done(api, "web-prod")
    state = operation(app)
    assert state["phase"] == "Failed"
    assert state["message"] == (
        'one or more objects failed to apply, reason: Service "web-prod" is invalid'
    )
    assert results(app) == [("ConfigMap", "Synced"), ("Service", "SyncFailed")]
    failed = state["syncResult"]["resources"][1]
    assert (failed["message"], failed["hookPhase"]) == ('Service "web-prod" is invalid', "Failed")
    assert "finishedAt" in state
    assert len(app["status"]["history"]) == 1  # a failed sync is no deployment
    assert app["status"]["sync"]["status"] == "OutOfSync"

    sync(api, "web-prod")  # the failure was for one sync only
    assert operation(read_until_done(api, "web-prod"))["phase"] == "Succeeded"


def test_the_default_failure_message_reads_like_kubernetes(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    emulator.push(REPO, message="web: v2")
    emulator.fail_next_sync("web-prod", at_resource=3)
    sync(api, "web-prod")
    message = operation(read_until_done(api, "web-prod"))["message"]
    assert message.startswith('one or more objects failed to apply, reason: Deployment.apps "web')
    with pytest.raises(ValueError, match="has 3 resources"):
        emulator.fail_next_sync("web-prod", at_resource=4)


def test_a_slow_sync_spends_the_given_ticks_on_each_resource(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    emulator.push(REPO, message="web: v2")
    emulator.slow("web-prod", ticks_per_resource=3)
    sync(api, "web-prod")
    applied = []
    for _ in range(9):
        app = get_app(api, "web-prod")
        applied.append(len(results(app)))
    assert applied == [0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert operation(app)["phase"] == "Succeeded"


def test_terminating_shows_terminating_for_one_read_then_failed(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    assert error(api.delete(f"{APPS}/web-prod/operation")) == (
        400,
        3,
        "Unable to terminate operation. No operation is in progress",
    )
    emulator.push(REPO, message="web: v2")
    emulator.slow("web-prod", ticks_per_resource=2)
    sync(api, "web-prod")
    for _ in range(2):
        get_app(api, "web-prod")
    terminated = api.delete(f"{APPS}/web-prod/operation")
    assert (terminated.status_code, terminated.json()) == (200, {})

    terminating = get_app(api, "web-prod")
    assert operation(terminating)["phase"] == "Terminating"
    assert "operation" in terminating
    failed = get_app(api, "web-prod")
    assert operation(failed)["phase"] == "Failed"
    assert operation(failed)["message"] == "Operation terminated"
    assert results(failed) == [("ConfigMap", "Synced")]
    assert "operation" not in failed
    assert len(failed["status"]["history"]) == 1
    assert sync(api, "web-prod").status_code == 200  # the next sync may start


def test_a_sync_requested_but_not_started_can_be_terminated(api: httpx.Client) -> None:
    sync(api, "web-prod")
    assert api.delete(f"{APPS}/web-prod/operation").status_code == 200
    assert operation(get_app(api, "web-prod"))["phase"] == "Terminating"
    assert operation(get_app(api, "web-prod"))["phase"] == "Failed"


def test_reads_from_many_threads_advance_the_operation_exactly_once_each(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    emulator.push(REPO, message="web: v2")
    emulator.slow("web-prod", ticks_per_resource=10)
    sync(api, "web-prod")
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda _: api.get(f"{APPS}/web-prod").status_code, range(29)))
    assert codes == [200] * 29
    app = emulator.application("web-prod")
    assert (operation(app)["phase"], len(results(app))) == ("Running", 2)
    assert operation(get_app(api, "web-prod"))["phase"] == "Succeeded"


def test_tick_advances_without_http(emulator: ArgoCDEmulator) -> None:
    emulator.push(REPO, message="web: v2")
    emulator.add_application("cli", repo_url=REPO, path="apps/cli", namespace="cli", deployed=False)
    with pytest.raises(KeyError, match="no application 'nope'"):
        emulator.tick("nope")
    assert emulator.application("web-prod")["status"]["sync"]["status"] == "OutOfSync"
    assert emulator.application("cli")["status"]["health"]["status"] == "Missing"
    assert emulator.applications() == ["cli", "web-prod", "web-staging"]
    assert emulator.requests == []


# --- auto-sync and rollback -------------------------------------------------------------


def test_auto_sync_follows_each_push_and_refuses_other_revisions(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    emulator.set_auto_sync("web-staging", True)
    app = get_app(api, "web-staging")
    assert app["spec"]["syncPolicy"] == {"automated": {"prune": True, "selfHeal": True}}
    assert "operation" not in app  # in sync: nothing to do
    head = emulator.push(REPO, message="web: v2")
    started = get_app(api, "web-staging")
    assert started["operation"]["initiatedBy"] == {"automated": True}
    assert started["operation"]["sync"] == {"revision": head, "prune": True}
    done = read_until_done(api, "web-staging")
    assert history_revisions(done)[-1] == head
    assert done["status"]["history"][-1]["initiatedBy"] == {"automated": True}
    assert done["status"]["sync"]["status"] == "Synced"
    assert error(sync(api, "web-staging", revision=head)) == (
        400,
        9,
        f"Cannot sync to {head}: auto-sync currently set to main",
    )
    assert sync(api, "web-staging").status_code == 200  # to its own target is fine


def test_a_failed_automated_sync_is_not_retried_for_the_same_revision(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    emulator.set_auto_sync("web-staging", True)
    emulator.fail_next_sync("web-staging", at_resource=1)
    emulator.push(REPO, message="web: broken")
    failed = read_until_done(api, "web-staging")
    assert operation(failed)["phase"] == "Failed"
    for _ in range(3):
        assert "operation" not in get_app(api, "web-staging")
    fixed = emulator.push(REPO, message="web: fixed")
    assert get_app(api, "web-staging")["operation"]["sync"]["revision"] == fixed


def test_a_rollback_syncs_to_a_history_entry(api: httpx.Client, emulator: ArgoCDEmulator) -> None:
    first = get_app(api, "web-prod")["status"]["history"][0]
    emulator.push(REPO, message="web: v2")
    sync(api, "web-prod")
    assert len(read_until_done(api, "web-prod")["status"]["history"]) == 2

    requested = api.post(f"{APPS}/web-prod/rollback", json={"name": "web-prod", "id": 1})
    assert requested.status_code == 200
    op = requested.json()["operation"]["sync"]
    assert op["revision"] == first["revision"]
    assert op["source"] == first["source"]
    app = read_until_done(api, "web-prod")
    assert operation(app)["phase"] == "Succeeded"
    assert [(h["id"], h["revision"]) for h in app["status"]["history"]][-1] == (
        3,
        first["revision"],
    )
    assert app["status"]["sync"]["status"] == "OutOfSync"  # main still has v2


def test_a_rollback_is_refused_while_auto_sync_is_on_and_for_unknown_ids(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    emulator.set_auto_sync("web-prod", True)
    refused = api.post(f"{APPS}/web-prod/rollback", json={"id": 1})
    assert error(refused) == (400, 9, "rollback cannot be initiated when auto-sync is enabled")
    emulator.set_auto_sync("web-prod", False)
    assert "syncPolicy" not in get_app(api, "web-prod")["spec"]
    assert error(api.post(f"{APPS}/web-prod/rollback", json={"id": 7})) == (
        400,
        3,
        "application web-prod does not have deployment with id 7",
    )
    assert api.post(f"{APPS}/web-prod/rollback", json={"id": "1"}).status_code == 200
    assert error(api.post(f"{APPS}/web-prod/rollback", json={"id": 1}))[0] == 400


def test_history_keeps_the_revision_history_limit(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    for n in range(11):
        emulator.push(REPO, message=f"web: v{n + 2}")
        sync(api, "web-prod")
        read_until_done(api, "web-prod")
    ids = [h["id"] for h in get_app(api, "web-prod")["status"]["history"]]
    assert ids == list(range(3, 13))


# --- deletion -----------------------------------------------------------------------------


def test_a_cascading_delete_shows_deletion_for_one_read_then_the_app_is_gone(
    api: httpx.Client, clock: ManualClock
) -> None:
    deleted = api.delete(f"{APPS}/web-prod", params={"cascade": "true"})
    assert (deleted.status_code, deleted.json()) == (200, {})
    assert error(sync(api, "web-prod")) == (400, 9, "application is deleting")
    clock.advance(timedelta(seconds=5))
    deleting = get_app(api, "web-prod")
    assert deleting["metadata"]["deletionTimestamp"] == "2026-01-05T09:00:00Z"
    assert deleting["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    assert deleting["status"]["health"]["status"] == "Missing"  # its resources went first
    assert error(api.get(f"{APPS}/web-prod"))[:2] == (404, 5)
    assert [i["metadata"]["name"] for i in api.get(APPS).json()["items"]] == ["web-staging"]

    again = new_application("web-prod")
    again["spec"]["source"]["path"] = "apps/web/prod"
    again["spec"]["destination"]["namespace"] = "web-prod"
    recreated = api.post(APPS, json=again).json()
    assert recreated["status"]["health"]["status"] == "Missing"
    managed = api.get(f"{APPS}/web-prod/managed-resources").json()["items"]
    assert {item["liveState"] for item in managed} == {"null"}
    assert all(item["modified"] for item in managed)


def test_a_delete_without_cascade_leaves_the_resources_running(api: httpx.Client) -> None:
    api.delete(f"{APPS}/web-prod", params={"cascade": "false"})
    deleting = get_app(api, "web-prod")
    assert "deletionTimestamp" in deleting["metadata"]
    assert "finalizers" not in deleting["metadata"]
    assert deleting["status"]["health"]["status"] == "Healthy"
    assert api.get(f"{APPS}/web-prod").status_code == 404

    again = new_application("web-prod")
    again["spec"]["source"]["path"] = "apps/web/prod"
    again["spec"]["destination"]["namespace"] = "web-prod"
    adopted = api.post(APPS, json=again).json()
    assert adopted["status"]["sync"]["status"] == "Synced"
    assert adopted["status"]["health"]["status"] == "Healthy"


def test_the_list_advances_deletions_too(api: httpx.Client) -> None:
    api.delete(f"{APPS}/web-staging")
    first = api.get(APPS).json()["items"]
    assert [("deletionTimestamp" in i["metadata"]) for i in first] == [False, True]
    assert [i["metadata"]["name"] for i in api.get(APPS).json()["items"]] == ["web-prod"]


# --- what a deploy preview reads ----------------------------------------------------------


def test_managed_resources_mark_what_a_sync_would_change(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    unchanged = api.get(f"{APPS}/web-prod/managed-resources").json()["items"]
    assert [(i["kind"], i["modified"]) for i in unchanged] == [
        ("Deployment", False),
        ("Service", False),
        ("ConfigMap", False),
    ]
    head = emulator.push(REPO, message="web: v2")
    items = api.get(f"{APPS}/web-prod/managed-resources").json()["items"]
    assert {i["kind"]: i["modified"] for i in items} == {
        "Deployment": True,
        "Service": False,
        "ConfigMap": True,
    }
    deployment = items[0]
    assert deployment["group"] == "apps"
    target, live = json.loads(deployment["targetState"]), json.loads(deployment["liveState"])
    image = "spec.template.spec.containers[0].image"
    assert _dig(target, image) == f"registry.example.internal/web-prod:{head[:7]}"
    assert _dig(live, image) != _dig(target, image)
    assert live["metadata"]["uid"]
    assert live["status"]["readyReplicas"] == 2
    only = api.get(f"{APPS}/web-prod/managed-resources", params={"kind": "Service"}).json()
    assert [i["kind"] for i in only["items"]] == ["Service"]


def _dig(document: dict[str, Any], dotted: str) -> Any:
    value: Any = document
    for part in dotted.replace("[0]", ".0").split("."):
        value = value[int(part)] if part.isdigit() else value[part]
    return value


def test_a_commit_changes_only_the_applications_under_its_paths(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    emulator.push(REPO, message="web staging only", paths=["apps/web/staging"])
    statuses = {
        i["metadata"]["name"]: i["status"]["sync"]["status"] for i in api.get(APPS).json()["items"]
    }
    assert statuses == {"web-prod": "Synced", "web-staging": "OutOfSync"}


def test_the_resource_tree_shows_live_objects_and_their_pods(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    nodes = api.get(f"{APPS}/web-prod/resource-tree").json()["nodes"]
    kinds = sorted(node["kind"] for node in nodes)
    assert kinds == ["ConfigMap", "Deployment", "Pod", "Pod", "ReplicaSet", "Service"]
    by_kind = {node["kind"]: node for node in nodes}
    replica_set = by_kind["ReplicaSet"]
    assert replica_set["parentRefs"][0]["uid"] == by_kind["Deployment"]["uid"]
    pods = [node for node in nodes if node["kind"] == "Pod"]
    assert {pod["parentRefs"][0]["name"] for pod in pods} == {replica_set["name"]}
    assert by_kind["Deployment"]["health"] == {"status": "Healthy"}
    assert "health" not in by_kind["ConfigMap"]  # Argo CD has no health check for it

    emulator.add_application(
        "fresh", repo_url=REPO, path="apps/fresh", namespace="fresh", deployed=False
    )
    assert api.get(f"{APPS}/fresh/resource-tree").json() == {"nodes": []}


def test_revision_metadata_gives_author_date_and_message(
    api: httpx.Client, emulator: ArgoCDEmulator, clock: ManualClock
) -> None:
    clock.advance(timedelta(hours=1))
    sha = emulator.push(REPO, author="Bob Example <bob@example.com>", message="web: v2")
    emulator.tag(REPO, "v2.0.0", sha)
    for revision in (sha, sha[:8]):
        answer = api.get(f"{APPS}/web-prod/revisions/{revision}/metadata")
        assert answer.json() == {
            "author": "Bob Example <bob@example.com>",
            "date": "2026-01-05T10:00:00Z",
            "message": "web: v2",
            "tags": ["v2.0.0"],
        }
    assert error(api.get(f"{APPS}/web-prod/revisions/main/metadata")) == (
        500,
        2,
        "revision main must be resolved",
    )
    assert error(api.get(f"{APPS}/web-prod/revisions/{'0' * 40}/metadata"))[:2] == (500, 2)


def test_an_unknown_repository_or_revision_makes_the_comparison_unknown(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    body = new_application("elsewhere")
    body["spec"]["source"]["repoURL"] = "https://git.example.internal/nobody/none.git"
    app = api.post(APPS, json=body).json()
    assert app["status"]["sync"]["status"] == "Unknown"
    assert app["status"]["conditions"][0]["type"] == "ComparisonError"
    assert "repository not found" in app["status"]["conditions"][0]["message"]
    assert error(sync(api, "elsewhere"))[:2] == (400, 9)


def test_a_forced_health_shows_until_the_next_successful_sync(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    emulator.set_health("web-prod", "Degraded", message="CrashLoopBackOff")
    app = get_app(api, "web-prod")
    assert app["status"]["health"]["status"] == "Degraded"
    assert app["status"]["health"]["message"] == "CrashLoopBackOff"
    with pytest.raises(ValueError, match="health is one of"):
        emulator.set_health("web-prod", "Sad")
    sync(api, "web-prod")
    assert read_until_done(api, "web-prod")["status"]["health"]["status"] == "Healthy"


# --- the sandbox --------------------------------------------------------------------------


def test_the_demo_runs_payments_and_checkout_with_prod_a_commit_behind() -> None:
    emulator = ArgoCDEmulator.demo(clock=ManualClock())
    apps = {name: emulator.application(name) for name in emulator.applications()}
    assert sorted(apps) == [
        "checkout-prod",
        "checkout-staging",
        "payments-prod",
        "payments-staging",
    ]
    for name, app in apps.items():
        service, env = name.split("-")
        assert app["spec"]["source"]["repoURL"] == DEMO_REPO
        assert app["spec"]["source"]["path"] == f"apps/{service}/{env}"
        assert app["spec"]["destination"]["namespace"] == name
        assert app["metadata"]["labels"] == {"app": service, "env": env}
        assert app["status"]["health"]["status"] == "Healthy"
        assert ("automated" in app["spec"].get("syncPolicy", {})) == (name == "payments-staging")
    assert apps["payments-prod"]["status"]["sync"]["status"] == "OutOfSync"
    assert {apps[n]["status"]["sync"]["status"] for n in apps if n != "payments-prod"} == {"Synced"}
    staging = history_revisions(apps["payments-staging"])
    prod = history_revisions(apps["payments-prod"])
    assert prod[-1] == staging[-2]  # one commit behind
    assert len(prod) >= 2  # something to roll back to
    emulator.add_application(
        "payments-pr-42",
        repo_url=DEMO_REPO,
        path="apps/payments/staging",
        target_revision=DEMO_BRANCH,
        namespace="payments-pr-42",
    )
    preview = emulator.application("payments-pr-42")
    assert preview["status"]["history"][0]["revision"] not in staging
    assert preview["status"]["sync"]["status"] == "Synced"


def test_the_sandbox_starts_the_demo_and_aims_the_settings_at_it(settings: Settings) -> None:
    running = start_emulators(settings, SANDBOX_EMULATORS)
    try:
        url = running.url("argocd")
        assert running.settings.argocd is not None
        assert running.settings.argocd.url == url
        assert running.settings.argocd.token_env == "ARGOCD_TOKEN"
        token = running.environ["ARGOCD_TOKEN"]
        listed = httpx.get(f"{url}{APPS}", headers={"Authorization": f"Bearer {token}"})
        names = [item["metadata"]["name"] for item in listed.json()["items"]]
        assert names == ["checkout-prod", "checkout-staging", "payments-prod", "payments-staging"]
        staging = next(i for i in listed.json()["items"] if i["metadata"]["name"].endswith("g"))
        sha = staging["status"]["history"][-1]["revision"]
        metadata = httpx.get(
            f"{url}{APPS}/checkout-staging/revisions/{sha}/metadata",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert metadata["author"] == "Bob Example <bob@example.com>"
    finally:
        running.stop()


def test_configure_keeps_the_configured_polling_and_timeouts(settings: Settings) -> None:
    configured = settings.model_copy(
        update={
            "argocd": ArgoCDSettings(
                url="https://argocd.example.internal",
                token_env="MY_ARGO_TOKEN",
                ca_bundle="/etc/ssl/argocd.pem",
                poll_interval=timedelta(seconds=1),
            )
        }
    )
    aimed, environ = ArgoCDEmulator(token="t0k3n").configure(configured, "http://127.0.0.1:9")
    assert aimed.argocd is not None
    assert (aimed.argocd.url, aimed.argocd.token_env) == ("http://127.0.0.1:9", "ARGOCD_TOKEN")
    assert (aimed.argocd.ca_bundle, aimed.argocd.poll_interval) == (None, timedelta(seconds=1))
    assert environ == {"ARGOCD_TOKEN": "t0k3n"}
    without = settings.model_copy(update={"argocd": None})
    fresh, _ = ArgoCDEmulator().configure(without, "http://127.0.0.1:9")
    assert fresh.argocd == ArgoCDSettings(url="http://127.0.0.1:9")


def test_the_command_line_does_not_import_the_emulator() -> None:
    probe = (
        "import sys, bot.cli; "
        "print(sorted(m for m in sys.modules if m.startswith(('werkzeug', 'bot.sandbox'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# --- contract -----------------------------------------------------------------------------


def test_contract_every_answer_in_a_full_workflow_fits_the_swagger_and_the_crd(
    api: httpx.Client, emulator: ArgoCDEmulator
) -> None:
    if not specs_present():
        pytest.skip("../shared/specs is absent: no Argo CD swagger or CRD to check against")
    emulator.push(REPO, message="web: v2")
    api.post(APPS, json=new_application("web-pr-9"))
    api.get(APPS, params={"selector": "app=web"})
    sync(api, "web-prod", prune=True)
    for _ in range(4):
        get_app(api, "web-prod")
        api.get(f"{APPS}/web-prod/resource-tree")
        api.get(f"{APPS}/web-prod/managed-resources")
    sha = get_app(api, "web-prod")["status"]["history"][-1]["revision"]
    api.get(f"{APPS}/web-prod/revisions/{sha}/metadata")
    api.post(f"{APPS}/web-prod/rollback", json={"id": 1})
    get_app(api, "web-prod")
    api.delete(f"{APPS}/web-prod/operation")
    get_app(api, "web-prod")
    get_app(api, "web-prod")
    emulator.fail_next_sync("web-staging", at_resource=3)
    sync(api, "web-staging")
    read_until_done(api, "web-staging")
    api.delete(f"{APPS}/web-pr-9")
    api.get(APPS)
    api.get(f"{APPS}/web-pr-9")
    sync(api, "nope")
    api.get(APPS, headers={"Authorization": "Bearer wrong"})

    answers = emulator.requests
    assert {r.status for r in answers} == {200, 401, 404}
    check_answers(answers)
    for request in answers:
        check_request(request.method, request.path, request.body, query=request.query)


def test_contract_the_checks_catch_a_misshapen_answer() -> None:
    if not specs_present():
        pytest.skip("../shared/specs is absent: no Argo CD swagger or CRD to check against")
    emulator = ArgoCDEmulator.demo(clock=ManualClock())
    app = emulator.application("payments-prod")
    check_application(app)
    assert not problems(swagger_validator("v1alpha1Application"), app)

    app["status"]["history"][0]["id"] = "1"
    app["status"]["history"][0]["deployStartAt"] = "2026-01-05T09:00:00Z"
    app["status"]["operationState"]["startedAt"] = "yesterday"
    found = problems(crd_validator(), app)
    assert any("'1' is not of type 'integer'" in p for p in found)
    assert any("'deployStartAt' was unexpected" in p for p in found)
    assert any("'yesterday' is not a 'date-time'" in p for p in found)
    assert problems(swagger_validator("v1alpha1Application"), app)
    assert problems(swagger_validator("runtimeError"), {"error": "x", "code": "five"})


def test_contract_requests_are_checked_against_the_operations() -> None:
    if not specs_present():
        pytest.skip("../shared/specs is absent: no Argo CD swagger or CRD to check against")
    sync_path = "/api/v1/applications/{name}/sync"
    check_request("POST", sync_path, {"name": "a", "revision": "main", "prune": True})
    check_request("POST", "/api/v1/applications/a/rollback", {"name": "a", "id": 3})
    check_request("DELETE", "/api/v1/applications/a", None, query={"cascade": "false"})
    check_request("POST", APPS, new_application("a"), query={"upsert": "true"})
    check_request("GET", APPS, None, query={"selector": "env=prod", "projects": ["a", "b"]})
    mistakes = [
        (("POST", sync_path, {"dry_run": True}), "'dry_run' was unexpected"),
        (("POST", sync_path, {"prune": "yes"}), "'yes' is not of type 'boolean'"),
        (("POST", sync_path, None), "requires one"),
        (("POST", "/api/v1/applications/a/rollback", {"id": "three"}), "is not a 'int64'"),
        (("DELETE", "/api/v1/applications/a", {"cascade": True}), "takes none"),
        (("POST", "/api/v1/applications/a/deploy", {}), "no such path"),
        (("PUT", sync_path, {}), "only for POST"),
    ]
    for (method, path, body), expected in mistakes:
        with pytest.raises(AssertionError, match=expected):
            check_request(method, path, body)
    with pytest.raises(AssertionError, match="'force' is not declared"):
        check_request("DELETE", "/api/v1/applications/a", None, query={"force": "true"})
    with pytest.raises(AssertionError, match="must be true or false"):
        check_request("DELETE", "/api/v1/applications/a", None, query={"cascade": "yes"})

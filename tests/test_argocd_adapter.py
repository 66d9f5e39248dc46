"""The Argo CD adapter against the emulator over real HTTP: every method, every request
checked against Argo CD's swagger, and every failure mapped to a typed error."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest

from adapters.argocd import ArgoCD
from adapters.errors import Conflict, Forbidden, InvalidResponse, NotFound, Unavailable
from bot.httpserver import HttpServer
from bot.sandbox.argocd import DEMO_REPO, ArgoCDEmulator
from tests.argocd_contract import check_request, require_specs


@pytest.fixture
def argo() -> Iterator[tuple[ArgoCDEmulator, ArgoCD]]:
    emulator = ArgoCDEmulator.demo()
    server = HttpServer(emulator.wsgi_app(), name="argocd-emulator").start()
    client = ArgoCD(server.url, emulator.token, timeout=5)
    try:
        yield emulator, client
    finally:
        client.close()
        server.stop()


def every_request_fits_the_swagger(emulator: ArgoCDEmulator) -> None:
    require_specs()
    for request in emulator.requests:
        check_request(request.method, request.path, request.body, query=request.query)


def test_reads_return_typed_applications(argo: tuple[ArgoCDEmulator, ArgoCD]) -> None:
    emulator, client = argo
    apps = {a.name: a for a in client.list_applications()}
    assert set(apps) >= {"payments-staging", "payments-prod", "checkout-prod"}
    prod = client.get_application("payments-prod")
    assert prod.sync_status == "OutOfSync"
    assert prod.health == "Healthy"
    assert len(prod.history) == 2
    assert prod.deployed_revision != prod.target_sha
    assert not prod.auto_sync
    assert client.get_application("payments-staging").auto_sync
    selected = sorted(a.name for a in client.list_applications(selector="app=checkout"))
    assert selected == ["checkout-prod", "checkout-staging"]
    meta = client.revision_metadata("payments-prod", prod.target_sha)
    assert meta.message == "payments: bump the image to 1.4.2"
    assert client.resource_tree("payments-prod")
    assert any(item.get("modified") for item in client.managed_resources("payments-prod"))
    every_request_fits_the_swagger(emulator)


def test_writes_sync_rollback_terminate_create_delete(argo: tuple[ArgoCDEmulator, ArgoCD]) -> None:
    emulator, client = argo
    started = client.sync("checkout-staging", prune=True)
    assert started.running
    emulator.slow("payments-prod", ticks_per_resource=100)
    client.sync("payments-prod", revision=client.get_application("payments-prod").target_sha)
    client.terminate_operation("payments-prod")
    history = client.get_application("checkout-prod").history
    with pytest.raises(Conflict, match="auto-sync"):
        client.rollback("payments-staging", 1)
    client.rollback("checkout-prod", history[0].id, dry_run=True)
    created = client.create_application(
        {
            "metadata": {"name": "env-x"},
            "spec": {
                "project": "default",
                "source": {
                    "repoURL": DEMO_REPO,
                    "path": "apps/payments/staging",
                    "targetRevision": "main",
                },
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "env-x"},
                "syncPolicy": {
                    "automated": {"prune": True},
                    "syncOptions": ["CreateNamespace=true"],
                },
            },
        }
    )
    assert created.name == "env-x"
    client.delete_application("env-x", cascade=True)
    every_request_fits_the_swagger(emulator)
    sent = [(r.method, r.path) for r in emulator.requests]
    assert ("POST", "/api/v1/applications/checkout-staging/sync") in sent
    assert ("DELETE", "/api/v1/applications/payments-prod/operation") in sent
    assert ("DELETE", "/api/v1/applications/env-x") in sent


def test_a_second_sync_while_one_runs_is_a_conflict(argo: tuple[ArgoCDEmulator, ArgoCD]) -> None:
    emulator, client = argo
    emulator.slow("checkout-staging", ticks_per_resource=50)
    client.sync("checkout-staging")
    client.get_application("checkout-staging")  # the controller picks it up
    with pytest.raises(Conflict, match="another operation is already in progress"):
        client.sync("checkout-staging")


def test_an_unknown_application_is_not_found(argo: tuple[ArgoCDEmulator, ArgoCD]) -> None:
    _, client = argo
    with pytest.raises(NotFound, match="not found"):
        client.get_application("nope")


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_forbidden_and_never_echoed(
    argo: tuple[ArgoCDEmulator, ArgoCD], status: int
) -> None:
    emulator, client = argo
    emulator.respond_with(status, times=1)
    with pytest.raises(Forbidden) as caught:
        client.get_application("payments-prod")
    assert f"HTTP {status}" in str(caught.value)
    assert emulator.token not in str(caught.value)


def test_a_wrong_token_is_forbidden(argo: tuple[ArgoCDEmulator, ArgoCD]) -> None:
    _, client = argo
    wrong = ArgoCD(client.url, "not-the-token")
    try:
        with pytest.raises(Forbidden):
            wrong.list_applications()
    finally:
        wrong.close()


def test_reads_are_retried_on_5xx_but_writes_are_not(argo: tuple[ArgoCDEmulator, ArgoCD]) -> None:
    emulator, client = argo
    emulator.respond_with(503, times=2)
    assert client.get_application("payments-prod").name == "payments-prod"
    gets = [r for r in emulator.requests if r.path == "/api/v1/applications/payments-prod"]
    assert [r.status for r in gets] == [503, 503, 200]
    emulator.respond_with(500, times=1)
    with pytest.raises(Unavailable, match="HTTP 500"):
        client.sync("checkout-staging")
    syncs = [r for r in emulator.requests if r.path.endswith("/sync")]
    assert len(syncs) == 1


def test_garbage_is_an_invalid_response(argo: tuple[ArgoCDEmulator, ArgoCD]) -> None:
    emulator, client = argo
    emulator.respond_with(200, b"<html>login</html>", times=1, content_type="text/html")
    with pytest.raises(InvalidResponse, match="not its API"):
        client.get_application("payments-prod")
    emulator.respond_with(200, b'{"metadata": 3}', times=1)
    with pytest.raises(InvalidResponse, match="expected fields"):
        client.get_application("payments-prod")


def test_an_unreachable_server_is_unavailable() -> None:
    client = ArgoCD("http://127.0.0.1:9", "t", timeout=1)
    try:
        with pytest.raises(Unavailable, match=r"cannot reach http://127\.0\.0\.1:9"):
            client.get_application("x")
    finally:
        client.close()


def test_a_server_that_does_not_answer_in_time_is_unavailable(
    argo: tuple[ArgoCDEmulator, ArgoCD],
) -> None:
    emulator, client = argo
    impatient = ArgoCD(client.url, emulator.token, timeout=0.3)
    emulator.stall(times=3)
    try:
        with pytest.raises(Unavailable, match="did not answer in time"):
            impatient.get_application("payments-prod")
    finally:
        emulator.release()
        impatient.close()


def ssl_mode(client: ArgoCD) -> ssl.VerifyMode:
    return client._client._transport._pool._ssl_context.verify_mode  # type: ignore[attr-defined]


def test_tls_is_verified_by_default_and_can_be_turned_off() -> None:
    default, lab = ArgoCD("https://argocd", "t"), ArgoCD("https://argocd", "t", verify=False)
    try:
        assert ssl_mode(default) == ssl.CERT_REQUIRED
        assert ssl_mode(lab) == ssl.CERT_NONE
    finally:
        default.close()
        lab.close()

"""Argo CD's REST API (``/api/v1``), in the words opsbot uses: applications, syncs,
rollbacks, history, resource trees and diffs.

httpx with a bearer token, TLS verification on by default (or a CA bundle), explicit
timeouts. Reads are retried on ``Unavailable`` (tenacity, three attempts); writes never
are, since a sync sent twice is two syncs. Every HTTP failure becomes one of the typed
errors in :mod:`adapters.errors` in :meth:`ArgoCD._check`, with a message a person can act
on and never the token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from adapters.errors import (
    AdapterError,
    Conflict,
    Forbidden,
    InvalidResponse,
    NotFound,
    Unavailable,
)

log = logging.getLogger(__name__)

SYSTEM = "Argo CD"
READ_ATTEMPTS = 3

_retry_reads = retry(
    retry=retry_if_exception_type(Unavailable),
    stop=stop_after_attempt(READ_ATTEMPTS),
    wait=wait_exponential(multiplier=0.2, max=2),
    reraise=True,
)


@dataclass(frozen=True)
class HistoryEntry:
    """One deployment in an application's history (``status.history[]``)."""

    id: int
    revision: str
    deployed_at: str


@dataclass(frozen=True)
class ResourceResult:
    """One resource of a sync operation (``syncResult.resources[]``)."""

    kind: str
    name: str
    namespace: str
    status: str  # Synced, SyncFailed, Pruned…
    message: str


@dataclass(frozen=True)
class Application:
    """The parts of an Argo CD Application opsbot reads."""

    name: str
    repo_url: str
    path: str
    target_revision: str
    namespace: str
    project: str
    auto_sync: bool
    sync_status: str  # Synced, OutOfSync, Unknown
    target_sha: str  # what targetRevision resolves to now (status.sync.revision)
    health: str  # Healthy, Progressing, Degraded, Missing, Unknown
    history: tuple[HistoryEntry, ...]
    operation_phase: str | None  # Running, Succeeded, Failed, Error, Terminating
    operation_message: str
    operation_revision: str
    results: tuple[ResourceResult, ...] = ()
    resource_count: int = 0
    deleting: bool = False
    operation_requested: bool = False  # an operation asked for, not yet picked up or done
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def deployed_revision(self) -> str:
        """The revision of the newest successful deployment ('' if none yet)."""
        return self.history[-1].revision if self.history else ""

    @property
    def running(self) -> bool:
        """True while an operation (a sync or rollback) is asked for or in progress.

        Argo CD sets the top-level ``operation`` when a sync is requested and removes it
        when the operation completes; until the controller picks it up, ``operationState``
        still describes the previous operation.
        """
        return self.operation_requested or self.operation_phase in ("Running", "Terminating")

    @classmethod
    def from_json(cls, data: Any) -> Application:
        """Read an ``v1alpha1Application``; anything else is an InvalidResponse."""
        try:
            metadata, spec = data["metadata"], data.get("spec") or {}
            status = data.get("status") or {}
            source = spec.get("source") or {}
            destination = spec.get("destination") or {}
            automated = (spec.get("syncPolicy") or {}).get("automated") or {}
            operation = status.get("operationState") or {}
            sync_result = operation.get("syncResult") or {}
            return cls(
                name=str(metadata["name"]),
                repo_url=str(source.get("repoURL", "")),
                path=str(source.get("path", "")),
                target_revision=str(source.get("targetRevision", "")),
                namespace=str(destination.get("namespace", "")),
                project=str(spec.get("project", "")),
                # automated: {} is on; Argo CD 3 adds enabled: false to switch it off in place
                auto_sync="automated" in (spec.get("syncPolicy") or {})
                and automated.get("enabled", True) is not False,
                sync_status=str((status.get("sync") or {}).get("status", "Unknown")),
                target_sha=str((status.get("sync") or {}).get("revision", "")),
                health=str((status.get("health") or {}).get("status", "Unknown")),
                history=tuple(
                    HistoryEntry(
                        int(h["id"]), str(h.get("revision", "")), str(h.get("deployedAt", ""))
                    )
                    for h in status.get("history") or []
                ),
                operation_phase=operation.get("phase"),
                operation_message=str(operation.get("message", "")),
                operation_revision=str(
                    sync_result.get("revision")
                    or ((operation.get("operation") or {}).get("sync") or {}).get("revision", "")
                ),
                results=tuple(
                    ResourceResult(
                        str(r.get("kind", "")),
                        str(r.get("name", "")),
                        str(r.get("namespace", "")),
                        str(r.get("status", "")),
                        str(r.get("message", "")),
                    )
                    for r in sync_result.get("resources") or []
                ),
                resource_count=len(status.get("resources") or []),
                deleting=bool(metadata.get("deletionTimestamp")),
                operation_requested=bool(data.get("operation")),
                raw=data,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise InvalidResponse(
                SYSTEM, f"an Application without the expected fields ({error})"
            ) from None


@dataclass(frozen=True)
class RevisionMetadata:
    """Who made a commit, when, and why (``v1alpha1RevisionMetadata``)."""

    author: str
    date: str
    message: str


class ArgoCD:
    """A client for one Argo CD API server."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        verify: bool | str = True,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            verify=verify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    # --- reads: retried -----------------------------------------------------------------

    @_retry_reads
    def list_applications(self, selector: str | None = None) -> list[Application]:
        """``GET /api/v1/applications`` (``?selector=`` label selector): every application."""
        params = {"selector": selector} if selector else None
        data = self._call("GET", "/api/v1/applications", params=params)
        items = data.get("items") if isinstance(data, dict) else None
        return [Application.from_json(item) for item in items or []]

    @_retry_reads
    def get_application(self, name: str) -> Application:
        """``GET /api/v1/applications/{name}``; NotFound if there is none."""
        return Application.from_json(self._call("GET", f"/api/v1/applications/{name}"))

    @_retry_reads
    def resource_tree(self, name: str) -> list[dict[str, Any]]:
        """``GET /api/v1/applications/{name}/resource-tree``: the live resource nodes."""
        data = self._call("GET", f"/api/v1/applications/{name}/resource-tree")
        return list(data.get("nodes") or []) if isinstance(data, dict) else []

    @_retry_reads
    def managed_resources(self, name: str) -> list[dict[str, Any]]:
        """``GET /api/v1/applications/{name}/managed-resources``: target vs live, per
        resource (``modified`` marks what a sync would change)."""
        data = self._call("GET", f"/api/v1/applications/{name}/managed-resources")
        return list(data.get("items") or []) if isinstance(data, dict) else []

    @_retry_reads
    def revision_metadata(self, name: str, revision: str) -> RevisionMetadata:
        """``GET /api/v1/applications/{name}/revisions/{revision}/metadata``: the commit's
        author, date and message."""
        data = self._call("GET", f"/api/v1/applications/{name}/revisions/{revision}/metadata")
        if not isinstance(data, dict):
            raise InvalidResponse(SYSTEM, "revision metadata that is not an object")
        return RevisionMetadata(
            author=str(data.get("author", "")),
            date=str(data.get("date", "")),
            message=str(data.get("message", "")),
        )

    # --- writes: never retried ----------------------------------------------------------

    def sync(
        self, name: str, *, revision: str | None = None, prune: bool = False, dry_run: bool = False
    ) -> Application:
        """``POST /api/v1/applications/{name}/sync``: start a sync (to ``revision``, else
        the app's target revision); Conflict if an operation is already running."""
        body: dict[str, Any] = {"name": name, "prune": prune, "dryRun": dry_run}
        if revision:
            body["revision"] = revision
        return Application.from_json(
            self._call("POST", f"/api/v1/applications/{name}/sync", json=body)
        )

    def rollback(
        self, name: str, history_id: int, *, prune: bool = False, dry_run: bool = False
    ) -> Application:
        """``POST /api/v1/applications/{name}/rollback`` to history entry ``history_id``;
        Conflict while auto-sync is on (Argo CD refuses)."""
        body = {"name": name, "id": history_id, "prune": prune, "dryRun": dry_run}
        return Application.from_json(
            self._call("POST", f"/api/v1/applications/{name}/rollback", json=body)
        )

    def terminate_operation(self, name: str) -> None:
        """``DELETE /api/v1/applications/{name}/operation``: stop the running operation."""
        self._call("DELETE", f"/api/v1/applications/{name}/operation")

    def create_application(
        self, application: dict[str, Any], *, upsert: bool = False
    ) -> Application:
        """``POST /api/v1/applications`` (``?upsert=``): create an Application."""
        data = self._call(
            "POST", "/api/v1/applications", json=application, params={"upsert": str(upsert).lower()}
        )
        return Application.from_json(data)

    def delete_application(self, name: str, *, cascade: bool = True) -> None:
        """``DELETE /api/v1/applications/{name}?cascade=``: delete it (and, with cascade,
        everything it deployed)."""
        self._call(
            "DELETE", f"/api/v1/applications/{name}", params={"cascade": str(cascade).lower()}
        )

    # --- the one place HTTP becomes typed errors --------------------------------------

    def _call(self, method: str, path: str, **options: Any) -> Any:
        try:
            response = self._client.request(method, path, **options)
        except httpx.TimeoutException:
            raise Unavailable(
                SYSTEM, f"{self.url} did not answer in time; is it overloaded?"
            ) from None
        except httpx.TransportError as error:
            raise Unavailable(
                SYSTEM, f"cannot reach {self.url} ({type(error).__name__}); is it up and reachable?"
            ) from None
        return self._check(response)

    def _check(self, response: httpx.Response) -> Any:
        status = response.status_code
        message = _error_message(response)
        if status in (401, 403):
            raise Forbidden(
                SYSTEM,
                f"refused opsbot's token (HTTP {status}: {message}); check the token and the "
                "account's permissions in Argo CD",
            )
        if status == 404:
            raise NotFound(SYSTEM, message or "not found")
        if status in (400, 409, 412):
            raise Conflict(SYSTEM, message or f"refused the request (HTTP {status})")
        if status >= 500:
            raise Unavailable(SYSTEM, f"failed (HTTP {status}): {message or 'no details'}")
        if status >= 300:
            raise InvalidResponse(SYSTEM, f"answered HTTP {status}, which opsbot does not expect")
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("content-type", "unknown content")
            raise InvalidResponse(
                SYSTEM, f"answered something that is not its API (HTTP {status}, {kind})"
            ) from None


def _error_message(response: httpx.Response) -> str:
    """Argo CD's own words from an error body (grpc-gateway ``{"message": …}``)."""
    if response.status_code < 400:
        return ""
    try:
        data = response.json()
    except ValueError:
        return ""
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or "")[:500]
    return ""


__all__ = [
    "AdapterError",
    "Application",
    "ArgoCD",
    "HistoryEntry",
    "ResourceResult",
    "RevisionMetadata",
]

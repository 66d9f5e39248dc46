"""A local Argo CD: the REST API (``/api/v1/applications…``) on loopback, for tests and the
sandbox.

It speaks Argo CD's API as ``../shared/specs/argocd/swagger.json`` describes it: the same
paths, grpc-gateway JSON (camelCase keys, Kubernetes timestamps, int64 as JSON integers),
errors as ``runtimeError`` (``{"error", "code", "message"}`` with the gRPC code and the HTTP
status grpc-gateway gives it), a bearer token on every ``/api`` call. Behind it sit a fake
Git (repositories, branches, tags, commits with author, date and message) and a fake
cluster (the live objects applications deployed), so sync status, diffs, resource trees,
history and rollbacks all follow from one model instead of canned answers.

Time in the model moves in *ticks*, not seconds. Each read of an application (``GET`` one,
``GET`` the list, its resource tree or managed resources) first advances that application
by one tick, then answers; :meth:`ArgoCDEmulator.tick` does the same without HTTP. A tick:

- starts a requested operation, as Argo CD's controller does (``POST …/sync`` only sets
  ``operation`` and clears ``status.operationState``, like the real server);
- applies the next resource of a running sync (one per tick, or one per N ticks after
  :meth:`~ArgoCDEmulator.slow`), in Argo CD's kind order (ConfigMap before Service before
  Deployment); after the last one the operation ends ``Succeeded`` and a history entry is
  appended; workloads it changed stay ``Progressing`` for one more tick, then ``Healthy``;
- passes an app through ``Terminating`` (one tick) to ``Failed`` ("Operation terminated"),
  or through deletion (one tick with ``metadata.deletionTimestamp`` set) to gone;
- starts an automated sync when ``spec.syncPolicy.automated`` is set and the app is out of
  sync (never again to a revision whose automated sync failed, as Argo CD does).

Errors are the ones Argo CD sends: a sync or rollback while another operation runs is
HTTP 400, code 9 (FailedPrecondition), "another operation is already in progress"; a
rollback to a history id the app does not have and creating an app that exists with a
different spec without ``upsert`` are HTTP 400, code 3 (InvalidArgument), with Argo CD's
messages. One knowing departure: terminating an operation the controller has not started
yet terminates it (Argo CD answers "No operation is in progress" during that millisecond).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request as HttpRequest
from werkzeug.wrappers import Response

from bot.clock import system_clock
from handlers.settings import ArgoCDSettings, Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "argocd-emulator-token"  # noqa: S105 - the emulator's own test token
#: Whom operations started through the API are attributed to (the token's account).
API_USER = "opsbot"
IN_CLUSTER = "https://kubernetes.default.svc"
ARGOCD_NAMESPACE = "argocd"
CASCADE_FINALIZER = "resources-finalizer.argocd.argoproj.io"
INSTANCE_LABEL = "app.kubernetes.io/instance"
DEFAULT_AUTHOR = "Alice Example <alice@example.com>"
DEFAULT_HISTORY_LIMIT = 10
#: How long a request held by :meth:`ArgoCDEmulator.stall` waits for ``release()``.
STALL_LIMIT_SECONDS = 30.0

DEMO_REPO = "https://git.example.internal/platform/deploy.git"
DEMO_ALICE = "Alice Example <alice@example.com>"
DEMO_BOB = "Bob Example <bob@example.com>"
#: A pull request's branch in the demo repository, for ``env create … rev=pr-42``.
DEMO_BRANCH = "pr-42"

ROLLOUT_MESSAGE = "Waiting for rollout to finish: 1 of 2 updated replicas are available..."
SUCCEEDED_MESSAGE = "successfully synced (all tasks run)"
RUNNING_MESSAGE = "one or more tasks are running"
TERMINATED_MESSAGE = "Operation terminated"
FAILED_PREFIX = "one or more objects failed to apply, reason: "
IN_PROGRESS_MESSAGE = "another operation is already in progress"
AUTO_SYNC_ROLLBACK_MESSAGE = "rollback cannot be initiated when auto-sync is enabled"
DELETING_MESSAGE = "application is deleting"
NO_OPERATION_MESSAGE = "Unable to terminate operation. No operation is in progress"
SPEC_DIFFERS_MESSAGE = "existing application spec is different; use upsert flag to force update"

_SHA = re.compile(r"^[0-9a-f]{40}\Z")
_SHORT_SHA = re.compile(r"^[0-9a-f]{7,39}\Z")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z"
)
_HEALTH_ORDER = ["Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown"]


class Code(IntEnum):
    """gRPC status codes, and the HTTP status grpc-gateway answers each with."""

    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    FAILED_PRECONDITION = 9
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self]


_HTTP_STATUS = {
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.FAILED_PRECONDITION: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.UNAUTHENTICATED: 401,
}


class ApiError(Exception):
    """An answer in Argo CD's error shape (``runtimeError``)."""

    def __init__(self, code: Code, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status or code.http_status

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "code": int(self.code), "message": self.message}


# --- Kubernetes kinds -------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    group: str
    version: str
    order: int  # Argo CD applies kinds in this order within a sync wave
    health: bool  # Argo CD has a health check for it
    workload: bool = False  # rolls out pods (Progressing after a change)


_KINDS: dict[str, _Kind] = {
    "Namespace": _Kind("", "v1", 0, True),
    "NetworkPolicy": _Kind("networking.k8s.io", "v1", 1, False),
    "ResourceQuota": _Kind("", "v1", 2, False),
    "LimitRange": _Kind("", "v1", 3, False),
    "PodDisruptionBudget": _Kind("policy", "v1", 4, False),
    "ServiceAccount": _Kind("", "v1", 5, False),
    "Secret": _Kind("", "v1", 6, False),
    "ConfigMap": _Kind("", "v1", 7, False),
    "PersistentVolumeClaim": _Kind("", "v1", 8, True),
    "Role": _Kind("rbac.authorization.k8s.io", "v1", 9, False),
    "RoleBinding": _Kind("rbac.authorization.k8s.io", "v1", 10, False),
    "Service": _Kind("", "v1", 11, True),
    "DaemonSet": _Kind("apps", "v1", 12, True, workload=True),
    "Deployment": _Kind("apps", "v1", 13, True, workload=True),
    "HorizontalPodAutoscaler": _Kind("autoscaling", "v2", 14, True),
    "StatefulSet": _Kind("apps", "v1", 15, True, workload=True),
    "Job": _Kind("batch", "v1", 16, True),
    "CronJob": _Kind("batch", "v1", 17, False),
    "Ingress": _Kind("networking.k8s.io", "v1", 18, True),
}

#: (server, namespace, group, kind, name): one object in the fake cluster.
_Key = tuple[str, str, str, str, str]


@dataclass(frozen=True)
class _Resource:
    kind: str
    name: str

    @property
    def info(self) -> _Kind:
        return _KINDS[self.kind]

    def ref(self) -> str:
        """kubectl's name for it: ``deployment.apps/web``."""
        group = f".{self.info.group}" if self.info.group else ""
        return f"{self.kind.lower()}{group}/{self.name}"


@dataclass
class _Live:
    """An object in the fake cluster."""

    manifest: dict[str, Any]  # as applied (what a sync compares with its target)
    uid: str
    created: datetime
    resource_version: int


# --- the fake Git -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Commit:
    sha: str
    author: str
    date: datetime
    message: str
    parent: str | None
    paths: tuple[str, ...] | None  # None: the commit touches every path


@dataclass
class _Repo:
    url: str
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    default_branch: str = "main"

    def resolve(self, revision: str) -> str:
        """The commit SHA a branch, tag, ``HEAD`` or (short) SHA names; LookupError if none."""
        wanted = revision.strip()
        if wanted in ("", "HEAD"):
            wanted = self.default_branch
        for prefix in ("refs/heads/", "refs/tags/"):
            wanted = wanted.removeprefix(prefix)
        if wanted in self.branches:
            return self.branches[wanted]
        if wanted in self.tags:
            return self.tags[wanted]
        if _SHA.match(wanted) and wanted in self.commits:
            return wanted
        if _SHORT_SHA.match(wanted):
            found = [sha for sha in self.commits if sha.startswith(wanted)]
            if len(found) == 1:
                return found[0]
        raise LookupError(f"unable to resolve '{revision}' to a commit SHA")

    def content(self, sha: str, path: str) -> str:
        """The newest commit at or before ``sha`` that changed ``path``: the manifests
        under ``path`` at ``sha`` are those of that commit."""
        path = path.strip("/")
        commit: _Commit | None = self.commits[sha]
        oldest = sha
        while commit is not None:
            if commit.paths is None or any(_overlaps(path, p) for p in commit.paths):
                return commit.sha
            oldest = commit.sha
            commit = self.commits.get(commit.parent) if commit.parent else None
        return oldest


def _overlaps(path: str, changed: str) -> bool:
    changed = changed.strip("/")
    return not path or not changed or _within(path, changed) or _within(changed, path)


def _within(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith(outer + "/")


# --- applications -----------------------------------------------------------------------


@dataclass
class _Operation:
    """A sync (or rollback, which is a sync to a history entry's revision and source)."""

    revision: str  # the resolved commit SHA
    source: dict[str, Any]
    plan: list[_Resource]  # in the order Argo CD applies them
    initiated_by: dict[str, Any]
    prune: bool = False
    dry_run: bool = False
    rollback: bool = False
    sync_options: list[str] = field(default_factory=list)
    fail_at: int | None = None  # 1-based position in ``plan`` that fails to apply
    fail_message: str | None = None
    phase: str = "Running"
    message: str = ""
    started_at: datetime | None = None  # None until the controller has picked it up
    finished_at: datetime | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    waited: int = 0  # ticks since the last resource was applied
    terminate_wait: int = 0  # ticks a Terminating operation still shows as such

    @property
    def applied(self) -> int:
        return len(self.results)


@dataclass
class _App:
    name: str
    uid: str
    created: datetime
    spec: dict[str, Any]
    resources: list[_Resource]
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    finalizers: list[str] = field(default_factory=list)
    generation: int = 1
    resource_version: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    next_history_id: int = 1
    operation: _Operation | None = None  # requested or running (``.operation``)
    op_state: _Operation | None = None  # shown as ``status.operationState``
    deleting_at: datetime | None = None
    delete_ticks: int = 0
    cascade: bool = True
    rolling: dict[_Key, int | None] = field(default_factory=dict)  # None: until op ends
    ticks_per_resource: int = 1
    fail_next: tuple[int, str | None] | None = None
    health_override: tuple[str, str] | None = None
    health_seen: tuple[str, datetime] | None = None

    @property
    def source(self) -> dict[str, Any]:
        source = self.spec.get("source")
        return source if isinstance(source, dict) else {}

    @property
    def destination(self) -> dict[str, Any]:
        destination = self.spec.get("destination")
        return destination if isinstance(destination, dict) else {}

    @property
    def namespace(self) -> str:
        return str(self.destination.get("namespace") or "")

    @property
    def server(self) -> str:
        return str(self.destination.get("server") or IN_CLUSTER)

    @property
    def automated(self) -> dict[str, Any] | None:
        policy = self.spec.get("syncPolicy")
        if not isinstance(policy, dict) or "automated" not in policy:
            return None
        automated = policy.get("automated")
        automated = automated if isinstance(automated, dict) else {}
        return None if automated.get("enabled") is False else automated

    @property
    def history_limit(self) -> int:
        limit = self.spec.get("revisionHistoryLimit")
        return limit if isinstance(limit, int) and limit >= 0 else DEFAULT_HISTORY_LIMIT

    def key(self, resource: _Resource) -> _Key:
        namespace = "" if resource.kind == "Namespace" else self.namespace
        return (self.server, namespace, resource.info.group, resource.kind, resource.name)


@dataclass
class _Comparison:
    status: str  # Synced, OutOfSync, Unknown
    revision: str
    resources: list[dict[str, Any]]
    conditions: list[dict[str, Any]]


@dataclass
class RecordedRequest:
    """One request the emulator received, and what it answered."""

    method: str
    path: str
    query: dict[str, str]  # first value of each parameter
    query_all: dict[str, list[str]]
    body: Any  # the JSON body, or None
    headers: dict[str, str]
    status: int = 0
    answer: Any = None  # the JSON answer, or None (canned non-JSON answers)


@dataclass
class _Canned:
    status: int
    body: bytes
    content_type: str
    times: int


def _default_resources(name: str) -> list[tuple[str, str]]:
    return [("Deployment", name), ("Service", name), ("ConfigMap", name)]


class ArgoCDEmulator:
    """Argo CD's application API, a fake Git and a fake cluster, behind one lock."""

    name = "argocd"

    def __init__(
        self, *, token: str = DEFAULT_TOKEN, clock: Callable[[], datetime] = system_clock
    ) -> None:
        self.token = token
        self._clock = clock
        self._changed = threading.Condition()  # the one lock; notified on every change
        self._repos: dict[str, _Repo] = {}
        self._apps: dict[str, _App] = {}
        self._live: dict[_Key, _Live] = {}
        self._requests: list[RecordedRequest] = []
        self._canned: list[_Canned] = []
        self._stalls = 0
        self._released = threading.Event()
        self._versions = itertools.count(1)
        self._serial = itertools.count(1)
        self._url_map = Map(
            [
                Rule("/api/v1/applications", endpoint="list", methods=["GET"]),
                Rule("/api/v1/applications", endpoint="create", methods=["POST"]),
                Rule("/api/v1/applications/<name>", endpoint="get", methods=["GET"]),
                Rule("/api/v1/applications/<name>", endpoint="delete", methods=["DELETE"]),
                Rule("/api/v1/applications/<name>/sync", endpoint="sync", methods=["POST"]),
                Rule("/api/v1/applications/<name>/rollback", endpoint="rollback", methods=["POST"]),
                Rule(
                    "/api/v1/applications/<name>/operation",
                    endpoint="terminate",
                    methods=["DELETE"],
                ),
                Rule("/api/v1/applications/<name>/resource-tree", endpoint="tree", methods=["GET"]),
                Rule(
                    "/api/v1/applications/<name>/managed-resources",
                    endpoint="managed",
                    methods=["GET"],
                ),
                Rule(
                    "/api/v1/applications/<name>/revisions/<revision>/metadata",
                    endpoint="metadata",
                    methods=["GET"],
                ),
            ]
        )

    # --- the Emulator protocol ----------------------------------------------------------

    def wsgi_app(self) -> WSGIApplication:
        """Argo CD's REST API."""
        return self._wsgi

    def configure(self, settings: Settings, url: str) -> tuple[Settings, dict[str, str]]:
        """``[argocd]`` aimed at ``url`` (keeping any configured timeouts and polling), and
        the token in ``ARGOCD_TOKEN``."""
        aimed = {"url": url, "token_env": "ARGOCD_TOKEN", "verify_tls": True, "ca_bundle": None}
        argocd = (
            settings.argocd.model_copy(update=aimed)
            if settings.argocd is not None
            else ArgoCDSettings(url=url, token_env="ARGOCD_TOKEN")  # noqa: S106
        )
        return settings.model_copy(update={"argocd": argocd}), {"ARGOCD_TOKEN": self.token}

    @classmethod
    def demo(cls, clock: Callable[[], datetime] = system_clock) -> ArgoCDEmulator:
        """The sandbox's Argo CD: ``payments`` and ``checkout`` in ``staging`` and ``prod``,
        deployed from one repository over the last three days. ``payments-prod`` runs the
        commit before the one ``payments-staging`` runs (auto-sync is on in
        ``payments-staging`` only); both ``checkout`` environments are in sync. Branch
        ``pr-42`` holds one more ``payments`` commit, for ephemeral environments."""
        emulator = cls(clock=clock)
        now = clock()

        def at(hours: float) -> datetime:
            return now - timedelta(hours=hours)

        first = emulator.push(
            DEMO_REPO,
            author=DEMO_ALICE,
            message="Initial manifests for payments and checkout",
            date=at(72),
        )
        for app in ("payments", "checkout"):
            for env in ("staging", "prod"):
                emulator.add_application(
                    f"{app}-{env}",
                    repo_url=DEMO_REPO,
                    path=f"apps/{app}/{env}",
                    namespace=f"{app}-{env}",
                    auto_sync=(app, env) == ("payments", "staging"),
                    deployed=False,
                    labels={"app": app, "env": env},
                    created=at(72),
                )
                emulator._deploy(f"{app}-{env}", first, at(71.5))
        probe = emulator.push(
            DEMO_REPO,
            author=DEMO_BOB,
            message="checkout: add a readiness probe",
            paths=["apps/checkout"],
            date=at(48),
        )
        emulator._deploy("checkout-staging", probe, at(47.8))
        emulator._deploy("checkout-prod", probe, at(45))
        replicas = emulator.push(
            DEMO_REPO,
            author=DEMO_ALICE,
            message="payments: run 3 replicas",
            paths=["apps/payments"],
            date=at(24),
        )
        emulator._deploy("payments-staging", replicas, at(23.9), automated=True)
        emulator._deploy("payments-prod", replicas, at(20))
        bump = emulator.push(
            DEMO_REPO,
            author=DEMO_BOB,
            message="payments: bump the image to 1.4.2",
            paths=["apps/payments"],
            date=at(2),
        )
        emulator._deploy("payments-staging", bump, at(1.9), automated=True)
        emulator.push(
            DEMO_REPO,
            branch=DEMO_BRANCH,
            author=DEMO_ALICE,
            message="payments: try a bigger connection pool",
            paths=["apps/payments"],
            date=at(1),
        )
        return emulator

    # --- control: Git -------------------------------------------------------------------

    def push(
        self,
        repo_url: str,
        *,
        branch: str = "main",
        author: str = DEFAULT_AUTHOR,
        message: str = "Update manifests",
        paths: Iterable[str] | None = None,
        date: datetime | None = None,
    ) -> str:
        """Add a commit at the head of ``branch`` (created from the default branch if new)
        and return its SHA. ``paths``: the folders it changes (default: all of them), so
        only the applications under those paths go out of sync."""
        with self._changed:
            repo = self._repos.setdefault(repo_url, _Repo(repo_url, default_branch=branch))
            parent = repo.branches.get(branch) or repo.branches.get(repo.default_branch)
            when = date or self._clock()
            seed = f"{repo_url}\n{parent}\n{author}\n{message}\n{when}\n{next(self._serial)}"
            sha = hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()
            changed = tuple(paths) if paths is not None else None
            repo.commits[sha] = _Commit(sha, author, when, message, parent, changed)
            repo.branches[branch] = sha
            self._changed.notify_all()
            return sha

    def tag(self, repo_url: str, tag: str, revision: str = "main") -> str:
        """Point ``tag`` at what ``revision`` resolves to; return that SHA."""
        with self._changed:
            repo = self._repos[repo_url]
            sha = repo.resolve(revision)
            repo.tags[tag] = sha
            return sha

    # --- control: applications ----------------------------------------------------------

    def add_application(
        self,
        name: str,
        *,
        repo_url: str,
        path: str,
        namespace: str,
        target_revision: str = "main",
        server: str = IN_CLUSTER,
        project: str = "default",
        auto_sync: bool = False,
        resources: Sequence[tuple[str, str]] | None = None,
        deployed: bool = True,
        labels: Mapping[str, str] | None = None,
        created: datetime | None = None,
    ) -> None:
        """Add an Application. ``resources`` are ``(kind, name)`` pairs (default: a
        Deployment, a Service and a ConfigMap named after the app). ``deployed``: already
        synced to what ``target_revision`` resolves to, with one history entry, Healthy
        (an unknown repository is created with a first commit on that branch)."""
        spec: dict[str, Any] = {
            "source": {"repoURL": repo_url, "path": path, "targetRevision": target_revision},
            "destination": {"server": server, "namespace": namespace},
            "project": project,
        }
        if auto_sync:
            spec["syncPolicy"] = {"automated": {"prune": True, "selfHeal": True}}
        planned = [_resource(kind, res) for kind, res in resources or _default_resources(name)]
        if not planned:
            raise ValueError("an application needs at least one resource")
        with self._changed:
            if name in self._apps:
                raise ValueError(f"application {name!r} exists already")
            when = created or self._clock()
            sha = ""
            if deployed:
                if repo_url not in self._repos:
                    branch = "main" if target_revision in ("", "HEAD") else target_revision
                    self.push(repo_url, branch=branch, message="Initial commit", date=when)
                sha = self._repos[repo_url].resolve(target_revision)  # LookupError: none
            self._apps[name] = _App(
                name=name,
                uid=self._uid("application", name),
                created=when,
                spec=spec,
                resources=planned,
                labels=dict(labels or {}),
            )
            self._touch(self._apps[name])
            if deployed:
                self._deploy(name, sha, when, automated=auto_sync)

    def set_auto_sync(self, name: str, enabled: bool) -> None:
        """Turn ``spec.syncPolicy.automated`` on (prune and self-heal) or off."""
        with self._changed:
            app = self._app(name)
            policy = app.spec.setdefault("syncPolicy", {})
            if enabled:
                policy["automated"] = {"prune": True, "selfHeal": True}
            else:
                policy.pop("automated", None)
                if not policy:
                    app.spec.pop("syncPolicy")
            app.generation += 1
            self._touch(app)

    def fail_next_sync(
        self, name: str, *, at_resource: int = 1, message: str | None = None
    ) -> None:
        """Make the next sync of ``name`` fail on its ``at_resource``-th resource (1-based,
        in apply order: ConfigMap, Service, Deployment for the default set). That resource
        ends ``SyncFailed`` with ``message`` (default: an admission error naming it) and
        the operation ``Failed`` with Argo CD's "one or more objects failed to apply"."""
        with self._changed:
            app = self._app(name)
            if not 1 <= at_resource <= len(app.resources):
                raise ValueError(f"{name} has {len(app.resources)} resources")
            app.fail_next = (at_resource, message)

    def slow(self, name: str, ticks_per_resource: int = 3) -> None:
        """Spend ``ticks_per_resource`` ticks on each resource of ``name``'s syncs (the
        running one included); 1 is the normal pace."""
        if ticks_per_resource < 1:
            raise ValueError("ticks_per_resource must be at least 1")
        with self._changed:
            self._app(name).ticks_per_resource = ticks_per_resource

    def set_health(self, name: str, status: str | None, *, message: str = "") -> None:
        """Force the health of ``name`` and its workloads (e.g. ``Degraded``) until its next
        successful sync; ``None`` goes back to the health the model computes."""
        if status is not None and status not in _HEALTH_ORDER:
            raise ValueError(f"health is one of {', '.join(_HEALTH_ORDER)}")
        with self._changed:
            app = self._app(name)
            app.health_override = (status, message) if status else None
            self._touch(app)

    def respond_with(
        self,
        status: int,
        body: bytes | None = None,
        *,
        times: int = 1,
        content_type: str = "application/json",
    ) -> None:
        """Answer the next ``times`` API requests with exactly this (before the token is
        checked, and without touching the model). ``body`` defaults to a ``runtimeError``
        fitting ``status``."""
        if body is None:
            body = json.dumps(_canned_error(status)).encode()
        with self._changed:
            self._canned.append(_Canned(status, body, content_type, times))

    def stall(self, times: int = 1) -> None:
        """Hold the next ``times`` requests until :meth:`release` (for client timeouts)."""
        with self._changed:
            self._stalls += times
            self._released.clear()

    def release(self) -> None:
        """Let stalled requests go on (they are then answered normally)."""
        self._released.set()

    def tick(self, name: str | None = None) -> None:
        """Advance ``name`` (or every application) by one tick, as a read would."""
        with self._changed:
            names = [name] if name is not None else sorted(self._apps)
            for each in names:
                self._tick(self._app(each))
            self._changed.notify_all()

    def application(self, name: str) -> dict[str, Any]:
        """The Application as ``GET`` would show it (a copy; no tick)."""
        with self._changed:
            return copy.deepcopy(self._render(self._app(name)))

    def applications(self) -> list[str]:
        """Names of the applications that exist (deleting ones included)."""
        with self._changed:
            return sorted(self._apps)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._changed:
            return list(self._requests)

    def wait_for(
        self,
        predicate: Callable[[RecordedRequest], bool] = lambda request: True,
        timeout: float = 15,
        *,
        count: int = 1,
    ) -> list[RecordedRequest]:
        """Block until ``count`` received requests match ``predicate``; return them."""

        def matching() -> list[RecordedRequest]:
            return [r for r in self._requests if predicate(r)]

        with self._changed:
            if not self._changed.wait_for(lambda: len(matching()) >= count, timeout):
                seen = [(r.method, r.path, r.status) for r in self._requests]
                raise AssertionError(f"expected {count} matching request(s); got {seen}")
            return matching()

    # --- HTTP -----------------------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = HttpRequest(environ)
        raw = request.get_data(cache=True)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._changed:
            stalled = self._stalls > 0
            if stalled:
                self._stalls -= 1
        if stalled:
            self._released.wait(STALL_LIMIT_SECONDS)
        with self._changed:
            if not request.path.startswith("/api/"):
                status, payload, content_type = 200, _UI_PAGE, "text/html; charset=utf-8"
                answer: Any = None
            elif self._canned:
                canned = self._canned[0]
                canned.times -= 1
                if canned.times <= 0:
                    self._canned.pop(0)
                status, payload, content_type = canned.status, canned.body, canned.content_type
                answer = _json_or_none(payload)
            else:
                status, answer = self._dispatch(request, environ, raw)
                payload, content_type = json.dumps(answer).encode(), "application/json"
            self._requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=request.args.to_dict(flat=True),
                    query_all=request.args.to_dict(flat=False),
                    body=body,
                    headers=dict(request.headers.items()),
                    status=status,
                    answer=answer,
                )
            )
            self._changed.notify_all()
        response = Response(payload, status=status, content_type=content_type)
        return response(environ, start_response)

    def _dispatch(
        self, request: HttpRequest, environ: WSGIEnvironment, raw: bytes
    ) -> tuple[int, Any]:
        try:
            self._authenticate(request)
            adapter = self._url_map.bind_to_environ(environ)
            try:
                endpoint, args = adapter.match()
            except MethodNotAllowed:
                raise ApiError(Code.UNIMPLEMENTED, "Method Not Allowed", http_status=405) from None
            except HTTPException:
                raise ApiError(Code.NOT_FOUND, "Not Found") from None
            handler = getattr(self, f"_api_{endpoint}")
            answer: Any = handler(request, raw, **args)
            return 200, answer
        except ApiError as error:
            return error.http_status, error.body()
        except Exception as error:  # a bug in the emulator: answer like Argo CD would
            log.exception("the Argo CD emulator failed on %s %s", request.method, request.path)
            failure = ApiError(Code.INTERNAL, f"emulator error: {type(error).__name__}: {error}")
            return failure.http_status, failure.body()

    def _authenticate(self, request: HttpRequest) -> None:
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else None
        token = token or request.cookies.get("argocd.token")
        if not token:
            raise ApiError(Code.UNAUTHENTICATED, "no session information")
        if token != self.token:
            raise ApiError(Code.UNAUTHENTICATED, "invalid session: token signature is invalid")

    # --- the endpoints ----------------------------------------------------------------

    def _api_list(self, request: HttpRequest, raw: bytes) -> dict[str, Any]:
        """``GET /api/v1/applications``: filtered by ``selector``, ``projects``/``project``,
        ``name`` and ``repo``; each listed app is advanced one tick."""
        matches = _selector(request.args.get("selector", ""))
        projects = set(request.args.getlist("projects") + request.args.getlist("project"))
        wanted_name = request.args.get("name")
        repo = request.args.get("repo")
        items = []
        for app in sorted(self._apps.values(), key=lambda a: a.name):
            if not matches(app.labels):
                continue
            if projects and app.spec.get("project") not in projects:
                continue
            if wanted_name and app.name != wanted_name:
                continue
            if repo and app.source.get("repoURL") != repo:
                continue
            if self._tick(app):
                items.append(self._render(app))
        return {"metadata": {"resourceVersion": str(self._current_version())}, "items": items}

    def _api_get(self, request: HttpRequest, raw: bytes, name: str) -> dict[str, Any]:
        return self._render(self._read(name))

    def _api_create(self, request: HttpRequest, raw: bytes) -> dict[str, Any]:
        """``POST /api/v1/applications[?upsert=true]``."""
        body = _json_body(raw)
        upsert = _query_bool(request, "upsert")
        metadata = body.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        name = str(metadata.get("name") or "")
        spec = body.get("spec")
        problem = _spec_problem(name, spec)
        if problem:
            raise ApiError(
                Code.INVALID_ARGUMENT,
                f"application spec for {name or '(unnamed)'} is invalid: InvalidSpecError: "
                + problem,
            )
        assert isinstance(spec, dict)
        spec = copy.deepcopy(spec)
        spec["project"] = spec.get("project") or "default"
        labels = _string_map(metadata.get("labels"))
        annotations = _string_map(metadata.get("annotations"))
        finalizers = [str(f) for f in metadata.get("finalizers") or []]
        existing = self._apps.get(name)
        if existing is not None:
            same = (
                existing.spec == spec
                and existing.labels == labels
                and existing.annotations == annotations
                and existing.finalizers == finalizers
            )
            if same:
                return self._render(existing)
            if not upsert:
                raise ApiError(Code.INVALID_ARGUMENT, SPEC_DIFFERS_MESSAGE)
            if existing.spec != spec:
                existing.generation += 1
            existing.spec, existing.labels = spec, labels
            existing.annotations, existing.finalizers = annotations, finalizers
            self._touch(existing)
            return self._render(existing)
        app = _App(
            name=name,
            uid=self._uid("application", name),
            created=self._clock(),
            spec=spec,
            resources=[_resource(kind, res) for kind, res in _default_resources(name)],
            labels=labels,
            annotations=annotations,
            finalizers=finalizers,
        )
        self._apps[name] = app
        self._touch(app)
        return self._render(app)

    def _api_delete(self, request: HttpRequest, raw: bytes, name: str) -> dict[str, Any]:
        """``DELETE /api/v1/applications/{name}[?cascade=false]``: the app shows
        ``deletionTimestamp`` for one tick (cascade: its resources go then), then is gone."""
        app = self._app_or_404(name)
        cascade = _query_bool(request, "cascade", default=True)
        if app.deleting_at is None:
            app.deleting_at = self._clock()
            app.delete_ticks = 1
            app.cascade = cascade
            if cascade and CASCADE_FINALIZER not in app.finalizers:
                app.finalizers.append(CASCADE_FINALIZER)
            if not cascade and CASCADE_FINALIZER in app.finalizers:
                app.finalizers.remove(CASCADE_FINALIZER)
            self._touch(app)
        return {}

    def _api_sync(self, request: HttpRequest, raw: bytes, name: str) -> dict[str, Any]:
        """``POST /api/v1/applications/{name}/sync``: request a sync; the controller starts
        it on the next tick."""
        body = _json_body(raw)
        _check_fields(body, _SYNC_FIELDS, "application.ApplicationSyncRequest")
        revision = _field(body, "revision", str, "")
        prune = _field(body, "prune", bool, False)
        dry_run = _field(body, "dryRun", bool, False)
        app = self._app_or_404(name)
        if app.deleting_at is not None:
            raise ApiError(Code.FAILED_PRECONDITION, DELETING_MESSAGE)
        target = str(app.source.get("targetRevision") or "HEAD")
        if app.automated is not None and revision and revision != target:
            raise ApiError(
                Code.FAILED_PRECONDITION,
                f"Cannot sync to {revision}: auto-sync currently set to {target}",
            )
        sha = self._resolve(app, revision or target)
        self._start(
            app,
            sha,
            prune=prune,
            dry_run=dry_run,
            initiated_by={"username": API_USER},
            source=copy.deepcopy(app.source),
        )
        return self._render(app)

    def _api_rollback(self, request: HttpRequest, raw: bytes, name: str) -> dict[str, Any]:
        """``POST /api/v1/applications/{name}/rollback``: sync to history entry ``id``'s
        revision and source."""
        body = _json_body(raw)
        _check_fields(body, _ROLLBACK_FIELDS, "application.ApplicationRollbackRequest")
        history_id = _int64(body.get("id", 0))
        prune = _field(body, "prune", bool, False)
        dry_run = _field(body, "dryRun", bool, False)
        app = self._app_or_404(name)
        if app.deleting_at is not None:
            raise ApiError(Code.FAILED_PRECONDITION, DELETING_MESSAGE)
        if app.automated is not None:
            raise ApiError(Code.FAILED_PRECONDITION, AUTO_SYNC_ROLLBACK_MESSAGE)
        entry = next((h for h in app.history if h["id"] == history_id), None)
        if entry is None:
            raise ApiError(
                Code.INVALID_ARGUMENT,
                f"application {app.name} does not have deployment with id {history_id}",
            )
        self._start(
            app,
            str(entry["revision"]),
            prune=prune,
            dry_run=dry_run,
            initiated_by={"username": API_USER},
            source=copy.deepcopy(entry["source"]),
            rollback=True,
        )
        return self._render(app)

    def _api_terminate(self, request: HttpRequest, raw: bytes, name: str) -> dict[str, Any]:
        """``DELETE /api/v1/applications/{name}/operation``: the operation shows
        ``Terminating`` for one tick, then ends ``Failed``."""
        app = self._app_or_404(name)
        operation = app.operation
        if operation is None:
            raise ApiError(Code.INVALID_ARGUMENT, NO_OPERATION_MESSAGE)
        if operation.phase != "Terminating":
            if operation.started_at is None:
                operation.started_at = self._clock()
                app.op_state = operation
            operation.phase = "Terminating"
            operation.terminate_wait = 1
            self._touch(app)
        return {}

    def _api_tree(self, request: HttpRequest, raw: bytes, name: str) -> dict[str, Any]:
        """``GET /api/v1/applications/{name}/resource-tree``: live objects and their
        children (ReplicaSets and Pods under workloads)."""
        app = self._read(name)
        nodes: list[dict[str, Any]] = []
        for resource in app.resources:
            key = app.key(resource)
            live = self._live.get(key)
            if live is None:
                continue
            node = self._node(key, live)
            health = self._resource_health(app, resource, key, live)
            if health:
                node["health"] = health
            nodes.append(node)
            if resource.info.workload:
                node["images"] = [_image_of(live.manifest)]
                nodes.extend(self._children(app, resource, live, node))
        nodes.sort(key=lambda n: (n.get("group", ""), n["kind"], n["name"]))
        return {"nodes": nodes}

    def _api_managed(self, request: HttpRequest, raw: bytes, name: str) -> dict[str, Any]:
        """``GET /api/v1/applications/{name}/managed-resources``: target and live state of
        each resource as JSON strings (``"null"`` where one is missing), ``modified`` where
        a sync would change it."""
        app = self._read(name)
        filters = {k: request.args.get(k) for k in ("namespace", "name", "group", "kind")}
        target = self._target_content(app)
        items = []
        for resource in app.resources:
            key = app.key(resource)
            if filters["name"] and resource.name != filters["name"]:
                continue
            if filters["kind"] and resource.kind != filters["kind"]:
                continue
            if filters["group"] is not None and filters["group"] != resource.info.group:
                continue
            if filters["namespace"] and key[1] != filters["namespace"]:
                continue
            live = self._live.get(key)
            wanted = _manifest(app, resource, target) if target else None
            item: dict[str, Any] = {
                "kind": resource.kind,
                "namespace": key[1],
                "name": resource.name,
                "targetState": json.dumps(wanted) if wanted else "null",
                "liveState": json.dumps(self._live_object(key, live)) if live else "null",
                "normalizedLiveState": json.dumps(live.manifest) if live else "null",
                "predictedLiveState": json.dumps(wanted) if wanted else "null",
                "modified": live is None or (wanted is not None and live.manifest != wanted),
            }
            if resource.info.group:
                item["group"] = resource.info.group
            if live:
                item["resourceVersion"] = str(live.resource_version)
            items.append(item)
        return {"items": items}

    def _api_metadata(
        self, request: HttpRequest, raw: bytes, name: str, revision: str
    ) -> dict[str, Any]:
        """``GET /api/v1/applications/{name}/revisions/{revision}/metadata``: the commit's
        author, date and message. Like Argo CD, only for a (possibly short) commit SHA."""
        app = self._app_or_404(name)
        if not (_SHA.match(revision) or _SHORT_SHA.match(revision)):
            raise ApiError(Code.UNKNOWN, f"revision {revision} must be resolved")
        repo = self._repos.get(str(app.source.get("repoURL")))
        found = [c for sha, c in (repo.commits.items() if repo else []) if sha.startswith(revision)]
        if len(found) != 1:
            raise ApiError(
                Code.UNKNOWN,
                f"failed to get revision metadata for {revision}: object not found",
            )
        commit = found[0]
        answer: dict[str, Any] = {
            "author": commit.author,
            "date": _time(commit.date),
            "message": commit.message,
        }
        tags = sorted(tag for tag, sha in (repo.tags.items() if repo else []) if sha == commit.sha)
        if tags:
            answer["tags"] = tags
        return answer

    # --- the model ----------------------------------------------------------------------

    def _app(self, name: str) -> _App:
        try:
            return self._apps[name]
        except KeyError:
            raise KeyError(f"no application {name!r}") from None

    def _app_or_404(self, name: str) -> _App:
        app = self._apps.get(name)
        if app is None:
            raise ApiError(Code.NOT_FOUND, f'applications.argoproj.io "{name}" not found')
        return app

    def _read(self, name: str) -> _App:
        """A read of ``name``: tick it, then answer (404 if the tick finished a deletion)."""
        app = self._app_or_404(name)
        if not self._tick(app):
            raise ApiError(Code.NOT_FOUND, f'applications.argoproj.io "{name}" not found')
        return app

    def _current_version(self) -> int:
        return max((a.resource_version for a in self._apps.values()), default=0)

    def _touch(self, app: _App) -> None:
        app.resource_version = next(self._versions)

    def _uid(self, *parts: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join([*parts, str(next(self._serial))])))

    def _resolve(self, app: _App, revision: str) -> str:
        repo = self._repos.get(str(app.source.get("repoURL")))
        if repo is None:
            raise ApiError(
                Code.FAILED_PRECONDITION,
                f"repository not found: {app.source.get('repoURL')}",
            )
        try:
            return repo.resolve(revision)
        except LookupError as error:
            raise ApiError(Code.FAILED_PRECONDITION, str(error)) from None

    def _target_content(self, app: _App, sha: str | None = None) -> str | None:
        """The commit whose manifests the app's path holds at ``sha`` (default: what
        ``targetRevision`` resolves to now); None if the repo or revision is unknown."""
        repo = self._repos.get(str(app.source.get("repoURL")))
        if repo is None:
            return None
        try:
            resolved = sha or repo.resolve(str(app.source.get("targetRevision") or "HEAD"))
        except LookupError:
            return None
        return repo.content(resolved, str(app.source.get("path") or ""))

    def _start(
        self,
        app: _App,
        sha: str,
        *,
        prune: bool,
        dry_run: bool,
        initiated_by: dict[str, Any],
        source: dict[str, Any],
        rollback: bool = False,
    ) -> None:
        if app.operation is not None:
            raise ApiError(Code.FAILED_PRECONDITION, IN_PROGRESS_MESSAGE)
        fail_at, fail_message = app.fail_next or (None, None)
        app.fail_next = None
        policy = app.spec.get("syncPolicy") if isinstance(app.spec.get("syncPolicy"), dict) else {}
        app.operation = _Operation(
            revision=sha,
            source=source,
            plan=sorted(app.resources, key=lambda r: (r.info.order, r.name)),
            initiated_by=initiated_by,
            prune=prune,
            dry_run=dry_run,
            rollback=rollback,
            sync_options=[str(o) for o in (policy or {}).get("syncOptions") or []],
            fail_at=fail_at,
            fail_message=fail_message,
        )
        app.op_state = None  # as Argo CD's SetAppOperation does
        self._touch(app)

    def _tick(self, app: _App) -> bool:
        """One step of the controller for ``app``; False if the app is now gone."""
        now = self._clock()
        if app.deleting_at is not None:
            if app.delete_ticks > 0:
                app.delete_ticks -= 1
                if app.cascade:
                    for resource in app.resources:
                        self._live.pop(app.key(resource), None)
                self._touch(app)
                return True
            del self._apps[app.name]
            return False
        for key, left in list(app.rolling.items()):
            if left is not None:
                if left <= 1:
                    del app.rolling[key]
                else:
                    app.rolling[key] = left - 1
                self._touch(app)
        if app.operation is None:
            self._auto_sync(app)
        operation = app.operation
        if operation is not None:
            self._advance(app, operation, now)
        return True

    def _auto_sync(self, app: _App) -> None:
        automated = app.automated
        if automated is None:
            return
        comparison = self._compare(app)
        if comparison.status != "OutOfSync":
            return
        last = app.op_state
        if (
            last is not None
            and last.revision == comparison.revision
            and last.phase in ("Failed", "Error")
            and "automated" in last.initiated_by
        ):
            return  # Argo CD never retries an automated sync to a revision that failed
        self._start(
            app,
            comparison.revision,
            prune=bool(automated.get("prune")),
            dry_run=False,
            initiated_by={"automated": True},
            source=copy.deepcopy(app.source),
        )

    def _advance(self, app: _App, operation: _Operation, now: datetime) -> None:
        self._touch(app)
        if operation.started_at is None:
            operation.started_at = now
            operation.message = RUNNING_MESSAGE
            app.op_state = operation
        if operation.phase == "Terminating":
            if operation.terminate_wait > 0:
                operation.terminate_wait -= 1
            else:
                self._finish(app, operation, "Failed", TERMINATED_MESSAGE, now)
            return
        operation.waited += 1
        if operation.applied < len(operation.plan) and operation.waited >= app.ticks_per_resource:
            operation.waited = 0
            position = operation.applied + 1
            resource = operation.plan[operation.applied]
            if operation.fail_at == position:
                message = operation.fail_message or _admission_error(resource)
                operation.results.append(
                    self._result(app, resource, "SyncFailed", "Failed", message)
                )
                self._finish(app, operation, "Failed", FAILED_PREFIX + message, now)
                return
            self._apply(app, operation, resource, now)
        if operation.applied == len(operation.plan):
            self._finish(app, operation, "Succeeded", SUCCEEDED_MESSAGE, now)

    def _apply(self, app: _App, operation: _Operation, resource: _Resource, now: datetime) -> None:
        key = app.key(resource)
        repo = self._repos[str(operation.source.get("repoURL"))]
        content = repo.content(operation.revision, str(operation.source.get("path") or ""))
        wanted = _manifest(app, resource, content)
        live = self._live.get(key)
        if live is None:
            verb = "created"
        else:
            verb = "configured" if live.manifest != wanted else "unchanged"
        if not operation.dry_run:
            if live is None:
                self._live[key] = _Live(wanted, self._uid(*key), now, next(self._versions))
            elif verb == "configured":
                live.manifest = wanted
                live.resource_version = next(self._versions)
            if resource.info.workload and verb != "unchanged":
                app.rolling[key] = None
        message = f"{resource.ref()} {verb}" + (" (dry run)" if operation.dry_run else "")
        operation.results.append(self._result(app, resource, "Synced", "Running", message))

    def _result(
        self, app: _App, resource: _Resource, status: str, hook_phase: str, message: str
    ) -> dict[str, Any]:
        return {  # the CRD requires group, even the core group's ""
            "group": resource.info.group,
            "version": resource.info.version,
            "kind": resource.kind,
            "namespace": app.key(resource)[1],
            "name": resource.name,
            "status": status,
            "message": message,
            "hookPhase": hook_phase,
            "syncPhase": "Sync",
        }

    def _finish(
        self, app: _App, operation: _Operation, phase: str, message: str, now: datetime
    ) -> None:
        operation.phase, operation.message, operation.finished_at = phase, message, now
        app.operation = None
        for key, left in app.rolling.items():
            if left is None:
                app.rolling[key] = 1
        if phase == "Succeeded" and not operation.dry_run:
            app.health_override = None
            self._record_history(app, operation, now)
        self._touch(app)

    def _record_history(self, app: _App, operation: _Operation, now: datetime) -> None:
        entry: dict[str, Any] = {
            "id": app.next_history_id,
            "revision": operation.revision,
            "deployStartedAt": _time(operation.started_at or now),
            "deployedAt": _time(now),
            "source": copy.deepcopy(operation.source),
            "initiatedBy": dict(operation.initiated_by),
        }
        app.next_history_id += 1
        app.history.append(entry)
        limit = app.history_limit
        app.history = app.history[-limit:] if limit else []

    def _deploy(self, name: str, sha: str, when: datetime, *, automated: bool = False) -> None:
        """Make ``name`` run ``sha`` at once, as if a sync had finished at ``when``."""
        with self._changed:
            app = self._app(name)
            initiated: dict[str, Any] = {"automated": True} if automated else {"username": "admin"}
            self._start(
                app,
                sha,
                prune=False,
                dry_run=False,
                initiated_by=initiated,
                source=copy.deepcopy(app.source),
            )
            operation = app.operation
            assert operation is not None
            operation.started_at, operation.message = when, RUNNING_MESSAGE
            app.op_state = operation
            for resource in operation.plan:
                self._apply(app, operation, resource, when)
            self._finish(app, operation, "Succeeded", SUCCEEDED_MESSAGE, when)
            app.rolling.clear()
            self._changed.notify_all()

    # --- what reads show ------------------------------------------------------------------

    def _compare(self, app: _App) -> _Comparison:
        repo_url = str(app.source.get("repoURL"))
        repo = self._repos.get(repo_url)
        revision, problem = "", ""
        if repo is None:
            problem = f"repository not found: {repo_url}"
        else:
            try:
                revision = repo.resolve(str(app.source.get("targetRevision") or "HEAD"))
            except LookupError as error:
                problem = str(error)
        path = str(app.source.get("path") or "")
        content = repo.content(revision, path) if repo is not None and revision else ""
        resources = []
        in_sync = True
        for resource in app.resources:
            key = app.key(resource)
            live = self._live.get(key)
            if content:
                synced = live is not None and live.manifest == _manifest(app, resource, content)
                status = "Synced" if synced else "OutOfSync"
                in_sync = in_sync and synced
            else:
                status = "Unknown"
            entry: dict[str, Any] = {
                "version": resource.info.version,
                "kind": resource.kind,
                "namespace": key[1],
                "name": resource.name,
                "status": status,
            }
            if resource.info.group:
                entry["group"] = resource.info.group
            health = self._resource_health(app, resource, key, live)
            if health:
                entry["health"] = health
            resources.append(entry)
        conditions = []
        if problem:
            conditions.append(
                {
                    "type": "ComparisonError",
                    "message": f"Failed to load target state: {problem}",
                    "lastTransitionTime": _time(self._clock()),
                }
            )
            sync_status = "Unknown"
        else:
            sync_status = "Synced" if in_sync else "OutOfSync"
        return _Comparison(sync_status, revision, resources, conditions)

    def _resource_health(
        self, app: _App, resource: _Resource, key: _Key, live: _Live | None
    ) -> dict[str, Any] | None:
        if not resource.info.health:
            return None
        if live is None:
            return {"status": "Missing"}
        if resource.info.workload and app.health_override:
            status, message = app.health_override
            return {"status": status, "message": message} if message else {"status": status}
        if resource.info.workload and key in app.rolling:
            return {
                "status": "Progressing",
                "message": ROLLOUT_MESSAGE,
            }
        return {"status": "Healthy"}

    def _render(self, app: _App) -> dict[str, Any]:
        comparison = self._compare(app)
        health = self._app_health(app, comparison)
        status: dict[str, Any] = {
            "resources": comparison.resources,
            "sync": {
                "status": comparison.status,
                "comparedTo": {
                    "source": copy.deepcopy(app.source),
                    "destination": copy.deepcopy(app.destination),
                },
            },
            "health": health,
            "history": copy.deepcopy(app.history),
            "reconciledAt": _time(self._clock()),
            "sourceType": "Directory",
            "summary": self._summary(app),
            "controllerNamespace": ARGOCD_NAMESPACE,
        }
        if comparison.revision:
            status["sync"]["revision"] = comparison.revision
        if comparison.conditions:
            status["conditions"] = comparison.conditions
        if not app.history:
            del status["history"]
        if app.op_state is not None:
            status["operationState"] = self._operation_state(app.op_state)
        metadata: dict[str, Any] = {
            "name": app.name,
            "namespace": ARGOCD_NAMESPACE,
            "uid": app.uid,
            "resourceVersion": str(app.resource_version),
            "generation": app.generation,
            "creationTimestamp": _time(app.created),
        }
        if app.labels:
            metadata["labels"] = dict(app.labels)
        if app.annotations:
            metadata["annotations"] = dict(app.annotations)
        if app.finalizers:
            metadata["finalizers"] = list(app.finalizers)
        if app.deleting_at is not None:
            metadata["deletionTimestamp"] = _time(app.deleting_at)
            metadata["deletionGracePeriodSeconds"] = 0
        rendered: dict[str, Any] = {
            "metadata": metadata,
            "spec": copy.deepcopy(app.spec),
            "status": status,
        }
        if app.operation is not None:
            rendered["operation"] = self._operation(app.operation)
        return rendered

    def _app_health(self, app: _App, comparison: _Comparison) -> dict[str, Any]:
        if app.health_override:
            status, message = app.health_override
        else:
            statuses = [r["health"]["status"] for r in comparison.resources if r.get("health")]
            status = max(statuses, key=_HEALTH_ORDER.index, default="Healthy")
            message = ""
        now = self._clock()
        if app.health_seen is None or app.health_seen[0] != status:
            app.health_seen = (status, now)
        health: dict[str, Any] = {
            "status": status,
            "lastTransitionTime": _time(app.health_seen[1]),
        }
        if message:
            health["message"] = message
        return health

    def _summary(self, app: _App) -> dict[str, Any]:
        images = sorted(
            {
                _image_of(live.manifest)
                for resource in app.resources
                if resource.info.workload and (live := self._live.get(app.key(resource)))
            }
        )
        return {"images": images} if images else {}

    def _operation(self, operation: _Operation) -> dict[str, Any]:
        sync: dict[str, Any] = {"revision": operation.revision}
        if operation.prune:
            sync["prune"] = True
        if operation.dry_run:
            sync["dryRun"] = True
        if operation.sync_options:
            sync["syncOptions"] = list(operation.sync_options)
        if operation.rollback:
            sync["source"] = copy.deepcopy(operation.source)
            sync["syncStrategy"] = {"apply": {}}
        return {"sync": sync, "initiatedBy": dict(operation.initiated_by), "retry": {}}

    def _operation_state(self, operation: _Operation) -> dict[str, Any]:
        state: dict[str, Any] = {
            "operation": self._operation(operation),
            "phase": operation.phase,
            "message": operation.message,
            "startedAt": _time(operation.started_at or self._clock()),
            "syncResult": {
                "resources": copy.deepcopy(operation.results),
                "revision": operation.revision,
                "source": copy.deepcopy(operation.source),
            },
        }
        if operation.finished_at is not None:
            state["finishedAt"] = _time(operation.finished_at)
        return state

    def _live_object(self, key: _Key, live: _Live) -> dict[str, Any]:
        """The object as the cluster shows it: what was applied plus server fields."""
        shown = copy.deepcopy(live.manifest)
        shown["metadata"].update(
            {
                "uid": live.uid,
                "resourceVersion": str(live.resource_version),
                "creationTimestamp": _time(live.created),
            }
        )
        if key[3] in ("Deployment", "StatefulSet"):
            replicas = shown["spec"]["replicas"]
            shown["status"] = {
                "replicas": replicas,
                "readyReplicas": replicas,
                "updatedReplicas": replicas,
                "availableReplicas": replicas,
                "observedGeneration": 1,
            }
        return shown

    def _node(self, key: _Key, live: _Live) -> dict[str, Any]:
        _, namespace, group, kind, name = key
        node: dict[str, Any] = {
            "version": _KINDS[kind].version,
            "kind": kind,
            "name": name,
            "uid": live.uid,
            "resourceVersion": str(live.resource_version),
            "createdAt": _time(live.created),
        }
        if group:
            node["group"] = group
        if namespace:
            node["namespace"] = namespace
        return node

    def _children(
        self, app: _App, resource: _Resource, live: _Live, parent: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """A workload's current ReplicaSet and its two Pods."""
        image = _image_of(live.manifest)
        digest = hashlib.sha1(image.encode(), usedforsecurity=False).hexdigest()
        rolling = app.key(resource) in app.rolling
        health = {"status": "Progressing" if rolling else "Healthy"}
        namespace = app.key(resource)[1]
        replica_set = f"{resource.name}-{digest[:10]}"
        children: list[dict[str, Any]] = [
            {
                "group": "apps",
                "version": "v1",
                "kind": "ReplicaSet",
                "namespace": namespace,
                "name": replica_set,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{live.uid}/{replica_set}")),
                "parentRefs": [_ref(parent)],
                "health": dict(health),
                "info": [{"name": "Revision", "value": f"Rev:{live.resource_version}"}],
                "createdAt": _time(live.created),
            }
        ]
        for index in range(2):
            pod = f"{replica_set}-{digest[10 + 5 * index : 15 + 5 * index]}"
            children.append(
                {
                    "version": "v1",
                    "kind": "Pod",
                    "namespace": namespace,
                    "name": pod,
                    "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{live.uid}/{pod}")),
                    "parentRefs": [_ref(children[0])],
                    "health": {"status": "Progressing" if rolling and index else "Healthy"},
                    "images": [image],
                    "info": [
                        {
                            "name": "Status Reason",
                            "value": "ContainerCreating" if rolling and index else "Running",
                        },
                        {"name": "Containers", "value": "0/1" if rolling and index else "1/1"},
                    ],
                    "createdAt": _time(live.created),
                }
            )
        return children


# --- helpers ------------------------------------------------------------------------------

_UI_PAGE = b"<!doctype html><html><head><title>Argo CD</title></head><body></body></html>"

_SYNC_FIELDS = {
    "name",
    "revision",
    "dryRun",
    "prune",
    "strategy",
    "resources",
    "manifests",
    "infos",
    "retryStrategy",
    "syncOptions",
    "appNamespace",
    "project",
    "sourcePositions",
    "revisions",
}
_ROLLBACK_FIELDS = {"name", "id", "dryRun", "prune", "appNamespace", "project"}


def _resource(kind: str, name: str) -> _Resource:
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(sorted(_KINDS))}")
    return _Resource(kind, name)


def _image(name: str, content: str) -> str:
    return f"registry.example.internal/{name}:{content[:7]}"


def _image_of(manifest: Mapping[str, Any]) -> str:
    return str(manifest["spec"]["template"]["spec"]["containers"][0]["image"])


def _manifest(app: _App, resource: _Resource, content: str) -> dict[str, Any]:
    """The manifest the repository holds for ``resource`` at commit ``content``: workload
    images and ConfigMap data carry the commit, so each change of the path changes them."""
    info = resource.info
    labels = {"app.kubernetes.io/name": resource.name, INSTANCE_LABEL: app.name}
    metadata: dict[str, Any] = {"name": resource.name, "labels": labels}
    if resource.kind != "Namespace":
        metadata["namespace"] = app.namespace
    manifest: dict[str, Any] = {
        "apiVersion": f"{info.group}/{info.version}" if info.group else info.version,
        "kind": resource.kind,
        "metadata": metadata,
    }
    selector = {"app.kubernetes.io/name": resource.name}
    if info.workload:
        manifest["spec"] = {
            "replicas": 2,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "containers": [
                        {
                            "name": resource.name,
                            "image": _image(resource.name, content),
                            "ports": [{"containerPort": 8080}],
                        }
                    ]
                },
            },
        }
    elif resource.kind == "ConfigMap":
        manifest["data"] = {"GIT_COMMIT": content}
    elif resource.kind == "Service":
        manifest["spec"] = {"selector": selector, "ports": [{"port": 80, "targetPort": 8080}]}
    return manifest


def _admission_error(resource: _Resource) -> str:
    group = f".{resource.info.group}" if resource.info.group else ""
    return (
        f'{resource.kind}{group} "{resource.name}" is invalid: '
        'metadata.labels: Invalid value: "release/1.4": a valid label must be an empty string '
        "or consist of alphanumeric characters, '-', '_' or '.'"
    )


def _ref(node: Mapping[str, Any]) -> dict[str, Any]:
    return {k: node[k] for k in ("group", "kind", "namespace", "name", "uid") if k in node}


def _time(when: datetime) -> str:
    """A Kubernetes timestamp (RFC 3339, seconds, UTC)."""
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_or_none(payload: bytes) -> Any:
    try:
        return json.loads(payload) if payload else None
    except ValueError:
        return None


def _json_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise ApiError(Code.INVALID_ARGUMENT, f"invalid JSON body: {error}") from None
    if not isinstance(body, dict):
        raise ApiError(Code.INVALID_ARGUMENT, "the request body must be a JSON object")
    return body


def _check_fields(body: Mapping[str, Any], known: set[str], message_type: str) -> None:
    """grpc-gateway rejects fields the protobuf message does not have."""
    for key in body:
        if key not in known:
            raise ApiError(Code.INVALID_ARGUMENT, f'unknown field "{key}" in {message_type}')


def _field(body: Mapping[str, Any], key: str, kind: type[Any], default: Any) -> Any:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ApiError(
            Code.INVALID_ARGUMENT,
            f"json: cannot unmarshal {type(value).__name__} into field {key} "
            f"of type {kind.__name__}",
        )
    return value


def _int64(value: Any) -> int:
    """An int64 as protobuf's JSON accepts it: a number or a decimal string."""
    if isinstance(value, bool):
        raise ApiError(Code.INVALID_ARGUMENT, "json: cannot unmarshal bool into field id")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    raise ApiError(Code.INVALID_ARGUMENT, f"json: cannot unmarshal {value!r} into field id")


def _query_bool(request: HttpRequest, name: str, *, default: bool = False) -> bool:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ApiError(
        Code.INVALID_ARGUMENT,
        f'strconv.ParseBool: parsing "{value}": invalid syntax (parameter {name})',
    )


def _string_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _spec_problem(name: str, spec: Any) -> str:
    if not name:
        return "metadata.name is required"
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return f"metadata.name {name!r} is not a valid DNS-1123 subdomain"
    if not isinstance(spec, dict):
        return "spec is required"
    source = spec.get("source")
    if not isinstance(source, dict) or not source.get("repoURL"):
        return "spec.source.repoURL is required"
    destination = spec.get("destination")
    if not isinstance(destination, dict) or not (
        destination.get("server") or destination.get("name")
    ):
        return "spec.destination.server or spec.destination.name is required"
    if not destination.get("namespace"):
        return "spec.destination.namespace is required"
    return ""


_SELECTOR_TERM = re.compile(
    r"^(?P<not>!)?(?P<key>[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?)"
    r"(?:(?P<op>==|=|!=)(?P<value>([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?))?$"
)


def _selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """A Kubernetes equality-based label selector: ``k=v``, ``k==v``, ``k!=v``, ``k``,
    ``!k``, joined by commas (all must hold)."""
    tests: list[Callable[[Mapping[str, str]], bool]] = []
    for term in (t.strip() for t in text.split(",")) if text.strip() else ():
        match = _SELECTOR_TERM.fullmatch(term.replace(" ", ""))
        if not match or (match["not"] and match["op"]):
            raise ApiError(
                Code.INVALID_ARGUMENT, f"error parsing selector {text!r}: unable to parse {term!r}"
            )
        tests.append(_requirement(match["key"], match["op"], match["value"] or "", match["not"]))
    return lambda labels: all(test(labels) for test in tests)


def _requirement(
    key: str, op: str | None, value: str, negated: str | None
) -> Callable[[Mapping[str, str]], bool]:
    def holds(labels: Mapping[str, str]) -> bool:
        if negated:
            return key not in labels
        if op is None:
            return key in labels
        if op == "!=":
            return labels.get(key) != value
        return labels.get(key) == value

    return holds


def _canned_error(status: int) -> dict[str, Any]:
    code, message = {
        401: (Code.UNAUTHENTICATED, "invalid session: token has invalid claims: token is expired"),
        403: (Code.PERMISSION_DENIED, "permission denied"),
        404: (Code.NOT_FOUND, "Not Found"),
        503: (Code.UNAVAILABLE, "the Argo CD API server is unavailable"),
    }.get(status, (Code.INTERNAL, "emulated failure"))
    return {"error": message, "code": int(code), "message": message}

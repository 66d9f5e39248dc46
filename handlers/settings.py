"""The typed configuration tree (``opsbot.toml``), frozen once loaded.

It lives here, not in ``bot``, because handlers read it (apps, environments, clusters)
and handlers may not import ``bot``. ``bot.config`` loads the file, turns validation
errors into ``FILE: section.key: message`` lines and checks cross-references.

Each field's docstring is its documentation: unit, default and when to change it.
Secrets never appear here: ``*_env`` keys name the environment variable that holds one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from handlers.durations import parse_duration


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, timedelta):
        return value
    raise ValueError('write a duration as a string with a unit, e.g. "30s", "15m", "1h" or "7d"')


Duration = Annotated[timedelta, BeforeValidator(_duration)]
EnvVarName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
ChannelId = Annotated[str, Field(pattern=r"^[CGD][A-Z0-9]{2,}$")]
HttpUrl = Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")]


class Section(BaseModel):
    """Base of every config section: frozen, and unknown keys are errors."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", use_attribute_docstrings=True, str_strip_whitespace=True
    )


class SlackSettings(Section):
    """``[slack]``: how opsbot appears in Slack."""

    command: str = Field("/ops", pattern=r"^/[a-z0-9_-]{1,31}$")
    """The umbrella slash command. Must match the Slack app (``opsbot slack-manifest``)."""
    alerts_channel: ChannelId | None = None
    """Channel ID for scheduled notices and alerts. Unset: notices go to the requester."""
    approvals_channel: ChannelId | None = None
    """Channel ID for approval requests. Unset: the channel where the command was typed."""


class StoreSettings(Section):
    """``[store]``: where opsbot keeps its state."""

    path: str = "opsbot.db"
    """SQLite file; a relative path is taken from the config file's folder. Keep it on a
    persistent volume: approvals, environments and the audit trail live there."""


class ServerSettings(Section):
    """``[server]``: the process itself."""

    workers: int = Field(16, ge=1, le=256)
    """Threads that run commands after the ack. Each slow command (a sync being watched)
    holds one; raise it if many people deploy at once. Bolt's default of 5 is too small."""
    drain_timeout: Duration = timedelta(seconds=25)
    """On SIGTERM, how long accepted commands may take to finish before they are dropped
    (and logged). Keep it under the pod's terminationGracePeriodSeconds (default 30 s)."""
    lock_lease: Duration = timedelta(hours=1)
    """How long a command may hold a lock on its target; a lock whose holder died is
    released when the process is gone or, on another host, after this long."""
    handler_modules: list[str] = []
    """Extra importable modules whose ``@command`` handlers are registered beside the
    built-in ones: your team's own commands. They pass the same governance."""


class EnvironmentSettings(Section):
    """``[environments.NAME]``: a place apps are deployed to."""

    cluster: str
    """The ``[clusters.NAME]`` this environment runs on."""
    approvals: int = Field(0, ge=0, le=10)
    """Distinct approvers a mutating command needs here; 0 runs at once."""
    approval_ttl: Duration = timedelta(hours=1)
    """How long an approval request stays open before it expires."""


class ClusterSettings(Section):
    """``[clusters.NAME]``: how to reach a Kubernetes API."""

    context: str | None = None
    """kubeconfig context to use (from ``kubeconfig`` or the default kubeconfig)."""
    in_cluster: bool = False
    """Use the service account opsbot runs as (opsbot deployed in this cluster)."""
    kubeconfig: str | None = None
    """kubeconfig file; default ``$KUBECONFIG`` or ``~/.kube/config``."""

    @model_validator(mode="after")
    def _one_way_in(self) -> ClusterSettings:
        if bool(self.context) == self.in_cluster:
            raise ValueError('set either context = "NAME" or in_cluster = true (exactly one)')
        return self


class AppSettings(Section):
    """``[apps.NAME]``: an application opsbot may deploy."""

    argocd_app: str = "{app}-{env}"
    """Argo CD Application name; ``{app}`` and ``{env}`` are filled in."""
    environments: list[str] | None = None
    """Environments this app runs in, in promotion order; unset: every environment."""

    @model_validator(mode="after")
    def _known_placeholders(self) -> AppSettings:
        try:
            self.argocd_app.format(app="a", env="e")
        except (KeyError, IndexError, ValueError):
            raise ValueError("argocd_app may only use the placeholders {app} and {env}") from None
        return self


class ArgoCDSettings(Section):
    """``[argocd]``: the Argo CD API server."""

    url: HttpUrl
    """Base URL of the Argo CD server, e.g. https://argocd.example.internal."""
    token_env: EnvVarName = "ARGOCD_TOKEN"
    """Environment variable holding an Argo CD API token (a project-scoped account's)."""
    verify_tls: bool = True
    """Check the server's certificate. Turn off only for a lab; prefer ``ca_bundle``."""
    ca_bundle: str | None = None
    """PEM file of the CA that signed the server's certificate."""
    timeout: Duration = timedelta(seconds=10)
    """Per-request timeout."""
    poll_interval: Duration = timedelta(seconds=2)
    """How often a running sync is checked to update its progress card."""
    sync_timeout: Duration = timedelta(minutes=10)
    """How long a deploy's progress is followed before opsbot says it is still running."""


class EphemeralSettings(Section):
    """``[ephemeral]``: throw-away environments (``env create``, one per pull request)."""

    app: str
    """The ``[apps.NAME]`` an environment runs when ``env create`` names none."""
    repo_url: str
    """Git repository holding the manifests."""
    path: str = "apps/{app}/preview"
    """Path in the repository; ``{app}`` and ``{name}`` are filled in."""
    argocd_app: str = "env-{name}"
    """Argo CD Application name; ``{name}`` is the environment's name."""
    namespace: str = "env-{name}"
    """Namespace it deploys to (created by Argo CD)."""
    project: str = "default"
    """Argo CD project the Application belongs to."""
    destination_server: str = "https://kubernetes.default.svc"
    """Kubernetes API of the cluster the environments run on."""
    default_revision: str = "main"
    """Branch deployed when ``rev=`` is not given."""
    default_ttl: Duration = timedelta(hours=24)
    """Lifetime when ``ttl=`` is not given."""
    max_ttl: Duration = timedelta(days=7)
    """Longest lifetime one ``create`` or ``extend`` can give (longer asks are capped)."""
    warn_before: Duration = timedelta(hours=1)
    """How long before expiry the owners are warned, with Extend and Destroy buttons."""
    per_user: int = Field(3, ge=1)
    """Environments one person may own at once."""
    total: int = Field(50, ge=1)
    """Environments that may exist at once, in all."""
    channel: ChannelId | None = None
    """Where notices about environments created by webhooks go (else the alerts channel)."""


class GitHubSettings(Section):
    """``[github]``: the pull request webhook (``POST /hooks/github``)."""

    webhook_secret_env: EnvVarName = "GITHUB_WEBHOOK_SECRET"
    """Environment variable holding the webhook's secret (X-Hub-Signature-256)."""
    actor: str = Field("U0GITHUB", pattern=r"^[UW][A-Z0-9]{2,}$")
    """The user ID webhook-made commands run as; grant it ``env:*`` in [rbac]."""
    label: str | None = None
    """Only pull requests with this label get an environment (None: every opened one)."""
    name: str = "pr-{number}"
    """Environment name for a pull request; ``{number}`` is filled in."""
    app: str | None = None
    """The app to deploy (default: ``[ephemeral].app``)."""
    ttl: Duration = timedelta(hours=72)
    """Lifetime of a pull request's environment (capped by ``[ephemeral].max_ttl``)."""
    users: dict[str, str] = {}
    """GitHub login → Slack user ID: who owns (and is notified about) their environment."""
    port: int | None = Field(None, ge=1, le=65535)
    """Socket Mode has no public port of its own: serve the webhook here (None: --port)."""


class VaultSettings(Section):
    """``[vault]``: the Vault server holding secrets opsbot rotates."""

    url: HttpUrl
    """Base URL of Vault, e.g. https://vault.example.internal:8200."""
    auth: Literal["token", "kubernetes", "approle"] = "token"
    """How opsbot logs in: a token, its Kubernetes service account, or AppRole."""
    token_env: EnvVarName = "VAULT_TOKEN"
    """Environment variable holding the token (``auth = "token"``)."""
    role: str | None = None
    """Vault role for ``auth = "kubernetes"``."""
    role_id_env: EnvVarName | None = None
    """Environment variable holding the AppRole role ID (``auth = "approle"``)."""
    secret_id_env: EnvVarName | None = None
    """Environment variable holding the AppRole secret ID (``auth = "approle"``)."""
    mount: str = "secret"
    """KV v2 mount point of the secrets opsbot manages."""
    namespace: str | None = None
    """Vault Enterprise namespace."""
    verify_tls: bool = True
    """Check the server's certificate."""
    ca_bundle: str | None = None
    """PEM file of the CA that signed Vault's certificate."""

    @model_validator(mode="after")
    def _auth_needs(self) -> VaultSettings:
        if self.auth == "kubernetes" and not self.role:
            raise ValueError('auth = "kubernetes" needs role = "NAME"')
        if self.auth == "approle" and not (self.role_id_env and self.secret_id_env):
            raise ValueError('auth = "approle" needs role_id_env and secret_id_env')
        return self


class PrometheusSettings(Section):
    """``[prometheus]``: the metrics source for anomaly alerts and canary analysis."""

    url: HttpUrl
    """Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090."""
    timeout: Duration = timedelta(seconds=10)
    """Per-query timeout."""


class RoleSettings(Section):
    """``[rbac.roles.NAME]``: what a role may do."""

    allow: list[str] = []
    """Permission patterns ``VERB[.SUBVERB]:ENV`` with ``*`` wildcards, e.g. ``deploy:*``."""


class RbacSettings(Section):
    """``[rbac]``: who may do what. Deny by default."""

    roles: dict[str, RoleSettings] = {}
    """Named roles."""
    users: dict[str, list[str]] = {}
    """Slack user ID (or ``*`` for everyone) → role names."""
    groups: dict[str, list[str]] = {}
    """Slack user group ID → role names."""
    admins: list[str] = []
    """Slack user IDs of the people who maintain opsbot's roles; refusals name them."""


class SandboxSettings(Section):
    """``[sandbox]``: the local chat page (``opsbot serve --mode sandbox``)."""

    users: dict[str, str] = {}
    """Slack-style user ID → display name, offered in the page's "act as" picker."""
    channel: ChannelId = "C0SANDBOX"
    """The channel ID the page pretends to be."""
    groups: dict[str, list[str]] = {}
    """Slack-style user group ID → member user IDs, standing in for Slack's user groups."""


class Settings(Section):
    """The whole ``opsbot.toml``."""

    slack: SlackSettings = SlackSettings()
    store: StoreSettings = StoreSettings()
    server: ServerSettings = ServerSettings()
    environments: dict[str, EnvironmentSettings] = {}
    clusters: dict[str, ClusterSettings] = {}
    apps: dict[str, AppSettings] = {}
    argocd: ArgoCDSettings | None = None
    ephemeral: EphemeralSettings | None = None
    github: GitHubSettings | None = None
    vault: VaultSettings | None = None
    prometheus: PrometheusSettings | None = None
    rbac: RbacSettings = RbacSettings()
    sandbox: SandboxSettings = SandboxSettings()

    def app_environments(self, app: str) -> list[str]:
        """The environments ``app`` runs in, in promotion order."""
        declared = self.apps[app].environments
        return list(declared) if declared is not None else list(self.environments)

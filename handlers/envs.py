"""Ephemeral environments: ``env create|list|extend|share|destroy|report``.

Each environment is an Argo CD Application made from the ``[ephemeral]`` template
(automated sync, ``CreateNamespace=true``), owned by whoever created it and any co-owners
they share it with. The ``environments`` table is the truth. Owners are warned
``warn_before`` expiry with Extend and Destroy buttons; at expiry it is deleted (cascade).
A deletion that fails is retried with backoff and reported, never dropped. The timed
actions (:data:`TIMED`) run from the scheduler, which rebuilds them from the table at
start, so expiries missed while opsbot was down run then.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from adapters.errors import AdapterError, NotFound
from handlers.context import Command, Context
from handlers.durations import format_duration
from handlers.errors import CommandFailed, Refused, UsageError
from handlers.registry import command
from handlers.reply import Button, Field, Notice, Reply, Status, code, escape
from handlers.settings import EphemeralSettings

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^([UW][A-Z0-9]{2,})$")
RETRY_BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
)
REPORT_WINDOW = timedelta(days=7)
DELETION_LEASE = timedelta(minutes=10)


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="microseconds")


def _read(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class Environment:
    """One row of the ``environments`` table."""

    name: str
    app: str
    revision: str
    argocd_app: str
    owner: str
    coowners: tuple[str, ...]
    channel: str
    source: str
    created_at: datetime
    expires_at: datetime
    warned: bool
    state: str  # active, destroying, destroyed, expired
    ended_at: datetime | None
    attempts: int
    next_attempt: datetime | None
    last_error: str
    ended_by: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Environment:
        return cls(
            name=row["name"],
            app=row["app"],
            revision=row["revision"],
            argocd_app=row["argocd_app"],
            owner=row["owner"],
            coowners=tuple(json.loads(row["coowners"] or "[]")),
            channel=row["channel"],
            source=row["source"],
            created_at=datetime.fromisoformat(row["created_at"]),
            expires_at=datetime.fromisoformat(row["expires_at"]),
            warned=bool(row["warned"]),
            state=row["state"],
            ended_at=_read(row["ended_at"]),
            attempts=int(row["attempts"] or 0),
            next_attempt=_read(row["next_attempt"]),
            last_error=row["last_error"] or "",
            ended_by=row["ended_by"],
        )

    @property
    def owners(self) -> tuple[str, ...]:
        """The owner first, then co-owners."""
        return (self.owner, *self.coowners)

    def mentions(self) -> str:
        """The owners as Slack mentions (GitHub-only owners as plain names)."""
        return ", ".join(f"<@{o}>" if o[:1] in "UW" else escape(o) for o in self.owners)


# --- the table ------------------------------------------------------------------------


def load(ctx: Context, name: str) -> Environment | None:
    """The environment ``name``, whatever its state."""
    rows = list(ctx.store.db.query("SELECT * FROM environments WHERE name = ?", [name]))
    return Environment.from_row(rows[0]) if rows else None


def live(ctx: Context, name: str) -> Environment:
    """The active environment ``name``, or a failure that lists what exists."""
    env = load(ctx, name)
    if env is None or env.state not in ("active", "destroying"):
        names = ", ".join(e.name for e in active(ctx)) or "none"
        raise CommandFailed(f"no environment '{name}'; active ones: {names}")
    return env


def active(ctx: Context) -> list[Environment]:
    """Every environment that still exists (active or being destroyed), by expiry."""
    rows = ctx.store.db.query(
        "SELECT * FROM environments WHERE state IN ('active', 'destroying') ORDER BY expires_at"
    )
    return [Environment.from_row(row) for row in rows]


def _update(ctx: Context, name: str, **values: object) -> None:
    columns = ", ".join(f"{key} = ?" for key in values)
    db = ctx.store.db
    with db.atomic():
        db.execute(f"UPDATE environments SET {columns} WHERE name = ?", [*values.values(), name])  # noqa: S608


def settings_of(ctx: Context) -> EphemeralSettings:
    """``[ephemeral]``, or a failure saying how to configure it."""
    ephemeral = ctx.settings.ephemeral
    if ephemeral is None:
        raise CommandFailed(
            "ephemeral environments are not configured: add an [ephemeral] section with app "
            "and repo_url to opsbot.toml"
        )
    return ephemeral


def schedule(ctx: Context, env: Environment) -> None:
    """Tell the scheduler about the environment's warning and expiry."""
    ephemeral = settings_of(ctx)
    warn_at = env.expires_at - ephemeral.warn_before
    if not env.warned and warn_at > env.created_at:
        ctx.timers.set(f"env-warn:{env.name}", warn_at, "env.warn", env.name)
    ctx.timers.set(f"env-expire:{env.name}", env.expires_at, "env.expire", env.name)


def unschedule(ctx: Context, name: str) -> None:
    """Forget the environment's follow-ups."""
    for key in (f"env-warn:{name}", f"env-expire:{name}", f"env-retry:{name}"):
        ctx.timers.cancel(key)


def application(
    ephemeral: EphemeralSettings, name: str, app: str, revision: str, owner: str
) -> dict[str, Any]:
    """The Argo CD Application an environment is (a ``v1alpha1Application`` body)."""
    values = {"name": name, "app": app}
    return {
        "metadata": {
            "name": ephemeral.argocd_app.format(**values),
            "labels": {"opsbot.io/ephemeral": "true", "opsbot.io/environment": name},
            "annotations": {"opsbot.io/owner": owner},
        },
        "spec": {
            "project": ephemeral.project,
            "source": {
                "repoURL": ephemeral.repo_url,
                "path": ephemeral.path.format(**values),
                "targetRevision": revision,
            },
            "destination": {
                "server": ephemeral.destination_server,
                "namespace": ephemeral.namespace.format(**values),
            },
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true"],
            },
        },
    }


def card(env: Environment, now: datetime, text: str = "") -> Reply:
    """An environment's card: where it is, who owns it, when it ends, what to click."""
    left = env.expires_at - now
    return Reply(
        title=f"environment {env.name}",
        text=text,
        fields=(
            Field("App", f"{escape(env.app)} at {code(env.revision)}"),
            Field("Owners", env.mentions()),
            Field(
                "Expires",
                f"{env.expires_at:%Y-%m-%d %H:%M} UTC (in {format_duration(left)})"
                if left.total_seconds() > 0
                else f"{env.expires_at:%Y-%m-%d %H:%M} UTC",
            ),
            Field("Argo CD app", code(env.argocd_app)),
        ),
        buttons=(
            Button("Extend 12h", f"env extend {env.name} ttl=12h", style="primary"),
            Button(
                "Destroy",
                f"env destroy {env.name}",
                style="danger",
                confirm=f"Destroy environment {env.name} now?",
            ),
        ),
    )


# --- commands -------------------------------------------------------------------------


def create_environment(
    ctx: Context,
    *,
    name: str,
    app: str | None,
    revision: str | None,
    ttl: timedelta | None,
    owner: str,
    channel: str,
    source: str,
) -> Reply:
    """Create an environment (the command's work; also used by the pull request webhook)."""
    ephemeral = settings_of(ctx)
    if not DNS_LABEL.match(name) or len(name) > 40:
        raise UsageError(
            f"'{name}' is not a valid environment name: use at most 40 lower-case letters, "
            "digits and '-', starting and ending with a letter or digit (e.g. pr-123)",
            "env create NAME [app=APP] [rev=BRANCH] [ttl=24h]",
        )
    app = app or ephemeral.app
    if app not in ctx.settings.apps:
        known = ", ".join(sorted(ctx.settings.apps)) or "none"
        raise CommandFailed(f"unknown app '{app}'; known apps: {known}")
    existing = load(ctx, name)
    if existing is not None and existing.state in ("active", "destroying"):
        raise CommandFailed(f"environment {name} already exists (owned by {existing.mentions()})")
    now = ctx.clock()
    mine = [e for e in active(ctx) if e.owner == owner]
    if len(mine) >= ephemeral.per_user:
        raise Refused(
            f"you already own {len(mine)} environments (the limit is {ephemeral.per_user}): "
            f"{', '.join(e.name for e in mine)}. Destroy one first."
        )
    if len(active(ctx)) >= ephemeral.total:
        raise Refused(f"{ephemeral.total} environments exist, the most allowed; try later")
    wanted = ttl or ephemeral.default_ttl
    lifetime = min(wanted, ephemeral.max_ttl)
    revision = revision or ephemeral.default_revision
    body = application(ephemeral, name, app, revision, owner)
    ctx.progress(Reply(text=f":hourglass: creating environment {name} ({app} at {revision})…"))
    created = ctx.adapters.argocd.create_application(body)
    db = ctx.store.db
    with db.atomic():
        db.execute("DELETE FROM environments WHERE name = ?", [name])  # an ended one of that name
        db.execute(
            "INSERT INTO environments (name, app, revision, argocd_app, owner, channel, source,"
            " created_at, expires_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'active')",
            [
                name,
                app,
                revision,
                created.name,
                owner,
                channel,
                source,
                _iso(now),
                _iso(now + lifetime),
            ],
        )
    env = load(ctx, name)
    assert env is not None
    schedule(ctx, env)
    capped = (
        f" (asked for {format_duration(wanted)}; capped at {format_duration(lifetime)})"
        if lifetime < wanted
        else ""
    )
    return card(env, now, f":white_check_mark: created{capped}; Argo CD syncs it now.")


@command(
    "env create",
    usage="env create NAME [app=APP] [rev=BRANCH] [ttl=24h]",
    summary="create an ephemeral environment (an Argo CD app with a time to live)",
    mutating=True,
    locks=("env:{name}",),
    examples=("env create pr-123 rev=feature/login ttl=48h",),
)
def env_create(cmd: Command, ctx: Context) -> Reply:
    """Create NAME from the ``[ephemeral]`` template, owned by the asker."""
    return create_environment(
        ctx,
        name=cmd.arg("name") or "",
        app=cmd.option("app"),
        revision=cmd.option("rev"),
        ttl=cmd.duration("ttl", timedelta(0)) or None,
        owner=ctx.actor,
        channel=ctx.channel,
        source="chat",
    )


@command(
    "env list", usage="env list", summary="list the ephemeral environments, soonest expiry first"
)
def env_list(cmd: Command, ctx: Context) -> Reply:
    """Every live environment with owners and time left."""
    now = ctx.clock()
    envs = active(ctx)
    if not envs:
        return Reply(text="No ephemeral environments exist.", ephemeral=True)
    lines = [
        f"{code(e.name)} {escape(e.app)}@{code(e.revision)} — {e.mentions()} — "
        + (
            f"expires in {format_duration(e.expires_at - now)}"
            if e.state == "active"
            else f"being destroyed (attempt {e.attempts}: {escape(e.last_error)})"
        )
        for e in envs
    ]
    return Reply(title="ephemeral environments", text="\n".join(lines), ephemeral=True)


def _owned(ctx: Context, env: Environment, verb: str) -> None:
    if ctx.actor not in env.owners:
        raise Refused(f"only {env.mentions()} may {verb} {env.name}", markup=True)


@command(
    "env extend",
    usage="env extend NAME [ttl=12h]",
    summary="give an environment more time (owners and co-owners)",
    mutating=True,
    locks=("env:{name}",),
)
def env_extend(cmd: Command, ctx: Context) -> Reply:
    """Push the expiry out by ``ttl`` (from now or from the current expiry, the later)."""
    ephemeral = settings_of(ctx)
    env = live(ctx, cmd.arg("name") or "")
    _owned(ctx, env, "extend")
    if env.state != "active":
        raise CommandFailed(f"{env.name} is being destroyed; it cannot be extended")
    now = ctx.clock()
    wanted = cmd.duration("ttl", timedelta(hours=12))
    new_expiry = min(max(env.expires_at, now) + wanted, now + ephemeral.max_ttl)
    _update(ctx, env.name, expires_at=_iso(new_expiry), warned=0)
    updated = live(ctx, env.name)
    unschedule(ctx, env.name)
    schedule(ctx, updated)
    return card(updated, now, f":white_check_mark: extended by <@{ctx.actor}>.")


@command(
    "env share",
    usage="env share NAME @user",
    summary="make someone a co-owner of an environment (they may extend and destroy it)",
    mutating=True,
)
def env_share(cmd: Command, ctx: Context) -> Reply:
    """Add a co-owner."""
    env = live(ctx, cmd.arg("name") or "")
    _owned(ctx, env, "share")
    match = MENTION.match(cmd.arg("user") or "")
    if not match:
        raise UsageError("name the person as a Slack mention (@name) or user ID", cmd.usage)
    user = match.group(1) or match.group(2)
    if user in env.owners:
        return Reply(text=f"<@{user}> already owns {env.name}.", ephemeral=True)
    _update(ctx, env.name, coowners=json.dumps([*env.coowners, user]))
    return card(live(ctx, env.name), ctx.clock(), f"<@{user}> now co-owns it.")


def claim(ctx: Context, name: str, *, expired_only: bool = False) -> bool:
    """Take the right to delete ``name``: one caller at a time, across threads and
    processes. A deletion in flight holds it for :data:`DELETION_LEASE`; a holder that
    died loses it then."""
    now = ctx.clock()
    db = ctx.store.db
    with db.atomic():
        cursor = db.execute(
            "UPDATE environments SET state = 'destroying', next_attempt = ? WHERE name = ?"
            " AND (state = 'active' OR (state = 'destroying' AND next_attempt <= ?))"
            " AND (? = 0 OR expires_at <= ?)",
            [_iso(now + DELETION_LEASE), name, _iso(now), int(expired_only), _iso(now)],
        )
    return cursor.rowcount == 1


def destroy(ctx: Context, env: Environment, *, by: str, reason: str) -> Reply:
    """Delete the Argo CD app (cascade) and end the environment (claim it first); a
    failure schedules a retry with backoff and says so."""
    now = ctx.clock()
    try:
        ctx.adapters.argocd.delete_application(env.argocd_app, cascade=True)
    except NotFound:
        pass  # already gone: nothing left to delete
    except AdapterError as error:
        attempts = env.attempts + 1
        backoff = RETRY_BACKOFF[min(attempts - 1, len(RETRY_BACKOFF) - 1)]
        _update(
            ctx,
            env.name,
            attempts=attempts,
            next_attempt=_iso(now + backoff),
            last_error=error.message[:300],
            ended_by=by,
        )
        ctx.timers.set(f"env-retry:{env.name}", now + backoff, "env.retry", env.name)
        return Reply(
            text=(
                f":warning: could not delete {env.name} ({escape(str(error))}); opsbot retries "
                f"in {format_duration(backoff)} (attempt {attempts}) and keeps trying."
            ),
            status=Status.FAILED,
        )
    _update(
        ctx,
        env.name,
        state="destroyed" if reason == "destroyed" else "expired",
        ended_at=_iso(now),
        ended_by=by,
        next_attempt=None,
    )
    unschedule(ctx, env.name)
    return Reply(
        text=f":wastebasket: {env.name} {reason} ({escape(env.app)}, owners {env.mentions()})."
    )


@command(
    "env destroy",
    usage="env destroy NAME",
    summary="delete an environment now (owners and co-owners)",
    mutating=True,
    locks=("env:{name}",),
)
def env_destroy(cmd: Command, ctx: Context) -> Reply:
    """Delete the environment's Argo CD app with everything it deployed."""
    env = live(ctx, cmd.arg("name") or "")
    _owned(ctx, env, "destroy")
    if not claim(ctx, env.name):
        raise CommandFailed(f"{env.name} is being destroyed already")
    return destroy(ctx, env, by=ctx.actor, reason="destroyed")


@command(
    "env report",
    usage="env report",
    summary="environments created and destroyed in the last 7 days",
)
def env_report(cmd: Command, ctx: Context) -> Reply:
    """Created and ended in the last week, average lifetime, and the environment-hours the
    TTLs saved: for each environment ended by its TTL, the hours from its expiry until now
    it would otherwise have kept running."""
    now = ctx.clock()
    since = now - REPORT_WINDOW
    rows = [
        Environment.from_row(row)
        for row in ctx.store.db.query(
            "SELECT * FROM environments WHERE created_at >= ? OR ended_at >= ?",
            [_iso(since), _iso(since)],
        )
    ]
    created = [e for e in rows if e.created_at >= since]
    ended = [e for e in rows if e.ended_at and e.ended_at >= since]
    lifetimes = [(e.ended_at - e.created_at).total_seconds() / 3600 for e in ended if e.ended_at]
    saved = sum((now - e.expires_at).total_seconds() / 3600 for e in ended if e.state == "expired")
    average = f"{sum(lifetimes) / len(lifetimes):.1f}h" if lifetimes else "-"
    return Reply(
        title="ephemeral environments: the last 7 days",
        fields=(
            Field("Created", str(len(created))),
            Field("Destroyed or expired", str(len(ended))),
            Field("Average lifetime", average),
            Field("Environment-hours saved by TTLs", f"{saved:.0f}"),
            Field("Live now", str(len(active(ctx)))),
        ),
    )


# --- timed actions (run by the scheduler) ---------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """A timed follow-up the scheduler should hold, rebuilt from the table at start."""

    key: str
    at: datetime
    action: str
    subject: str


def deadlines(ctx: Context) -> list[Deadline]:
    """Every warning, expiry and retry the table implies (the scheduler's source)."""
    ephemeral = ctx.settings.ephemeral
    if ephemeral is None:
        return []
    out = []
    for env in active(ctx):
        if env.state == "destroying":
            when = env.next_attempt or ctx.clock()
            out.append(Deadline(f"env-retry:{env.name}", when, "env.retry", env.name))
            continue
        warn_at = env.expires_at - ephemeral.warn_before
        if not env.warned and warn_at > env.created_at:
            out.append(Deadline(f"env-warn:{env.name}", warn_at, "env.warn", env.name))
        out.append(Deadline(f"env-expire:{env.name}", env.expires_at, "env.expire", env.name))
    return out


def warn(ctx: Context, name: str) -> list[Notice]:
    """Warn the owners that ``name`` expires soon, with Extend and Destroy buttons."""
    env = load(ctx, name)
    if env is None or env.state != "active" or env.warned:
        return []
    now = ctx.clock()
    if env.expires_at <= now:
        return []  # expiry runs instead
    _update(ctx, name, warned=1)
    reply = card(
        env,
        now,
        f":bell: {env.mentions()}: {name} expires in "
        f"{format_duration(env.expires_at - now)}. Extend it, or let it go.",
    )
    return [Notice(env.channel, reply)]


def expire(ctx: Context, name: str) -> list[Notice]:
    """Destroy ``name`` if its time is up (an extension may have moved it)."""
    env = load(ctx, name)
    if env is None or not claim(ctx, name, expired_only=True):
        return []  # gone, extended, or someone else is deleting it
    outcome = destroy(ctx, env, by="opsbot", reason="expired")
    return [Notice(env.channel, outcome)]


def retry(ctx: Context, name: str) -> list[Notice]:
    """Try a failed deletion again; alert while it keeps failing."""
    env = load(ctx, name)
    if env is None or env.state != "destroying" or not claim(ctx, name):
        return []
    reason = "expired" if env.ended_by in (None, "opsbot") else "destroyed"
    outcome = destroy(ctx, env, by=env.ended_by or "opsbot", reason=reason)
    channel = ctx.settings.slack.alerts_channel or env.channel
    return [Notice(channel, outcome)]


TIMED: dict[str, Callable[[Context, str], list[Notice]]] = {
    "env.warn": warn,
    "env.expire": expire,
    "env.retry": retry,
}

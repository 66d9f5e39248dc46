"""GitOps through Argo CD: ``deploy``, ``rollback``, ``promote``, ``cancel``, ``status``,
``history`` and ``apps``.

Apps must be declared in ``[apps.NAME]``; the Argo CD Application is ``argocd_app`` with
``{app}`` and ``{env}`` filled in. A deploy shows one progress card, updated in place, until
the sync succeeds, fails or runs past ``[argocd].sync_timeout``; while it runs the card
offers Cancel, and at the end Rollback.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from adapters.argocd import Application, ArgoCD, RevisionMetadata
from adapters.errors import Conflict, NotFound
from handlers.context import Command, Context
from handlers.errors import CommandFailed
from handlers.registry import command
from handlers.reply import Button, Field, Preview, Reply, Status, code, escape

FINISHED = ("Succeeded", "Failed", "Error")


# --- resolving names ----------------------------------------------------------------


def argo_name(ctx: Context, app: str, env: str) -> str:
    """The Argo CD Application for ``app`` in ``env``; unknown names list the known ones."""
    check_app(ctx, app)
    apps = ctx.settings.apps
    envs = ctx.settings.app_environments(app)
    if env not in envs:
        raise CommandFailed(f"{app} does not run in '{env}'; it runs in: {', '.join(envs)}")
    return apps[app].argocd_app.format(app=app, env=env)


def check_app(ctx: Context, app: str) -> None:
    """Check that ``app`` is declared (for commands that take no environment)."""
    if app not in ctx.settings.apps:
        known = (
            ", ".join(sorted(ctx.settings.apps)) or "none (declare them in [apps] in opsbot.toml)"
        )
        raise CommandFailed(f"unknown app '{app}'; known apps: {known}")


def resolve_app(cmd: Command, ctx: Context) -> tuple[str, str, str, ArgoCD, Application]:
    """The command's APP and ENV, their Argo CD Application's name, the client, and the
    Application as it is now."""
    app, env = cmd.arg("app") or "", cmd.arg("env") or ""
    name = argo_name(ctx, app, env)
    argocd = ctx.adapters.argocd
    return app, env, name, argocd, argocd.get_application(name)


def short(revision: str) -> str:
    """A commit as people quote it: 7 characters of a SHA, a branch name as is."""
    is_sha = len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)
    return revision[:7] if is_sha else revision


def describe_commit(argocd: ArgoCD, name: str, revision: str) -> str:
    """``abc1234`` — message (author), or just the revision when Argo CD cannot say."""
    if not revision:
        return "nothing deployed yet"
    meta = commit(argocd, name, revision)
    if meta is None:
        return code(short(revision))
    subject = meta.message.splitlines()[0] if meta.message else ""
    author = meta.author.split("<")[0].strip()
    return f"{code(short(revision))} {escape(subject)} ({escape(author)})"


def commit(argocd: ArgoCD, name: str, revision: str) -> RevisionMetadata | None:
    """The commit's metadata, or None if Argo CD does not know the revision."""
    try:
        return argocd.revision_metadata(name, revision)
    except (NotFound, Conflict):
        return None


# --- the progress card ----------------------------------------------------------------


def progress_card(verb: str, app: str, env: str, state: Application, started: float) -> Reply:
    """The one message a deploy or rollback updates in place."""
    synced = sum(1 for r in state.results if r.status in ("Synced", "Pruned"))
    total = max(state.resource_count, len(state.results))
    phase = (
        "Requested"
        if state.operation_requested and not state.operation_phase
        else (state.operation_phase or "Starting")
    )
    if state.operation_phase == "Succeeded" and state.health == "Progressing":
        phase = "Succeeded, rolling out"
    fields = (
        Field("Revision", code(short(state.operation_revision or state.target_sha))),
        Field("Phase", escape(phase)),
        Field("Resources synced", f"{synced} / {total}"),
        Field("Health", escape(state.health)),
        Field("Elapsed", f"{int(time.monotonic() - started)}s"),
        Field("Argo CD app", code(state.name)),
    )
    running = state.running or state.operation_phase is None
    buttons = (
        (
            Button(
                "Cancel",
                f"cancel {app} {env}",
                style="danger",
                confirm=f"Stop the {verb} of {app} in {env}?",
            ),
        )
        if running
        else (
            Button(
                "Rollback",
                f"rollback {app} {env}",
                style="danger",
                confirm=f"Roll {app} in {env} back to the previous deployment?",
            ),
        )
    )
    return Reply(
        title=f":rocket: {verb.capitalize()} {app} → {env}",
        fields=fields,
        buttons=buttons,
    )


def watch(ctx: Context, argocd: ArgoCD, verb: str, app: str, env: str, name: str) -> Reply:
    """Follow the operation until it ends or times out, updating the progress card."""
    settings = ctx.settings.argocd
    assert settings is not None
    started = time.monotonic()
    deadline = started + settings.sync_timeout.total_seconds()
    pause = threading.Event()
    while True:
        state = argocd.get_application(name)
        card = progress_card(verb, app, env, state, started)
        ended = state.operation_phase in FINISHED and not state.running
        settling = state.operation_phase == "Succeeded" and state.health == "Progressing"
        if ended and not settling:  # a success is reported once the rollout is healthy
            return finished(card, verb, app, env, state, started)
        if time.monotonic() >= deadline:
            return Reply(
                title=card.title,
                text=(
                    f":hourglass: still {escape(state.operation_phase or 'starting')} after "
                    f"{int(time.monotonic() - started)}s; opsbot stopped watching. Check Argo CD, "
                    f"or `status {app} {env}`."
                ),
                fields=card.fields,
                buttons=card.buttons,
                status=Status.FAILED,
            )
        ctx.progress(card)
        pause.wait(settings.poll_interval.total_seconds())


def finished(
    card: Reply, verb: str, app: str, env: str, state: Application, started: float
) -> Reply:
    """The final card: what happened, and what went wrong when it failed."""
    seconds = int(time.monotonic() - started)
    if state.operation_phase == "Succeeded":
        text = (
            f":white_check_mark: {verb.capitalize()} of {app} to {env} finished in {seconds}s "
            f"at {code(short(state.operation_revision))}; health: {escape(state.health)}."
        )
        return Reply(title=card.title, text=text, fields=card.fields, buttons=card.buttons)
    failed = [r for r in state.results if r.status not in ("Synced", "Pruned")]
    lines = [
        f":x: {verb.capitalize()} of {app} to {env} {state.operation_phase.lower()}"
        f" after {seconds}s: {escape(state.operation_message or 'no message')}"
        if state.operation_phase
        else ":x: failed"
    ]
    lines += [
        f"• {escape(r.kind)}/{escape(r.name)}: {escape(r.status)} — {escape(r.message)}"
        for r in failed
    ]
    return Reply(
        title=card.title,
        text="\n".join(lines),
        fields=card.fields,
        buttons=card.buttons,
        status=Status.FAILED,
    )


def ensure_idle(state: Application, app: str, env: str) -> None:
    """Refuse to start while another operation runs on the same Argo CD app."""
    if state.running:
        raise CommandFailed(
            f"an operation is already running on {app} in {env} ({state.operation_phase}); "
            f"wait for it, or stop it with `cancel {app} {env}`"
        )


# --- deploy ---------------------------------------------------------------------------


def deploy_preview(cmd: Command, ctx: Context) -> Preview:
    """Current and target revision with author and message, and what would change."""
    app, env, name, argocd, state = resolve_app(cmd, ctx)
    target = cmd.option("rev") or state.target_sha or state.target_revision
    changes = [
        f"{r.get('kind')}/{r.get('name')}"
        for r in argocd.managed_resources(name)
        if r.get("modified")
    ]
    blast = ", ".join(escape(c) for c in changes[:20]) or "nothing (already in sync)"
    if len(changes) > 20:
        blast += f" and {len(changes) - 20} more"
    return Preview(
        text=(
            f"Deploy *{escape(app)}* to *{escape(env)}*"
            + (" with prune" if cmd.flag("prune") else "")
            + f"\nNow: {describe_commit(argocd, name, state.deployed_revision)}"
            + f"\nTarget: {describe_commit(argocd, name, target)}"
            + f"\nWould change: {blast}"
        ),
        fields=(Field("Argo CD app", code(name)),),
        fingerprint=f"{name}:{target}:prune={cmd.flag('prune')}",
    )


@command(
    "deploy",
    usage="deploy APP ENV [rev=REV] [--dry-run] [--prune]",
    summary="sync an app in an environment through Argo CD (to rev=, else its target revision)",
    mutating=True,
    env_arg="env",
    preview=deploy_preview,
    locks=("app:{app}@{env}",),
    examples=("deploy payments staging", "deploy payments prod rev=3f2a9c1"),
)
def deploy(cmd: Command, ctx: Context) -> Reply:
    """Start the sync and follow it on one progress card."""
    app, env, name, argocd, state = resolve_app(cmd, ctx)
    ensure_idle(state, app, env)
    argocd.sync(
        name, revision=cmd.option("rev"), prune=cmd.flag("prune"), dry_run=cmd.flag("dry-run")
    )
    return watch(ctx, argocd, "dry run" if cmd.flag("dry-run") else "deploy", app, env, name)


# --- rollback -------------------------------------------------------------------------


def rollback_target(cmd: Command, state: Application) -> tuple[int, str]:
    """The history entry to go back to: ``to=ID``, else the one before the current."""
    wanted = cmd.option("to")
    if wanted is not None:
        for entry in state.history:
            if str(entry.id) == wanted:
                return entry.id, entry.revision
        ids = ", ".join(str(h.id) for h in state.history) or "none"
        raise CommandFailed(f"no history entry {wanted}; the ids are: {ids}")
    if len(state.history) < 2:
        raise CommandFailed("there is nothing to roll back to: only one deployment in history")
    previous = state.history[-2]
    return previous.id, previous.revision


def rollback_preview(cmd: Command, ctx: Context) -> Preview:
    """From the current revision back to the chosen history entry."""
    app, env, name, argocd, state = resolve_app(cmd, ctx)
    history_id, revision = rollback_target(cmd, state)
    return Preview(
        text=(
            f"Roll *{escape(app)}* in *{escape(env)}* back to history entry {history_id}"
            f"\nNow: {describe_commit(argocd, name, state.deployed_revision)}"
            f"\nBack to: {describe_commit(argocd, name, revision)}"
        ),
        fields=(Field("Argo CD app", code(name)),),
        fingerprint=f"{name}:rollback:{history_id}:{revision}:{state.deployed_revision}",
    )


@command(
    "rollback",
    usage="rollback APP ENV [to=HISTORY_ID]",
    summary="roll an app back through Argo CD (default: the previous deployment)",
    mutating=True,
    env_arg="env",
    preview=rollback_preview,
    locks=("app:{app}@{env}",),
    examples=("rollback payments prod", "rollback payments prod to=12"),
)
def rollback(cmd: Command, ctx: Context) -> Reply:
    """Roll back and follow the operation on one progress card."""
    app, env, name, argocd, state = resolve_app(cmd, ctx)
    ensure_idle(state, app, env)
    history_id, _ = rollback_target(cmd, state)
    try:
        argocd.rollback(name, history_id)
    except Conflict as error:
        if "auto-sync" in error.message or "automated" in error.message:
            raise CommandFailed(
                f"Argo CD will not roll back {name} while auto-sync is on: it would sync "
                f"straight back to Git. Turn auto-sync off for {name} (in Argo CD, or "
                f"`argocd app set {name} --sync-policy none`), run this rollback again, and "
                "revert the change in Git before turning auto-sync back on."
            ) from None
        raise
    return watch(ctx, argocd, "rollback", app, env, name)


# --- promote --------------------------------------------------------------------------


def promote_source(ctx: Context, cmd: Command) -> tuple[str, str, str, str]:
    """(app, from, to, revision running in from)."""
    app = cmd.arg("app") or ""
    source, target = cmd.option("from") or "", cmd.option("to") or ""
    if source == target:
        raise CommandFailed("from= and to= name the same environment")
    source_name = argo_name(ctx, app, source)
    argo_name(ctx, app, target)
    revision = ctx.adapters.argocd.get_application(source_name).deployed_revision
    if not revision:
        raise CommandFailed(f"{app} has no deployment in {source} to promote")
    return app, source, target, revision


def promote_preview(cmd: Command, ctx: Context) -> Preview:
    """The exact revision the source runs, going to the target."""
    app, source, target, revision = promote_source(ctx, cmd)
    name = argo_name(ctx, app, target)
    argocd = ctx.adapters.argocd
    state = argocd.get_application(name)
    return Preview(
        text=(
            f"Promote *{escape(app)}* from *{escape(source)}* to *{escape(target)}*"
            f"\n{escape(target)} now: {describe_commit(argocd, name, state.deployed_revision)}"
            f"\n{escape(source)} runs: {describe_commit(argocd, name, revision)}"
        ),
        fields=(Field("Argo CD app", code(name)),),
        fingerprint=f"{name}:{revision}",
    )


@command(
    "promote",
    usage="promote APP from=ENV to=ENV",
    summary="deploy to one environment the exact revision another runs",
    mutating=True,
    env_arg="to",
    preview=promote_preview,
    locks=("app:{app}@{to}",),
    examples=("promote payments from=staging to=prod",),
)
def promote(cmd: Command, ctx: Context) -> Reply:
    """Sync the target to the source's revision and follow it."""
    app, _, target, revision = promote_source(ctx, cmd)
    name = argo_name(ctx, app, target)
    argocd = ctx.adapters.argocd
    ensure_idle(argocd.get_application(name), app, target)
    argocd.sync(name, revision=revision)
    return watch(ctx, argocd, "promotion", app, target, name)


# --- cancel ---------------------------------------------------------------------------


@command(
    "cancel",
    usage="cancel APP ENV",
    summary="stop the sync or rollback running now (stopping needs no approval)",
    env_arg="env",
)
def cancel(cmd: Command, ctx: Context) -> Reply:
    """Terminate the running operation."""
    app, env, name, argocd, state = resolve_app(cmd, ctx)
    if not state.running:
        raise CommandFailed(f"nothing is running on {app} in {env} to stop")
    argocd.terminate_operation(name)
    return Reply(text=f":stop_sign: Asked Argo CD to stop the operation on {app} in {env}.")


# --- reading --------------------------------------------------------------------------


def env_line(argocd: ArgoCD, env: str, state: Application) -> str:
    """One environment's state in a line."""
    last = ""
    if state.operation_phase:
        last = f"; last operation {escape(state.operation_phase)}"
        if state.operation_message:
            last += f": {escape(state.operation_message)}"
    return (
        f"*{escape(env)}*: {escape(state.sync_status)}, {escape(state.health)}, "
        f"{describe_commit(argocd, state.name, state.deployed_revision)}{last}"
    )


@command(
    "status",
    usage="status APP [ENV]",
    summary="sync, health, revision and last operation, in one or every environment",
    env_arg="env",
    examples=("status payments", "status payments prod"),
)
def status(cmd: Command, ctx: Context) -> Reply:
    """Each environment's sync, health, deployed commit and last operation."""
    app = cmd.arg("app") or ""
    env = cmd.arg("env")
    check_app(ctx, app)
    envs = [env] if env else ctx.settings.app_environments(app)
    argocd = ctx.adapters.argocd
    lines = [env_line(argocd, e, argocd.get_application(argo_name(ctx, app, e))) for e in envs]
    return Reply(title=f"status: {app}", text="\n".join(lines) or "No environments.")


@command(
    "history",
    usage="history APP ENV",
    summary="deployment history, newest first",
    env_arg="env",
)
def history(cmd: Command, ctx: Context) -> Reply:
    """The app's Argo CD history in an environment, with commit details."""
    app, env, name, argocd, state = resolve_app(cmd, ctx)
    if not state.history:
        return Reply(text=f"{app} has no deployments in {env} yet.")
    lines = [
        f"`{entry.id}` {escape(entry.deployed_at)} {describe_commit(argocd, name, entry.revision)}"
        for entry in reversed(state.history[-15:])
    ]
    return Reply(
        title=f"history: {app} in {env}",
        text="\n".join(lines),
        footer=f"`rollback {app} {env} to=ID` goes back to one of these",
    )


@command("apps", usage="apps", summary="every app × environment: revision, sync, health, lag")
def apps(cmd: Command, ctx: Context) -> Reply:
    """A table of every configured app in every environment, and how far each environment
    is behind the one before it."""
    argocd = ctx.adapters.argocd
    rows = []
    for app in sorted(ctx.settings.apps):
        previous: tuple[str, Application] | None = None
        for env in ctx.settings.app_environments(app):
            state = argocd.get_application(argo_name(ctx, app, env))
            lag = lag_text(argocd, previous, state)
            rows.append(
                f"{app:<14} {env:<10} {short(state.deployed_revision) or '-':<9} "
                f"{state.sync_status:<10} {state.health:<11} {lag}"
            )
            previous = (env, state)
    if not rows:
        return Reply(text="No apps are declared; add [apps.NAME] sections to opsbot.toml.")
    header = f"{'app':<14} {'env':<10} {'revision':<9} {'sync':<10} {'health':<11} lag"
    return Reply(title="apps", text="```\n" + "\n".join([header, *rows]) + "\n```")


def lag_text(argocd: ArgoCD, previous: tuple[str, Application] | None, state: Application) -> str:
    """How far ``state`` is behind the environment before it, in commit time."""
    if previous is None:
        return "-"
    env, before = previous
    if before.deployed_revision == state.deployed_revision:
        return f"same as {env}"
    ahead = commit(argocd, before.name, before.deployed_revision)
    behind = commit(argocd, state.name, state.deployed_revision)
    if ahead is None or behind is None:
        return f"differs from {env}"
    try:
        delta = datetime.fromisoformat(ahead.date) - datetime.fromisoformat(behind.date)
    except ValueError:
        return f"differs from {env}"
    hours = delta.total_seconds() / 3600
    amount = f"{hours / 24:.1f}d" if hours >= 48 else f"{hours:.1f}h"
    return f"behind {env} by {amount}" if hours >= 0 else f"ahead of {env}"

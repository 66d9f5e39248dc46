"""Assemble one opsbot process: config, store, adapters, scheduler, pipeline, workers.

Every front end (``opsbot serve`` in any mode, ``opsbot run``) builds a :class:`Runtime`
and hands requests to :meth:`Runtime.submit` or straight to the pipeline.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from adapters import Adapters
from adapters.errors import NotConfigured
from bot.channels import Channels, LogChannels
from bot.clock import system_clock
from bot.config import LoadedConfig
from bot.governance.approvals import Approvals
from bot.governance.audit import AuditTrail, audit_step
from bot.governance.commands import governance_commands
from bot.governance.dlp import dlp_step
from bot.governance.idempotency import idempotency_step
from bot.governance.locks import Locks, lock_step
from bot.governance.rbac import GroupDirectory, Rbac, permits, rbac_step
from bot.identity import StaticGroups
from bot.metrics import Metrics
from bot.pipeline import Pipeline, Request, Responder, Step
from bot.sandbox.emulators import EmulatorFactory, RunningEmulators, start_emulators
from bot.scheduler import Scheduler
from bot.store import Store
from bot.timed import TimedActions
from handlers.context import Clock
from handlers.registry import Registry
from handlers.reply import Reply
from handlers.settings import Settings

log = logging.getLogger(__name__)

WARM_UP_SECONDS = 30.0


def adapter_factories(
    settings: Settings, environ: Mapping[str, str]
) -> dict[str, Callable[[], object]]:
    """How to build each configured adapter (built lazily, on first use, so that a system
    that is down or misconfigured only fails the commands that need it)."""
    factories: dict[str, Callable[[], object]] = {}
    argocd = settings.argocd
    if argocd is not None:

        def build_argocd() -> object:
            from adapters.argocd import ArgoCD

            token = environ.get(argocd.token_env)
            if not token:
                raise NotConfigured(
                    "Argo CD",
                    f"the environment variable {argocd.token_env} (the API token) is not set",
                )
            verify: bool | str = argocd.ca_bundle or argocd.verify_tls
            return ArgoCD(argocd.url, token, verify=verify, timeout=argocd.timeout.total_seconds())

        factories["argocd"] = build_argocd
    return factories


def early_steps(runtime: Runtime) -> list[Step]:
    """Steps before parsing, on the raw request, in order (DESIGN.md §4): count it, drop
    repeats, audit whatever follows, redact and refuse secrets."""
    return [
        runtime.metrics.step,
        idempotency_step(runtime.store, runtime.clock),
        audit_step(runtime.audit, runtime.clock),
        dlp_step(),
    ]


def governance_steps(runtime: Runtime) -> list[Step]:
    """Steps after parsing, on the command, in order: permission, approval, locks."""
    return [
        rbac_step(runtime.rbac, runtime.settings),
        runtime.approvals.step(),
        lock_step(runtime.locks),
    ]


@dataclass
class Runtime:
    """A running opsbot: what every front end shares."""

    config: LoadedConfig
    settings: Settings
    registry: Registry
    store: Store
    clock: Clock
    adapters: Adapters
    scheduler: Scheduler
    executor: ThreadPoolExecutor
    groups: GroupDirectory
    pipeline: Pipeline = field(init=False)
    emulators: RunningEmulators | None = None
    metrics: Metrics = field(default_factory=Metrics)
    channels: Channels = field(default_factory=LogChannels)
    rbac: Rbac = field(init=False)
    audit: AuditTrail = field(init=False)
    locks: Locks = field(init=False)
    approvals: Approvals = field(init=False)
    timed: TimedActions = field(init=False)

    @classmethod
    def build(
        cls,
        config: LoadedConfig,
        *,
        registry: Registry | None = None,
        clock: Clock = system_clock,
        environ: Mapping[str, str] | None = None,
        emulators: Sequence[EmulatorFactory] | None = None,
        groups: GroupDirectory | None = None,
    ) -> Runtime:
        """Open the store and wire everything; with ``emulators``, start those first."""
        settings = config.settings
        env = dict(os.environ if environ is None else environ)
        running = None
        if emulators is not None:
            running = start_emulators(settings, emulators)
            settings = running.settings
            env.update(running.environ)
        try:
            store = Store.open(config.store_path)
        except Exception:
            if running:
                running.stop()
            raise
        runtime = cls(
            config=config,
            settings=settings,
            registry=registry
            if registry is not None
            else Registry.discover(extra=settings.server.handler_modules),
            store=store,
            clock=clock,
            adapters=Adapters(adapter_factories(settings, env)),
            scheduler=Scheduler(clock),
            executor=ThreadPoolExecutor(settings.server.workers, thread_name_prefix="opsbot-work"),
            emulators=running,
            groups=groups or StaticGroups(settings.sandbox.groups),
        )
        runtime.rbac = Rbac(settings.rbac, runtime.groups)
        runtime.audit = AuditTrail(store)
        runtime.locks = Locks(store, clock, settings.server.lock_lease)
        runtime.approvals = Approvals(runtime)
        runtime.timed = TimedActions(runtime)
        for spec in governance_commands(runtime):
            runtime.registry.add(spec)
        runtime.scheduler.add_source(runtime.approvals.jobs)
        runtime.scheduler.add_source(runtime.timed.jobs)
        runtime.pipeline = Pipeline(
            registry=runtime.registry,
            settings=settings,
            adapters=runtime.adapters,
            store=store,
            clock=clock,
            early_steps=early_steps(runtime),
            steps=governance_steps(runtime),
            permits=permits(runtime.rbac, settings),
            timers=runtime.timed,
        )
        return runtime

    def start(self) -> None:
        """Start the workers and timed work: rebuild scheduled jobs from the store, run
        overdue ones."""
        self._start_workers()
        failed = self.approvals.recover()
        if failed:
            log.warning(
                "%d approved request(s) were running at the last stop: marked failed", failed
            )
        count = self.scheduler.start()
        log.info("scheduler started with %d jobs", count)

    def _start_workers(self) -> None:
        """Start every worker thread now, each with its store connection open, so the
        first burst of commands does not pay for thread and connection start-up."""
        workers = self.settings.server.workers
        everyone = threading.Barrier(workers + 1)

        def warm() -> None:
            _ = self.store.db
            everyone.wait(WARM_UP_SECONDS)

        for _ in range(workers):
            self.executor.submit(warm)
        everyone.wait(WARM_UP_SECONDS)

    def handle(self, request: Request, responder: Responder) -> Reply:
        """Run ``request`` through the pipeline on the calling thread."""
        return self.pipeline.handle(request, responder)

    def submit(self, request: Request, responder: Responder) -> Future[Reply]:
        """Run ``request`` on a worker thread, off the ack path."""
        return self.executor.submit(self._run_logged, request, responder)

    def _run_logged(self, request: Request, responder: Responder) -> Reply:
        try:
            return self.pipeline.handle(request, responder)
        except BaseException:
            log.exception("request ref=%s failed outside the pipeline", request.ref)
            raise

    def drain(self, timeout: float) -> bool:
        """Let accepted commands finish for up to ``timeout`` seconds; drop (and log) the
        ones still queued after that. True when everything finished."""
        finished = threading.Event()

        def wait_for_workers() -> None:
            self.executor.shutdown(wait=True)
            finished.set()

        threading.Thread(target=wait_for_workers, name="opsbot-drain", daemon=True).start()
        if finished.wait(timeout):
            return True
        queued = self.executor._work_queue.qsize()  # for the log line only
        self.executor.shutdown(wait=False, cancel_futures=True)
        log.error("drain timed out after %.0fs: dropped %d queued command(s)", timeout, queued)
        return finished.wait(5)

    def close(self, *, wait: bool = True) -> None:
        """Drain in-flight work (``wait``), then stop timers, adapters, emulators and store."""
        self.executor.shutdown(wait=wait, cancel_futures=not wait)
        self.scheduler.shutdown(wait=wait)
        self.adapters.close()
        if self.emulators:
            self.emulators.stop()
        self.store.close()
        if self.config.demo:
            shutil.rmtree(self.config.base_dir, ignore_errors=True)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

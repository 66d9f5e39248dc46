"""Timed actions from handlers (an environment's warning, expiry, deletion retry), run by
the scheduler and rebuilt from the store at start.

Handlers name an action and a subject (``env.expire``, ``pr-123``) through
``Context.timers``; this module turns that into scheduler jobs, runs the handler's action
with a system context when the time comes, posts what it returns through the runtime's
channels and writes the audit trail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from bot.pipeline import new_ref
from bot.scheduler import Job
from handlers import envs
from handlers.context import Context
from handlers.reply import Notice, Reply

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "opsbot"
SWEEP_CRON = "* * * * *"
ACTIONS: dict[str, Callable[[Context, str], list[Notice]]] = {**envs.TIMED}


class TimedActions:
    """The :class:`~handlers.context.Timers` of a runtime, and the scheduler source."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def set(self, key: str, when: datetime, action: str, subject: str) -> None:
        """Schedule ``action`` on ``subject`` at ``when`` (replacing ``key``)."""
        self._runtime.scheduler.schedule(self._job(key, when, action, subject))

    def cancel(self, key: str) -> None:
        """Forget ``key``."""
        self._runtime.scheduler.cancel(key)

    def jobs(self) -> list[Job]:
        """Scheduler source: every deadline the handlers' tables imply, and a sweep each
        minute for deadlines written by another process (``opsbot run``)."""
        context = self.context()
        jobs = [self._job(d.key, d.at, d.action, d.subject) for d in envs.deadlines(context)]
        jobs.append(Job("timed:sweep", self.sweep, cron=SWEEP_CRON))
        return jobs

    def sweep(self) -> None:
        """Run every deadline that has passed and is still due (the actions check the
        store, so one that already ran does nothing)."""
        now = self._runtime.clock()
        for deadline in envs.deadlines(self.context()):
            if deadline.at <= now:
                self.run(deadline.action, deadline.subject)

    def context(self) -> Context:
        """A context for work nobody typed: the system actor, no reply to update."""
        runtime = self._runtime
        return Context(
            actor=SYSTEM_ACTOR,
            channel=runtime.settings.slack.alerts_channel or "",
            settings=runtime.settings,
            adapters=runtime.adapters,
            store=runtime.store,
            clock=runtime.clock,
            registry=runtime.registry,
            ref=new_ref(),
            progress=lambda reply: None,
            timers=self,
        )

    def run(self, action: str, subject: str) -> None:
        """Run one timed action now; post its notices and audit it."""
        context = self.context()
        runtime = self._runtime
        try:
            notices = ACTIONS[action](context, subject)
            outcome = "ok"
        except Exception as error:
            log.exception("timed action %s on %s failed ref=%s", action, subject, context.ref)
            notices, outcome = [], "failed"
            channel = runtime.settings.slack.alerts_channel
            if channel:
                text = (
                    f":x: {action} on {subject} failed (ref {context.ref}): {type(error).__name__}"
                )
                notices = [Notice(channel, Reply(text=text))]
        for notice in notices:
            if notice.channel:
                runtime.channels.post(notice.channel, notice.reply)
        if notices or outcome == "failed":
            runtime.audit.record(
                runtime.clock(),
                actor=SYSTEM_ACTOR,
                channel=notices[0].channel if notices else "",
                command=f"({action} {subject})",
                decision="timed action",
                outcome=outcome,
                ref=context.ref,
            )

    def _job(self, key: str, when: datetime, action: str, subject: str) -> Job:
        return Job(key, lambda: self.run(action, subject), at=when)

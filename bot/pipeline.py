"""The one path every command takes: parse → governance steps → handler → reply.

Front ends (Slack, the sandbox page, ``opsbot run``) build a :class:`Request` and a
:class:`Responder` and call :meth:`Pipeline.handle`. Governance slots in as *steps*:
each step receives the :class:`Invocation` and the rest of the chain, and either passes
it on or answers itself (a refusal, an approval request). Handlers never see the steps.

Errors end here. A :class:`~handlers.errors.CommandError` or an adapter error becomes a
plain message; anything else becomes "Something went wrong (ref …)" for the person and a
traceback in the log under that reference. Nothing else leaks.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from adapters import Adapters
from adapters.errors import AdapterError
from bot import commands, messages
from handlers.context import Clock, Command, Context, NoTimers, Store, Timers
from handlers.errors import CommandError, UsageError
from handlers.registry import CommandSpec, Registry
from handlers.reply import Reply, Status
from handlers.settings import Settings

log = logging.getLogger(__name__)

_REF_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_ref() -> str:
    """A short reference (8 characters, no look-alikes) people can quote to operators."""
    # One urandom read, not eight: this runs on the ack path. 256 % 32 == 0, so it is uniform.
    return "".join(_REF_ALPHABET[byte % 32] for byte in secrets.token_bytes(8))


@dataclass(frozen=True)
class Request:
    """A command as a front end received it, before anything is checked."""

    text: str
    actor: str  # Slack user ID
    channel: str  # Slack channel ID
    source: str = "cli"  # "slack", "sandbox", "cli", "button", "schedule"
    ref: str = field(default_factory=new_ref)
    idempotency_key: str | None = None  # the same delivery again (a Slack retry) runs nothing
    debounce_key: str | None = None  # the same click again within seconds runs nothing
    approval_id: str | None = None  # set when an approved request is finally run


class Responder(Protocol):
    """Where replies go: posts a message, and updates it in place later."""

    def post(self, reply: Reply) -> str | None:
        """Show ``reply``; return an ID that :meth:`update` accepts (None if not updatable)."""
        ...

    def update(self, message_id: str, reply: Reply) -> None:
        """Replace the message ``message_id`` with ``reply``."""
        ...


class Conversation:
    """The visible answer to one request: the first reply posts, the rest update it."""

    def __init__(self, responder: Responder) -> None:
        self._responder = responder
        self._message_id: str | None = None
        self._lock = threading.Lock()

    @property
    def message_id(self) -> str | None:
        """The ID of the public message showing this request's progress, if any."""
        return self._message_id

    def show(self, reply: Reply) -> None:
        """Post ``reply``, or replace the message already showing this request's answer."""
        with self._lock:
            if self._message_id is not None:
                self._responder.update(self._message_id, reply)
                return
            message_id = self._responder.post(reply)
            if not reply.ephemeral:
                self._message_id = message_id


@dataclass
class Invocation:
    """What a request has gathered on its way through the steps."""

    request: Request
    conversation: Conversation
    command: Command | None = None
    spec: CommandSpec | None = None
    started: float = field(default_factory=time.monotonic)
    redacted_text: str | None = None  # the text as it may be stored, logged or echoed
    decision: str = "allowed"  # what governance decided, for the audit trail
    detail: str = ""  # why, for the audit trail

    @property
    def environment(self) -> str | None:
        """The environment the command names (through its spec's ``env_arg``), if any."""
        if self.spec is None or self.command is None or self.spec.env_arg is None:
            return None
        return self.command.value(self.spec.env_arg)


Next = Callable[[Invocation], Reply]
Step = Callable[[Invocation, Next], Reply]


class Pipeline:
    """Runs requests through the steps and a handler; shared by every front end."""

    def __init__(
        self,
        *,
        registry: Registry,
        settings: Settings,
        adapters: Adapters,
        store: Store,
        clock: Clock,
        early_steps: Sequence[Step] = (),
        steps: Sequence[Step] = (),
        permits: Callable[[str, CommandSpec], bool] | None = None,
        timers: Timers | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.adapters = adapters
        self.store = store
        self.clock = clock
        # early steps see the raw text (exactly-once, DLP, audit); later ones the command
        self.steps: list[Step] = [*early_steps, parse_step(registry), *steps]
        self._permits = permits
        self._timers = timers or NoTimers()

    def handle(self, request: Request, responder: Responder, *, deliver: bool = True) -> Reply:
        """Run ``request`` to the end and return the final reply.

        Progress always goes to ``responder``; the final reply does too unless ``deliver``
        is False (``opsbot run`` prints it itself).
        """
        conversation = Conversation(responder)
        invocation = Invocation(request, conversation)
        try:
            reply = self._chain(0)(invocation)
        except Exception as error:  # the last line of defence: nothing leaks to chat
            reply = failure_reply(error, request.ref)
        path = invocation.spec.path if invocation.spec else "-"
        log.info(
            "command ref=%s actor=%s channel=%s source=%s command=%s status=%s ms=%d",
            request.ref,
            request.actor,
            request.channel,
            request.source,
            path,
            reply.status.value,
            (time.monotonic() - invocation.started) * 1000,
        )
        try:
            if deliver and reply.status is not Status.IGNORED:
                conversation.show(reply)
        except Exception:
            log.exception("could not deliver the reply ref=%s", request.ref)
        return reply

    def context_for(self, invocation: Invocation) -> Context:
        """The handler's context for ``invocation``."""
        request = invocation.request
        permits = self._permits

        def may_run(spec: CommandSpec) -> bool:
            return permits(request.actor, spec) if permits else True

        return Context(
            actor=request.actor,
            channel=request.channel,
            settings=self.settings,
            adapters=self.adapters,
            store=self.store,
            clock=self.clock,
            registry=self.registry,
            ref=request.ref,
            progress=invocation.conversation.show,
            permits=may_run,
            timers=self._timers,
        )

    def _chain(self, index: int) -> Next:
        if index == len(self.steps):
            return self._execute
        step, rest = self.steps[index], self._chain(index + 1)
        return lambda invocation: step(invocation, rest)

    def _execute(self, invocation: Invocation) -> Reply:
        assert invocation.command is not None
        assert invocation.spec is not None
        context = self.context_for(invocation)
        try:
            return invocation.spec.handler(invocation.command, context)
        except Exception as error:
            return failure_reply(error, invocation.request.ref)


def parse_step(registry: Registry) -> Step:
    """The first step: parse the text; a usage error answers at once and runs nothing."""

    def parse(invocation: Invocation, proceed: Next) -> Reply:
        try:
            command = commands.parse(invocation.request.text, registry)
        except UsageError as error:
            invocation.decision = "usage error"
            return usage_reply(error)
        invocation.command = command
        invocation.spec = registry.find(command.verb, command.subverb)
        return proceed(invocation)

    return parse


def usage_reply(error: UsageError) -> Reply:
    """The ephemeral answer to a malformed command: what is wrong, then the usage line."""
    return Reply(
        text=messages.usage(error.message, error.usage),
        ephemeral=True,
        status=Status.USAGE,
    )


def failure_reply(error: Exception, ref: str) -> Reply:
    """Turn an exception into what the person may see; log what they may not."""
    if isinstance(error, UsageError):
        return usage_reply(error)
    if isinstance(error, CommandError):
        text = messages.problem(error.message, markup=error.markup)
        return Reply(text=text, status=error.status, ephemeral=error.status is Status.REFUSED)
    if isinstance(error, AdapterError):
        log.warning("adapter error ref=%s system=%s: %s", ref, error.system, error.message)
        return Reply(
            text=messages.backend_problem(error.system, error.message, ref), status=Status.FAILED
        )
    log.error("unexpected error ref=%s", ref, exc_info=error)
    return Reply(text=messages.internal_error(ref), status=Status.FAILED)

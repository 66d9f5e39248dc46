"""What a handler receives: the parsed :class:`Command` and its :class:`Context`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from handlers.durations import DurationError, parse_duration
from handlers.errors import UsageError

if TYPE_CHECKING:
    from sqlite_utils import Database

    from adapters import Adapters
    from handlers.registry import CommandSpec, Registry
    from handlers.reply import Reply
    from handlers.settings import Settings

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (UTC). Injected so tests can move time."""


@dataclass(frozen=True)
class Command:
    """One parsed command: ``VERB [SUBVERB] POSITIONAL… [key=value…] [--flag…]``."""

    verb: str
    subverb: str | None = None
    args: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    text: str = ""  # the words as typed, for the audit trail (redacted there)
    usage: str = ""  # the usage line of the matched command, for error messages
    arg_names: tuple[str, ...] = ()  # positional names from the usage line, e.g. ("app", "env")

    @property
    def path(self) -> str:
        """``deploy`` or ``env create``."""
        return f"{self.verb} {self.subverb}" if self.subverb else self.verb

    def arg(self, name: str) -> str | None:
        """The positional argument the usage line calls ``name`` (``APP`` → ``app``)."""
        if name in self.arg_names:
            index = self.arg_names.index(name)
            if index < len(self.args):
                return self.args[index]
        return None

    def rest(self, name: str) -> tuple[str, ...]:
        """Every positional from ``name`` on, for a repeated argument (``TARGET…``)."""
        if name not in self.arg_names:
            return ()
        return self.args[self.arg_names.index(name) :]

    def value(self, name: str) -> str | None:
        """A positional or an option called ``name``, whichever the command has."""
        return self.arg(name) if name in self.arg_names else self.options.get(name)

    def option(self, name: str, default: str | None = None) -> str | None:
        """The value of ``name=…``, or ``default``."""
        return self.options.get(name, default)

    def flag(self, name: str) -> bool:
        """True when ``--name`` was given."""
        return name in self.flags

    def duration(self, name: str, default: timedelta) -> timedelta:
        """Parse option ``name`` (``ttl=24h``) as a duration; a bad one is a usage error."""
        raw = self.options.get(name)
        if raw is None:
            return default
        try:
            return parse_duration(raw)
        except DurationError as error:
            raise UsageError(f"{name}={raw}: {error}", self.usage) from None


class Timers(Protocol):
    """Timed follow-ups a handler asks for (warn before expiry, expire). The store row is
    the truth; this only tells the running scheduler, which rebuilds from the store at
    start anyway."""

    def set(self, key: str, when: datetime, action: str, subject: str) -> None:
        """Run timed action ``action`` on ``subject`` at ``when`` (replacing ``key``)."""
        ...

    def cancel(self, key: str) -> None:
        """Forget the follow-up ``key``."""
        ...


class NoTimers:
    """Timers for contexts with no scheduler (``opsbot run``): the server picks the
    deadlines up from the store when it starts, or at its next sweep."""

    def set(self, key: str, when: datetime, action: str, subject: str) -> None:
        """Nothing to tell: the deadline is in the store."""

    def cancel(self, key: str) -> None:
        """Nothing to forget."""


class Store(Protocol):
    """The part of ``bot.store.Store`` handlers see: a sqlite-utils database per thread."""

    @property
    def db(self) -> Database:
        """This thread's connection to the opsbot database."""
        ...


@dataclass(frozen=True)
class Context:
    """Everything a handler may use besides its command; built per request by the pipeline."""

    actor: str  # the Slack user ID of the person running the command
    channel: str  # where the command was typed (a Slack channel ID)
    settings: Settings
    adapters: Adapters
    store: Store
    clock: Clock
    registry: Registry
    ref: str  # the request's reference, shown to people and written to logs and the audit trail
    progress: Callable[[Reply], None]  # replace the visible answer with this interim Reply
    permits: Callable[[CommandSpec], bool] = lambda spec: True  # may the actor run it?
    timers: Timers = field(default_factory=NoTimers)

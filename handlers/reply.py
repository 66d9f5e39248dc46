"""What a handler returns: a :class:`Reply`, plain data that any front end can render.

``bot.render`` turns a Reply into Slack Block Kit (for Slack and the sandbox page) or into
plain text (for ``opsbot run``). Handlers write Slack ``mrkdwn`` in ``text`` and field
values; anything that came from a person or an external system goes through
:func:`escape` first, so that ``<!channel>`` typed into a command is shown, not obeyed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal


class Status(enum.Enum):
    """How a command ended; front ends map it to exit codes and styling."""

    OK = "ok"
    USAGE = "usage"  # the command was malformed; nothing ran
    REFUSED = "refused"  # governance said no; nothing ran
    FAILED = "failed"  # it ran and did not succeed
    PENDING = "pending"  # waiting for something, e.g. an approval
    IGNORED = "ignored"  # a repeated delivery of work already accepted; nothing is shown


@dataclass(frozen=True)
class Field:
    """A short label/value pair, shown two per row in Slack."""

    label: str
    value: str


@dataclass(frozen=True)
class Button:
    """A button whose click runs ``command`` as the person who clicked it.

    The click goes through the same pipeline as typed text, governance included, so a
    button can never do more than its clicker could type.
    """

    label: str
    command: str
    style: Literal["primary", "danger"] | None = None
    confirm: str | None = None  # ask "are you sure?" with this text before running


@dataclass(frozen=True)
class Attachment:
    """Long output (logs, diffs, tables) that goes into a file instead of the message."""

    filename: str
    content: str
    title: str = ""


@dataclass(frozen=True)
class Reply:
    """A handler's answer: what to show, to whom, and what can be clicked next."""

    text: str = ""
    title: str | None = None
    fields: tuple[Field, ...] = ()
    buttons: tuple[Button, ...] = ()
    footer: str | None = None
    ephemeral: bool = False  # only the person who asked sees it
    attachment: Attachment | None = None
    status: Status = Status.OK

    @property
    def ok(self) -> bool:
        """True when the command did what was asked (or is correctly waiting)."""
        return self.status in (Status.OK, Status.PENDING)


@dataclass(frozen=True)
class Preview:
    """What exactly a mutating command will do, shown on its approval card.

    ``fingerprint`` identifies the change itself (say, the resolved Git revision and the
    target): an approval is bound to it, and if it differs when the approved command is
    about to run, the approval is void.
    """

    text: str
    fields: tuple[Field, ...] = ()
    fingerprint: str = ""


@dataclass(frozen=True)
class Notice:
    """A message a timed action posts on its own initiative (no one asked just now)."""

    channel: str
    reply: Reply


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` so Slack shows the text instead of parsing it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """Inline code for a value from outside (a revision, a name); backticks are dropped."""
    return "`" + escape(text.replace("`", "'")) + "`"

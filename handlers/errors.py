"""The errors a handler raises to tell the person something, not to crash.

Messages are plain text (the pipeline escapes them before Slack sees them), written to
say what is wrong and what to do; pass ``markup=True`` for a message that is already
Slack mrkdwn (mentions, code), with every value from outside escaped by the caller.

Anything else a handler raises is a bug: the person sees "Something went wrong (ref …)"
and the traceback goes to the log under that reference. Adapters have their own
hierarchy (``adapters.errors``) whose messages are also safe to show.
"""

from __future__ import annotations

from handlers.reply import Status


class CommandError(Exception):
    """A problem to report to the person who asked; its message is shown as is."""

    status = Status.FAILED

    def __init__(self, message: str, *, markup: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.markup = markup


class UsageError(CommandError):
    """The command text is malformed: nothing ran; the usage line says what is expected."""

    status = Status.USAGE

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage


class CommandFailed(CommandError):
    """The command was understood but could not be carried out (unknown app, quota…)."""

    status = Status.FAILED


class Refused(CommandError):
    """Policy said no (permission, lock, approval): nothing ran."""

    status = Status.REFUSED

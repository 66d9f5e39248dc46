"""User-facing text that does not belong to one handler, in one place."""

from __future__ import annotations

from handlers.reply import escape


def usage(message: str, usage_line: str | None) -> str:
    """A usage error: the problem, then how the command is written."""
    text = f":warning: {escape(message)}"
    if usage_line:
        lines = "\n".join(f"`{escape(line)}`" for line in usage_line.splitlines())
        text += f"\n*Usage:* {lines}" if "\n" not in usage_line else f"\n*Usage:*\n{lines}"
    return text


def problem(message: str, *, markup: bool = False) -> str:
    """A command that could not be carried out, for a reason the person can act on."""
    return f":x: {message if markup else escape(message)}"


def backend_problem(system: str, message: str, ref: str) -> str:
    """An external system failed; say which, what it said, and the reference."""
    return f":x: {escape(system)}: {escape(message)} (ref {ref})"


def internal_error(ref: str) -> str:
    """A bug: the person gets a reference, the log gets the traceback."""
    return (
        f":boom: Something went wrong (ref {ref}). Nothing more is shown here; "
        f"an operator can find the details in opsbot's log under {ref}."
    )

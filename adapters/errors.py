"""One hierarchy of adapter errors, each with a message a person can act on.

Every adapter maps its transport's failures (HTTP status, timeouts, unparseable bodies)
onto these classes in one place, and never puts a secret into a message.
"""

from __future__ import annotations


class AdapterError(Exception):
    """A call to an external system did not succeed; ``str(error)`` is safe to show."""

    retryable = False

    def __init__(self, system: str, message: str) -> None:
        super().__init__(f"{system}: {message}")
        self.system = system
        self.message = message


class NotConfigured(AdapterError):
    """The system has no section in opsbot.toml (or lacks a setting it needs)."""


class NotFound(AdapterError):
    """The thing asked for does not exist (HTTP 404)."""


class Conflict(AdapterError):
    """The system refused because of its current state (HTTP 409), e.g. an operation running."""


class Forbidden(AdapterError):
    """opsbot's credentials were rejected or lack a permission (HTTP 401/403)."""


class Unavailable(AdapterError):
    """The system could not be reached, timed out or failed (5xx); worth retrying later."""

    retryable = True


class InvalidResponse(AdapterError):
    """The system answered something opsbot cannot read (not the API it expects)."""

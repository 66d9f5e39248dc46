"""Posting outside a request's own reply: approval cards, notices, alerts.

A request's answer goes through its :class:`~bot.pipeline.Responder`. Anything posted on
opsbot's own initiative (a card others will click, an expiry notice) goes through the
runtime's :class:`Channels`, which returns a message ID that can be stored and updated
later, from any thread, after a restart too.
"""

from __future__ import annotations

import logging
import sys
from typing import Protocol

from bot.render import to_text
from handlers.reply import Reply

log = logging.getLogger(__name__)


class Channels(Protocol):
    """Post to and update messages in channels by ID."""

    def post(self, channel: str, reply: Reply) -> str | None:
        """Post ``reply`` in ``channel``; return an ID for :meth:`update` (None if none)."""
        ...

    def update(self, channel: str, message_id: str, reply: Reply) -> None:
        """Replace message ``message_id`` in ``channel`` with ``reply``."""
        ...


class LogChannels:
    """Where there is no chat (``opsbot run``): messages go to the log."""

    def post(self, channel: str, reply: Reply) -> str | None:
        """Log the message; there is nothing to update later."""
        log.info("would post to %s: %s", channel, to_text(reply).replace("\n", " | "))
        return None

    def update(self, channel: str, message_id: str, reply: Reply) -> None:
        """Log the update."""
        log.info("would update %s in %s: %s", message_id, channel, to_text(reply))


class PrintChannels:
    """For ``opsbot run``: messages posted on opsbot's initiative are printed to stderr."""

    def post(self, channel: str, reply: Reply) -> str | None:
        """Print the message; return an ID for later updates."""
        sys.stderr.write(f"[{channel}] {to_text(reply)}\n")
        return "printed"

    def update(self, channel: str, message_id: str, reply: Reply) -> None:
        """Print the updated message."""
        sys.stderr.write(f"[{channel}, updated] {to_text(reply)}\n")


class ChannelResponder:
    """A :class:`~bot.pipeline.Responder` that answers in a channel through :class:`Channels`
    (for work no person is waiting on in a chat window: approved commands, timed jobs)."""

    def __init__(self, channels: Channels, channel: str) -> None:
        self._channels = channels
        self._channel = channel

    def post(self, reply: Reply) -> str | None:
        """Post ``reply`` in the channel."""
        return self._channels.post(self._channel, reply)

    def update(self, message_id: str, reply: Reply) -> None:
        """Update the message posted earlier."""
        self._channels.update(self._channel, message_id, reply)

"""The sandbox's stand-in for a Slack channel: messages in memory, versioned for live views.

Bot messages hold the exact Block Kit JSON that would go to Slack. Every post and update
bumps a version number; the page follows changes through Server-Sent Events.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bot.render import to_blocks
from handlers.reply import Reply

BOT = "opsbot"


@dataclass
class ChatMessage:
    """One message in the sandbox channel."""

    id: str
    user: str  # a user ID, or "opsbot"
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    visible_to: str | None = None  # ephemeral: only this user sees it
    file: dict[str, str] | None = None
    version: int = 0
    ts: float = field(default_factory=time.time)
    edited: bool = False

    def as_json(self) -> dict[str, Any]:
        """The message as the page receives it."""
        return {
            "id": self.id,
            "user": self.user,
            "text": self.text,
            "blocks": self.blocks,
            "visible_to": self.visible_to,
            "file": self.file,
            "version": self.version,
            "ts": self.ts,
            "edited": self.edited,
        }


class Chat:
    """An in-memory channel with change tracking; thread-safe."""

    def __init__(self, channel: str, limit: int = 500) -> None:
        self.channel = channel
        self._messages: dict[str, ChatMessage] = {}
        self._version = 0
        self._ids = itertools.count(1)
        self._changed = threading.Condition()
        self._limit = limit
        self._closed = False

    @property
    def version(self) -> int:
        """The version of the latest change."""
        with self._changed:
            return self._version

    def say(self, user: str, text: str) -> ChatMessage:
        """Record what a person typed."""
        return self._store(ChatMessage(id=self._next_id(), user=user, text=text))

    def post(self, reply: Reply, *, visible_to: str | None = None) -> ChatMessage:
        """Post a bot message rendered from ``reply``."""
        message = ChatMessage(id=self._next_id(), user=BOT, text="", visible_to=visible_to)
        _fill(message, reply)
        return self._store(message)

    def update(self, message_id: str, reply: Reply) -> ChatMessage:
        """Replace the content of bot message ``message_id`` with ``reply``."""
        with self._changed:
            message = self._messages[message_id]
            _fill(message, reply)
            message.edited = True
            self._version += 1
            message.version = self._version
            self._changed.notify_all()
            return message

    def get(self, message_id: str) -> ChatMessage | None:
        """The message ``message_id``, if it exists."""
        with self._changed:
            return self._messages.get(message_id)

    def since(self, version: int) -> list[ChatMessage]:
        """Messages changed after ``version``, oldest change first."""
        with self._changed:
            return sorted(
                (m for m in self._messages.values() if m.version > version),
                key=lambda m: m.version,
            )

    def wait(self, version: int, timeout: float) -> list[ChatMessage]:
        """Block until something changes after ``version`` (or ``timeout``); return changes."""
        with self._changed:
            self._changed.wait_for(lambda: self._version > version or self._closed, timeout)
        return self.since(version)

    def close(self) -> None:
        """Wake every waiter so open event streams end (at shutdown)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _next_id(self) -> str:
        return f"{time.time():.6f}-{next(self._ids)}"

    def _store(self, message: ChatMessage) -> ChatMessage:
        with self._changed:
            self._version += 1
            message.version = self._version
            self._messages[message.id] = message
            while len(self._messages) > self._limit:
                del self._messages[next(iter(self._messages))]
            self._changed.notify_all()
            return message


def _fill(message: ChatMessage, reply: Reply) -> None:
    rendered = to_blocks(reply)
    message.text = rendered.text
    message.blocks = rendered.blocks
    message.file = (
        {
            "filename": rendered.file.filename,
            "title": rendered.file.title,
            "content": rendered.file.content,
        }
        if rendered.file
        else None
    )


class ChatResponder:
    """A :class:`~bot.pipeline.Responder` that answers into the sandbox chat."""

    def __init__(self, chat: Chat, actor: str) -> None:
        self._chat = chat
        self._actor = actor

    def post(self, reply: Reply) -> str | None:
        """Post ``reply``; ephemeral replies are visible to the actor only."""
        visible_to = self._actor if reply.ephemeral else None
        return self._chat.post(reply, visible_to=visible_to).id

    def update(self, message_id: str, reply: Reply) -> None:
        """Replace message ``message_id`` in place."""
        self._chat.update(message_id, reply)


class ChatChannels:
    """:class:`~bot.channels.Channels` for the sandbox: every channel is the one page."""

    def __init__(self, chat: Chat) -> None:
        self._chat = chat

    def post(self, channel: str, reply: Reply) -> str | None:
        """Post ``reply`` on the page."""
        return self._chat.post(reply).id

    def update(self, channel: str, message_id: str, reply: Reply) -> None:
        """Replace message ``message_id`` on the page (if it is still there)."""
        if self._chat.get(message_id) is not None:
            self._chat.update(message_id, reply)

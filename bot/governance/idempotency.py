"""Exactly-once delivery: a request or click already seen runs nothing again.

Slack retries an event it thinks was not acknowledged, and people double-click. The
transport gives each request an ``idempotency_key`` (Slack's ``trigger_id`` or
``event_id``) and, for clicks, a ``debounce_key`` (message, button and user); the keys
live in the store's ``idempotency`` table with an expiry, so a restart forgets nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.pipeline import Invocation, Next, Step
from bot.store import Store
from handlers.context import Clock
from handlers.reply import Reply, Status

log = logging.getLogger(__name__)

#: Slack retries within minutes; a day is far beyond any retry and cheap to keep.
REPLAY_WINDOW = timedelta(hours=24)
#: Two clicks on the same button by the same person this close together are one click.
DOUBLE_CLICK_WINDOW = timedelta(seconds=5)


def idempotency_step(store: Store, clock: Clock) -> Step:
    """The step that drops repeated deliveries and double clicks before anything runs."""

    def once(invocation: Invocation, proceed: Next) -> Reply:
        request = invocation.request
        now = clock()
        keys = [
            (key, window)
            for key, window in (
                (request.idempotency_key, REPLAY_WINDOW),
                (request.debounce_key, DOUBLE_CLICK_WINDOW),
            )
            if key
        ]
        for key, window in keys:
            if not store.claim(key, now, window):
                log.info("dropped a repeated delivery ref=%s key=%s", request.ref, key)
                return Reply(text="already handled", status=Status.IGNORED)
        return proceed(invocation)

    return once

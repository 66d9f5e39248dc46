"""The Bolt app: the umbrella slash command, button clicks and message events.

Listeners only acknowledge and hand the work to the runtime's worker pool, so nothing
slow happens before ``ack()``. Bolt runs them with ``process_before_response=True``:
the listener itself is the fast part, so Bolt's own executor (5 threads, polling every
10 ms for the ack) is not in the way; the slow part runs on opsbot's workers, sized by
``[server].workers``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from slack_bolt import Ack, App
from slack_sdk.web import WebClient

from bot.governance.dlp import Finding, describe, kinds, scan
from bot.pipeline import Request
from bot.render import ACTION_PREFIX, to_blocks
from bot.runtime import Runtime
from bot.slack import Outbox, SlackResponder, unescape
from handlers.reply import Reply

log = logging.getLogger(__name__)


class _TokenFromClient(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN is unused when a client is given; it is the
    same token, already in the client."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


_bolt_log = logging.getLogger("bot.bolt")
_bolt_log.addFilter(_TokenFromClient())

BUTTON_ACTION = re.compile(rf"^{re.escape(ACTION_PREFIX)}\.\d+$")
_held = threading.local()


@contextmanager
def hold_until_acked() -> Iterator[list[Callable[[], object]]]:
    """Collect the work listeners start during one request, to start it once the ack
    has been sent (the caller runs the list then). Slow work never races the ack."""
    _held.work = []
    try:
        yield _held.work
    finally:
        _held.work = None


def after_ack(start: Callable[[], object]) -> None:
    """Start ``start`` once the current request is acknowledged (at once outside one)."""
    held: list[Callable[[], object]] | None = getattr(_held, "work", None)
    if held is None:
        start()
    else:
        held.append(start)


def start_all(work: list[Callable[[], object]]) -> None:
    """Start work collected by :func:`hold_until_acked`."""
    for start in work:
        try:
            start()
        except Exception:
            log.exception("could not start work after the ack")


def build_app(
    runtime: Runtime,
    client: WebClient,
    outbox: Outbox,
    *,
    signing_secret: str | None,
) -> App:
    """The Bolt app wired to ``runtime``; building it calls ``auth.test`` (a bad token raises)."""
    app = App(
        client=client,
        signing_secret=signing_secret,
        process_before_response=True,
        request_verification_enabled=signing_secret is not None,
        # Only lazy listeners would use it, and opsbot has none; two threads say so.
        listener_executor=ThreadPoolExecutor(2, thread_name_prefix="bolt"),
        logger=_bolt_log,
    )

    def on_command(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        channel, user = str(body.get("channel_id", "")), str(body.get("user_id", ""))
        request = Request(
            text=unescape(str(body.get("text", ""))),
            actor=user,
            channel=channel,
            source="slack",
            idempotency_key=f"slack:{body.get('trigger_id', '')}"
            if body.get("trigger_id")
            else None,
        )
        responder = SlackResponder(
            outbox, channel=channel, user=user, response_url=body.get("response_url")
        )
        after_ack(lambda: runtime.submit(request, responder))

    def on_click(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        user = str(body.get("user", {}).get("id", ""))
        container = body.get("container") or {}
        channel = str((body.get("channel") or {}).get("id") or container.get("channel_id", ""))
        message_ts = container.get("message_ts") or "ephemeral"
        request = Request(
            text=str(action.get("value", "")),
            actor=user,
            channel=channel,
            source="button",
            idempotency_key=f"slack:{body.get('trigger_id')}" if body.get("trigger_id") else None,
            debounce_key=f"click:{channel}:{message_ts}:{action.get('action_id')}:{user}",
        )
        responder = SlackResponder(
            outbox, channel=channel, user=user, response_url=body.get("response_url")
        )
        after_ack(lambda: runtime.submit(request, responder))

    def on_message(ack: Ack, event: dict[str, Any]) -> None:
        ack()
        if event.get("subtype") or event.get("bot_id"):
            return  # edits, joins and bots' own posts are not people pasting secrets
        findings = scan(str(event.get("text") or ""))
        if findings:
            after_ack(lambda: warn_about_message(runtime, outbox, event, findings))

    app.command(runtime.settings.slack.command)(on_command)
    app.action(BUTTON_ACTION)(on_click)
    app.event("message")(on_message)
    return app


def warn_about_message(
    runtime: Runtime, outbox: Outbox, event: dict[str, Any], findings: list[Finding]
) -> None:
    """Tell the poster, privately and in the message's thread, what kind of data their
    message holds (never the data itself), and audit the detection."""
    channel, user = str(event.get("channel", "")), str(event.get("user", ""))
    what = describe(findings)
    reply = Reply(
        text=(
            f":warning: <@{user}>, your message contains {what}. Please delete it. Treat "
            "anything secret in it as leaked and rotate it. opsbot kept no copy."
        )
    )
    thread = str(event.get("thread_ts") or event.get("ts") or "") or None
    outbox.ephemeral(channel, user, to_blocks(reply), thread_ts=thread)
    runtime.audit.record(
        runtime.clock(),
        actor=user,
        channel=channel,
        command="(a channel message)",
        decision="DLP detection",
        outcome="warned",
        ref=str(event.get("client_msg_id") or event.get("ts") or "-"),
        detail=", ".join(kinds(findings)),
    )

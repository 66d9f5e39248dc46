"""Talking to Slack's Web API: the client, the outbox every post goes through, and the
:class:`~bot.pipeline.Responder` that turns Replies into messages updated in place.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any
from urllib.error import URLError

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from bot.render import Message, to_blocks
from bot.sender import DeliveryError, Sender
from handlers.reply import Attachment, Reply

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"
API_TIMEOUT_SECONDS = 10
#: A message that could only be posted through the command's response_url.
VIA_RESPONSE_URL = "response_url"
_NOT_A_MEMBER = {"channel_not_found", "not_in_channel"}


def web_client(token: str | None, environ: Mapping[str, str] | None = None) -> WebClient:
    """A WebClient aimed at ``$SLACK_API_URL`` (tests) or Slack, with explicit timeouts and
    slack_sdk's rate-limit retry handler added to its default (connection) handlers."""
    env = os.environ if environ is None else environ
    base_url = env.get("SLACK_API_URL") or DEFAULT_API_URL
    client = WebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=API_TIMEOUT_SECONDS,
    )
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    return client


def unescape(text: str) -> str:
    """Undo Slack's escaping of ``&``, ``<`` and ``>`` in text people typed."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def delivery_error(method: str, error: Exception) -> DeliveryError:
    """Classify a Slack client failure: 429 and 5xx and network errors are retryable."""
    if isinstance(error, SlackApiError):
        status = error.response.status_code
        code = str(error.response.get("error") or f"http_{status}")
        headers = {k.lower(): v for k, v in (error.response.headers or {}).items()}
        retry_after = _seconds(headers.get("retry-after"))
        return DeliveryError(
            method,
            code,
            status=status,
            retryable=status == 429 or status >= 500,
            retry_after=retry_after,
        )
    if isinstance(error, URLError | OSError | TimeoutError):
        return DeliveryError(method, f"network: {error}", retryable=True)
    return DeliveryError(method, type(error).__name__)


def _seconds(value: Any) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except (TypeError, ValueError):
        return None


class Outbox:
    """Every message opsbot sends to Slack, paced per channel by a :class:`Sender`."""

    def __init__(self, client: WebClient, sender: Sender) -> None:
        self.client = client
        self.sender = sender

    def post(
        self, channel: str, message: Message, *, response_url: str | None = None
    ) -> Future[str]:
        """``chat.postMessage``; resolves to the message ``ts``. Where opsbot is not in
        the channel, falls back to the command's ``response_url`` (visible in channel)."""

        def call() -> str:
            try:
                sent = self.client.chat_postMessage(
                    channel=channel, text=message.text, blocks=message.blocks
                )
                return str(sent["ts"])
            except SlackApiError as error:
                if error.response.get("error") in _NOT_A_MEMBER and response_url:
                    self._webhook(response_url, message, response_type="in_channel")
                    return VIA_RESPONSE_URL
                raise delivery_error("chat.postMessage", error) from None
            except Exception as error:
                raise delivery_error("chat.postMessage", error) from None

        return self.sender.submit(channel, "chat.postMessage", call)

    def update(
        self,
        channel: str,
        posted: Future[str],
        message: Message,
        *,
        key: str,
        response_url: str | None = None,
    ) -> Future[None]:
        """``chat.update`` of a posted message; queued updates with the same ``key`` (one
        per message) are coalesced, so only the newest content is sent."""

        def call() -> None:
            if posted.exception() is not None:
                raise DeliveryError("chat.update", "the message to update was never posted")
            ts = posted.result()
            if ts == VIA_RESPONSE_URL and response_url:
                self._webhook(response_url, message, replace_original=True)
                return
            try:
                self.client.chat_update(
                    channel=channel, ts=ts, text=message.text, blocks=message.blocks
                )
            except Exception as error:
                raise delivery_error("chat.update", error) from None

        return self.sender.submit(channel, "chat.update", call, coalesce=f"update:{key}")

    def ephemeral(
        self,
        channel: str,
        user: str,
        message: Message,
        *,
        response_url: str | None = None,
        thread_ts: str | None = None,
    ) -> Future[None]:
        """A message only ``user`` sees: through ``response_url`` when there is one
        (works in any channel), else ``chat.postEphemeral``."""

        def call() -> None:
            if response_url:
                self._webhook(response_url, message, response_type="ephemeral")
                return
            try:
                self.client.chat_postEphemeral(
                    channel=channel,
                    user=user,
                    text=message.text,
                    blocks=message.blocks,
                    thread_ts=thread_ts,
                )
            except Exception as error:
                raise delivery_error("chat.postEphemeral", error) from None

        # A response_url has its own budget (5 uses), not the channel's posting rate.
        lane = f"response_url:{response_url}" if response_url else channel
        return self.sender.submit(lane, "chat.postEphemeral", call)

    def upload(self, channel: str, file: Attachment, thread: Future[str] | None) -> Future[None]:
        """Upload long output (files upload v2), in the thread of ``thread`` if given."""

        def call() -> None:
            thread_ts = None
            if thread is not None and thread.exception() is None:
                ts = thread.result()
                thread_ts = ts if ts != VIA_RESPONSE_URL else None
            try:
                self.client.files_upload_v2(
                    channel=channel,
                    content=file.content,
                    filename=file.filename,
                    title=file.title or file.filename,
                    thread_ts=thread_ts,
                    request_file_info=False,
                )
            except Exception as error:
                raise delivery_error("files.upload_v2", error) from None

        return self.sender.submit(channel, "files.upload_v2", call)

    def close(self, timeout: float = 30.0) -> bool:
        """Send what is queued, then stop."""
        return self.sender.close(timeout)

    def _webhook(self, url: str, message: Message, **options: Any) -> None:
        try:
            sent = WebhookClient(url, timeout=API_TIMEOUT_SECONDS).send(
                text=message.text, blocks=message.blocks, **options
            )
        except Exception as error:
            raise delivery_error("response_url", error) from None
        if sent.status_code >= 400:
            raise DeliveryError(
                "response_url",
                sent.body or f"http_{sent.status_code}",
                status=sent.status_code,
                retryable=sent.status_code == 429 or sent.status_code >= 500,
            )


class SlackResponder:
    """Replies to one request in Slack: posts, then updates the same message in place.

    Posting never blocks: the message ID handed to the pipeline stands for a future
    ``ts``, and updates queue behind the post on the channel's lane.
    """

    _handles = itertools.count(1)

    def __init__(
        self, outbox: Outbox, *, channel: str, user: str, response_url: str | None = None
    ) -> None:
        self._outbox = outbox
        self._channel = channel
        self._user = user
        self._response_url = response_url
        self._posted: dict[str, Future[str]] = {}
        self._uploaded: dict[str, str] = {}
        self._lock = threading.Lock()

    def post(self, reply: Reply) -> str | None:
        """Show ``reply``: ephemerally to the asker, or as a new channel message."""
        message = to_blocks(reply)
        if reply.ephemeral:
            self._outbox.ephemeral(
                self._channel, self._user, message, response_url=self._response_url
            )
            return None
        posted = self._outbox.post(self._channel, message, response_url=self._response_url)
        handle = f"slack-{next(self._handles)}"
        with self._lock:
            self._posted[handle] = posted
        self._attach(handle, message)
        return handle

    def update(self, message_id: str, reply: Reply) -> None:
        """Replace the message ``message_id`` with ``reply``."""
        with self._lock:
            posted = self._posted[message_id]
        message = to_blocks(reply)
        self._outbox.update(
            self._channel, posted, message, key=message_id, response_url=self._response_url
        )
        self._attach(message_id, message)

    def _attach(self, handle: str, message: Message) -> None:
        if message.file is None:
            return
        with self._lock:
            if self._uploaded.get(handle) == message.file.content:
                return  # progress updates repeat the same file; upload it once
            self._uploaded[handle] = message.file.content
            posted = self._posted[handle]
        self._outbox.upload(self._channel, message.file, posted)


class SlackChannels:
    """:class:`~bot.channels.Channels` over the outbox: posts wait for their ``ts`` (they
    run on workers or timers, never on the ack path) so that it can be stored."""

    POST_TIMEOUT_SECONDS = 120.0

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def post(self, channel: str, reply: Reply) -> str | None:
        """``chat.postMessage``; the message ``ts``, or None if it could not be posted."""
        try:
            ts = self._outbox.post(channel, to_blocks(reply)).result(self.POST_TIMEOUT_SECONDS)
        except Exception as error:
            log.error("could not post to %s: %s", channel, error)
            return None
        return ts if ts != VIA_RESPONSE_URL else None

    def update(self, channel: str, message_id: str, reply: Reply) -> None:
        """``chat.update`` of a message posted earlier (possibly by an earlier process)."""
        posted: Future[str] = Future()
        posted.set_result(message_id)
        self._outbox.update(channel, posted, to_blocks(reply), key=f"{channel}:{message_id}")

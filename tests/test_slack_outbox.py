"""Outbox and SlackResponder against the fake Slack Web API: post, update in place,
ephemeral answers, the response_url fallback, file uploads, and Slack's failures."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.error import URLError

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.web import WebClient

from bot import render
from bot.render import Message, to_blocks
from bot.sender import DeliveryError, Sender
from bot.slack import (
    Outbox,
    SlackChannels,
    SlackResponder,
    delivery_error,
    unescape,
    web_client,
)
from handlers.reply import Field, Reply, escape
from tests.fakes.slack_web import BOT_TOKEN, MAX_BLOCKS, Call, FakeSlack

WAIT = 15.0
CHAT_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")


@dataclass
class Slack:
    """A started fake Slack and an outbox talking to it."""

    fake: FakeSlack
    outbox: Outbox
    errors: list[tuple[str, str]] = field(default_factory=list)

    def responder(self, channel: str = "C0OPS", response_url: str | None = None) -> SlackResponder:
        return SlackResponder(
            self.outbox, channel=channel, user="U0ALICE", response_url=response_url
        )

    def assert_chat_calls_were_accepted(self) -> None:
        """Every chat.* call fitted Slack's limits: the fake said ok."""
        for call in self.fake.calls:
            if call.method in CHAT_METHODS and call.status == 200:
                assert call.answer.get("ok"), (call.method, call.answer)
                assert len(call.blocks) <= MAX_BLOCKS


def make_outbox(fake: FakeSlack, token: str, errors: list[tuple[str, str]]) -> Outbox:
    client = web_client(token=token, environ={"SLACK_API_URL": fake.api_url})
    sender = Sender(
        interval=0.01, backoff=0.01, on_error=lambda method, error: errors.append((method, error))
    )
    return Outbox(client, sender)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    started = FakeSlack().start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def slack(fake: FakeSlack) -> Iterator[Slack]:
    errors: list[tuple[str, str]] = []
    outbox = make_outbox(fake, BOT_TOKEN, errors)
    try:
        yield Slack(fake, outbox, errors)
    finally:
        outbox.close(timeout=WAIT)


def message(text: str) -> Message:
    return to_blocks(Reply(text=text))


def long_text(lines: int = 3000) -> str:
    return "\n".join(f"line {n:05d} of the deployment log" for n in range(lines))


def statuses(fake: FakeSlack, method: str) -> list[int]:
    return [call.status for call in fake.calls_to(method)]


# --- posting and updating in place ---------------------------------------------------


def test_a_reply_is_posted_once_then_updated_in_place(slack: Slack) -> None:
    fake = slack.fake
    responder = slack.responder(response_url=fake.response_url("r1"))

    handle = responder.post(Reply(title="deploy payments staging", text="syncing…"))
    assert handle is not None
    responder.update(
        handle, Reply(title="deploy payments staging", text="synced :white_check_mark:")
    )

    [update] = fake.wait_for("chat.update")
    [post] = fake.calls_to("chat.postMessage")
    assert post.params["channel"] == "C0OPS"
    assert "syncing" in post.text
    assert update.params["channel"] == "C0OPS"
    assert update.params["ts"] == post.answer["ts"]
    assert "synced" in update.text
    assert fake.calls_to("response_url") == []  # response_url is only for ephemeral answers
    slack.assert_chat_calls_were_accepted()
    assert fake.spec_problems() == []


def test_every_update_of_a_message_targets_the_same_ts(slack: Slack) -> None:
    fake = slack.fake
    responder = slack.responder()
    handle = responder.post(Reply(text="step 0"))
    assert handle is not None
    for step in range(1, 4):
        responder.update(handle, Reply(text=f"step {step}"))

    fake.wait_for("chat.update", lambda call: "step 3" in call.text)
    [post] = fake.calls_to("chat.postMessage")
    updates = fake.calls_to("chat.update")
    assert {call.params["ts"] for call in updates} == {post.answer["ts"]}
    assert "step 3" in updates[-1].text  # the newest content is what stays
    assert fake.spec_problems() == []


def test_two_replies_are_two_messages(slack: Slack) -> None:
    fake = slack.fake
    first, second = slack.responder(), slack.responder()
    one, two = first.post(Reply(text="one")), second.post(Reply(text="two"))
    assert one is not None
    assert two is not None
    assert one != two
    first.update(one, Reply(text="one, done"))

    fake.wait_for("chat.update")
    posts = fake.wait_for("chat.postMessage", count=2)
    [update] = fake.calls_to("chat.update")
    assert update.params["ts"] == posts[0].answer["ts"] != posts[1].answer["ts"]
    assert fake.spec_problems() == []


# --- ephemeral answers ----------------------------------------------------------------


def test_an_ephemeral_reply_goes_to_the_response_url_when_there_is_one(slack: Slack) -> None:
    fake = slack.fake
    responder = slack.responder(response_url=fake.response_url("r1"))

    assert responder.post(Reply(text="only you can see this", ephemeral=True)) is None

    [answer] = fake.wait_for("response_url")
    assert answer.params["response_type"] == "ephemeral"
    assert answer.params["text"] == "only you can see this"
    assert fake.calls_to("chat.postEphemeral") == []
    assert fake.calls_to("chat.postMessage") == []
    assert fake.spec_problems() == []


def test_an_ephemeral_reply_without_response_url_uses_chat_post_ephemeral(slack: Slack) -> None:
    fake = slack.fake
    responder = slack.responder()

    assert responder.post(Reply(text="only you can see this", ephemeral=True)) is None

    [answer] = fake.wait_for("chat.postEphemeral")
    assert answer.params["channel"] == "C0OPS"
    assert answer.params["user"] == "U0ALICE"
    assert "only you can see this" in answer.text
    assert fake.calls_to("response_url") == []
    slack.assert_chat_calls_were_accepted()
    assert fake.spec_problems() == []


# --- channels opsbot is not in ---------------------------------------------------------


def test_a_channel_opsbot_is_not_in_is_answered_through_the_response_url(slack: Slack) -> None:
    fake = slack.fake
    fake.not_in.add("C0PRIVATE")
    responder = slack.responder("C0PRIVATE", response_url=fake.response_url("r1"))

    handle = responder.post(Reply(text="deploying"))
    assert handle is not None
    responder.update(handle, Reply(text="deployed"))

    posted, replaced = fake.wait_for("response_url", count=2)
    assert posted.params["response_type"] == "in_channel"
    assert posted.params["text"] == "deploying"
    assert replaced.params["replace_original"] is True
    assert replaced.params["text"] == "deployed"
    assert fake.calls_to("chat.update") == []  # there is no ts to update
    assert slack.errors == []  # the fallback is not a failure
    assert fake.spec_problems() == []


def test_a_channel_opsbot_is_not_in_without_response_url_is_a_logged_failure(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    fake = slack.fake
    fake.not_in.add("C0PRIVATE")

    with caplog.at_level(logging.ERROR, logger="bot.sender"):
        error = slack.outbox.post("C0PRIVATE", message("hello")).exception(WAIT)

    assert isinstance(error, DeliveryError)
    assert error.error == "not_in_channel"
    assert any(
        "C0PRIVATE" in r.getMessage() and "not_in_channel" in r.getMessage() for r in caplog.records
    )
    assert fake.spec_problems() == []


# --- long output as a file -------------------------------------------------------------


def test_a_long_reply_uploads_its_file_into_the_thread_of_the_posted_message(
    slack: Slack,
) -> None:
    fake = slack.fake
    text = long_text()
    assert len(text) > render.INLINE_TEXT_CHARS
    responder = slack.responder()

    responder.post(Reply(title="logs", text=text))

    [complete] = fake.wait_for("files.completeUploadExternal")
    [post] = fake.calls_to("chat.postMessage")
    [ask] = fake.calls_to("files.getUploadURLExternal")
    [upload] = fake.calls_to("upload")
    [file] = json.loads(complete.params["files"])
    assert file["id"] == ask.answer["file_id"]
    assert complete.params["channel_id"] == "C0OPS"
    assert complete.params["thread_ts"] == post.answer["ts"]
    assert int(ask.params["length"]) == len(text.encode())
    assert "line 02999" in upload.text  # the full output, not the preview
    assert "line 02999" not in post.text
    slack.assert_chat_calls_were_accepted()
    assert fake.spec_problems() == []


def test_updating_with_the_same_file_does_not_upload_it_again(slack: Slack) -> None:
    fake = slack.fake
    reply = Reply(title="logs", text=long_text())
    responder = slack.responder()
    handle = responder.post(reply)
    assert handle is not None

    responder.update(handle, reply)
    responder.post(Reply(text="after"))  # queued behind anything the update queued

    fake.wait_for("chat.postMessage", lambda call: "after" in call.text)
    assert len(fake.calls_to("chat.update")) == 1
    assert len(fake.calls_to("files.getUploadURLExternal")) == 1
    assert len(fake.calls_to("files.completeUploadExternal")) == 1
    assert fake.spec_problems() == []


def test_a_reply_beyond_slacks_block_limit_is_posted_within_it(slack: Slack) -> None:
    fake = slack.fake
    fields = tuple(Field(f"app {n}", f"revision {n}") for n in range(700))
    responder = slack.responder()

    responder.post(Reply(title="apps", text="every app", fields=fields))

    fake.wait_for("files.completeUploadExternal")
    [post] = fake.calls_to("chat.postMessage")
    assert post.answer["ok"], post.answer
    assert len(post.blocks) <= MAX_BLOCKS
    slack.assert_chat_calls_were_accepted()
    assert fake.spec_problems() == []


# --- Slack failing ---------------------------------------------------------------------


def test_a_429_with_retry_after_still_delivers_the_message(slack: Slack) -> None:
    fake = slack.fake
    fake.fail("chat.postMessage", 429, retry_after=1)

    ts = slack.outbox.post("C0OPS", message("rate limited once")).result(WAIT)

    [delivered] = fake.wait_for("chat.postMessage")
    assert delivered.answer["ts"] == ts
    assert statuses(fake, "chat.postMessage") == [429, 200]
    assert fake.spec_problems() == []


def test_429s_beyond_the_clients_retry_are_retried_by_the_sender(slack: Slack) -> None:
    fake = slack.fake
    fake.fail("chat.postMessage", 429, times=2, retry_after=1)

    ts = slack.outbox.post("C0OPS", message("rate limited twice")).result(WAIT)

    assert ts == fake.wait_for("chat.postMessage")[0].answer["ts"]
    assert statuses(fake, "chat.postMessage") == [429, 429, 200]
    assert slack.errors == [("chat.postMessage", "ratelimited")]
    assert fake.spec_problems() == []


def test_500_twice_then_success_delivers_the_message(slack: Slack) -> None:
    fake = slack.fake
    fake.fail("chat.postMessage", 500, times=2)

    ts = slack.outbox.post("C0OPS", message("flaky Slack")).result(WAIT)

    assert ts == fake.wait_for("chat.postMessage")[0].answer["ts"]
    assert statuses(fake, "chat.postMessage") == [500, 500, 200]
    assert slack.errors == [("chat.postMessage", "fatal_error")] * 2
    assert fake.spec_problems() == []


def test_a_failing_update_is_retried_and_lands_on_the_same_message(slack: Slack) -> None:
    fake = slack.fake
    fake.fail("chat.update", 500, times=1)
    responder = slack.responder()
    handle = responder.post(Reply(text="before"))
    assert handle is not None

    responder.update(handle, Reply(text="after"))

    [update] = fake.wait_for("chat.update")
    assert statuses(fake, "chat.update") == [500, 200]
    assert update.params["ts"] == fake.calls_to("chat.postMessage")[0].answer["ts"]
    assert fake.spec_problems() == []


def test_a_refused_token_fails_the_post_and_logs_channel_and_error(
    fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[tuple[str, str]] = []
    outbox = make_outbox(fake, "xoxb-not-the-right-token", errors)
    try:
        with caplog.at_level(logging.ERROR, logger="bot.sender"):
            error = outbox.post("C0OPS", message("hello")).exception(WAIT)
    finally:
        outbox.close(timeout=WAIT)

    assert isinstance(error, DeliveryError)
    assert error.error == "invalid_auth"
    assert not error.retryable
    assert len(fake.calls_to("chat.postMessage")) == 1  # never retried
    assert errors == [("chat.postMessage", "invalid_auth")]
    assert any(
        "C0OPS" in r.getMessage() and "invalid_auth" in r.getMessage() for r in caplog.records
    )
    assert fake.spec_problems() == []


def test_an_update_of_a_message_that_was_never_posted_fails_too(
    fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = make_outbox(fake, "xoxb-not-the-right-token", [])
    try:
        with caplog.at_level(logging.ERROR, logger="bot.sender"):
            posted = outbox.post("C0OPS", message("hello"))
            updated = outbox.update("C0OPS", posted, message("hello again"), key="m1")
            error = updated.exception(WAIT)
    finally:
        outbox.close(timeout=WAIT)

    assert isinstance(error, DeliveryError)
    assert "never posted" in error.error
    assert fake.calls_to("chat.update") == []
    assert fake.spec_problems() == []


# --- classifying failures ----------------------------------------------------------------


def plain_client(fake: FakeSlack, token: str = BOT_TOKEN) -> WebClient:
    """A client without retry handlers, to see Slack's answer as it is."""
    client = WebClient(token=token, base_url=fake.api_url)
    client.retry_handlers.clear()
    return client


def refused(client: WebClient, channel: str = "C0OPS") -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel=channel, text="hello")
    return caught.value


def test_a_429_is_retryable_after_the_seconds_slack_asked_for(fake: FakeSlack) -> None:
    fake.fail("chat.postMessage", 429, retry_after=7)

    error = delivery_error("chat.postMessage", refused(plain_client(fake)))

    assert (error.status, error.error, error.retryable) == (429, "ratelimited", True)
    assert error.retry_after == 7.0
    assert fake.spec_problems() == []


def test_a_5xx_is_retryable(fake: FakeSlack) -> None:
    fake.fail("chat.postMessage", 503)

    error = delivery_error("chat.postMessage", refused(plain_client(fake)))

    assert (error.status, error.retryable, error.retry_after) == (503, True, None)
    assert fake.spec_problems() == []


def test_an_error_slack_answers_with_200_is_not_retryable(fake: FakeSlack) -> None:
    fake.not_in.add("C0PRIVATE")

    error = delivery_error("chat.postMessage", refused(plain_client(fake), "C0PRIVATE"))

    assert (error.status, error.error, error.retryable) == (200, "not_in_channel", False)
    assert str(error) == "chat.postMessage: not_in_channel"
    assert fake.spec_problems() == []


def test_a_network_failure_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = WebClient(token=BOT_TOKEN, base_url=f"http://127.0.0.1:{port}/api/")
    client.retry_handlers.clear()
    with pytest.raises(URLError) as caught:
        client.auth_test()

    error = delivery_error("auth.test", caught.value)

    assert error.retryable
    assert error.error.startswith("network:")


# --- the client and text helpers -------------------------------------------------------


@pytest.mark.parametrize("trailing_slash", [True, False])
def test_web_client_takes_its_base_url_from_slack_api_url(
    fake: FakeSlack, trailing_slash: bool
) -> None:
    api_url = fake.api_url if trailing_slash else fake.api_url.rstrip("/")

    client = web_client(token=BOT_TOKEN, environ={"SLACK_API_URL": api_url})

    assert client.base_url == fake.api_url
    assert client.auth_test()["user_id"] == "U0OPSBOT"
    [call] = fake.calls_to("auth.test")
    assert call.token == BOT_TOKEN
    assert fake.spec_problems() == []


def test_web_client_defaults_to_slack_with_a_timeout() -> None:
    client = web_client(token=BOT_TOKEN, environ={})

    assert client.base_url == "https://slack.com/api/"
    assert client.timeout > 0


def test_web_client_adds_the_rate_limit_handler_to_the_default_handlers() -> None:
    client = web_client(token=BOT_TOKEN, environ={})

    kinds = [type(handler) for handler in client.retry_handlers]
    assert ConnectionErrorRetryHandler in kinds  # the default is kept
    assert RateLimitErrorRetryHandler in kinds
    assert len(kinds) == len(WebClient().retry_handlers) + 1


def test_unescape_turns_slack_entities_back() -> None:
    assert unescape("deploy &lt;app&gt; &amp; more") == "deploy <app> & more"
    assert unescape("&amp;lt;") == "&lt;"  # someone typed the entity itself


@given(st.text())
def test_unescape_undoes_slacks_escaping(text: str) -> None:
    assert unescape(escape(text)) == text


def test_calls_record_what_the_fake_received(slack: Slack) -> None:
    """The recorded calls carry the parameters the assertions above rely on."""
    slack.outbox.post("C0OPS", message("hello")).result(WAIT)

    [call] = slack.fake.calls_to("chat.postMessage")
    assert isinstance(call, Call)
    assert call.token == BOT_TOKEN
    assert call.params["channel"] == "C0OPS"
    assert call.blocks == message("hello").blocks
    assert slack.fake.spec_problems() == []


def test_updates_to_two_messages_are_never_merged(fake: FakeSlack) -> None:
    outbox = make_outbox(fake, BOT_TOKEN, [])
    channels = SlackChannels(outbox)
    try:
        first = channels.post("C0TWO", Reply(text="one"))
        second = channels.post("C0TWO", Reply(text="two"))
        assert first is not None
        assert second is not None
        channels.update("C0TWO", first, Reply(text="one, updated"))
        channels.update("C0TWO", second, Reply(text="two, updated"))
        updates = fake.wait_for("chat.update", count=2)
    finally:
        outbox.close(timeout=WAIT)
    assert {(c.params["ts"], c.params["text"]) for c in updates} == {
        (first, "one, updated"),
        (second, "two, updated"),
    }

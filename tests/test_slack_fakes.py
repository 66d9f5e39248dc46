"""Self-tests of the Slack harness: request shapes match Slack's recorded payloads,
signatures verify with slack_sdk's own verifier, and the fake Web API flags calls
that do not fit Slack's spec."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.web import WebClient

from tests.conftest import SPECS
from tests.fakes.slack_requests import (
    SIGNING_SECRET,
    block_action,
    message_event,
    sign,
    signed_request,
    slash_command,
)
from tests.fakes.slack_web import BOT_TOKEN, SPEC, FakeSlack

SAMPLES = SPECS / "slack" / "payload-samples"
needs_specs = pytest.mark.skipif(
    not SPECS.is_dir(), reason="../shared/specs is not on this machine"
)


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return loaded


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    started = FakeSlack().start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake.api_url)


# --- payload shapes ------------------------------------------------------------------------


@needs_specs
def test_slash_command_has_exactly_the_fields_slack_sends() -> None:
    assert set(slash_command("help")) == set(sample("SlashCommandPayload.json"))


@needs_specs
def test_block_action_uses_only_fields_slack_sends() -> None:
    expected = sample("BlockActionPayload.json")
    click = block_action("help")

    assert set(click) <= set(expected)
    assert set(click["actions"][0]) <= set(expected["actions"][0])
    for key in ("team", "user", "container", "channel"):
        assert set(click[key]) <= set(expected[key]), key


def test_slash_command_fields_carry_what_was_asked() -> None:
    fields = slash_command(
        "deploy payments prod",
        user="U0BOB",
        channel="C0PROD",
        response_url="http://127.0.0.1:1/response/r1",
        trigger_id="42.1.trigger",
    )

    assert fields["text"] == "deploy payments prod"
    assert (fields["user_id"], fields["channel_id"]) == ("U0BOB", "C0PROD")
    assert fields["response_url"] == "http://127.0.0.1:1/response/r1"
    assert fields["trigger_id"] == "42.1.trigger"
    assert all(isinstance(value, str) for value in fields.values())  # form fields


def test_every_request_gets_its_own_trigger_id() -> None:
    assert slash_command("help")["trigger_id"] != slash_command("help")["trigger_id"]
    assert block_action("help")["trigger_id"] != block_action("help")["trigger_id"]


# --- encoding and signing --------------------------------------------------------------------


def verify(raw: bytes, headers: dict[str, str], secret: str = SIGNING_SECRET) -> bool:
    return SignatureVerifier(secret).is_valid(
        raw, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )


@pytest.mark.parametrize(
    "body",
    [slash_command("help"), block_action("help whoami"), message_event("hello")],
    ids=["slash-command", "block-action", "event"],
)
def test_signed_requests_verify_with_slack_sdks_verifier(body: dict[str, Any]) -> None:
    raw, headers = signed_request(body)

    assert verify(raw, headers)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert SignatureVerifier(SIGNING_SECRET).is_valid_request(raw, lowered)
    assert not verify(raw, headers, secret="another-secret")


def test_a_stale_timestamp_is_signed_correctly_but_refused_as_stale() -> None:
    raw, headers = signed_request(slash_command("help"), timestamp=int(time.time()) - 6 * 60)

    assert not verify(raw, headers)
    frozen = SignatureVerifier(SIGNING_SECRET, clock=_At(int(time.time()) - 6 * 60))
    assert frozen.is_valid(raw, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])


class _At(Clock):
    """A slack_sdk clock fixed at ``now``."""

    def __init__(self, now: int) -> None:
        self._now = now

    def now(self) -> float:
        return float(self._now)


def test_a_slash_command_is_form_encoded() -> None:
    raw, headers = signed_request(slash_command("deploy payments staging"))

    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(raw.decode())
    assert form["command"] == ["/ops"]
    assert form["text"] == ["deploy payments staging"]


def test_an_interaction_travels_as_json_in_a_payload_field() -> None:
    raw, headers = signed_request(block_action("help whoami"))

    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    [payload] = parse_qs(raw.decode())["payload"]
    assert json.loads(payload)["actions"][0]["value"] == "help whoami"


def test_an_event_callback_is_json() -> None:
    raw, headers = signed_request(message_event("hello"))

    assert headers["Content-Type"] == "application/json"
    assert json.loads(raw)["event"]["text"] == "hello"


def test_a_retry_carries_slacks_retry_headers() -> None:
    _, headers = signed_request(slash_command("help"), retry_num=2)

    assert headers["X-Slack-Retry-Num"] == "2"
    assert headers["X-Slack-Retry-Reason"] == "http_timeout"
    assert "X-Slack-Retry-Num" not in signed_request(slash_command("help"))[1]


def test_sign_signs_raw_bytes_that_are_not_utf8() -> None:
    raw = b"text=\xff"

    headers = sign(raw, timestamp=1_700_000_000)

    assert headers["X-Slack-Request-Timestamp"] == "1700000000"
    assert headers["X-Slack-Signature"].startswith("v0=")
    assert len(headers["X-Slack-Signature"]) == len("v0=") + 64


# --- the fake Web API ------------------------------------------------------------------------


@needs_specs
def test_spec_problems_reports_a_missing_required_argument(
    fake: FakeSlack, client: WebClient
) -> None:
    client.api_call("chat.update", params={"channel": "C0OPS", "text": "no ts"})

    assert fake.spec_problems() == ["chat.update: missing required ts"]


@needs_specs
def test_spec_problems_reports_an_unknown_method(fake: FakeSlack, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as refused:
        client.api_call("chat.postMessages", params={"channel": "C0OPS", "text": "typo"})

    assert refused.value.response["error"] == "unknown_method"
    assert fake.spec_problems() == ["chat.postMessages: not a Slack Web API method"]


def test_spec_problems_reports_a_message_without_text_or_blocks(
    fake: FakeSlack, client: WebClient
) -> None:
    client.api_call("chat.postMessage", params={"channel": "C0OPS"})

    assert fake.spec_problems() == ["chat.postMessage: needs text or blocks"]


def test_well_formed_calls_have_no_spec_problems(fake: FakeSlack, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C0OPS", text="hello")
    client.chat_update(channel="C0OPS", ts=posted["ts"], text="hello again")
    client.chat_postEphemeral(channel="C0OPS", user="U0ALICE", text="psst")
    client.files_upload_v2(channel="C0OPS", content="log", filename="log.txt")

    assert [c.method for c in fake.calls] == [
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    assert fake.spec_problems() == []


def test_a_wrong_token_is_invalid_auth(fake: FakeSlack) -> None:
    client = WebClient(token="xoxb-wrong", base_url=fake.api_url)

    with pytest.raises(SlackApiError) as refused:
        client.auth_test()

    assert refused.value.response["error"] == "invalid_auth"


def test_fail_answers_the_next_calls_then_recovers(fake: FakeSlack, client: WebClient) -> None:
    client.retry_handlers.clear()
    fake.fail("chat.postMessage", 429, times=2, retry_after=3)

    for _ in range(2):
        with pytest.raises(SlackApiError) as limited:
            client.chat_postMessage(channel="C0OPS", text="hello")
        assert limited.value.response.status_code == 429
        assert limited.value.response.headers["Retry-After"] == "3"
    client.chat_postMessage(channel="C0OPS", text="hello")

    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 429, 200]


def test_wait_for_counts_only_successful_matching_calls(fake: FakeSlack, client: WebClient) -> None:
    client.retry_handlers.clear()
    fake.fail("chat.postMessage", 500)
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C0OPS", text="first")
    client.chat_postMessage(channel="C0OPS", text="second")

    [call] = fake.wait_for("chat.postMessage")  # the 500 is recorded but not counted
    assert call.params["text"] == "second"
    assert len(fake.calls_to("chat.postMessage")) == 2


def test_the_fake_refuses_more_blocks_than_slack_allows(client: WebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}] * 51

    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel="C0OPS", text="many", blocks=blocks)

    assert refused.value.response["error"] == "invalid_blocks"


def test_the_fake_reads_the_spec_from_the_shared_specs_folder() -> None:
    assert Path(SPEC).parent == SPECS / "slack"

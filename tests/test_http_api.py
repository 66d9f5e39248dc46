"""The HTTP front end in-process: a real Bolt app behind SlackFrontEnd on a real server,
the fake Slack as the Web API, and requests signed as Slack signs them."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from slack_bolt import App

from bot.app import build_app
from bot.http_api import MAX_BODY_BYTES, SlackFrontEnd
from bot.httpserver import HttpServer
from bot.runtime import Runtime
from bot.sender import Sender
from bot.slack import Outbox, web_client
from handlers.settings import Settings
from tests.fakes.slack_requests import (
    SIGNING_SECRET,
    block_action,
    message_event,
    sign,
    signed_request,
    slash_command,
)
from tests.fakes.slack_web import BOT_TOKEN, Call, FakeSlack

WAIT = 15.0
HELP = "opsbot commands"  # the title of `help`'s answer


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The demo settings with one worker, so requests run in the order they arrive and a
    later request's answer proves an earlier one has finished."""
    server = settings.server.model_copy(update={"workers": 1})
    return settings.model_copy(update={"server": server})


@dataclass
class Front:
    """SlackFrontEnd served on 127.0.0.1, with its Bolt app and the fake Slack."""

    fake: FakeSlack
    front: SlackFrontEnd
    app: App
    url: str

    def send(self, raw: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{self.url}/slack/events", content=raw, headers=headers, timeout=WAIT)

    def post(self, body: dict[str, Any], **options: Any) -> httpx.Response:
        """Sign ``body`` as Slack would and POST it to /slack/events."""
        return self.send(*signed_request(body, **options))

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=WAIT)

    def answer(self, marker: str) -> Call:
        """Wait for the response_url post containing ``marker``."""
        return self.fake.wait_for("response_url", lambda call: marker in call.text)[0]

    def slack_calls(self) -> list[Call]:
        """Everything the fake received apart from start-up's auth.test."""
        return [call for call in self.fake.calls if call.method != "auth.test"]

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = self.get("/metrics").text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


@pytest.fixture
def unready(runtime: Runtime) -> Iterator[Front]:
    """The front end listening, its app built, but not yet told Slack is there."""
    fake = FakeSlack().start()
    client = web_client(token=BOT_TOKEN, environ={"SLACK_API_URL": fake.api_url})
    outbox = Outbox(client, Sender(interval=0.01, backoff=0.01))
    front = SlackFrontEnd(runtime.metrics, signing_secret=SIGNING_SECRET)
    server = HttpServer(front, name="opsbot-http-test")
    try:
        server.start()
        app = build_app(runtime, client, outbox, signing_secret=SIGNING_SECRET)
        yield Front(fake, front, app, server.url)
    finally:
        server.stop()
        runtime.executor.shutdown(wait=True)
        outbox.close(timeout=WAIT)
        fake.stop()


@pytest.fixture
def bot(unready: Front) -> Front:
    """The front end passing Slack requests to the Bolt app."""
    unready.front.set_app(unready.app)
    return unready


def metric(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


# --- a command, end to end ---------------------------------------------------------------


def test_a_signed_help_command_is_acked_and_answered_at_its_response_url(bot: Front) -> None:
    response = bot.post(slash_command("help", response_url=bot.fake.response_url("r1")))

    assert response.status_code == 200
    answer = bot.answer(HELP)
    assert answer.params["response_type"] == "ephemeral"
    assert "help [verb]" in answer.text
    assert bot.fake.calls_to("chat.postMessage") == []
    assert bot.fake.spec_problems() == []


def test_a_button_click_runs_the_buttons_command(bot: Front) -> None:
    click = block_action("help whoami", response_url=bot.fake.response_url("r2"))

    response = bot.post(click)

    assert response.status_code == 200
    answer = bot.answer("help: whoami")
    assert answer.params["response_type"] == "ephemeral"
    assert bot.fake.spec_problems() == []


def test_a_url_verification_challenge_is_answered(bot: Front) -> None:
    challenge = {"type": "url_verification", "token": "t", "challenge": "c-12345"}

    response = bot.post(challenge)

    assert response.status_code == 200
    assert "c-12345" in response.text


def test_a_message_event_is_acknowledged(bot: Front) -> None:
    response = bot.post(message_event("hello"))

    assert response.status_code == 200


# --- authenticity --------------------------------------------------------------------------


Forgery = Callable[[dict[str, Any]], tuple[bytes, dict[str, str]]]


def wrong_secret(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return signed_request(body, secret="not-the-signing-secret")


def no_signature(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw, headers = signed_request(body)
    del headers["X-Slack-Signature"]
    return raw, headers


def no_timestamp(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw, headers = signed_request(body)
    del headers["X-Slack-Request-Timestamp"]
    return raw, headers


def six_minutes_old(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return signed_request(body, timestamp=int(time.time()) - 6 * 60)


def six_minutes_ahead(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return signed_request(body, timestamp=int(time.time()) + 6 * 60)


def tampered(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw, headers = signed_request(body)
    return raw.replace(b"help", b"whoami"), headers


@pytest.mark.parametrize(
    "forge",
    [wrong_secret, no_signature, no_timestamp, six_minutes_old, six_minutes_ahead, tampered],
)
def test_a_request_without_a_valid_fresh_signature_is_401_and_runs_nothing(
    bot: Front, forge: Forgery
) -> None:
    forged = slash_command("help whoami", response_url=bot.fake.response_url("forged"))

    response = bot.send(*forge(forged))

    assert response.status_code == 401
    bot.post(slash_command("help", response_url=bot.fake.response_url("r1")))
    bot.answer(HELP)  # one worker: anything the forged request started would be done
    assert [call.method for call in bot.slack_calls()] == ["response_url"]
    assert "help: whoami" not in json.dumps([call.params for call in bot.fake.calls])


def test_a_forged_button_click_is_401_and_runs_nothing(bot: Front) -> None:
    click = block_action("whoami", response_url=bot.fake.response_url("forged"))

    response = bot.send(*wrong_secret(click))

    assert response.status_code == 401
    bot.post(slash_command("help", response_url=bot.fake.response_url("r1")))
    bot.answer(HELP)
    assert [call.method for call in bot.slack_calls()] == ["response_url"]


# --- malformed bodies ----------------------------------------------------------------------

FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        pytest.param(b"payload=not-json", FORM, id="payload-not-json"),
        pytest.param(
            urlencode({"payload": json.dumps({"user": {"id": "U0ALICE"}})}).encode(),
            FORM,
            id="payload-without-type",
        ),
        pytest.param(
            urlencode({"payload": json.dumps(["block_actions"])}).encode(),
            FORM,
            id="payload-not-an-object",
        ),
        pytest.param(b'{"type": "event_callback", ', "application/json", id="json-not-parsing"),
        pytest.param(b'{"event": {}}', "application/json", id="json-without-type"),
        pytest.param(
            urlencode({"text": "help", "response_url": ""}).encode(),
            FORM,
            id="form-without-command-user-channel",
        ),
        pytest.param(
            urlencode({"command": "/ops", "user_id": "U0ALICE", "channel_id": ""}).encode(),
            FORM,
            id="form-with-an-empty-channel",
        ),
        pytest.param(b"command=%2Fops&text=\xff\xfe", FORM, id="not-utf-8"),
    ],
)
def test_a_signed_malformed_body_is_400(bot: Front, raw: bytes, content_type: str) -> None:
    response = bot.send(raw, sign(raw, content_type=content_type))

    assert response.status_code == 400
    assert response.json()["error"]
    assert bot.slack_calls() == []


def test_an_unsigned_non_utf8_body_is_refused_without_an_internal_error(
    bot: Front, caplog: pytest.LogCaptureFixture
) -> None:
    raw = b"command=%2Fops&text=\xff\xfe"
    headers = sign(raw, secret="not-the-signing-secret")

    with caplog.at_level(logging.ERROR):
        response = bot.send(raw, headers)

    assert response.status_code in (400, 401)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_an_oversized_body_is_413(bot: Front) -> None:
    raw = b"text=" + b"x" * MAX_BODY_BYTES

    response = bot.send(raw, sign(raw))

    assert response.status_code == 413


def test_an_oversized_chunked_body_is_413(bot: Front) -> None:
    chunk = b"x" * 65536
    chunks = [b"text="] + [chunk] * (MAX_BODY_BYTES // len(chunk) + 1)
    headers = {"Content-Type": FORM, "X-Slack-Request-Timestamp": str(int(time.time()))}

    response = httpx.post(
        f"{bot.url}/slack/events", content=iter(chunks), headers=headers, timeout=WAIT
    )

    assert response.status_code == 413


# --- readiness, health, routes -------------------------------------------------------------


def test_before_slack_answered_requests_get_503_with_retry_after(unready: Front) -> None:
    response = unready.post(slash_command("help whoami"))

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert unready.slack_calls() == []


def test_a_request_refused_while_not_ready_is_not_run_later(unready: Front) -> None:
    unready.post(slash_command("help whoami", response_url=unready.fake.response_url("early")))
    unready.front.set_app(unready.app)

    unready.post(slash_command("help", response_url=unready.fake.response_url("r1")))

    unready.answer(HELP)
    assert [call.method for call in unready.slack_calls()] == ["response_url"]


def test_readyz_says_why_it_is_not_ready_until_the_app_is_set(unready: Front) -> None:
    waiting = unready.get("/readyz")
    assert waiting.status_code == 503
    assert waiting.json() == {"ready": False, "reason": "waiting for Slack's auth.test"}

    unready.front.set_not_ready("cannot reach Slack (connection refused); retrying")
    reason = unready.get("/readyz").json()["reason"]
    assert reason == "cannot reach Slack (connection refused); retrying"

    unready.front.set_app(unready.app)
    ready = unready.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True


def test_healthz_is_200_even_before_ready(unready: Front) -> None:
    response = unready.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "mode": "http"}


def test_get_on_slack_events_is_405(bot: Front) -> None:
    assert bot.get("/slack/events").status_code == 405


def test_post_on_healthz_is_405(bot: Front) -> None:
    assert httpx.post(f"{bot.url}/healthz", timeout=WAIT).status_code == 405


def test_an_unknown_path_is_404(bot: Front) -> None:
    assert bot.get("/nope").status_code == 404
    assert httpx.post(f"{bot.url}/slack/event", timeout=WAIT).status_code == 404


# --- metrics -------------------------------------------------------------------------------


def test_metrics_count_commands_and_ack_latency_after_a_command(bot: Front) -> None:
    bot.post(slash_command("help", response_url=bot.fake.response_url("r1")))
    bot.answer(HELP)

    response = bot.get("/metrics")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "opsbot_commands_total" in response.text
    assert "opsbot_ack_latency_seconds_bucket" in response.text
    samples = bot.metrics()
    assert samples[metric("opsbot_commands_total", verb="help", outcome="ok")] == 1
    assert samples[metric("opsbot_ack_latency_seconds_count", kind="command")] == 1
    slowest = metric("opsbot_ack_latency_seconds_bucket", kind="command", le="+Inf")
    assert samples[slowest] == 1


def test_metrics_count_refused_requests_by_status(bot: Front) -> None:
    bot.send(*wrong_secret(slash_command("help")))
    bot.send(*six_minutes_old(slash_command("help")))

    samples = bot.metrics()

    refused = metric("opsbot_http_requests_total", route="/slack/events", status="401")
    assert samples[refused] == 2
    assert metric("opsbot_ack_latency_seconds_count", kind="command") not in samples


def test_metrics_count_probes_and_unknown_paths(bot: Front) -> None:
    bot.get("/healthz")
    bot.get("/nope")

    samples = bot.metrics()

    assert samples[metric("opsbot_http_requests_total", route="/healthz", status="200")] == 1
    assert samples[metric("opsbot_http_requests_total", route="other", status="404")] == 1


# --- exactly once --------------------------------------------------------------------------


def test_a_slack_retry_of_an_accepted_command_runs_nothing_again(bot: Front) -> None:
    first = slash_command(
        "help", response_url=bot.fake.response_url("first"), trigger_id="111.1.trigger"
    )

    assert bot.post(first).status_code == 200
    bot.answer(HELP)
    assert bot.post(first, retry_num=1).status_code == 200
    bot.post(slash_command("help whoami", response_url=bot.fake.response_url("third")))
    bot.answer("help: whoami")

    help_answers = [c for c in bot.fake.calls_to("response_url") if HELP in c.text]
    assert len(help_answers) == 1
    assert [call.method for call in bot.slack_calls()] == ["response_url", "response_url"]


def test_a_double_click_on_a_button_runs_once(bot: Front) -> None:
    def click() -> dict[str, Any]:
        return block_action(
            "help whoami", message_ts="1700000000.000042", response_url=bot.fake.response_url()
        )

    assert bot.post(click()).status_code == 200
    assert bot.post(click()).status_code == 200  # another trigger_id, the same button
    bot.post(slash_command("help help", response_url=bot.fake.response_url("after")))
    bot.answer("help: help")

    clicked = [c for c in bot.fake.calls_to("response_url") if "help: whoami" in c.text]
    assert len(clicked) == 1

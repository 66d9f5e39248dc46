"""An opsbot wired exactly like HTTP mode, in-process (so a test can move its clock), in
front of the fake Slack and the Argo CD emulator, driven by signed requests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot import config
from bot.app import build_app
from bot.clock import ManualClock, system_clock
from bot.http_api import SlackFrontEnd
from bot.httpserver import HttpServer
from bot.identity import StaticGroups
from bot.runtime import Runtime
from bot.sandbox.argocd import ArgoCDEmulator
from bot.sender import Sender
from bot.slack import Outbox, SlackChannels, web_client
from bot.webhooks import GitHubWebhook
from tests.conftest import loaded_config
from tests.fakes.slack_requests import SIGNING_SECRET, signed_request
from tests.fakes.slack_web import BOT_TOKEN, Call, FakeSlack

WEBHOOK_SECRET = "test-github-webhook-secret"
CONFIG = """
[slack]
approvals_channel = "C0APPROVALS"
alerts_channel = "C0ALERTS"

[environments.staging]
cluster = "c"
[environments.prod]
cluster = "c"
approvals = 1
[clusters.c]
in_cluster = true

[apps.payments]
argocd_app = "payments-{env}"
environments = ["staging", "prod"]
[apps.checkout]
argocd_app = "checkout-{env}"
environments = ["staging", "prod"]

[argocd]
url = "http://127.0.0.1:9"
poll_interval = "10ms"
sync_timeout = "30s"

[ephemeral]
app = "payments"
repo_url = "https://git.example.internal/platform/deploy.git"
path = "apps/{app}/staging"
default_ttl = "4h"
max_ttl = "2d"
warn_before = "30m"
per_user = 2
total = 3

[github]
actor = "U0GITHUB"
users = { octocat = "U0ALICE" }

[rbac.roles.deployer]
allow = ["deploy:*", "rollback:*", "promote:*", "cancel:*", "env:*", "status:*",
         "history:*", "apps:*"]
[rbac.roles.approver]
allow = ["approve:prod"]
[rbac.users]
U0ALICE = ["deployer"]
U0BOB = ["deployer", "approver"]
U0GITHUB = ["deployer"]
"""


@dataclass
class GitOps:
    url: str
    fake: FakeSlack
    argo: ArgoCDEmulator
    runtime: Runtime
    clock: ManualClock | None

    def post(self, body: dict[str, Any], **options: Any) -> httpx.Response:
        raw, headers = signed_request(body, **options)
        return httpx.post(f"{self.url}/slack/events", content=raw, headers=headers, timeout=10)

    def card(self, channel: str, text: str, timeout: float = 15) -> Call:
        """The first message posted in ``channel`` containing ``text``."""
        return self.fake.wait_for(
            "chat.postMessage",
            lambda c: c.params.get("channel") == channel and text in c.text,
            timeout=timeout,
        )[0]

    def updated(self, ts: str, text: str, timeout: float = 15) -> Call:
        """The first version of message ``ts`` (as posted or updated) containing ``text``."""
        for call in self.fake.calls_to("chat.postMessage"):
            if call.answer.get("ts") == ts and text in call.text:
                return call
        return self.fake.wait_for(
            "chat.update", lambda c: c.params.get("ts") == ts and text in c.text, timeout=timeout
        )[0]


def buttons(call: Call) -> list[dict[str, Any]]:
    """Every button in a recorded message."""
    return [
        dict(element)
        for block in call.blocks
        for element in block.get("elements", [])
        if element.get("type") == "button"
    ]


def button(call: Call, label: str) -> dict[str, Any]:
    """The button ``label`` in a recorded message."""
    for element in buttons(call):
        if element["text"]["text"] == label:
            return element
    raise AssertionError(f"no button {label!r}: {[b['text']['text'] for b in buttons(call)]}")


@contextmanager
def gitops(
    folder: Path,
    *,
    clock: ManualClock | None = None,
    argo: ArgoCDEmulator | None = None,
    extra: str = "",
    start: bool = True,
) -> Iterator[GitOps]:
    """Fake Slack, the Argo CD emulator, and an opsbot with its Slack front end."""
    fake = FakeSlack().start()
    emulator = argo or (ArgoCDEmulator.demo(clock=clock) if clock else ArgoCDEmulator.demo())
    argo_server = HttpServer(emulator.wsgi_app(), name="argocd-emulator").start()
    settings = config.parse(CONFIG + extra, "opsbot.toml")
    settings, environ = emulator.configure(settings, argo_server.url)
    runtime = Runtime.build(
        loaded_config(settings, folder),
        clock=clock or system_clock,
        environ=environ,
        groups=StaticGroups(),
    )
    client = web_client(BOT_TOKEN, {"SLACK_API_URL": fake.api_url})
    outbox = Outbox(client, Sender(interval=0.02, backoff=0.05))
    runtime.channels = SlackChannels(outbox)
    front = SlackFrontEnd(
        runtime.metrics,
        signing_secret=SIGNING_SECRET,
        hooks={"/hooks/github": GitHubWebhook(runtime, WEBHOOK_SECRET)},
    )
    front.set_app(build_app(runtime, client, outbox, signing_secret=SIGNING_SECRET))
    server = HttpServer(front, name="opsbot-under-test").start()
    if start:
        runtime.start()
    try:
        yield GitOps(server.url, fake, emulator, runtime, clock)
    finally:
        server.stop()
        runtime.drain(10)
        outbox.close(10)
        runtime.close()
        argo_server.stop()
        fake.stop()

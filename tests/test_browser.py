"""The sandbox page in a real headless Chromium (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from handlers.context import Command, Context
from handlers.registry import Registry
from handlers.reply import Button, Field, Reply
from handlers.settings import Settings
from tests.sandbox_helpers import running_sandbox

CHROMIUM = Path(os.environ.get("OPSBOT_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium keeps dialling Google on a closed network.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("OPSBOT_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing and OPSBOT_REQUIRE_BROWSER is set")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-live", "yes")


def send(page: Page, text: str) -> None:
    page.fill("#command", text)
    page.press("#command", "Enter")


def bot_messages(page: Page):  # type: ignore[no-untyped-def]
    return page.locator('.msg[data-user="opsbot"]')


def test_type_help_see_the_reply_click_a_button(
    page: Page, tmp_path: Path, settings: Settings
) -> None:
    with running_sandbox(tmp_path, settings) as sandbox:
        open_page(page, sandbox.url)
        send(page, "help")
        first = bot_messages(page).first
        expect(first.locator(".bk-header")).to_have_text("opsbot commands")
        expect(first).to_contain_text("list the commands you may run")
        first.get_by_role("button", name="help whoami").click()
        expect(bot_messages(page)).to_have_count(2)
        expect(bot_messages(page).nth(1).locator(".bk-header")).to_have_text("help: whoami")


def test_progress_replaces_the_message_live(page: Page, tmp_path: Path, settings: Settings) -> None:
    release = threading.Event()
    registry = Registry.discover()

    @registry.command("slow", usage="slow", summary="reports progress, then finishes")
    def slow(cmd: Command, ctx: Context) -> Reply:
        ctx.progress(Reply(text=":hourglass: syncing 1/3"))
        assert release.wait(15)
        return Reply(text=":white_check_mark: synced 3/3")

    with running_sandbox(tmp_path, settings, registry) as sandbox:
        open_page(page, sandbox.url)
        send(page, "slow")
        message = bot_messages(page).first
        expect(message).to_contain_text("syncing 1/3")
        message_id = message.get_attribute("data-id")
        release.set()
        expect(message).to_contain_text("synced 3/3")
        expect(message.locator(".edited")).to_have_text("(edited)")
        expect(bot_messages(page)).to_have_count(1)
        assert bot_messages(page).first.get_attribute("data-id") == message_id


def test_block_kit_is_rendered_and_nothing_in_it_becomes_html(
    page: Page, tmp_path: Path, settings: Settings
) -> None:
    registry = Registry.discover()

    @registry.command("card", usage="card", summary="a rich reply")
    def card(cmd: Command, ctx: Context) -> Reply:
        return Reply(
            title="Deploy payments → prod",
            text="*bold* `rev-abc` <https://example.com|the diff> "
            "&lt;script&gt;alert(1)&lt;/script&gt;",
            fields=(Field("Revision", "`abc123`"), Field("Requested by", f"<@{ctx.actor}>")),
            footer="ref XYZ",
            buttons=(
                Button("Approve", "whoami", style="primary"),
                Button("Deny", "whoami", style="danger", confirm="Deny this deploy?"),
            ),
        )

    with running_sandbox(tmp_path, settings, registry) as sandbox:
        open_page(page, sandbox.url)
        send(page, "card")
        message = bot_messages(page).first
        expect(message.locator(".bk-header")).to_have_text("Deploy payments → prod")
        expect(message.locator(".bk-section strong")).to_have_text("bold")
        expect(message.locator(".bk-field strong")).to_have_text(["Revision", "Requested by"])
        expect(message.locator("a")).to_have_attribute("href", "https://example.com")
        expect(message).to_contain_text("<script>alert(1)</script>")
        assert page.locator("script:not([src])").count() == 0
        expect(message.locator(".bk-field")).to_have_count(2)
        expect(message.locator(".mention")).to_have_text("@alice (deployer)")
        expect(message.locator(".bk-context")).to_have_text("ref XYZ")
        expect(message.get_by_role("button", name="Approve")).to_have_class("bk-button primary")
        page.once("dialog", lambda dialog: dialog.accept())
        message.get_by_role("button", name="Deny").click()
        expect(bot_messages(page)).to_have_count(2)
        expect(bot_messages(page).nth(1)).to_contain_text("whoami")


def test_ephemeral_replies_follow_the_user_picker(
    page: Page, tmp_path: Path, settings: Settings
) -> None:
    with running_sandbox(tmp_path, settings) as sandbox:
        open_page(page, sandbox.url)
        page.select_option("#user", "U0ALICE")
        send(page, "whoami")
        expect(bot_messages(page)).to_have_count(1)
        expect(bot_messages(page).first).to_contain_text("only visible to you")
        page.select_option("#user", "U0BOB")
        expect(bot_messages(page)).to_have_count(0)
        expect(page.locator('.msg[data-user="U0ALICE"]')).to_have_count(1)
        send(page, "whoami")
        expect(bot_messages(page)).to_have_count(1)
        expect(bot_messages(page).first).to_contain_text("U0BOB")


def test_the_demo_deploy_needs_bob_and_shows_progress(page: Page, tmp_path: Path) -> None:
    from bot import config
    from bot.httpserver import HttpServer
    from bot.runtime import Runtime
    from bot.sandbox.emulators import SANDBOX_EMULATORS
    from bot.sandbox.server import SandboxApp
    from tests.conftest import loaded_config

    demo = config.demo().settings
    assert demo.argocd is not None
    fast = demo.argocd.model_copy(update={"poll_interval": timedelta(milliseconds=20)})
    settings = demo.model_copy(update={"argocd": fast})
    runtime = Runtime.build(
        loaded_config(settings, tmp_path), environ={}, emulators=SANDBOX_EMULATORS
    )
    app = SandboxApp(runtime)
    server = HttpServer(app).start()
    runtime.start()
    try:
        open_page(page, server.url)
        page.select_option("#user", "U0ALICE")
        send(page, "deploy payments prod")
        card = page.locator(".msg", has_text="Approval needed")
        expect(card).to_contain_text("payments: bump the image to 1.4.2")
        expect(card.get_by_role("button", name="Approve")).to_be_visible()
        card.get_by_role("button", name="Approve").click()  # alice may not approve her own
        expect(page.locator(".msg", has_text="cannot approve it")).to_have_count(1)
        page.select_option("#user", "U0BOB")
        page.locator(".msg", has_text="Approval needed").get_by_role(
            "button", name="Approve"
        ).click()
        expect(page.locator(".msg", has_text="Approved and done")).to_have_count(1)
        done = page.locator(".msg", has_text="Deploy of payments to prod finished")
        expect(done).to_have_count(1)
        expect(done.get_by_role("button", name="Rollback")).to_be_visible()
    finally:
        app.chat.close()
        server.stop()
        runtime.close()

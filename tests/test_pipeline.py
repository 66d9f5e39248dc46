"""The pipeline: parse → steps → handler → reply, with errors contained."""

from __future__ import annotations

import logging
import threading

import pytest

from adapters.errors import Unavailable
from bot.pipeline import Invocation, Next, Pipeline, Request, new_ref
from bot.runtime import Runtime
from handlers.context import Command, Context
from handlers.errors import CommandFailed, Refused
from handlers.registry import Registry
from handlers.reply import Reply, Status
from tests.conftest import RecordingResponder


def make_pipeline(runtime: Runtime, registry: Registry, steps: list = []) -> Pipeline:  # noqa: B006
    return Pipeline(
        registry=registry,
        settings=runtime.settings,
        adapters=runtime.adapters,
        store=runtime.store,
        clock=runtime.clock,
        steps=steps,
    )


def request(text: str, actor: str = "U0ALICE") -> Request:
    return Request(text=text, actor=actor, channel="C0TEST")


def test_a_command_runs_its_handler_with_the_request_context(
    runtime: Runtime, responder: RecordingResponder
) -> None:
    seen: list[Context] = []
    registry = Registry()

    @registry.command("echo", usage="echo WORD", summary="say a word back")
    def echo(cmd: Command, ctx: Context) -> Reply:
        seen.append(ctx)
        return Reply(text=f"you said {cmd.arg('word')}")

    req = request("echo hello")
    reply = make_pipeline(runtime, registry).handle(req, responder)

    assert reply.text == "you said hello"
    assert responder.events[0].kind == "post"
    assert responder.last.text == "you said hello"
    ctx = seen[0]
    assert (ctx.actor, ctx.channel, ctx.ref) == ("U0ALICE", "C0TEST", req.ref)
    assert ctx.clock() == runtime.clock()
    assert ctx.registry is registry


def test_a_usage_error_answers_ephemerally_with_the_usage_line_and_runs_nothing(
    runtime: Runtime, responder: RecordingResponder
) -> None:
    ran = threading.Event()
    registry = Registry()

    @registry.command("deploy", usage="deploy APP ENV", summary="deploy", mutating=True)
    def deploy(cmd: Command, ctx: Context) -> Reply:
        ran.set()
        return Reply(text="deployed")

    reply = make_pipeline(runtime, registry).handle(request("deploy payments"), responder)

    assert reply.status is Status.USAGE
    assert reply.ephemeral
    assert "missing ENV" in reply.text
    assert "`deploy APP ENV`" in reply.text
    assert not ran.is_set()


def test_an_unknown_verb_is_answered_with_the_closest_one(
    runtime: Runtime, registry: Registry, responder: RecordingResponder
) -> None:
    reply = make_pipeline(runtime, registry).handle(request("hlep"), responder)
    assert reply.status is Status.USAGE
    assert "did you mean 'help'" in reply.text


def test_a_crashing_handler_shows_only_a_reference_and_logs_the_traceback(
    runtime: Runtime, responder: RecordingResponder, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry()

    @registry.command("boom", usage="boom", summary="crash")
    def boom(cmd: Command, ctx: Context) -> Reply:
        raise RuntimeError("database password is hunter2")

    req = request("boom")
    with caplog.at_level(logging.ERROR):
        reply = make_pipeline(runtime, registry).handle(req, responder)

    assert reply.status is Status.FAILED
    assert f"Something went wrong (ref {req.ref})" in reply.text
    assert "hunter2" not in reply.text
    assert "RuntimeError" not in reply.text
    logged = [r for r in caplog.records if req.ref in r.getMessage()]
    assert logged
    assert logged[0].exc_info is not None
    assert "hunter2" in str(logged[0].exc_info[1])


def test_a_command_error_is_shown_as_a_plain_escaped_message(
    runtime: Runtime, responder: RecordingResponder
) -> None:
    registry = Registry()

    @registry.command("fail", usage="fail", summary="fail")
    def fail(cmd: Command, ctx: Context) -> Reply:
        raise CommandFailed("unknown app <!channel>; known: payments")

    reply = make_pipeline(runtime, registry).handle(request("fail"), responder)

    assert reply.status is Status.FAILED
    assert "unknown app &lt;!channel&gt;; known: payments" in reply.text
    assert "<!channel>" not in reply.text


def test_an_adapter_error_names_the_system_and_the_reference(
    runtime: Runtime, responder: RecordingResponder
) -> None:
    registry = Registry()

    @registry.command("sync", usage="sync", summary="sync")
    def sync(cmd: Command, ctx: Context) -> Reply:
        raise Unavailable("Argo CD", "cannot connect to https://argocd:443; is it up?")

    req = request("sync")
    reply = make_pipeline(runtime, registry).handle(req, responder)

    assert reply.status is Status.FAILED
    assert "Argo CD: cannot connect" in reply.text
    assert req.ref in reply.text


def test_progress_updates_the_same_message_and_the_final_reply_replaces_it(
    runtime: Runtime, responder: RecordingResponder
) -> None:
    registry = Registry()

    @registry.command("slow", usage="slow", summary="slow")
    def slow(cmd: Command, ctx: Context) -> Reply:
        for step in range(3):
            ctx.progress(Reply(text=f"step {step}"))
        return Reply(text="done")

    make_pipeline(runtime, registry).handle(request("slow"), responder)

    kinds = [(e.kind, e.message_id, e.reply.text) for e in responder.events]
    assert kinds == [
        ("post", "m1", "step 0"),
        ("update", "m1", "step 1"),
        ("update", "m1", "step 2"),
        ("update", "m1", "done"),
    ]


def test_an_ephemeral_final_reply_still_replaces_visible_progress(
    runtime: Runtime, responder: RecordingResponder
) -> None:
    registry = Registry()

    @registry.command("half", usage="half", summary="half")
    def half(cmd: Command, ctx: Context) -> Reply:
        ctx.progress(Reply(text="working"))
        raise CommandFailed("it broke")

    make_pipeline(runtime, registry).handle(request("half"), responder)

    assert [e.kind for e in responder.events] == ["post", "update"]
    assert "it broke" in responder.last.text


def test_steps_run_in_order_and_a_step_can_refuse_before_the_handler(
    runtime: Runtime, responder: RecordingResponder
) -> None:
    order: list[str] = []
    registry = Registry()

    @registry.command(
        "deploy", usage="deploy APP ENV", summary="deploy", mutating=True, env_arg="env"
    )
    def deploy(cmd: Command, ctx: Context) -> Reply:
        order.append("handler")
        return Reply(text="deployed")

    def first(inv: Invocation, proceed: Next) -> Reply:
        order.append("first")
        assert inv.command is not None  # parsing happened before any step
        return proceed(inv)

    def gate(inv: Invocation, proceed: Next) -> Reply:
        order.append("gate")
        assert inv.command is not None
        if inv.command.value("env") == "prod":
            raise Refused("deploy:prod is not granted to you")
        return proceed(inv)

    pipeline = make_pipeline(runtime, registry, [first, gate])
    ok = pipeline.handle(request("deploy payments staging"), responder)
    refused = pipeline.handle(request("deploy payments prod"), responder)

    assert ok.text == "deployed"
    assert refused.status is Status.REFUSED
    assert "deploy:prod is not granted" in refused.text
    assert order == ["first", "gate", "handler", "first", "gate"]


def test_a_step_sees_the_final_reply_of_the_rest_of_the_chain(
    runtime: Runtime, registry: Registry, responder: RecordingResponder
) -> None:
    outcomes: list[Status] = []

    def audit(inv: Invocation, proceed: Next) -> Reply:
        reply = proceed(inv)
        outcomes.append(reply.status)
        return reply

    pipeline = make_pipeline(runtime, registry, [audit])
    pipeline.handle(request("help"), responder)
    pipeline.handle(request("help nosuchverb"), responder)

    assert outcomes == [Status.OK, Status.USAGE]


def test_a_crashing_step_is_contained_like_a_crashing_handler(
    runtime: Runtime, registry: Registry, responder: RecordingResponder
) -> None:
    def broken(inv: Invocation, proceed: Next) -> Reply:
        raise KeyError("oops")

    req = request("help")
    reply = make_pipeline(runtime, registry, [broken]).handle(req, responder)

    assert reply.status is Status.FAILED
    assert req.ref in reply.text
    assert "oops" not in reply.text


def test_a_responder_that_fails_does_not_break_the_pipeline(
    runtime: Runtime, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def post(self, reply: Reply) -> str | None:
            raise ConnectionError("slack is down")

        def update(self, message_id: str, reply: Reply) -> None:
            raise ConnectionError("slack is down")

    req = request("help")
    reply = make_pipeline(runtime, registry).handle(req, Broken())

    assert reply.status is Status.OK
    assert any(req.ref in r.getMessage() for r in caplog.records)


def test_deliver_false_keeps_the_final_reply_for_the_caller(
    runtime: Runtime, registry: Registry, responder: RecordingResponder
) -> None:
    reply = make_pipeline(runtime, registry).handle(request("help"), responder, deliver=False)
    assert reply.title == "opsbot commands"
    assert responder.events == []


def test_references_are_short_distinct_and_unambiguous() -> None:
    refs = {new_ref() for _ in range(2000)}
    assert len(refs) == 2000
    assert all(len(r) == 8 and not set(r) & set("01IO") for r in refs)


def test_submit_runs_off_the_calling_thread(
    runtime: Runtime, responder: RecordingResponder
) -> None:
    release = threading.Event()
    registry = Registry()

    @registry.command("wait", usage="wait", summary="wait")
    def wait(cmd: Command, ctx: Context) -> Reply:
        ctx.progress(Reply(text="waiting"))
        assert release.wait(10)
        return Reply(text="released")

    runtime.pipeline = make_pipeline(runtime, registry)
    future = runtime.submit(request("wait"), responder)
    responder.wait_for(1)  # progress arrived while the handler is still blocked
    assert not future.done()
    release.set()
    assert future.result(timeout=10).text == "released"
    assert responder.last.text == "released"

"""Spine figures: CLI start-up, sandbox time-to-first-page, pipeline and parser throughput."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.table import Row, summary
from bot import commands, config
from bot.clock import ManualClock
from bot.config import LoadedConfig
from bot.pipeline import Request
from bot.runtime import Runtime
from handlers.registry import Registry
from handlers.reply import Reply

OPSBOT = str(Path(sys.executable).with_name("opsbot"))
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSBOT_"))}


def cli_help(runs: int = 20) -> Row:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([OPSBOT, "--help"], capture_output=True, check=True, env=ENV)
        samples.append(time.perf_counter() - started)
    median = statistics.median(samples)
    return Row("opsbot --help wall time", summary(samples), "median < 300 ms", median < 0.3)


def sandbox_first_page(runs: int = 5) -> Row:
    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            process = subprocess.Popen(
                [OPSBOT, "serve", "--port", "0"],
                cwd=folder,
                env=ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            try:
                assert process.stdout is not None
                url = None
                for line in process.stdout:
                    if match := re.search(r"ready at (\S+)", line):
                        url = match.group(1)
                        break
                assert url, "opsbot serve did not become ready"
                page = httpx.get(url + "/")
                page.raise_for_status()
                samples.append(time.perf_counter() - started)
            finally:
                process.terminate()
                process.wait(30)
                if process.stdout:
                    process.stdout.close()
    median = statistics.median(samples)
    return Row("sandbox: start to first page", summary(samples), "median < 3 s", median < 3)


class _Discard:
    def post(self, reply: Reply) -> str | None:
        return "x"

    def update(self, message_id: str, reply: Reply) -> None:
        return None


def pipeline_throughput(count: int = 5000) -> Row:
    with tempfile.TemporaryDirectory() as folder:
        loaded = config.demo()
        loaded = LoadedConfig(loaded.settings, Path(folder) / "opsbot.toml", Path(folder))
        with Runtime.build(loaded, clock=ManualClock(), environ={}) as runtime:
            responder = _Discard()
            started = time.perf_counter()
            for _ in range(count):
                runtime.pipeline.handle(Request("help", "U0ALICE", "C0BENCH"), responder)
            elapsed = time.perf_counter() - started
    rate = count / elapsed
    return Row(
        "pipeline: `help` end to end (in-process)",
        f"{rate:,.0f} commands/s",
        "> 1,000/s",
        rate > 1000,
    )


def parser_throughput(count: int = 50_000) -> Row:
    registry = Registry.discover()
    started = time.perf_counter()
    for index in range(count):
        commands.parse('help "whoami"' if index % 2 else "whoami", registry)
    elapsed = time.perf_counter() - started
    rate = count / elapsed
    return Row("grammar: parse", f"{rate:,.0f} commands/s", "> 20,000/s", rate > 20_000)


def run() -> list[Row]:
    return [cli_help(), sandbox_first_page(), pipeline_throughput(), parser_throughput()]

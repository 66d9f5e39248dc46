"""Slack transport figures: P1 ack latency under load, P2 throughput, P4 time to ready.

P1 and P2 compare opsbot's HTTP mode with a bare Bolt app that only acks, on the same
WSGI server (cheroot), in the same run, both as separate processes.
"""

from __future__ import annotations

import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from benchmarks.table import Row
from tests.fakes.slack_requests import SIGNING_SECRET, signed_request, slash_command
from tests.fakes.slack_web import BOT_TOKEN

ROOT = Path(__file__).resolve().parent.parent
OPSBOT = str(Path(sys.executable).with_name("opsbot"))
CONCURRENT = 50
ROUNDS = 6
THROUGHPUT_SECONDS = 5.0
# Slack and the backend are remote in production: their stand-ins and the load generator
# (Slack sending requests) share one CPU, the stand-ins at a lower priority so that their
# work does not delay the measuring client; the app under test (opsbot or the bare Bolt
# app) gets the other CPU to itself.
FAKES_CPU = {1}
LOAD_CPU = {1}
SERVER_CPU = {0}
CONFIG = """
[server]
workers = 16
handler_modules = ["tests.e2e_handlers"]

[rbac.roles.everything]
allow = ["*:*"]
[rbac.users]
"*" = ["everything"]
"""


@contextmanager
def fakes() -> Iterator[tuple[str, str, str]]:
    """Fake Slack and the slow backend in a process of their own: (api, backend, response)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.fakes_server"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_on_cpu(FAKES_CPU, nice=10),
    )
    try:
        assert process.stdout is not None
        api_url, backend_url, response_url = process.stdout.readline().split()
        yield api_url, backend_url, response_url
    finally:
        process.terminate()
        process.wait(30)
        if process.stdout:
            process.stdout.close()


def _on_cpu(cpus: set[int], nice: int = 0) -> Callable[[], None] | None:
    """Pin a child process to ``cpus`` (where the machine has them), at a ``nice`` level."""
    if not cpus <= os.sched_getaffinity(0):
        return None

    def pin() -> None:
        os.sched_setaffinity(0, cpus)
        os.nice(nice)

    return pin


def environment(api_url: str, backend_url: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSBOT_"))}
    return {
        **base,
        "PYTHONPATH": str(ROOT),
        "SLACK_API_URL": api_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "E2E_BACKEND_URL": backend_url,
        "OPSBOT_LOG_LEVEL": "WARNING",
    }


@contextmanager
def opsbot_http(folder: Path, env: dict[str, str]) -> Iterator[tuple[str, float]]:
    """Start ``opsbot serve --mode http``; yield its URL and the seconds until /readyz was 200."""
    (folder / "opsbot.toml").write_text(CONFIG)
    started = time.perf_counter()
    process = subprocess.Popen(
        [OPSBOT, "serve", "--mode", "http", "--port", "0"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=_on_cpu(SERVER_CPU),
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" ", 1)[-1].strip()
        while httpx.get(f"{url}/readyz").status_code != 200:
            time.sleep(0.005)  # measuring readiness, not synchronising a test
        yield url, time.perf_counter() - started
    finally:
        process.kill()  # its queue of 2 s commands would take minutes to drain
        process.wait(60)
        if process.stdout:
            process.stdout.close()


@contextmanager
def bare_bolt(folder: Path, env: dict[str, str]) -> Iterator[str]:
    port_file = folder / "bare.url"
    port_file.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bare_bolt", str(port_file)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
        preexec_fn=_on_cpu(SERVER_CPU),
    )
    try:
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.01)
        url = port_file.read_text()
        while httpx.get(f"{url}/").status_code != 404:
            time.sleep(0.01)
        yield url
    finally:
        process.terminate()
        process.wait(60)


def _send(url: str, body: bytes, headers: dict[str, str]) -> float:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    started = time.perf_counter()
    connection.request("POST", "/slack/events", body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"ack failed with {response.status}")
    return elapsed


def _fire(job: tuple[str, threading.Barrier, tuple[bytes, dict[str, str]]]) -> float:
    """Wait until the whole burst is ready, then send one request."""
    url, gate, (body, headers) = job
    gate.wait()
    return _send(url, body, headers)


def ack_latencies(url: str, text: str) -> list[float]:
    """ROUNDS bursts of CONCURRENT signed slash commands fired at once, after one warm-up
    command (the same for both apps: steady state is what is compared)."""
    _send(url, *signed_request(slash_command(f"{text} warm-up", channel="C0WARM")))
    samples: list[float] = []
    with ThreadPoolExecutor(CONCURRENT) as pool:
        for round_ in range(ROUNDS):
            requests = [
                signed_request(slash_command(f"{text} r{round_}n{i}", channel=f"C0B{i:03d}"))
                for i in range(CONCURRENT)
            ]
            gate = threading.Barrier(CONCURRENT)
            samples.extend(pool.map(_fire, [(url, gate, request) for request in requests]))
    return samples


def throughput(url: str, text: str, reply_to: str) -> float:
    """Signed requests acknowledged per second by 8 keep-alive clients."""
    bodies = [
        signed_request(slash_command(f"{text} {i}", channel="C0TPUT", response_url=reply_to))
        for i in range(20000)
    ]
    counter = iter(range(len(bodies)))
    lock = threading.Lock()
    done = [0]
    deadline = time.perf_counter() + THROUGHPUT_SECONDS

    def client() -> None:
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        while time.perf_counter() < deadline:
            with lock:
                index = next(counter)
            body, headers = bodies[index]
            connection.request("POST", "/slack/events", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                with lock:
                    done[0] += 1
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0] / (time.perf_counter() - started)


def quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run() -> list[Row]:
    rows: list[Row] = []
    if os.sched_getaffinity(0) >= LOAD_CPU:
        os.sched_setaffinity(0, LOAD_CPU)
    with fakes() as (api_url, backend_url, response_url), tempfile.TemporaryDirectory() as tmp:
        env = environment(api_url, backend_url)
        folder = Path(tmp)
        ready_times = []
        for _ in range(4):
            with opsbot_http(folder, env) as (_, ready):
                ready_times.append(ready)
        with bare_bolt(folder, env) as bare_url:
            bare = ack_latencies(bare_url, "slow")
            bare_rate = throughput(bare_url, "help", response_url)
        with opsbot_http(folder, env) as (url, _):
            ours = ack_latencies(url, "slow")
            our_rate = throughput(url, "help", response_url)
    ratio = quantile(ours, 0.99) / quantile(bare, 0.99)
    over = sum(1 for s in ours if s > 3.0)
    rows.append(
        Row(
            "P1 ack p50/p99, 50 concurrent, 2 s backend",
            f"opsbot {quantile(ours, 0.5) * 1000:.0f}/{quantile(ours, 0.99) * 1000:.0f} ms, "
            f"bare Bolt {quantile(bare, 0.5) * 1000:.0f}/{quantile(bare, 0.99) * 1000:.0f} ms "
            f"(p99 ×{ratio:.2f}; {over} of {len(ours)} over 3 s)",
            "p99 ≤ 1.5× bare, none > 3 s",
            ratio <= 1.5 and over == 0,
        )
    )
    rows.append(
        Row(
            "P2 signed requests/s, HTTP mode",
            f"opsbot {our_rate:,.0f}/s, bare Bolt {bare_rate:,.0f}/s (×{our_rate / bare_rate:.2f})",
            "≥ 0.8× bare",
            our_rate >= 0.8 * bare_rate,
        )
    )
    rows.append(
        Row(
            "P4 serve --mode http start → /readyz 200",
            f"median {statistics.median(ready_times) * 1000:.0f} ms, "
            f"max {max(ready_times) * 1000:.0f} ms (n={len(ready_times)})",
            "< 3 s",
            statistics.median(ready_times) < 3,
        )
    )
    return rows

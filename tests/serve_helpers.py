"""Start ``opsbot serve`` as a real subprocess and wait for it to say it is ready."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import OPSBOT

READY = re.compile(r"ready at (http://\S+)")


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    stderr: list[str]

    def stop(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@contextmanager
def serving(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Iterator[Served]:
    """Run ``opsbot serve ARGS`` until the block ends; yields once it printed its URL."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSBOT_"))}
    process = subprocess.Popen(
        [str(OPSBOT), "serve", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    stderr: list[str] = []

    def pump_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    def pump_stderr() -> None:
        assert process.stderr is not None
        stderr.extend(process.stderr)

    output = threading.Thread(target=pump_stdout, daemon=True)
    errors = threading.Thread(target=pump_stderr, daemon=True)
    output.start()
    errors.start()
    try:
        url = None
        while url is None:
            line = lines.get(timeout=60)
            if line is None:
                process.wait(30)
                errors.join(10)
                raise RuntimeError(f"opsbot serve exited {process.returncode}: {''.join(stderr)}")
            if match := READY.search(line):
                url = match.group(1)
        yield Served(process, url, stderr)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        output.join(10)
        errors.join(10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()

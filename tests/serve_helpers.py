"""Start ``opsbot serve`` as a real subprocess and follow what it prints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tests.conftest import OPSBOT, ROOT

LISTENING = re.compile(r" at (http://\S+)")


class Served:
    """A running ``opsbot serve``: its URL, and everything it printed so far."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.url = ""
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._pumps = [
            threading.Thread(target=self._pump, args=(stream,), daemon=True)
            for stream in (process.stdout, process.stderr)
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self._lines)

    @property
    def stderr(self) -> list[str]:
        """Every line printed so far (stdout and stderr together)."""
        with self._changed:
            return list(self._lines)

    def wait_for_output(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """Block until a printed line matches ``pattern``; fail if the process ends first."""
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            for line in self._lines:
                if match := regex.search(line):
                    found.append(match)
                    return True
            return self.process.poll() is not None

        with self._changed:
            self._changed.wait_for(seen, timeout)
        if not found:
            raise AssertionError(f"opsbot never printed {pattern!r}; it printed:\n{self.output}")
        return found[0]

    def stop(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        for pump in self._pumps:
            pump.join(10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def opsbot_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for an opsbot subprocess: no inherited Slack or opsbot settings,
    and the project root importable (for ``tests.e2e_handlers``)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSBOT_"))}
    return {**base, "PYTHONPATH": str(ROOT), **(extra or {})}


@contextmanager
def serving(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Iterator[Served]:
    """Run ``opsbot serve ARGS`` until the block ends; yields once it printed its URL."""
    process = subprocess.Popen(
        [str(OPSBOT), "serve", *args],
        cwd=cwd,
        env=opsbot_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(process)
    try:
        served.url = served.wait_for_output(LISTENING.pattern, timeout=60).group(1)
        yield served
    finally:
        served.close()

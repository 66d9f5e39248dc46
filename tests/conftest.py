"""Shared fixtures: a fresh registry, a manual clock, a store, a runtime, a responder."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot import config
from bot.clock import ManualClock
from bot.config import LoadedConfig
from bot.runtime import Runtime
from bot.store import Store
from handlers.registry import Registry
from handlers.reply import Reply
from handlers.settings import RbacSettings, RoleSettings, Settings

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SPECS = SHARED / "specs"
OPSBOT = Path(sys.executable).with_name("opsbot")


@pytest.fixture
def registry() -> Registry:
    """A fresh registry holding every built-in command."""
    return Registry.discover()


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test says so."""
    return ManualClock()


ALLOW_ALL = RbacSettings(
    roles={"everything": RoleSettings(allow=["*:*"])}, users={"*": ["everything"]}
)


@pytest.fixture
def settings() -> Settings:
    """The built-in demo settings, with everyone allowed everything (tests of RBAC itself
    build their own roles)."""
    return config.demo().settings.model_copy(update={"rbac": ALLOW_ALL})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated store in a temporary folder."""
    opened = Store.open(tmp_path / "opsbot.db")
    yield opened
    opened.close()


def loaded_config(settings: Settings, folder: Path) -> LoadedConfig:
    """Settings as if read from ``folder/opsbot.toml``."""
    return LoadedConfig(settings, folder / "opsbot.toml", folder)


@pytest.fixture
def runtime(tmp_path: Path, settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    """A runtime on the demo settings with its store in ``tmp_path``."""
    built = Runtime.build(loaded_config(settings, tmp_path), clock=clock, environ={})
    yield built
    built.close()


@dataclass
class Recorded:
    kind: str  # "post" or "update"
    message_id: str
    reply: Reply


@dataclass
class RecordingResponder:
    """A responder that keeps every post and update, and lets tests wait for them."""

    events: list[Recorded] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    _next: int = 0

    def post(self, reply: Reply) -> str | None:
        with self.changed:
            self._next += 1
            message_id = f"m{self._next}"
            self.events.append(Recorded("post", message_id, reply))
            self.changed.notify_all()
            return message_id

    def update(self, message_id: str, reply: Reply) -> None:
        with self.changed:
            self.events.append(Recorded("update", message_id, reply))
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        """Block until ``count`` events were recorded; fail after ``timeout``."""
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.events) >= count, timeout):
                raise AssertionError(f"expected {count} events, got {self.events}")
            return list(self.events)

    @property
    def last(self) -> Reply:
        return self.events[-1].reply


@pytest.fixture
def responder() -> RecordingResponder:
    return RecordingResponder()


def run_opsbot(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``opsbot`` console script as a subprocess."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSBOT_"))}
    return subprocess.run(
        [str(OPSBOT), *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )

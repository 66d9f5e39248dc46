"""The small framework that runs local emulators of external systems.

In sandbox mode (and in tests) every external system is a loopback HTTP server that
speaks the real API. An emulator is a WSGI app plus the knowledge of how to point
opsbot's settings at it. Each feature adds its emulator to :data:`SANDBOX_EMULATORS`;
:func:`start_emulators` starts them all on free ports and returns settings (and the
secrets the adapters read from the environment) aimed at them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from bot.httpserver import HttpServer
from handlers.settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class Emulator(Protocol):
    """A local stand-in for one external system."""

    name: str

    def wsgi_app(self) -> WSGIApplication:
        """The HTTP API the emulator serves."""
        ...

    def configure(self, settings: Settings, url: str) -> tuple[Settings, dict[str, str]]:
        """Settings pointing at ``url``, and the environment variables adapters need."""
        ...


EmulatorFactory = Callable[[], Emulator]


def _argocd_demo() -> Emulator:
    from bot.sandbox.argocd import ArgoCDEmulator  # imported only when the sandbox starts

    return ArgoCDEmulator.demo()


#: Emulators the sandbox starts; each feature issue adds its own (with demo data).
SANDBOX_EMULATORS: tuple[EmulatorFactory, ...] = (_argocd_demo,)


@dataclass
class RunningEmulators:
    """Emulators serving on loopback, and the settings and secrets aimed at them."""

    settings: Settings
    environ: dict[str, str] = field(default_factory=dict)
    emulators: dict[str, Emulator] = field(default_factory=dict)
    servers: dict[str, HttpServer] = field(default_factory=dict)

    def url(self, name: str) -> str:
        """The base URL of emulator ``name``."""
        return self.servers[name].url

    def stop(self) -> None:
        """Stop every emulator's server."""
        for server in self.servers.values():
            server.stop()
        self.servers.clear()


def start_emulators(
    settings: Settings, factories: Iterable[EmulatorFactory] = SANDBOX_EMULATORS
) -> RunningEmulators:
    """Start each emulator on 127.0.0.1 (a free port) and aim ``settings`` at it."""
    running = RunningEmulators(settings)
    try:
        for factory in factories:
            emulator = factory()
            server = HttpServer(emulator.wsgi_app(), name=f"emulator-{emulator.name}").start()
            running.emulators[emulator.name] = emulator
            running.servers[emulator.name] = server
            running.settings, secrets = emulator.configure(running.settings, server.url)
            running.environ.update(secrets)
    except Exception:
        running.stop()
        raise
    return running

"""The emulator framework: start local servers and aim the settings at them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from bot.runtime import Runtime
from bot.sandbox.emulators import start_emulators
from handlers.settings import PrometheusSettings, Settings
from tests.conftest import loaded_config

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class FakePrometheus:
    """A one-route stand-in answering /api/v1/status/buildinfo like Prometheus does."""

    name = "prometheus"

    def wsgi_app(self) -> Any:
        def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
            if environ["PATH_INFO"] != "/api/v1/status/buildinfo":
                start_response("404 Not Found", [("Content-Type", "application/json")])
                return [b'{"status":"error"}']
            body = {"status": "success", "data": {"version": "emulated"}}
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]

        return app

    def configure(self, settings: Settings, url: str) -> tuple[Settings, dict[str, str]]:
        aimed = settings.model_copy(update={"prometheus": PrometheusSettings(url=url)})
        return aimed, {"PROMETHEUS_TOKEN": "emulated"}


class Broken:
    name = "broken"

    def wsgi_app(self) -> Any:
        raise RuntimeError("cannot build")

    def configure(self, settings: Settings, url: str) -> tuple[Settings, dict[str, str]]:
        return settings, {}


def test_an_emulator_serves_on_loopback_and_the_settings_point_at_it(settings: Settings) -> None:
    running = start_emulators(settings, [FakePrometheus])
    try:
        url = running.url("prometheus")
        assert url.startswith("http://127.0.0.1:")
        assert running.settings.prometheus is not None
        assert running.settings.prometheus.url == url
        assert running.environ == {"PROMETHEUS_TOKEN": "emulated"}
        answer = httpx.get(f"{url}/api/v1/status/buildinfo").json()
        assert answer["data"]["version"] == "emulated"
    finally:
        running.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/api/v1/status/buildinfo")


def test_a_failing_emulator_stops_the_ones_already_started(settings: Settings) -> None:
    started: list[str] = []

    class Recording(FakePrometheus):
        def configure(self, settings: Settings, url: str) -> tuple[Settings, dict[str, str]]:
            started.append(url)
            return super().configure(settings, url)

    with pytest.raises(RuntimeError, match="cannot build"):
        start_emulators(settings, [Recording, Broken])
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{started[0]}/api/v1/status/buildinfo")


def test_the_runtime_uses_emulated_settings_and_stops_them(
    tmp_path: Path, settings: Settings
) -> None:
    runtime = Runtime.build(
        loaded_config(settings, tmp_path), environ={}, emulators=[FakePrometheus]
    )
    assert runtime.emulators is not None
    url = runtime.emulators.url("prometheus")
    assert runtime.settings.prometheus is not None
    assert runtime.pipeline.settings.prometheus == runtime.settings.prometheus
    runtime.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)

"""The Slack app manifest generated from the registry and config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bot import config, manifest
from handlers.registry import Registry
from tests.conftest import SPECS, run_opsbot


def generated(tmp_path: Path, *args: str) -> dict:
    (tmp_path / "opsbot.toml").write_text('[slack]\ncommand = "/platform"\n')
    result = run_opsbot("slack-manifest", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_the_manifest_is_yaml_with_the_fields_slack_requires(tmp_path: Path) -> None:
    data = generated(tmp_path)
    info = data["display_information"]
    assert info["name"] == "opsbot"
    assert len(info["name"]) <= 35
    assert len(info["description"]) <= 140
    assert 175 <= len(info["long_description"]) <= 4000
    assert data["features"]["bot_user"]["display_name"] == "opsbot"
    (slash,) = data["features"]["slash_commands"]
    assert slash["command"] == "/platform"
    assert slash["description"]
    assert data["settings"]["interactivity"]["is_enabled"] is True
    assert data["settings"]["socket_mode_enabled"] is True
    assert "url" not in slash  # Socket Mode needs no request URL
    assert set(data["oauth_config"]["scopes"]["bot"]) >= {"commands", "chat:write"}


def test_the_long_description_names_every_registered_verb(tmp_path: Path) -> None:
    data = generated(tmp_path)
    for verb in Registry.discover().verbs():
        assert verb in data["display_information"]["long_description"]


def test_a_request_url_produces_an_http_mode_manifest(tmp_path: Path) -> None:
    data = generated(tmp_path, "--request-url", "https://opsbot.example.com/")
    endpoint = "https://opsbot.example.com/slack/events"
    assert data["settings"]["socket_mode_enabled"] is False
    assert data["features"]["slash_commands"][0]["url"] == endpoint
    assert data["settings"]["interactivity"]["request_url"] == endpoint
    assert data["settings"]["event_subscriptions"]["request_url"] == endpoint


# Granular bot scopes that the (older) Web API spec still lists under their classic names.
RENAMED_SINCE_SPEC = {"chat:write": "chat:write:bot", "files:write": "files:write:user"}
# Scopes no Web API method carries: the slash command itself, and posting to channels
# the bot was not invited to (an extension of chat:write).
NOT_METHOD_SCOPES = {"commands", "chat:write.public"}


def test_every_requested_scope_exists_in_the_slack_web_api_spec() -> None:
    spec_file = SPECS / "slack" / "slack_web_openapi_v2.json"
    if not spec_file.exists():
        pytest.skip(f"{spec_file} is absent on this machine; CI always has it")
    spec = json.loads(spec_file.read_text())
    known: set[str] = set()
    for path in spec["paths"].values():
        for operation in path.values():
            for requirement in operation.get("security", []):
                for scopes in requirement.values():
                    known.update(scopes)
    for scope in set(manifest.BOT_SCOPES) - NOT_METHOD_SCOPES:
        assert RENAMED_SINCE_SPEC.get(scope, scope) in known, scope


def test_the_manifest_builder_reads_the_command_from_settings() -> None:
    settings = config.parse('[slack]\ncommand = "/ship"\n', "x.toml")
    built = manifest.build(Registry.discover(), settings, name="shipbot")
    assert built["features"]["slash_commands"][0]["command"] == "/ship"
    assert built["display_information"]["name"] == "shipbot"
    assert yaml.safe_load(manifest.to_yaml(built)) == built

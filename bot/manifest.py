"""The Slack app manifest, generated from the registry and config (``opsbot slack-manifest``).

Paste the YAML into https://api.slack.com/apps → Create New App → From a manifest.
Socket Mode is on by default (no inbound port needed); give ``request_url`` to produce
an HTTP-mode manifest whose slash command and interactivity point at opsbot instead.
"""

from __future__ import annotations

from typing import Any

import yaml

from handlers.registry import Registry
from handlers.settings import Settings

#: The bot scopes opsbot uses, and the Web API methods or events that need each one.
BOT_SCOPES: dict[str, str] = {
    "commands": "the umbrella slash command",
    "chat:write": "chat.postMessage, chat.update, chat.postEphemeral: replies and progress",
    "chat:write.public": "post notices and approval requests to channels opsbot was not invited to",
    "files:write": "files.getUploadURLExternal, files.completeUploadExternal: long output",
    "users:read": "users.info: show names next to user IDs",
    "usergroups:read": "usergroups.users.list: RBAC bindings to Slack user groups",
    "channels:history": "message.channels events: warn when a secret is posted (DLP)",
    "groups:history": "message.groups events: the same in private channels",
}
BOT_EVENTS = ["message.channels", "message.groups"]


def build(
    registry: Registry,
    settings: Settings,
    *,
    name: str = "opsbot",
    request_url: str | None = None,
) -> dict[str, Any]:
    """The manifest as a dict; Socket Mode unless ``request_url`` is given."""
    verbs = ", ".join(registry.verbs())
    slash: dict[str, Any] = {
        "command": settings.slack.command,
        "description": "Deploy, roll back and operate the platform (try: help)",
        "usage_hint": "help | deploy APP ENV | status APP",
        "should_escape": False,
    }
    interactivity: dict[str, Any] = {"is_enabled": True}
    events: dict[str, Any] = {"bot_events": list(BOT_EVENTS)}
    if request_url:
        endpoint = request_url.rstrip("/") + "/slack/events"
        slash["url"] = endpoint
        interactivity["request_url"] = endpoint
        events["request_url"] = endpoint
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name,
            "description": "ChatOps for platform teams",
            "long_description": (
                "opsbot deploys and rolls back through Argo CD, opens ephemeral environments, "
                "runs chaos experiments, rotates secrets and shifts canary traffic, with "
                "approvals for risky actions and a tamper-evident audit trail. "
                f"Commands: {verbs}."
            ),
            "background_color": "#3f0e40",
        },
        "features": {
            "bot_user": {"display_name": name, "always_online": True},
            "slash_commands": [slash],
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": request_url is None,
            "token_rotation_enabled": False,
        },
    }


def to_yaml(manifest: dict[str, Any]) -> str:
    """Render the manifest as YAML, keys in the order Slack's docs show them."""
    return yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=100)

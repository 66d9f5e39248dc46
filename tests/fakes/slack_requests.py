"""Requests exactly as Slack sends them, signed with the signing secret.

Field names follow ``../shared/specs/slack/payload-samples``: slash commands are form
encoded; interactions carry their JSON in a ``payload=`` form field; Events API
callbacks are JSON. :func:`signed_request` signs any of them (v0 HMAC-SHA256).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

SIGNING_SECRET = "test-signing-secret-not-a-real-one"
_ids = itertools.count(1)


def slash_command(
    text: str,
    *,
    user: str = "U0ALICE",
    channel: str = "C0OPS",
    command: str = "/ops",
    response_url: str = "",
    trigger_id: str | None = None,
) -> dict[str, str]:
    """The form fields of a slash command (SlashCommandPayload.json)."""
    return {
        "token": "deprecated-verification-token",
        "api_app_id": "A0OPSBOT",
        "team_id": "T0TEST",
        "team_domain": "opsbot-test",
        "enterprise_id": "",
        "enterprise_name": "",
        "channel_id": channel,
        "channel_name": "ops",
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "response_url": response_url,
        "trigger_id": trigger_id or f"{next(_ids)}.1.trigger",
        "is_enterprise_install": "false",
    }


def block_action(
    value: str,
    *,
    action_id: str = "opsbot.run.0",
    user: str = "U0ALICE",
    channel: str = "C0OPS",
    message_ts: str = "1700000000.000001",
    response_url: str = "",
    trigger_id: str | None = None,
    action_ts: str | None = None,
) -> dict[str, Any]:
    """A ``block_actions`` payload for a button click (BlockActionPayload.json)."""
    return {
        "type": "block_actions",
        "team": {"id": "T0TEST", "domain": "opsbot-test"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0TEST"},
        "api_app_id": "A0OPSBOT",
        "token": "deprecated-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id or f"{next(_ids)}.2.trigger",
        "channel": {"id": channel, "name": "ops"},
        "message": {"type": "message", "ts": message_ts, "text": "", "blocks": []},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "b1",
                "text": {"type": "plain_text", "text": "button", "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": action_ts or f"{time.time():.6f}",
            }
        ],
        "is_enterprise_install": False,
    }


def message_event(text: str, *, user: str = "U0ALICE", channel: str = "C0OPS") -> dict[str, Any]:
    """An Events API ``event_callback`` carrying a channel message."""
    return {
        "token": "deprecated-verification-token",
        "team_id": "T0TEST",
        "api_app_id": "A0OPSBOT",
        "type": "event_callback",
        "event_id": f"Ev{next(_ids):08d}",
        "event_time": int(time.time()),
        "event": {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": f"{time.time():.6f}",
            "channel_type": "channel",
        },
    }


def signed_request(
    body: dict[str, Any],
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    retry_num: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Encode ``body`` the way Slack does and sign it: returns (bytes, headers).

    A dict with a ``type`` of ``block_actions`` goes in ``payload=``; one with
    ``event_callback``/``url_verification`` is JSON; anything else is form fields.
    """
    kind = body.get("type")
    if kind in ("event_callback", "url_verification"):
        raw = json.dumps(body).encode()
        content_type = "application/json"
    elif isinstance(kind, str):
        raw = urlencode({"payload": json.dumps(body)}).encode()
        content_type = "application/x-www-form-urlencoded"
    else:
        raw = urlencode(body).encode()
        content_type = "application/x-www-form-urlencoded"
    return raw, sign(
        raw, secret=secret, timestamp=timestamp, content_type=content_type, retry_num=retry_num
    )


def sign(
    raw: bytes,
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    content_type: str = "application/x-www-form-urlencoded",
    retry_num: int | None = None,
) -> dict[str, str]:
    """Slack's request headers for ``raw``: timestamp and v0 signature."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + raw, hashlib.sha256)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return headers

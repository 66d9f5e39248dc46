"""Start-up against Slack: check the token with ``auth.test`` until Slack answers.

A token Slack refuses is fatal (opsbot exits 1 saying so); an unreachable or failing
Slack is retried with backoff while ``/readyz`` says why opsbot is not ready yet.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from urllib.error import URLError

from slack_bolt import App
from slack_bolt.error import BoltError
from slack_sdk.errors import SlackApiError
from slack_sdk.web import WebClient

from bot.app import build_app
from bot.runtime import Runtime
from bot.slack import Outbox

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


class Stop:
    """Why and how the process should end: a signal (exit 0) or a fatal error (exit 1)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.code = 0

    def request(self, code: int = 0) -> None:
        """Ask the process to stop with ``code``."""
        self.code = max(self.code, code)
        self._event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested (or ``timeout``); True if it was."""
        return self._event.wait(timeout)

    @property
    def requested(self) -> bool:
        """True once a stop was requested."""
        return self._event.is_set()


def connect(
    runtime: Runtime,
    client: WebClient,
    outbox: Outbox,
    *,
    signing_secret: str | None,
    stop: Stop,
    on_ready: Callable[[App], None],
    on_waiting: Callable[[str], None],
) -> App | None:
    """Build the Bolt app once ``auth.test`` passes; None if stopped or the token is bad."""
    delay = 1.0
    while not stop.requested:
        try:
            identity = client.auth_test()
            app = build_app(runtime, client, outbox, signing_secret=signing_secret)
        except SlackApiError as error:
            status, code = error.response.status_code, error.response.get("error")
            if status != 429 and status < 500:
                _fatal(stop, f"Slack refused the bot token ({code}): check SLACK_BOT_TOKEN")
                return None
            reason = f"Slack answered {status} ({code})"
        except BoltError as error:
            _fatal(stop, f"Slack refused the bot token: {error}")
            return None
        except (URLError, OSError) as error:
            reason = f"cannot reach Slack ({getattr(error, 'reason', error)})"
        else:
            on_ready(app)
            log.info("connected to Slack as %s in %s", identity.get("user"), identity.get("team"))
            return app
        on_waiting(f"{reason}; retrying")
        log.warning("%s; retrying in %.0fs", reason, delay)
        stop.wait(delay)
        delay = min(delay * 2, MAX_BACKOFF_SECONDS)
    return None


def _fatal(stop: Stop, message: str) -> None:
    log.error(message)
    stop.request(1)

"""Prometheus metrics for ``GET /metrics``: commands, ack latency, Slack API errors.

Each runtime has its own registry, so several opsbots in one test process never mix.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.pipeline import Invocation, Next
from handlers.reply import Reply

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: Slack allows 3 s for an ack; the buckets are dense below that line.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)


class Metrics:
    """The counters and histograms one opsbot process exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "opsbot_commands",
            "Commands handled, by verb (or '-' when unparsable) and outcome.",
            ["verb", "outcome"],
            registry=self.registry,
        )
        self.ack_latency = Histogram(
            "opsbot_ack_latency_seconds",
            "Time from a Slack request's arrival to its acknowledgement.",
            ["kind"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.slack_api_errors = Counter(
            "opsbot_slack_api_errors",
            "Slack Web API calls that failed, by method and error.",
            ["method", "error"],
            registry=self.registry,
        )
        self.http_requests = Counter(
            "opsbot_http_requests",
            "HTTP requests served, by route and status code.",
            ["route", "status"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def step(self, invocation: Invocation, proceed: Next) -> Reply:
        """A pipeline step counting every command by verb and outcome."""
        reply = proceed(invocation)
        verb = invocation.spec.path if invocation.spec else "-"
        self.commands.labels(verb=verb, outcome=reply.status.value).inc()
        return reply

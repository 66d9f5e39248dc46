"""Outgoing messages: one paced queue per channel, retries, and nothing lost silently.

Slack allows about one message per second per channel and answers 429 with
``Retry-After`` beyond that. Everything opsbot posts goes through a :class:`Sender`:
each channel ("lane") sends in order, at most one call at a time, at most one per
``interval``; a 429 pauses only that lane for as long as Slack asked; a 5xx or a network
error is retried with backoff; any other failure is logged with the channel and error.
Updates to the same message are coalesced: only the newest content is sent. Callers get a
:class:`~concurrent.futures.Future` and never wait on the ack path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A send failed; ``retryable`` says whether trying again may help."""

    def __init__(
        self,
        method: str,
        error: str,
        *,
        status: int = 0,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass
class _Op:
    lane: str
    method: str
    call: Callable[[], Any]
    future: Future[Any]
    coalesce: str | None = None
    attempts: int = 0


@dataclass
class _Lane:
    queue: deque[_Op] = field(default_factory=deque)
    next_at: float = 0.0
    busy: bool = False


class Sender:
    """Paced, ordered, retried delivery of calls, one lane per channel."""

    def __init__(
        self,
        *,
        interval: float = 1.0,
        workers: int = 4,
        max_attempts: int = 5,
        backoff: float = 1.0,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self._interval = interval
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._on_error = on_error or (lambda method, error: None)
        self._lanes: dict[str, _Lane] = {}
        self._changed = threading.Condition()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="opsbot-send")
        self._closing = False
        self._gave_up = False  # close() timed out: nothing may be queued again
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="opsbot-sender", daemon=True
        )
        self._dispatcher.start()

    def submit(
        self, lane: str, method: str, call: Callable[[], Any], *, coalesce: str | None = None
    ) -> Future[Any]:
        """Queue ``call`` on ``lane``; with ``coalesce``, replace a queued call with that key."""
        with self._changed:
            if self._closing:
                raise RuntimeError("the sender is closed")
            queue = self._lanes.setdefault(lane, _Lane()).queue
            if coalesce is not None:
                for op in queue:
                    if op.coalesce == coalesce:
                        op.call = call  # the newest content wins; one future for both
                        return op.future
            future: Future[Any] = Future()
            queue.append(_Op(lane, method, call, future, coalesce))
            self._changed.notify_all()
            return future

    def pending(self) -> int:
        """Calls queued or in flight."""
        with self._changed:
            return sum(len(lane.queue) + lane.busy for lane in self._lanes.values())

    def close(self, timeout: float = 30.0) -> bool:
        """Send what is queued (up to ``timeout`` seconds), then stop; False if some was left."""
        deadline = time.monotonic() + timeout
        with self._changed:
            self._closing = True
            drained = self._changed.wait_for(
                lambda: all(not lane.queue and not lane.busy for lane in self._lanes.values()),
                timeout,
            )
            self._gave_up = not drained
            left = [op for lane in self._lanes.values() for op in lane.queue]
            for op in left:
                log.error("not sent before shutdown: %s to %s", op.method, op.lane)
                op.future.set_exception(DeliveryError(op.method, "opsbot stopped before sending"))
            for lane in self._lanes.values():
                lane.queue.clear()
            self._changed.notify_all()
        self._dispatcher.join(max(deadline - time.monotonic(), 0.1))
        self._pool.shutdown(wait=True)
        return drained

    def _dispatch(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                wait: float | None = None
                for name, lane in self._lanes.items():
                    if lane.busy or not lane.queue:
                        continue
                    if lane.next_at <= now:
                        lane.busy = True
                        op = lane.queue.popleft()
                        try:
                            self._pool.submit(self._send, name, lane, op)
                        except RuntimeError:  # the pool is shut down: report, never hang
                            lane.busy = False
                            op.future.set_exception(
                                DeliveryError(op.method, "opsbot stopped before sending")
                            )
                    else:
                        pause = lane.next_at - now
                        wait = pause if wait is None else min(wait, pause)
                idle = all(not lane.queue and not lane.busy for lane in self._lanes.values())
                if self._closing and idle:
                    return
                self._changed.wait(wait)

    def _send(self, name: str, lane: _Lane, op: _Op) -> None:
        op.attempts += 1
        pause = self._interval
        try:
            result = op.call()
        except DeliveryError as error:
            pause = self._failed(lane, op, error)
        except Exception as error:  # a bug or an unexpected client error: never silent
            log.exception("sending %s to %s failed", op.method, op.lane)
            self._count(op.method, type(error).__name__)
            op.future.set_exception(error)
        else:
            op.future.set_result(result)
        with self._changed:
            lane.busy = False
            lane.next_at = time.monotonic() + pause
            self._changed.notify_all()

    def _count(self, method: str, error: str) -> None:
        try:
            self._on_error(method, error)
        except Exception:
            log.exception("the error counter failed")

    def _failed(self, lane: _Lane, op: _Op, error: DeliveryError) -> float:
        """Requeue ``op`` if worth it; return how long the lane pauses."""
        self._count(op.method, error.error)
        if error.retryable and op.attempts < self._max_attempts:
            backoff = self._backoff * 2 ** (op.attempts - 1)
            pause = error.retry_after if error.retry_after is not None else backoff
            with self._changed:
                if not self._gave_up:
                    log.warning(
                        "%s to %s failed (%s); retrying in %.1fs (attempt %d of %d)",
                        op.method,
                        op.lane,
                        error.error,
                        pause,
                        op.attempts,
                        self._max_attempts,
                    )
                    lane.queue.appendleft(op)
                    return pause
            error = DeliveryError(op.method, f"{error.error}; opsbot stopped before a retry")
        log.error("could not send %s to %s: %s", op.method, op.lane, error.error)
        op.future.set_exception(error)
        return self._interval

"""Who is who: the actor is always a Slack user ID; Slack user groups come from
``usergroups.users.list``, cached briefly so RBAC checks stay fast."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from slack_sdk.web import WebClient

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 60.0
FAILURE_CACHE_SECONDS = 10.0


class UserGroups:
    """Members of Slack user groups, from the Web API, cached for ``ttl`` seconds.

    When Slack cannot be asked, the last known members are used; with none, the group
    is empty, so a permission bound to it is simply not granted (deny by default).
    """

    def __init__(
        self,
        client: WebClient,
        *,
        ttl: float = GROUP_CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def members(self, group: str) -> frozenset[str]:
        """User IDs in ``group`` (an ``S…`` ID)."""
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(group)
        if cached and now - cached[0] < self._ttl:
            return cached[1]
        try:
            answer = self._client.usergroups_users_list(usergroup=group)
            users = frozenset(str(u) for u in answer.get("users") or [])
        except Exception as error:
            log.warning("cannot list members of user group %s (%s)", group, error)
            users = cached[1] if cached else frozenset()
            # Remember the failure for a short while: every RBAC check during an outage
            # must not wait on Slack's timeout again.
            with self._lock:
                self._cache[group] = (now - self._ttl + FAILURE_CACHE_SECONDS, users)
            return users
        with self._lock:
            self._cache[group] = (now, users)
        return users

    def groups_of(self, user: str, groups: Iterable[str]) -> set[str]:
        """Which of ``groups`` ``user`` belongs to."""
        return {group for group in groups if user in self.members(group)}


class StaticGroups:
    """User groups from a fixed mapping (the sandbox and ``opsbot run`` have no Slack)."""

    def __init__(self, groups: Mapping[str, Iterable[str]] | None = None) -> None:
        self._groups = {name: frozenset(users) for name, users in (groups or {}).items()}

    def members(self, group: str) -> frozenset[str]:
        """User IDs in ``group``."""
        return self._groups.get(group, frozenset())

    def groups_of(self, user: str, groups: Iterable[str]) -> set[str]:
        """Which of ``groups`` ``user`` belongs to."""
        return {group for group in groups if user in self.members(group)}

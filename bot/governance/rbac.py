"""Role-based access control, deny by default.

Roles grant ``VERB:ENV`` patterns (``deploy:*``, ``env:*``, ``approve:prod``,
``chaos.run:staging``; ``*`` is a wildcard and ``VERB`` covers all its subverbs). Users
and Slack user groups are bound to roles; ``"*"`` binds everyone. A command that names no
environment needs a pattern whose environment part is ``*``. A refusal says which
permission was missing, which roles grant it and who can change the roles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Protocol

from bot.pipeline import Invocation, Next, Step
from handlers.errors import Refused, UsageError
from handlers.registry import CommandSpec, Registry
from handlers.reply import Reply, escape
from handlers.settings import RbacSettings, Settings

#: Verbs whose permission is checked by the approvals module against the request's env.
SELF_CHECKED = frozenset({"approve", "deny"})
#: Verbs everyone may run: they show only the asker's own identity and permissions, and
#: they are how someone without access finds out what to ask for.
ALWAYS_ALLOWED = frozenset({"help", "whoami"})
#: Permissions that exist without a command of that name.
PSEUDO_VERBS = frozenset({"approve"})


class GroupDirectory(Protocol):
    """Who is in which Slack user group."""

    def groups_of(self, user: str, groups: Iterable[str]) -> set[str]:
        """Which of ``groups`` ``user`` belongs to."""
        ...


@dataclass(frozen=True)
class Pattern:
    """One ``VERB[.SUBVERB]:ENV`` grant."""

    verb: str
    env: str

    @classmethod
    def parse(cls, text: str) -> Pattern:
        verb, _, env = text.partition(":")
        return cls(verb, env)

    def grants(self, permission: str, env: str | None) -> bool:
        """True when this pattern covers ``permission`` in ``env`` (None: no environment)."""
        base = permission.split(".", 1)[0]
        verb_ok = fnmatchcase(permission, self.verb) or (
            "." not in self.verb and fnmatchcase(base, self.verb)
        )
        if not verb_ok:
            return False
        return self.env == "*" if env is None else fnmatchcase(env, self.env)


class Rbac:
    """Answers "may this user run this?" from the ``[rbac]`` settings."""

    def __init__(self, settings: RbacSettings, groups: GroupDirectory) -> None:
        self._settings = settings
        self._groups = groups
        self._roles = {
            name: [Pattern.parse(p) for p in role.allow] for name, role in settings.roles.items()
        }

    def roles_of(self, user: str) -> set[str]:
        """Every role ``user`` holds, directly, through ``"*"`` or through a user group."""
        roles = set(self._settings.users.get(user, ())) | set(self._settings.users.get("*", ()))
        for group in self._groups.groups_of(user, self._settings.groups):
            roles |= set(self._settings.groups[group])
        return roles

    def allows(self, user: str, permission: str, env: str | None) -> bool:
        """True when one of ``user``'s roles grants ``permission`` in ``env``."""
        if permission in ALWAYS_ALLOWED:
            return True
        return any(
            pattern.grants(permission, env)
            for role in self.roles_of(user)
            for pattern in self._roles.get(role, ())
        )

    def allows_somewhere(self, user: str, permission: str, environments: Iterable[str]) -> bool:
        """True when ``user`` may use ``permission`` in some environment (or without one)."""
        return self.allows(user, permission, None) or any(
            self.allows(user, permission, env) for env in environments
        )

    def refusal(self, user: str, permission: str, env: str | None) -> str:
        """Why ``user`` may not: the permission, the roles granting it, who to ask."""
        needed = escape(f"{permission}:{env or '*'}")
        granting = [
            name
            for name, patterns in self._roles.items()
            if any(p.grants(permission, env) for p in patterns)
        ]
        admins = ", ".join(f"<@{a}>" for a in self._settings.admins) or "an opsbot admin"
        if not granting:
            return (
                f"You need the permission `{needed}`, and no role grants it yet. Ask {admins} "
                "to add it to a role in opsbot.toml ([rbac.roles])."
            )
        holders = []
        for role in granting:
            users = [
                f"<@{u}>" for u, roles in self._settings.users.items() if role in roles and u != "*"
            ]
            groups = [
                f"<!subteam^{g}>" for g, roles in self._settings.groups.items() if role in roles
            ]
            who = ", ".join(users + groups)
            holders.append(f"*{role}*" + (f" (held by {who})" if who else ""))
        return (
            f"You need the permission `{needed}`. Roles that grant it: {'; '.join(holders)}. "
            f"Ask {admins} to give you one of them."
        )


def rbac_step(rbac: Rbac, settings: Settings) -> Step:
    """The step that refuses what the actor's roles do not grant (and unknown environments)."""

    def check(invocation: Invocation, proceed: Next) -> Reply:
        spec, command = invocation.spec, invocation.command
        assert spec is not None
        assert command is not None
        env = invocation.environment
        if spec.env_arg and env is not None and env not in settings.environments:
            known = ", ".join(settings.environments) or "none configured"
            invocation.decision = "usage error"
            raise UsageError(f"unknown environment '{env}'; known: {known}", spec.usage)
        if spec.verb in SELF_CHECKED:
            return proceed(invocation)
        actor = invocation.request.actor
        if not rbac.allows(actor, spec.permission, env):
            invocation.decision = "refused"
            invocation.detail = f"missing {spec.permission}:{env or '*'}"
            raise Refused(rbac.refusal(actor, spec.permission, env), markup=True)
        return proceed(invocation)

    return check


def unknown_references(
    settings: Settings, registry: Registry, extra_verbs: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """Grants that name a verb or environment that does not exist: (key, message) pairs."""
    verbs = {spec.verb for spec in registry} | PSEUDO_VERBS | set(extra_verbs)
    paths = {spec.permission for spec in registry} | PSEUDO_VERBS
    problems = []
    for role, spec in settings.rbac.roles.items():
        for index, text in enumerate(spec.allow):
            pattern = Pattern.parse(text)
            key = f"rbac.roles.{role}.allow[{index}]"
            if not any(fnmatchcase(p, pattern.verb) for p in paths | verbs):
                problems.append((key, f"'{text}': no command '{pattern.verb}'"))
            elif pattern.env != "*" and not any(
                fnmatchcase(env, pattern.env) for env in settings.environments
            ):
                problems.append((key, f"'{text}': no environment matches '{pattern.env}'"))
    return problems


def permits(rbac: Rbac, settings: Settings) -> Callable[[str, CommandSpec], bool]:
    """The ``help`` filter: may ``user`` run ``spec`` in at least one environment?"""

    def may_run(user: str, spec: CommandSpec) -> bool:
        if spec.verb in SELF_CHECKED:
            return rbac.allows_somewhere(user, "approve", settings.environments)
        if spec.env_arg is None:  # it runs with no environment: only VERB:* lets it run
            return rbac.allows(user, spec.permission, None)
        return rbac.allows_somewhere(user, spec.permission, settings.environments)

    return may_run

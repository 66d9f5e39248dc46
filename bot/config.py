"""Load ``opsbot.toml`` into the typed :class:`~handlers.settings.Settings` tree.

Every problem is reported at once, as ``FILE: section.key: message``, by
``opsbot config check`` and by ``opsbot serve`` before anything starts. Config comes from
``--config``, else ``$OPSBOT_CONFIG``, else ``./opsbot.toml``; with none, the sandbox runs
on the built-in demo settings (``bot/sandbox/demo.toml``).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import tempfile
import tomllib
import types
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from handlers.settings import Settings

CONFIG_ENV = "OPSBOT_CONFIG"
DEFAULT_FILE = "opsbot.toml"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")
_PERMISSION = re.compile(r"^[a-z*][a-z0-9*-]*(\.[a-z*][a-z0-9*-]*)?:[a-z0-9*][a-z0-9*-]*$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config file, located by key path."""

    file: str
    key: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {prefix}{self.message}"


class ConfigError(Exception):
    """The config has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class LoadedConfig:
    """Settings plus where they came from (relative paths resolve against ``base_dir``)."""

    settings: Settings
    source: Path | None  # None: the built-in demo settings
    base_dir: Path

    @property
    def demo(self) -> bool:
        """True when running on the built-in demo settings."""
        return self.source is None

    @property
    def store_path(self) -> Path:
        """The SQLite file, resolved against the config file's folder."""
        return self.base_dir / os.path.expanduser(self.settings.store.path)


def locate(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to use: ``--config``, else ``$OPSBOT_CONFIG``, else ``./opsbot.toml``."""
    if explicit:
        return Path(explicit)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    default = Path(DEFAULT_FILE)
    return default if default.exists() else None


def load(path: Path) -> LoadedConfig:
    """Read and validate ``path``; raise :class:`ConfigError` listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([Problem(str(path), "", f"cannot read: {error.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(str(path), "", "not UTF-8 text")]) from None
    settings = parse(text, str(path))
    problems = check_permissions(settings, str(path))
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(settings, path, path.resolve().parent)


def check_permissions(settings: Settings, file: str) -> list[Problem]:
    """Grants naming a command or environment that does not exist (needs the registry)."""
    from bot.governance.commands import GOVERNANCE_VERBS
    from bot.governance.rbac import unknown_references
    from handlers.registry import Registry

    registry = Registry.discover(extra=settings.server.handler_modules)
    return [
        Problem(file, key, message)
        for key, message in unknown_references(settings, registry, GOVERNANCE_VERBS)
    ]


def demo() -> LoadedConfig:
    """The built-in demo settings; the store goes to a new folder under the temp dir
    (created when the store opens, removed when the runtime closes)."""
    text = resources.files("bot.sandbox").joinpath("demo.toml").read_text(encoding="utf-8")
    settings = parse(text, "demo.toml")
    folder = Path(tempfile.gettempdir()) / f"opsbot-sandbox-{uuid.uuid4().hex[:12]}"
    return LoadedConfig(settings, None, folder)


def parse(text: str, file: str) -> Settings:
    """Validate TOML ``text`` (named ``file`` in messages) into Settings, or raise."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([Problem(file, "", f"not valid TOML: {error}")]) from None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        raise ConfigError([_from_pydantic(file, e) for e in error.errors()]) from None
    problems = check_references(settings, file)
    if problems:
        raise ConfigError(problems)
    return settings


def check(path: Path, environ: Mapping[str, str]) -> list[Problem]:
    """Every problem in ``path``: errors first, then warnings (such as unset secrets)."""
    try:
        loaded = load(path)
    except ConfigError as error:
        return error.problems
    return missing_secrets(loaded.settings, str(path), environ)


def check_references(settings: Settings, file: str) -> list[Problem]:
    """Problems a schema cannot see: names, references between sections, patterns."""
    problems: list[Problem] = []

    def add(key: str, message: str) -> None:
        problems.append(Problem(file, key, message))

    for section in ("environments", "clusters", "apps"):
        for name in getattr(settings, section):
            if not _NAME.match(name):
                add(f"{section}.{name}", "names must be DNS labels: a-z, 0-9 and '-'")
    for name, env in settings.environments.items():
        if env.cluster not in settings.clusters:
            add(f"environments.{name}.cluster", _unknown("cluster", env.cluster, settings.clusters))
    for name, app in settings.apps.items():
        for index, env_name in enumerate(app.environments or ()):
            if env_name not in settings.environments:
                add(
                    f"apps.{name}.environments[{index}]",
                    _unknown("environment", env_name, settings.environments),
                )
    if settings.apps and settings.argocd is None:
        add("apps", "apps are deployed through Argo CD: add an [argocd] section with url")
    if settings.ephemeral is not None:
        if settings.ephemeral.app not in settings.apps:
            add("ephemeral.app", _unknown("app", settings.ephemeral.app, settings.apps))
        if settings.argocd is None:
            add("ephemeral", "environments are Argo CD apps: add an [argocd] section with url")
    if settings.github is not None:
        if settings.ephemeral is None:
            add("github", "the pull request webhook makes ephemeral environments: add [ephemeral]")
        elif settings.github.app and settings.github.app not in settings.apps:
            add("github.app", _unknown("app", settings.github.app, settings.apps))
    rbac = settings.rbac
    for role, spec in rbac.roles.items():
        for index, pattern in enumerate(spec.allow):
            if not _PERMISSION.match(pattern):
                add(
                    f"rbac.roles.{role}.allow[{index}]",
                    f"'{pattern}' is not a permission: write VERB:ENV or VERB.SUBVERB:ENV, "
                    "with * as a wildcard (e.g. deploy:staging, env.create:*)",
                )
    bindings = (("users", _USER, "user ID (U…)"), ("groups", _GROUP, "group ID (S…)"))
    for table, id_pattern, kind in bindings:
        for who, roles in getattr(rbac, table).items():
            if who != "*" and not id_pattern.match(who):
                add(f"rbac.{table}.{who}", f"not a Slack {kind}; use the ID, not a name")
            for role in roles:
                if role not in rbac.roles:
                    add(f"rbac.{table}.{who}", _unknown("role", role, rbac.roles))
    for index, module in enumerate(settings.server.handler_modules):
        if not _importable(module):
            add(f"server.handler_modules[{index}]", f"cannot import '{module}': is it installed?")
    for who in settings.sandbox.users:
        if not _USER.match(who):
            add(f"sandbox.users.{who}", "not a Slack-style user ID (U…)")
    return problems


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_secrets(settings: Settings, file: str, environ: Mapping[str, str]) -> list[Problem]:
    """Warnings for ``*_env`` keys whose environment variable is not set."""
    wanted: list[tuple[str, str | None, str]] = []
    if settings.argocd:
        wanted.append(("argocd.token_env", settings.argocd.token_env, "Argo CD"))
    if settings.github:
        wanted.append(
            ("github.webhook_secret_env", settings.github.webhook_secret_env, "GitHub webhook")
        )
    if settings.vault:
        vault = settings.vault
        if vault.auth == "token":
            wanted.append(("vault.token_env", vault.token_env, "Vault"))
        if vault.auth == "approle":
            wanted.append(("vault.role_id_env", vault.role_id_env, "Vault"))
            wanted.append(("vault.secret_id_env", vault.secret_id_env, "Vault"))
    return [
        Problem(
            file,
            key,
            f"environment variable {var} is not set; {system} commands will fail until it is",
            "warning",
        )
        for key, var, system in wanted
        if var and not environ.get(var)
    ]


def _unknown(kind: str, value: str, known: Mapping[str, object]) -> str:
    names = sorted(known)
    message = f"unknown {kind} '{value}'"
    close = difflib.get_close_matches(value, names, n=1)
    if close:
        return f"{message}; did you mean '{close[0]}'?"
    return f"{message}; known: {', '.join(names) or 'none'}"


def _from_pydantic(file: str, error: Any) -> Problem:
    loc = tuple(error["loc"])
    key = _dotted(loc)
    if error["type"] == "extra_forbidden":
        known = _keys_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
        return Problem(file, key, f"unknown key; {hint}")
    if error["type"] == "missing":
        return Problem(file, key, "required key is missing")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "string_pattern_mismatch":
        message = _pattern_hint(loc) or message
    return Problem(file, key, message)


def _pattern_hint(loc: tuple[Any, ...]) -> str | None:
    last = str(loc[-1]) if loc else ""
    if last.endswith("_env"):
        return "must name an environment variable (A-Z, 0-9, _), not hold a secret"
    if last.endswith("channel"):
        return "must be a Slack channel ID such as C0123ABCD (not a #name)"
    if last in ("url",):
        return "must be an http:// or https:// URL"
    if last == "command":
        return "must be a slash command such as /ops"
    return None


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            annotation = members[0]
        else:
            return annotation


def _keys_at(path: tuple[Any, ...]) -> list[str]:
    """The keys a config table at ``path`` accepts (for "did you mean" hints)."""
    current: Any = Settings
    for part in path:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif get_origin(current) in (dict, list):
            current = get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []

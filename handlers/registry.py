"""The command registry: one ``@command`` decorator, one typed :class:`CommandSpec` each.

The usage line is the single source of truth for a command's shape. ``deploy APP ENV
[rev=REV] [--dry-run]`` declares two required positionals, an optional ``rev=`` option
and a ``--dry-run`` flag; the parser validates input against it, ``help`` prints it, and
the Slack manifest and RBAC read the same spec. Nothing keeps a second list of commands.

``@command`` only attaches the spec to the function. :meth:`Registry.discover` collects
the decorated functions of every module in ``handlers`` into a new registry, so each test
can build a fresh one (or an empty one and add its own handlers).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from handlers.context import Command, Context
    from handlers.reply import Preview, Reply

    Handler = Callable[[Command, Context], Reply]
    PreviewFn = Callable[[Command, Context], Preview]

SPEC_ATTRIBUTE = "__opsbot_command__"

_VERB = re.compile(r"[a-z][a-z0-9-]*")
_KEY = re.compile(r"[a-z][a-z0-9_-]*")
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)")
_POSITIONAL = re.compile(r"@?([A-Za-z][A-Za-z0-9_-]*)(…|\.\.\.)?")
_USAGE_WORD = re.compile(r'(?:[^\s"]+|"[^"]*")+')  # words; a quoted placeholder stays whole


class RegistryError(ValueError):
    """A handler was declared wrongly (a bug in opsbot, caught at import time)."""


@dataclass(frozen=True)
class Param:
    """One parameter of a command, as its usage line declares it."""

    name: str
    kind: Literal["positional", "option", "flag"]
    placeholder: str = ""
    required: bool = False
    variadic: bool = False


@dataclass(frozen=True)
class Signature:
    """The parameters a usage line declares, in order."""

    positionals: tuple[Param, ...] = ()
    options: tuple[Param, ...] = ()
    flags: tuple[Param, ...] = ()
    one_of: tuple[tuple[str, ...], ...] = ()  # required groups: exactly one option of each

    @property
    def names(self) -> tuple[str, ...]:
        """Every parameter name, positionals first."""
        return tuple(p.name for p in (*self.positionals, *self.options, *self.flags))

    @classmethod
    def parse(cls, words: Iterable[str]) -> Signature:
        """Read the parameter part of a usage line (everything after the verb)."""
        positionals: list[Param] = []
        options: list[Param] = []
        flags: list[Param] = []
        groups: list[tuple[str, ...]] = []
        for word in words:
            required = not (word.startswith("[") and word.endswith("]"))
            inner = word if required else word[1:-1]
            if flag := _FLAG.fullmatch(inner):
                if required:
                    raise RegistryError(f"flag {inner} must be optional: write [{inner}]")
                flags.append(Param(flag.group(1), "flag", required=False))
            elif "=" in inner:
                alternatives = inner.split("|")
                if len(alternatives) > 1 and all("=" in a for a in alternatives):
                    params = [_option(a, required=False) for a in alternatives]
                    options.extend(params)
                    if required:
                        groups.append(tuple(p.name for p in params))
                else:
                    options.append(_option(inner, required=required))
            elif match := _POSITIONAL.fullmatch(inner):
                if positionals and positionals[-1].variadic:
                    raise RegistryError(f"{word}: nothing may follow a repeated argument")
                if required and positionals and not positionals[-1].required:
                    raise RegistryError(f"{word}: a required argument follows an optional one")
                name = match.group(1).lower().replace("_", "-")
                positionals.append(
                    Param(name, "positional", inner, required, variadic=bool(match.group(2)))
                )
            else:
                raise RegistryError(f"cannot read {word!r} in a usage line")
        names = [p.name for p in (*positionals, *options, *flags)]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise RegistryError(f"parameter named twice: {', '.join(sorted(duplicates))}")
        return cls(tuple(positionals), tuple(options), tuple(flags), tuple(groups))


def _option(text: str, *, required: bool) -> Param:
    key, _, placeholder = text.partition("=")
    if not _KEY.fullmatch(key):
        raise RegistryError(f"option {key!r} must be lower case letters, digits, - or _")
    return Param(key, "option", placeholder, required)


@dataclass(frozen=True)
class CommandSpec:
    """Everything opsbot knows about one command, declared once by ``@command``."""

    verb: str
    subverb: str | None
    usage: str
    summary: str
    mutating: bool
    env_arg: str | None  # the parameter naming the environment RBAC and approvals read
    handler: Handler
    signature: Signature
    examples: tuple[str, ...] = ()
    preview: PreviewFn | None = None  # what an approval card shows, and its fingerprint
    locks: tuple[str, ...] = ()  # targets it changes, e.g. "app:{app}@{env}" (locked while it runs)

    @property
    def path(self) -> str:
        """``deploy`` or ``env create``: the words that select this command."""
        return f"{self.verb} {self.subverb}" if self.subverb else self.verb

    @property
    def permission(self) -> str:
        """``deploy`` or ``env.create``: the name RBAC patterns use for this command."""
        return f"{self.verb}.{self.subverb}" if self.subverb else self.verb

    def lock_targets(self, command: Command) -> list[str]:
        """The targets ``command`` changes, from the ``locks`` patterns."""
        values = {name: command.value(name) or "" for name in self.signature.names}
        return [pattern.format(**values) for pattern in self.locks]


def command(
    path: str,
    *,
    usage: str,
    summary: str,
    mutating: bool = False,
    env_arg: str | None = None,
    examples: Iterable[str] = (),
    preview: PreviewFn | None = None,
    locks: Iterable[str] = (),
) -> Callable[[Handler], Handler]:
    """Declare a handler: ``@command("deploy", usage="deploy APP ENV", summary=…)``."""

    def declare(handler: Handler) -> Handler:
        spec = build_spec(
            path,
            usage=usage,
            summary=summary,
            mutating=mutating,
            env_arg=env_arg,
            examples=examples,
            handler=handler,
            preview=preview,
            locks=locks,
        )
        setattr(handler, SPEC_ATTRIBUTE, spec)
        return handler

    return declare


def build_spec(
    path: str,
    *,
    usage: str,
    summary: str,
    handler: Handler,
    mutating: bool = False,
    env_arg: str | None = None,
    examples: Iterable[str] = (),
    preview: PreviewFn | None = None,
    locks: Iterable[str] = (),
) -> CommandSpec:
    """Check a declaration and turn it into a :class:`CommandSpec`."""
    words = path.split()
    if not 1 <= len(words) <= 2 or not all(_VERB.fullmatch(w) for w in words):
        raise RegistryError(f"command path {path!r} must be one or two lower-case words")
    usage_words = _USAGE_WORD.findall(usage)
    if usage_words[: len(words)] != words:
        raise RegistryError(f"usage {usage!r} must start with {path!r}")
    signature = Signature.parse(usage_words[len(words) :])
    if env_arg is not None and env_arg not in signature.names:
        raise RegistryError(f"{path}: env_arg {env_arg!r} is not a parameter of {usage!r}")
    if not summary.strip():
        raise RegistryError(f"{path}: a summary is required (help shows it)")
    for pattern in locks:
        fields = {f for _, f, _, _ in string.Formatter().parse(pattern) if f}
        if not fields <= set(signature.names):
            unknown = ", ".join(sorted(fields - set(signature.names)))
            raise RegistryError(f"{path}: lock {pattern!r} names unknown parameters: {unknown}")
    return CommandSpec(
        verb=words[0],
        subverb=words[1] if len(words) == 2 else None,
        usage=" ".join(usage_words),
        summary=summary.strip(),
        mutating=mutating,
        env_arg=env_arg,
        handler=handler,
        signature=signature,
        examples=tuple(examples),
        preview=preview,
        locks=tuple(locks),
    )


class Registry:
    """The set of commands one opsbot process knows, looked up by verb and subverb."""

    def __init__(self, specs: Iterable[CommandSpec] = ()) -> None:
        self._specs: dict[tuple[str, str | None], CommandSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: CommandSpec) -> CommandSpec:
        """Register ``spec``; declaring the same command twice is a bug and raises."""
        key = (spec.verb, spec.subverb)
        if key in self._specs:
            raise RegistryError(f"command {spec.path!r} is declared twice")
        self._specs[key] = spec
        return spec

    def command(
        self,
        path: str,
        *,
        usage: str,
        summary: str,
        mutating: bool = False,
        env_arg: str | None = None,
        preview: PreviewFn | None = None,
        locks: Iterable[str] = (),
    ) -> Callable[[Handler], Handler]:
        """Declare a handler straight into this registry (tests use it)."""

        def declare(handler: Handler) -> Handler:
            handler = command(
                path,
                usage=usage,
                summary=summary,
                mutating=mutating,
                env_arg=env_arg,
                preview=preview,
                locks=locks,
            )(handler)
            self.add(getattr(handler, SPEC_ATTRIBUTE))
            return handler

        return declare

    def find(self, verb: str, subverb: str | None = None) -> CommandSpec | None:
        """The spec for ``verb [subverb]``, or None."""
        return self._specs.get((verb, subverb))

    def verbs(self) -> list[str]:
        """Every known verb, sorted."""
        return sorted({verb for verb, _ in self._specs})

    def subverbs(self, verb: str) -> list[str]:
        """The subverbs of ``verb``, sorted (empty for a verb that takes none)."""
        return sorted(sub for v, sub in self._specs if v == verb and sub is not None)

    def for_verb(self, verb: str) -> list[CommandSpec]:
        """Every spec under ``verb``: the bare form first, then subverbs in order."""
        return [s for s in self if s.verb == verb]

    def __iter__(self) -> Iterator[CommandSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: (s.verb, s.subverb or "")))

    def __len__(self) -> int:
        return len(self._specs)

    @classmethod
    def discover(cls, package: str = "handlers", extra: Iterable[str] = ()) -> Registry:
        """A new registry holding every ``@command`` in the modules of ``package``, and in
        the ``extra`` modules (``[server].handler_modules``)."""
        root = importlib.import_module(package)
        modules: list[ModuleType] = [root]
        for info in pkgutil.iter_modules(root.__path__, prefix=f"{package}."):
            modules.append(importlib.import_module(info.name))
        modules.extend(importlib.import_module(name) for name in extra)
        registry = cls()
        for module in modules:
            for value in vars(module).values():
                spec = getattr(value, SPEC_ATTRIBUTE, None)
                if isinstance(spec, CommandSpec) and getattr(value, "__module__", "") == (
                    module.__name__
                ):
                    registry.add(spec)
        return registry

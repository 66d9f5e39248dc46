"""The command grammar: text → :class:`~handlers.context.Command`, checked against the registry.

``VERB [SUBVERB] POSITIONAL… [key=value…] [--flag…]``. Quotes group words (straight or
the curly ones Slack's clients type); ``key=value`` is an option; ``--flag`` a boolean.
Every malformed input raises :class:`~handlers.errors.UsageError` carrying the usage line
and, for a misspelt verb, subverb, option or flag, the closest known one.
"""

from __future__ import annotations

import difflib
import re
import shlex

from handlers.context import Command
from handlers.errors import UsageError
from handlers.registry import CommandSpec, Registry

MAX_LENGTH = 4000  # Slack truncates slash command text around here; refuse rather than guess
_OPTION = re.compile(r"([a-z][a-z0-9_-]*)=(.*)", re.DOTALL)
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)")
_WORD = re.compile(r"[a-z][a-z0-9-]*")
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})


def tokenize(text: str) -> list[str]:
    """Split ``text`` into words, honouring quotes; unbalanced quotes are a usage error."""
    if len(text) > MAX_LENGTH:
        raise UsageError(f"the command is too long ({len(text)} characters, at most {MAX_LENGTH})")
    try:
        return shlex.split(text.translate(_QUOTES), comments=False, posix=True)
    except ValueError as error:
        if "escaped" in str(error):
            raise UsageError("the command ends with a backslash: remove it or quote it") from None
        raise UsageError("a quote is not closed: check the \" and ' in the command") from None


def suggest(word: str, known: list[str]) -> str | None:
    """The known word closest to ``word``, if any is close enough to be a typo."""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return close[0] if close else None


def parse(text: str, registry: Registry) -> Command:
    """Parse ``text`` against ``registry``; empty text means ``help``."""
    words = tokenize(text)
    if not words:
        words = ["help"]
    spec, rest = _select(words, registry)
    return _bind(spec, rest, text.strip())


def _select(words: list[str], registry: Registry) -> tuple[CommandSpec, list[str]]:
    verb = words[0].lower()
    verbs = registry.verbs()
    if verb not in verbs:
        shown = words[0] if len(words[0]) <= 40 else words[0][:40] + "…"
        message = f"unknown command '{shown}'"
        close = suggest(verb, verbs) if _WORD.fullmatch(verb) else None
        hint = f"did you mean '{close}'?" if close else "type 'help' to see every command"
        raise UsageError(f"{message}; {hint}")
    subverbs = registry.subverbs(verb)
    if subverbs and len(words) > 1 and words[1].lower() in subverbs:
        spec = registry.find(verb, words[1].lower())
        assert spec is not None
        return spec, words[2:]
    bare = registry.find(verb)
    if bare is not None:
        return bare, words[1:]
    usages = "\n".join(s.usage for s in registry.for_verb(verb))
    if len(words) == 1:
        raise UsageError(f"'{verb}' needs a subcommand: {', '.join(subverbs)}", usages)
    given = words[1].lower()
    close = suggest(given, subverbs)
    hint = f"did you mean '{verb} {close}'?" if close else f"choose one of: {', '.join(subverbs)}"
    raise UsageError(f"unknown subcommand '{verb} {_short(words[1])}'; {hint}", usages)


def _bind(spec: CommandSpec, words: list[str], text: str) -> Command:
    signature = spec.signature
    usage = spec.usage
    args: list[str] = []
    options: dict[str, str] = {}
    flags: set[str] = set()
    option_names = [p.name for p in signature.options]
    flag_names = [p.name for p in signature.flags]
    for word in words:
        if word.startswith("--"):
            flag = _FLAG.fullmatch(word.lower())
            name = flag.group(1) if flag else word[2:].split("=")[0].lower()
            if flag and name in flag_names:
                flags.add(name)
                continue
            if name in option_names:
                raise UsageError(f"options are written {name}=VALUE, not --{name}", usage)
            raise UsageError(_unknown("flag", f"--{name}", [f"--{f}" for f in flag_names]), usage)
        option = _OPTION.fullmatch(_lower_key(word))
        if option and option.group(1) in option_names:
            name, value = option.group(1), option.group(2)
            if name in options:
                raise UsageError(f"{name}= is given twice", usage)
            if not value:
                raise UsageError(f"{name}= needs a value", usage)
            options[name] = value
            continue
        if option and not _takes_free_text(spec, args):
            known = [f"{o}=" for o in option_names]
            raise UsageError(_unknown("option", f"{option.group(1)}=", known), usage)
        if not word.strip():
            raise UsageError('an empty argument ("") is not allowed', usage)
        args.append(word)
    _check_arity(spec, args, usage)
    for param in signature.options:
        if param.required and param.name not in options:
            raise UsageError(f"{param.name}={param.placeholder} is required", usage)
    for group in signature.one_of:
        given = [name for name in group if name in options]
        if len(given) != 1:
            choices = " or ".join(f"{name}=" for name in group)
            raise UsageError(f"give exactly one of {choices}", usage)
    return Command(
        verb=spec.verb,
        subverb=spec.subverb,
        args=tuple(args),
        options=options,
        flags=frozenset(flags),
        text=text,
        usage=usage,
        arg_names=tuple(p.name for p in signature.positionals),
    )


def _lower_key(word: str) -> str:
    """``REV=abc`` → ``rev=abc``: option keys are case-insensitive, like verbs and flags."""
    key, sep, value = word.partition("=")
    return f"{key.lower()}{sep}{value}" if sep and key.isascii() else word


def _takes_free_text(spec: CommandSpec, args: list[str]) -> bool:
    """True when an undeclared ``key=value`` is a positional (e.g. a label selector).

    Only commands that declare no options at all read it that way, and only while a
    positional is still open; everywhere else it is a misspelt option.
    """
    positionals = spec.signature.positionals
    open_slot = len(args) < len(positionals) or (bool(positionals) and positionals[-1].variadic)
    return open_slot and not spec.signature.options


def _check_arity(spec: CommandSpec, args: list[str], usage: str) -> None:
    positionals = spec.signature.positionals
    required = [p for p in positionals if p.required]
    if len(args) < len(required):
        missing = " ".join(p.placeholder for p in required[len(args) :])
        raise UsageError(f"missing {missing}", usage)
    variadic = bool(positionals) and positionals[-1].variadic
    if len(args) > len(positionals) and not variadic:
        extra = " ".join(_short(a) for a in args[len(positionals) :])
        raise UsageError(f"unexpected '{extra}'", usage)


def _unknown(kind: str, given: str, known: list[str]) -> str:
    close = suggest(given, known)
    if close:
        return f"unknown {kind} '{_short(given)}'; did you mean '{close}'?"
    if known:
        return f"unknown {kind} '{_short(given)}'; this command takes {', '.join(known)}"
    return f"this command takes no {kind}s, but got '{_short(given)}'"


def _short(word: str) -> str:
    return word if len(word) <= 40 else word[:40] + "…"

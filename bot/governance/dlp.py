"""Data loss prevention: find secrets and personal data in text, and redact them.

One scanner serves three places: command text is redacted before it is stored, logged or
echoed (the DLP pipeline step); every outgoing message passes the same scanner on its way
out (``bot.render``); and messages people post in channels opsbot is in are checked (the
Bolt ``message`` listener), with a private warning that names the kind of data found and
never repeats it.

Detectors are regular expressions, some confirmed by a checksum (Luhn for card numbers,
ISO 7064 mod 97 for IBANs) so that a Git SHA, a UUID, a Slack timestamp or a Kubernetes
resource name is not an alarm.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from handlers.reply import Attachment, Button, Field, Reply, Status

if TYPE_CHECKING:
    from bot.pipeline import Invocation, Next, Step

Category = Literal["secret", "personal"]


@dataclass(frozen=True)
class Finding:
    """Something sensitive at ``text[start:end]``."""

    kind: str
    category: Category
    start: int
    end: int


@dataclass(frozen=True)
class _Detector:
    kind: str
    category: Category
    pattern: re.Pattern[str]
    group: int = 0  # the part to redact (a password's value, not its key)
    confirm: Callable[[str], bool] | None = None


def _luhn(text: str) -> bool:
    digits = [int(c) for c in text if c.isdigit()]
    if len(set(digits)) == 1:
        return False  # 0000 0000 0000 0000 passes Luhn; it is no card
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _iban(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


_KEYS = (
    r"password|passwd|pwd|passphrase|secret|client[_-]?secret|token|access[_-]?token|"
    r"api[_-]?key|apikey|access[_-]?key|private[_-]?key|aws_secret_access_key"
)

DETECTORS: tuple[_Detector, ...] = (
    _Detector(
        "private key",
        "secret",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|(?:\s*[A-Za-z0-9+/=]+)*)"
        ),
    ),
    _Detector("Slack token", "secret", re.compile(r"\bx(?:ox[abposre]|app)-[0-9A-Za-z-]{10,}")),
    _Detector(
        "Slack webhook URL",
        "secret",
        re.compile(r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]{20,}"),
    ),
    _Detector(
        "GitHub token",
        "secret",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
    ),
    _Detector(
        "AWS access key", "secret", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b")
    ),
    _Detector(
        "Vault token",
        "secret",
        re.compile(r"\b(?:hv[sbr]\.[A-Za-z0-9_-]{20,}|s\.[A-Za-z0-9]{24})\b"),
    ),
    _Detector(
        "JSON web token",
        "secret",
        re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}"),
    ),
    _Detector(
        "password or token",
        "secret",
        # DB_PASSWORD=…, token: …; not token_env=…; never a value already redacted
        re.compile(
            rf"(?i)(?<![\w-])(?:[a-z0-9]+[_-])*(?:{_KEYS})[ \t]*[=:][ \t]*[\"']?"
            rf"(?!\[REDACTED )([^\s\"',;&]{{3,}})"
        ),
        group=1,
    ),
    _Detector(
        "bearer token",
        "secret",
        re.compile(r"(?i)\bbearer[ \t]+([A-Za-z0-9._~+/-]{16,}=*)"),
        group=1,
    ),
    _Detector(
        "credentials in a URL",
        "secret",
        re.compile(r"\b[a-z][a-z0-9+.-]*://([^\s/:@<>]+:[^\s/@<>]+)@", re.IGNORECASE),
        group=1,
    ),
    _Detector(
        "e-mail address",
        "personal",
        re.compile(
            r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
        ),
    ),
    _Detector(
        "IBAN",
        "personal",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"),
        confirm=_iban,
    ),
    _Detector(
        "card number",
        "personal",
        re.compile(r"(?<![\d.])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\d.])"),
        confirm=_luhn,
    ),
    _Detector(
        "phone number",
        "personal",
        re.compile(
            r"(?<![\w.+-])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])"
            r"\d{3,4}[ .-]\d{3,4}(?![\w.-])(?![ .-]\d)|(?<![\w+])\+\d{9,15}\b"
        ),
    ),
)


def scan(text: str) -> list[Finding]:
    """Every sensitive span in ``text``, in order, none overlapping (first detector wins)."""
    findings: list[Finding] = []
    taken: list[tuple[int, int]] = []
    for detector in DETECTORS:
        for match in detector.pattern.finditer(text):
            start, end = match.span(detector.group)
            if detector.confirm and not detector.confirm(match.group(detector.group)):
                continue
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            findings.append(Finding(detector.kind, detector.category, start, end))
    return sorted(findings, key=lambda f: f.start)


def redact(text: str, findings: Iterable[Finding] | None = None) -> str:
    """``text`` with each finding replaced by ``[REDACTED kind]``.

    Redacting can join what surrounded a finding into something new that looks like a
    secret (``…1111ghp_…`` becomes ``]ghp_…``), so the result is scanned again.
    """
    found = sorted(scan(text) if findings is None else findings, key=lambda f: f.start)
    for _ in range(3):
        out, position = [], 0
        for finding in found:
            out.append(text[position : finding.start])
            out.append(f"[REDACTED {finding.kind}]")
            position = finding.end
        out.append(text[position:])
        text = "".join(out)
        found = [f for f in scan(text) if f.category == "secret"]
        if not found:
            break
    return text


def kinds(findings: Iterable[Finding]) -> list[str]:
    """The distinct kinds found, in the order first seen (for messages)."""
    seen: list[str] = []
    for finding in findings:
        if finding.kind not in seen:
            seen.append(finding.kind)
    return seen


def describe(findings: Iterable[Finding]) -> str:
    """``a Slack token and an e-mail address``: what was found, never the value."""
    names = kinds(findings)
    articled = [("an " if n[0] in "aeiouAEIOU" else "a ") + n for n in names]
    if len(articled) <= 1:
        return "".join(articled)
    return ", ".join(articled[:-1]) + " and " + articled[-1]


def dlp_step() -> Step:
    """The step that redacts the command text for storage and refuses commands that carry
    a secret (the secret is in Slack already; opsbot will not also keep or run it)."""

    def guard(invocation: Invocation, proceed: Next) -> Reply:
        text = invocation.request.text
        findings = scan(text)
        invocation.redacted_text = redact(text, findings) if findings else text
        secrets = [f for f in findings if f.category == "secret"]
        if not secrets:
            return proceed(invocation)
        invocation.decision = "refused"
        invocation.detail = f"DLP: {', '.join(kinds(secrets))}"
        return Reply(
            text=(
                f":no_entry: Your command contains {describe(secrets)}. opsbot does not take "
                "secrets in commands, so it ran nothing and kept no copy. Treat the secret as "
                "leaked (it was typed into a chat or a terminal) and rotate it."
            ),
            ephemeral=True,
            status=Status.REFUSED,
        )

    return guard


def egress(reply: Reply) -> Reply:
    """``reply`` with everything sensitive redacted: the filter on every outgoing message."""

    def clean(text: str) -> str:
        return redact(text) if text and scan(text) else text

    return Reply(
        text=clean(reply.text),
        title=clean(reply.title) if reply.title else reply.title,
        fields=tuple(Field(clean(f.label), clean(f.value)) for f in reply.fields),
        buttons=tuple(
            Button(
                clean(b.label), clean(b.command), b.style, clean(b.confirm) if b.confirm else None
            )
            for b in reply.buttons
        ),
        footer=clean(reply.footer) if reply.footer else reply.footer,
        ephemeral=reply.ephemeral,
        attachment=(
            Attachment(
                reply.attachment.filename,
                clean(reply.attachment.content),
                clean(reply.attachment.title),
            )
            if reply.attachment
            else None
        ),
        status=reply.status,
    )


class RedactingFormatter(logging.Formatter):
    """A log formatter that redacts secrets and personal data from every line, tracebacks
    included: an exception message quoting a backend's answer must not leak through logs."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return redact(text) if scan(text) else text

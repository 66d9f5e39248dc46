"""Turn a :class:`~handlers.reply.Reply` into Slack Block Kit, or into plain text.

Every message passes the DLP egress filter here, on its way to any front end, so nothing
that looks like a secret or personal data is ever posted. Slack's limits are respected
here and nowhere else: at most 50 blocks, 3000 characters
per section, 10 fields per section, 25 buttons per actions block, 75 characters per
button label, 2000 per button value. Text longer than a message comfortably holds is cut
to a preview and attached in full as a file.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from bot.governance.dlp import egress
from handlers.reply import Attachment, Button, Reply, Status

log = logging.getLogger(__name__)

MAX_BLOCKS = 50
SECTION_CHARS = 3000
FIELD_CHARS = 2000
FIELDS_PER_SECTION = 10
HEADER_CHARS = 150
BUTTONS_PER_BLOCK = 25
MAX_BUTTONS = 4 * BUTTONS_PER_BLOCK  # more is not a choice a person can make anyway
BUTTON_LABEL_CHARS = 75
BUTTON_VALUE_CHARS = 2000
CONTEXT_CHARS = 2000
FALLBACK_CHARS = 3000
#: Beyond this, text goes into a file and the message shows a preview.
INLINE_TEXT_CHARS = 4 * SECTION_CHARS
PREVIEW_CHARS = 2500
ACTION_PREFIX = "opsbot.run"

Block = dict[str, Any]


@dataclass(frozen=True)
class Message:
    """A rendered message: fallback text, Block Kit blocks and an optional file."""

    text: str
    blocks: list[Block] = field(default_factory=list)
    file: Attachment | None = None


def to_blocks(reply: Reply) -> Message:
    """Render ``reply`` as Block Kit within Slack's limits, after the DLP egress filter."""
    reply = egress(reply)
    text, file = reply.text, reply.attachment
    if len(text) > INLINE_TEXT_CHARS and file is None:
        file = Attachment("output.txt", plain(text), reply.title or "Full output")
        text = _preview(text, len(text.splitlines()))
    body: list[Block] = []
    if reply.title:
        body.append(_header(reply.title))
    body.extend(_section(chunk) for chunk in split_text(text))
    for start in range(0, len(reply.fields), FIELDS_PER_SECTION):
        row = reply.fields[start : start + FIELDS_PER_SECTION]
        cells = [_mrkdwn(_clip(f"*{f.label}*\n{f.value}", FIELD_CHARS)) for f in row]
        body.append({"type": "section", "fields": cells})
    actions = _action_blocks(reply.buttons)
    room = MAX_BLOCKS - len(actions) - 1  # one left for the footer
    if len(body) > room:
        # Everything goes into the file, fields and the handler's own attachment included.
        file = Attachment("output.txt", to_text(reply), reply.title or "Full output")
        hidden = len(body) - room + 1
        body = [*body[: room - 1], _section(f"_…{hidden} more blocks in the attached file_")]
    footer = reply.footer
    if file is not None and file is not reply.attachment:
        footer = " · ".join(p for p in (footer, f"full output attached as {file.filename}") if p)
    if footer:
        body.append({"type": "context", "elements": [_mrkdwn(_clip(footer, CONTEXT_CHARS))]})
    return Message(text=fallback_text(reply), blocks=[*body, *actions], file=file)


def _action_blocks(buttons: tuple[Button, ...]) -> list[Block]:
    usable = [b for b in buttons if _fits(b)]
    if len(usable) > MAX_BUTTONS:
        log.warning(
            "dropped %d buttons beyond the %d a message shows",
            len(usable) - MAX_BUTTONS,
            MAX_BUTTONS,
        )
        usable = usable[:MAX_BUTTONS]
    return [
        {
            "type": "actions",
            "elements": [
                _button(b, start + i)
                for i, b in enumerate(usable[start : start + BUTTONS_PER_BLOCK])
            ],
        }
        for start in range(0, len(usable), BUTTONS_PER_BLOCK)
    ]


def fallback_text(reply: Reply) -> str:
    """The notification text Slack shows where blocks cannot be (push, search)."""
    first = reply.title or next((line for line in reply.text.splitlines() if line.strip()), "")
    return _clip(first or "opsbot", FALLBACK_CHARS)


def to_text(reply: Reply) -> str:
    """Render ``reply`` for a terminal (title, text, fields, buttons, footer, file), after
    the DLP egress filter."""
    reply = egress(reply)
    lines: list[str] = []
    if reply.title:
        lines.append(reply.title)
        lines.append("=" * min(len(reply.title), 72))
    if reply.text:
        lines.append(plain(reply.text))
    for f in reply.fields:
        lines.append(f"{f.label}: {plain(f.value)}")
    for b in reply.buttons:
        lines.append(f"[{b.label}] → {b.command}")
    if reply.footer:
        lines.append(plain(reply.footer))
    if reply.attachment:
        lines.append(f"--- {reply.attachment.filename} ---")
        lines.append(reply.attachment.content)
    if reply.status is Status.USAGE and not lines:
        lines.append("usage error")
    return "\n".join(lines)


_SPECIAL = re.compile(r"<([@#!])?([^<>|\n]+)(?:\|([^<>\n]*))?>")
_EMOJI = {
    "warning": "!",
    "x": "✗",
    "boom": "✗",
    "white_check_mark": "✓",
    "lock": "[changes]",
    "hourglass": "…",
    "no_entry": "⛔",
    "rocket": "»",
    "clock3": "⌛",
}


def plain(text: str) -> str:
    """Slack mrkdwn as a terminal shows it: mentions and links spelt out, entities decoded."""

    def special(match: re.Match[str]) -> str:
        sigil, target, label = match.group(1), match.group(2), match.group(3)
        if sigil:
            return f"{sigil if sigil != '!' else '@'}{label or target}"
        return f"{label} ({target})" if label else target

    text = _SPECIAL.sub(special, text)
    text = re.sub(r":([a-z_]+):", lambda m: _EMOJI.get(m.group(1), m.group(0)), text)
    return html.unescape(text)


def split_text(text: str, limit: int = SECTION_CHARS) -> list[str]:
    """Split mrkdwn into chunks of at most ``limit`` characters at line ends.

    A ``` code fence open at a cut is closed and reopened, so each chunk renders alone.
    """
    if not text.strip():
        return []
    fence = "```"
    chunks: list[str] = []
    current = ""
    in_code = False
    budget = limit - 2 * (len(fence) + 1)  # room to close and reopen a fence
    for line in _hard_wrap(text.split("\n"), budget):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > budget and current:
            chunks.append(current + (f"\n{fence}" if in_code else ""))
            current = (f"{fence}\n" if in_code else "") + line
        else:
            current = candidate
        if line.count(fence) % 2 == 1:
            in_code = not in_code
    if current:
        chunks.append(current)
    return [chunk for chunk in chunks if chunk.strip()]


def _hard_wrap(lines: list[str], width: int) -> list[str]:
    out: list[str] = []
    for line in lines:
        while len(line) > width:
            cut = width
            while cut > 0 and line[cut - 1] == "`" and line[cut] == "`":
                cut -= 1  # never split a run of backticks (a code fence) in two
            cut = cut or width
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    return out


def _preview(text: str, line_count: int) -> str:
    head = text[:PREVIEW_CHARS]
    cut = head.rfind("\n")
    head = head[:cut] if cut > 0 else head
    if head.count("```") % 2 == 1:
        head += "\n```"
    return f"{head}\n_…output continues: {line_count} lines in all, see the attached file_"


def _header(title: str) -> Block:
    plain = html.unescape(title)
    return {"type": "header", "text": {"type": "plain_text", "text": _clip(plain, HEADER_CHARS)}}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _fits(button: Button) -> bool:
    if len(button.command) > BUTTON_VALUE_CHARS:
        log.warning("dropped button %r: its command is longer than Slack allows", button.label)
        return False
    return True


def _button(button: Button, index: int) -> Block:
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": _clip(button.label, BUTTON_LABEL_CHARS)},
        "action_id": f"{ACTION_PREFIX}.{index}",
        "value": button.command,
    }
    if button.style:
        element["style"] = button.style
    if button.confirm:
        element["confirm"] = {
            "title": {"type": "plain_text", "text": "Are you sure?"},
            "text": {"type": "mrkdwn", "text": _clip(button.confirm, 300)},
            "confirm": {"type": "plain_text", "text": _clip(button.label, 30)},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
    return element


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""Rendering a Reply: Block Kit within Slack's limits, and plain text for a terminal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.render import (
    ACTION_PREFIX,
    INLINE_TEXT_CHARS,
    Message,
    plain,
    split_text,
    to_blocks,
    to_text,
)
from handlers.reply import Attachment, Button, Field, Reply, Status

# Slack's published Block Kit limits (https://api.slack.com/reference/block-kit/blocks).
SLACK_MAX_BLOCKS = 50
SLACK_SECTION_TEXT = 3000
SLACK_FIELDS_PER_SECTION = 10
SLACK_FIELD_TEXT = 2000
SLACK_HEADER_TEXT = 150
SLACK_ACTIONS_ELEMENTS = 25
SLACK_BUTTON_TEXT = 75
SLACK_BUTTON_VALUE = 2000
SLACK_CONTEXT_TEXT = 2000

FENCE = "```"


def of_type(message: Message, kind: str) -> list[dict[str, Any]]:
    return [b for b in message.blocks if b["type"] == kind]


def text_sections(message: Message) -> list[str]:
    return [b["text"]["text"] for b in of_type(message, "section") if "text" in b]


def field_sections(message: Message) -> list[list[str]]:
    return [[f["text"] for f in b["fields"]] for b in of_type(message, "section") if "fields" in b]


def buttons(message: Message) -> list[dict[str, Any]]:
    return [e for b in of_type(message, "actions") for e in b["elements"]]


def numbered_lines(count: int, width: int = 60) -> str:
    return "\n".join(f"{i:06d} " + "x" * (width - 7) for i in range(count))


# --- header and text -------------------------------------------------------------------


def test_title_becomes_a_plain_text_header() -> None:
    message = to_blocks(Reply(title="Deploy web to prod", text="done"))
    header = message.blocks[0]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Deploy web to prod"},
    }


def test_header_unescapes_entities_because_plain_text_shows_them_literally() -> None:
    message = to_blocks(Reply(title="a &lt; b &amp; c"))
    assert message.blocks[0]["text"]["text"] == "a < b & c"


def test_long_title_is_clipped_to_the_header_limit() -> None:
    title = "t" * 400
    header = to_blocks(Reply(title=title)).blocks[0]
    assert len(header["text"]["text"]) <= SLACK_HEADER_TEXT
    assert header["text"]["text"].startswith("t" * 100)


def test_no_title_means_no_header() -> None:
    assert of_type(to_blocks(Reply(text="hello")), "header") == []


def test_short_text_is_one_mrkdwn_section() -> None:
    message = to_blocks(Reply(text="*done* in 3s"))
    assert message.blocks == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*done* in 3s"}}
    ]
    assert message.file is None


def test_fallback_text_is_the_title_or_first_line() -> None:
    assert to_blocks(Reply(title="T", text="x")).text == "T"
    assert to_blocks(Reply(text="\n\nfirst\nsecond")).text == "first"
    assert to_blocks(Reply()).text


def test_text_is_split_into_sections_within_the_limit() -> None:
    text = numbered_lines(150)  # ~9000 characters, inline
    message = to_blocks(Reply(text=text))
    sections = text_sections(message)
    assert len(sections) > 1
    assert all(len(s) <= SLACK_SECTION_TEXT for s in sections)
    assert "\n".join(sections) == text
    assert message.file is None


def test_long_text_becomes_a_preview_and_an_attachment() -> None:
    text = numbered_lines(INLINE_TEXT_CHARS // 40)
    message = to_blocks(Reply(title="Logs", text=text))
    assert len(text) > INLINE_TEXT_CHARS
    assert message.file is not None
    assert message.file.content == text
    sections = text_sections(message)
    assert len("".join(sections)) < len(text)
    assert sections[0].startswith("000000 ")
    context = of_type(message, "context")
    assert message.file.filename in context[0]["elements"][0]["text"]


def test_attachment_holds_the_unescaped_text() -> None:
    text = "a &lt;b&gt; &amp; c\n" * (INLINE_TEXT_CHARS // 10)
    message = to_blocks(Reply(text=text))
    assert message.file is not None
    assert message.file.content == "a <b> & c\n" * (INLINE_TEXT_CHARS // 10)


def test_preview_of_long_code_closes_its_fence() -> None:
    text = FENCE + "\n" + numbered_lines(INLINE_TEXT_CHARS // 40) + "\n" + FENCE
    message = to_blocks(Reply(text=text))
    assert all(s.count(FENCE) % 2 == 0 for s in text_sections(message))


def test_long_text_keeps_a_handler_attachment() -> None:
    own = Attachment("diff.txt", "the diff")
    message = to_blocks(Reply(text="x\n" * INLINE_TEXT_CHARS, attachment=own))
    assert message.file == own


# --- fields ----------------------------------------------------------------------------


def test_fields_show_bold_label_and_value() -> None:
    message = to_blocks(Reply(fields=(Field("Revision", "`abc123`"),)))
    assert field_sections(message) == [["*Revision*\n`abc123`"]]


def test_fields_are_grouped_at_most_ten_per_section_in_order() -> None:
    fields = tuple(Field(f"L{i}", f"v{i}") for i in range(23))
    groups = field_sections(to_blocks(Reply(fields=fields)))
    assert [len(g) for g in groups] == [10, 10, 3]
    assert all(len(g) <= SLACK_FIELDS_PER_SECTION for g in groups)
    flat = [cell for g in groups for cell in g]
    assert flat == [f"*L{i}*\nv{i}" for i in range(23)]


def test_long_field_is_clipped_to_the_field_limit() -> None:
    (group,) = field_sections(to_blocks(Reply(fields=(Field("Log", "y" * 5000),))))
    assert len(group[0]) <= SLACK_FIELD_TEXT
    assert group[0].startswith("*Log*\nyyy")


# --- buttons ---------------------------------------------------------------------------


def test_button_renders_label_command_and_action_id() -> None:
    message = to_blocks(Reply(text="t", buttons=(Button("Roll back", "rollback web prod"),)))
    (button,) = buttons(message)
    assert button["type"] == "button"
    assert button["text"] == {"type": "plain_text", "text": "Roll back"}
    assert button["value"] == "rollback web prod"
    assert button["action_id"].startswith(ACTION_PREFIX)
    assert "style" not in button
    assert "confirm" not in button


def test_buttons_come_after_the_text() -> None:
    message = to_blocks(Reply(text="t", buttons=(Button("a", "help"),)))
    assert [b["type"] for b in message.blocks] == ["section", "actions"]


def test_action_ids_are_unique_across_actions_blocks() -> None:
    many = tuple(Button(f"b{i}", f"help {i}") for i in range(60))
    message = to_blocks(Reply(buttons=many))
    ids = [b["action_id"] for b in buttons(message)]
    assert len(ids) == 60
    assert len(set(ids)) == 60
    assert all(i.startswith(ACTION_PREFIX) for i in ids)
    assert [b["value"] for b in buttons(message)] == [f"help {i}" for i in range(60)]


def test_buttons_are_grouped_at_most_twenty_five_per_actions_block() -> None:
    many = tuple(Button(f"b{i}", "help") for i in range(60))
    actions = of_type(to_blocks(Reply(buttons=many)), "actions")
    assert [len(a["elements"]) for a in actions] == [25, 25, 10]
    assert all(len(a["elements"]) <= SLACK_ACTIONS_ELEMENTS for a in actions)


def test_long_button_label_is_clipped() -> None:
    (button,) = buttons(to_blocks(Reply(buttons=(Button("L" * 200, "help"),))))
    assert len(button["text"]["text"]) <= SLACK_BUTTON_TEXT
    assert button["text"]["text"].startswith("L" * 50)


def test_button_style_is_rendered() -> None:
    (button,) = buttons(to_blocks(Reply(buttons=(Button("Stop", "chaos stop 1", "danger"),))))
    assert button["style"] == "danger"


def test_button_confirm_is_rendered_as_a_dialog() -> None:
    reply = Reply(buttons=(Button("Destroy", "env destroy pr-1", confirm="Destroy pr-1?"),))
    (button,) = buttons(to_blocks(reply))
    confirm = button["confirm"]
    assert confirm["text"]["text"] == "Destroy pr-1?"
    assert confirm["confirm"]["text"] == "Destroy"
    assert {"title", "text", "confirm", "deny"} <= set(confirm)


def test_button_whose_command_is_too_long_is_dropped() -> None:
    reply = Reply(
        buttons=(
            Button("keep", "help"),
            Button("drop", "x" * (SLACK_BUTTON_VALUE + 1)),
            Button("edge", "y" * SLACK_BUTTON_VALUE),
        )
    )
    assert [b["text"]["text"] for b in buttons(to_blocks(reply))] == ["keep", "edge"]


def test_thousands_of_buttons_still_fit_in_fifty_blocks() -> None:
    many = tuple(Button(f"b{i}", f"help {i}") for i in range(1300))
    message = to_blocks(Reply(text="pick one", buttons=many))
    assert len(message.blocks) <= SLACK_MAX_BLOCKS


# --- footer ----------------------------------------------------------------------------


def test_footer_is_a_context_block() -> None:
    message = to_blocks(Reply(text="t", footer="ref abc"))
    assert message.blocks[-1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "ref abc"}],
    }


def test_long_footer_is_clipped() -> None:
    (context,) = of_type(to_blocks(Reply(footer="f" * 5000)), "context")
    assert len(context["elements"][0]["text"]) <= SLACK_CONTEXT_TEXT


# --- the 50-block limit ----------------------------------------------------------------


def _too_many_fields() -> Reply:
    fields = tuple(Field(f"Label{i}", f"value{i}") for i in range(600))
    return Reply(title="Many", text="summary line", fields=fields, buttons=(Button("a", "help"),))


def test_reply_over_fifty_blocks_is_cut_to_fifty() -> None:
    message = to_blocks(_too_many_fields())
    assert len(message.blocks) <= SLACK_MAX_BLOCKS
    assert message.blocks[-1]["type"] == "actions"  # buttons survive the cut
    assert "attached" in text_sections(message)[-1]
    assert message.file is not None


def test_reply_over_fifty_blocks_attaches_the_full_text() -> None:
    sections = "\n".join(f"{FENCE}\nblock {i}\n{FENCE}" for i in range(80))
    reply = Reply(text=sections, fields=tuple(Field(f"F{i}", "v") for i in range(500)))
    message = to_blocks(reply)
    assert len(message.blocks) <= SLACK_MAX_BLOCKS
    assert message.file is not None
    assert message.file.content.startswith(sections)
    assert "F499: v" in message.file.content


def test_reply_over_fifty_blocks_attaches_what_was_cut() -> None:
    # The notice says the hidden blocks are "in the attached file"; the last fields are
    # among the hidden blocks, so the file must hold them.
    message = to_blocks(_too_many_fields())
    assert message.file is not None
    assert "Label599" in message.file.content
    assert "value599" in message.file.content


# --- split_text ------------------------------------------------------------------------


def test_split_text_of_blank_text_is_empty() -> None:
    assert split_text("") == []
    assert split_text(" \n \n") == []


def test_split_text_cuts_at_line_ends() -> None:
    text = numbered_lines(100)
    chunks = split_text(text, limit=1000)
    assert all(len(c) <= 1000 for c in chunks)
    assert "\n".join(chunks) == text


def test_split_text_wraps_a_line_longer_than_the_limit() -> None:
    chunks = split_text("z" * 10_000)
    assert all(len(c) <= SLACK_SECTION_TEXT for c in chunks)
    assert "".join(chunks) == "z" * 10_000


def test_split_text_closes_and_reopens_a_code_fence_at_a_cut() -> None:
    text = FENCE + "\n" + numbered_lines(100) + "\n" + FENCE
    chunks = split_text(text, limit=1000)
    assert len(chunks) > 2
    assert all(c.count(FENCE) % 2 == 0 for c in chunks)
    assert all(len(c) <= 1000 for c in chunks)
    assert all(c.startswith(FENCE) for c in chunks)


def test_split_text_keeps_fences_balanced_when_a_long_line_is_wrapped() -> None:
    # A line longer than a section is hard-wrapped; the cut must not split a ``` fence.
    text = "x" * 2990 + FENCE + "code\nmore\n" + FENCE
    chunks = split_text(text)
    assert all(c.count(FENCE) % 2 == 0 for c in chunks)


_LINE = st.one_of(
    st.just(FENCE),
    st.just(FENCE + "python"),
    st.text(alphabet="ab `", max_size=80),
    st.integers(0, 400).map(lambda n: "w" * n),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_LINE, max_size=40).map("\n".join), max_size=6), st.integers(60, 3000))
def test_split_text_keeps_balanced_fences_balanced(blocks: list[str], limit: int) -> None:
    # Lines here are shorter than the limit; close every fence the generated text opens.
    text = "\n".join(b + ("\n" + FENCE if b.count(FENCE) % 2 else "") for b in blocks)
    text = "\n".join(line[: limit // 2] for line in text.split("\n"))
    if text.count(FENCE) % 2:
        text += "\n" + FENCE
    for chunk in split_text(text, limit=limit):
        assert len(chunk) <= limit
        assert chunk.count(FENCE) % 2 == 0


# --- to_text and plain -----------------------------------------------------------------


def test_to_text_shows_every_part_of_a_reply() -> None:
    reply = Reply(
        title="Deploy",
        text="*synced* <@U1>",
        fields=(Field("Revision", "`abc`"),),
        buttons=(Button("Roll back", "rollback web prod"),),
        footer="ref r-1",
        attachment=Attachment("log.txt", "line 1\nline 2"),
    )
    lines = to_text(reply).splitlines()
    assert lines[0] == "Deploy"
    assert set(lines[1]) == {"="}
    assert "*synced* @U1" in lines
    assert "Revision: `abc`" in lines
    assert "[Roll back] → rollback web prod" in lines
    assert "ref r-1" in lines
    assert lines[-3:] == ["--- log.txt ---", "line 1", "line 2"]


def test_to_text_of_an_empty_usage_reply_says_so() -> None:
    assert to_text(Reply(status=Status.USAGE)) == "usage error"
    assert to_text(Reply()) == ""


@pytest.mark.parametrize(
    ("mrkdwn", "shown"),
    [
        ("<@U1>", "@U1"),
        ("<@U1|ann>", "@ann"),
        ("<#C1|ops>", "#ops"),
        ("<#C1>", "#C1"),
        ("<!here>", "@here"),
        ("<https://x|label>", "label (https://x)"),
        ("<https://x>", "https://x"),
        (":warning: disk", "! disk"),
        (":white_check_mark: ok", "✓ ok"),
        (":tada:", ":tada:"),
        ("a &lt; b &gt; c &amp; d", "a < b > c & d"),
    ],
)
def test_plain_spells_out_slack_markup(mrkdwn: str, shown: str) -> None:
    assert plain(mrkdwn) == shown


def test_plain_does_not_turn_escaped_text_into_a_mention() -> None:
    assert plain("&lt;@U1&gt;") == "<@U1>"


# --- properties ------------------------------------------------------------------------

_PIECE = st.one_of(
    st.sampled_from([FENCE, FENCE + "json", "", "line", "&lt;x&gt;", "*bold*", "`c`"]),
    st.text(max_size=30),
)
_SEGMENT = st.builds(
    lambda piece, n, sep: sep.join([piece] * n),
    _PIECE,
    st.integers(1, 400),
    st.sampled_from(["\n", "", " "]),
)
_TEXT = st.lists(_SEGMENT, max_size=12).map(lambda parts: "\n".join(parts)[:40_000])
_LONG = st.integers(0, 2600).map(lambda n: "v" * n)
_FIELD = st.builds(Field, st.text(max_size=40), st.one_of(st.text(max_size=60), _LONG))
_BUTTON = st.builds(
    Button,
    st.text(min_size=1, max_size=100),
    st.one_of(st.text(max_size=40), st.integers(1900, 2100).map(lambda n: "c" * n)),
    st.sampled_from([None, "primary", "danger"]),
    st.one_of(st.none(), st.text(min_size=1, max_size=400)),
)
_REPLY = st.builds(
    Reply,
    text=_TEXT,
    title=st.one_of(st.none(), st.text(max_size=200)),
    fields=st.lists(_FIELD, max_size=40).map(tuple),
    buttons=st.lists(_BUTTON, max_size=60).map(tuple),
    footer=st.one_of(st.none(), st.text(max_size=2500)),
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_REPLY)
def test_any_reply_renders_within_slack_limits(reply: Reply) -> None:
    message = to_blocks(reply)
    assert len(message.blocks) <= SLACK_MAX_BLOCKS
    for block in message.blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= SLACK_HEADER_TEXT
        elif block["type"] == "section" and "text" in block:
            assert 0 < len(block["text"]["text"]) <= SLACK_SECTION_TEXT
        elif block["type"] == "section":
            assert 0 < len(block["fields"]) <= SLACK_FIELDS_PER_SECTION
            assert all(len(f["text"]) <= SLACK_FIELD_TEXT for f in block["fields"])
        elif block["type"] == "actions":
            assert 0 < len(block["elements"]) <= SLACK_ACTIONS_ELEMENTS
            for element in block["elements"]:
                assert len(element["text"]["text"]) <= SLACK_BUTTON_TEXT
                assert len(element["value"]) <= SLACK_BUTTON_VALUE
        else:
            assert block["type"] == "context"
    ids = [e["action_id"] for e in buttons(message)]
    assert len(ids) == len(set(ids))
    json.dumps(message.blocks)

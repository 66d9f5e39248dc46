"""DLP: the scanner finds each kind of secret and personal data, redacts it without
eating the words around it, raises no false alarm on the identifiers operators type all
day, and the egress filter keeps anything found out of every outgoing message."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.governance.dlp import Finding, describe, egress, kinds, redact, scan
from bot.render import INLINE_TEXT_CHARS, to_blocks, to_text
from handlers.reply import Attachment, Button, Field, Reply, Status

# --- the values ------------------------------------------------------------------------
# Shaped like the real thing, made up for these tests (none of them was ever issued).

PEM_BODY = (
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDbV5Pr8bT4LqUzBq0L3F9Xq2FQnQ0W1q6B4oP1tq0sQAAAJgTeStKeY0"
)
RSA_BODY = "MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0"


@dataclass(frozen=True)
class Case:
    """``value`` planted in ``before {value} after``; ``kind`` must be found at exactly
    ``value`` (or at ``secret``, the part of it that is redacted)."""

    id: str
    kind: str
    value: str
    secret: str = ""  # the span found, when only part of ``value`` is sensitive
    before: str = "please rotate"
    after: str = "before noon"

    @property
    def span(self) -> str:
        return self.secret or self.value

    @property
    def text(self) -> str:
        return f"{self.before} {self.value} {self.after}"


SECRET_KINDS = {
    "Slack token",
    "Slack webhook URL",
    "GitHub token",
    "AWS access key",
    "Vault token",
    "private key",
    "JSON web token",
    "password or token",
    "credentials in a URL",
}
PERSONAL_KINDS = {"e-mail address", "phone number", "card number", "IBAN"}

CASES = [
    Case("slack-bot", "Slack token", "xoxb-2048613472-5550123456789-Qf8sLzT0cKw3YhVnB4mRjX9e"),
    Case(
        "slack-user",
        "Slack token",
        "xoxp-2048613472-2048613999-5550123456789-9f1c2b7e8d4a6f0b3c5e7d9a1b2c4d6e",
    ),
    Case(
        "slack-app", "Slack token", "xapp-1-A05QX7RSTUV-5550123456789-4d1f0a9c8b7e6d5c4b3a2f1e0d9c"
    ),
    Case(
        "slack-webhook",
        "Slack webhook URL",
        "https://hooks.slack.com/services/T0TESTAAA/B0TESTBBB/Zx9QwErTyUiOpAsDfGhJkL12",
    ),
    Case("github-classic", "GitHub token", "ghp_R8kZpQ2vX7nW4mY1tL9sJ3hF6dC0bA5eGu2i"),
    Case(
        "github-fine-grained",
        "GitHub token",
        "github_pat_11ABCDE2Q0aXyZ7kLmNoPq_Rs8TuVwXyZ1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ0123456789AbC",
    ),
    Case("aws", "AWS access key", "AKIAQ3EGT7XK5NWM2PLR"),
    Case("vault", "Vault token", "hvs.CAESIJlWh2Ad8xVb3x9yL0aMh4vB6eFgHiJkL"),
    Case(
        "pem-openssh",
        "private key",
        f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}\n-----END OPENSSH PRIVATE KEY-----",
        before="my key:\n",
        after="\nthanks",
    ),
    Case(
        "pem-rsa",
        "private key",
        f"-----BEGIN RSA PRIVATE KEY-----\n{RSA_BODY}\n-----END RSA PRIVATE KEY-----",
        before="the old one:",
        after="is gone",
    ),
    Case(
        "jwt",
        "JSON web token",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJVMEFMSUNFIiwiZXhwIjoxNzAwMDAwMDAwfQ."
        "Qm9ndXNTaWduYXR1cmVGb3JUZXN0c09ubHk",
        before="curl -H 'Authorization: Bearer",
        after="' https://api.example.internal",
    ),
    Case(
        "password",
        "password or token",
        "password=Tr0ub4dor-3x",
        secret="Tr0ub4dor-3x",
        before="deploy payments staging with",
    ),
    Case("token", "password or token", "token=9c1f2ab7e4d3", secret="9c1f2ab7e4d3"),
    Case(
        "api-key-colon",
        "password or token",
        "api_key: k3yV4lu3-Zq9",
        secret="k3yV4lu3-Zq9",
        before="config",
        after="loaded",
    ),
    Case(
        "url-credentials",
        "credentials in a URL",
        "https://deploy:Sup3rS3cr3t@git.example.internal/payments.git",
        secret="deploy:Sup3rS3cr3t",
        before="clone",
        after="then build",
    ),
    Case("email", "e-mail address", "alice.smith+ops@example.co.uk", before="ask"),
    Case("phone-uk", "phone number", "+44 20 7946 0958", before="call"),
    Case("phone-us-brackets", "phone number", "(555) 123-4567", before="call"),
    Case("phone-e164", "phone number", "+14155552671", before="call"),
    Case("card-visa", "card number", "4111 1111 1111 1111", before="charged"),
    Case("card-mastercard", "card number", "5555555555554444", before="charged"),
    Case("card-amex", "card number", "378282246310005", before="charged"),
    Case("iban-gb-spaced", "IBAN", "GB82 WEST 1234 5698 7654 32", before="pay to"),
    Case("iban-de", "IBAN", "DE89370400440532013000", before="pay to"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_kind_is_found_at_exactly_its_value(case: Case) -> None:
    findings = scan(case.text)

    assert [(f.kind, case.text[f.start : f.end]) for f in findings] == [(case.kind, case.span)]
    expected_category = "secret" if case.kind in SECRET_KINDS else "personal"
    assert findings[0].category == expected_category


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_redaction_replaces_the_value_and_keeps_the_words_around_it(case: Case) -> None:
    redacted = redact(case.text)

    assert case.span not in redacted
    assert f"[REDACTED {case.kind}]" in redacted
    expected = case.text.replace(case.span, f"[REDACTED {case.kind}]")
    assert redacted == expected
    assert redacted.startswith(case.before)
    assert redacted.endswith(case.after)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_describe_and_kinds_name_the_kind_never_the_value(case: Case) -> None:
    findings = scan(case.text)

    assert kinds(findings) == [case.kind]
    wording = describe(findings)
    assert case.kind in wording
    assert case.span not in wording
    assert case.value not in wording


def test_describe_lists_several_kinds_once_each_with_articles() -> None:
    text = f"{CASES[0].value} and bob@example.com and {CASES[0].value} and AKIAQ3EGT7XK5NWM2PLR"
    findings = scan(text)

    assert kinds(findings) == ["Slack token", "e-mail address", "AWS access key"]
    assert describe(findings) == "a Slack token, an e-mail address and an AWS access key"
    assert describe([]) == ""


def test_the_key_of_a_password_stays_readable_and_quotes_are_kept() -> None:
    assert redact('Password: "s3cr3t-value"') == 'Password: "[REDACTED password or token]"'
    assert redact("passwd = hunter22, user=bob") == (
        "passwd = [REDACTED password or token], user=bob"
    )


@pytest.mark.parametrize(
    "text",
    [
        "export DB_PASSWORD=Tr0ub4dor-3x",
        "GITHUB_TOKEN=Tr0ub4dor-3x make release",
        "env: POSTGRES_PASSWORD: Tr0ub4dor-3x",
    ],
)
def test_a_password_under_an_environment_variable_name_is_found(text: str) -> None:
    # The way secrets are most often pasted: a line of a .env file or a CI log.
    assert [f.kind for f in scan(text)] == ["password or token"]
    assert "Tr0ub4dor-3x" not in redact(text)


def test_an_e_mail_in_a_slack_mailto_link_is_redacted_in_both_places() -> None:
    text = "mail <mailto:bob@example.com|bob@example.com> now"

    assert redact(text) == ("mail <mailto:[REDACTED e-mail address]|[REDACTED e-mail address]> now")


def test_a_private_key_pasted_without_its_end_line_is_redacted_to_the_end() -> None:
    # Slack cuts long messages and people paste half a key: the body is the secret.
    text = f"here:\n-----BEGIN RSA PRIVATE KEY-----\n{RSA_BODY}\n"

    redacted = redact(text)

    assert [f.kind for f in scan(text)] == ["private key"]
    assert RSA_BODY not in redacted
    assert RSA_BODY[:24] not in redacted


# --- near misses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 declined",  # Visa with a wrong Luhn digit
        "card 5555555555554445 declined",  # Mastercard, wrong digit
        "card 378282246310006 declined",  # Amex, wrong digit
        "card 0000 0000 0000 0000 test",  # passes Luhn, is no card
    ],
    ids=["visa", "mastercard", "amex", "all-zero"],
)
def test_a_card_number_with_a_wrong_luhn_digit_is_no_alarm(text: str) -> None:
    assert scan(text) == []
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    ["pay to GB83 WEST 1234 5698 7654 32 today", "pay to DE88370400440532013000 today"],
    ids=["gb-spaced", "de"],
)
def test_an_iban_with_a_wrong_checksum_is_no_alarm(text: str) -> None:
    assert scan(text) == []


@pytest.mark.parametrize(
    "text",
    ["password=", "set password=   ", 'password=""', "token:", "password=\n", "api_key=ab"],
)
def test_a_password_key_with_no_value_is_no_alarm(text: str) -> None:
    assert scan(text) == []


def test_a_password_key_is_found_only_when_a_value_follows() -> None:
    assert [f.kind for f in scan("password=abc")] == ["password or token"]


# --- no false alarms ----------------------------------------------------------------------

EVERYDAY = {
    "git-sha": "deploy payments prod rev=3f786850e387550fdab836ed7e6dc881de23001b",
    "short-sha": "rollback checkout staging to 3f78685",
    "uuid": "request 123e4567-e89b-12d3-a456-426614174000 failed",
    "pod": "logs payments-7d9f8b6c5-x2x9z --tail 100",
    "deployment": "restart deployment/checkout-canary in prod",
    "slack-ts": "thread 1700000000.000100 in C0OPS",
    "slack-ids": "U0ALICE W0BOB C0OPS S0ONCALL T0TEST B0OPS",
    "mentions": "ping <@U0ALICE> in <#C0OPS|ops> and <!subteam^S0ONCALL|@oncall>",
    "iso-times": "since 2026-01-05T09:00:00Z until 2026-01-05T10:30:00.123456+00:00",
    "ipv4-port": "probe 10.0.12.7:8080 and 192.168.100.200:443",
    "semver": "upgrade from 1.2.3 to v10.20.30-rc.1 (chart 2.14.0)",
    "duration": "env create pr-1234 ttl=24h",
    "config-keys": "token_env=ARGOCD_TOKEN secret_env=VAULT_TOKEN api_key_env=PD_KEY",
    "rev-main": "deploy payments staging rev=main",
    "argocd-app": "sync payments-prod and checkout-staging",
    "epoch-ms": "alert fired at 1732543200000",
    "epoch-s": "alert fired at 1732543200",
    "date": "report for 2026-01-05",
}


@pytest.mark.parametrize("text", list(EVERYDAY.values()), ids=list(EVERYDAY))
def test_everyday_identifiers_are_no_alarm(text: str) -> None:
    assert scan(text) == []
    assert redact(text) == text


# --- the egress filter ---------------------------------------------------------------------

PLANTED = "ghp_PlantedSecretValue0123456789abcdefXY"
PLANTED_EMAIL = "carol.planted@example.org"


def _planted_reply(text: str | None = None) -> Reply:
    return Reply(
        text=text if text is not None else f"token {PLANTED} for {PLANTED_EMAIL}",
        title=f"About {PLANTED}",
        fields=(Field(f"label {PLANTED}", f"value {PLANTED_EMAIL}"), Field("plain", "fine")),
        buttons=(
            Button(f"Use {PLANTED}", f"echo {PLANTED}", "danger", f"Really send {PLANTED}?"),
            Button("Status", "status payments"),
        ),
        footer=f"footer {PLANTED_EMAIL}",
        ephemeral=True,
        attachment=Attachment("output.txt", f"line 1\n{PLANTED}\nline 3", f"file {PLANTED}"),
        status=Status.FAILED,
    )


def test_egress_redacts_every_part_of_a_reply() -> None:
    cleaned = egress(_planted_reply())

    assert cleaned.text == "token [REDACTED GitHub token] for [REDACTED e-mail address]"
    assert cleaned.title == "About [REDACTED GitHub token]"
    assert cleaned.fields == (
        Field("label [REDACTED GitHub token]", "value [REDACTED e-mail address]"),
        Field("plain", "fine"),
    )
    danger, status = cleaned.buttons
    assert danger == Button(
        "Use [REDACTED GitHub token]",
        "echo [REDACTED GitHub token]",
        "danger",
        "Really send [REDACTED GitHub token]?",
    )
    assert status == Button("Status", "status payments")
    assert cleaned.footer == "footer [REDACTED e-mail address]"
    assert cleaned.attachment == Attachment(
        "output.txt", "line 1\n[REDACTED GitHub token]\nline 3", "file [REDACTED GitHub token]"
    )
    assert (cleaned.ephemeral, cleaned.status) == (True, Status.FAILED)


def test_egress_leaves_a_clean_reply_as_it_was() -> None:
    reply = Reply(
        text="deployed payments-7d9f8b6c5-x2x9z at 3f786850e387550fdab836ed7e6dc881de23001b",
        title="Deploy",
        fields=(Field("Revision", "`3f78685`"),),
        buttons=(Button("Rollback", "rollback payments prod", "danger", "Sure?"),),
        footer="ref ABCD2345",
    )

    assert egress(reply) == reply


def _no_trace(rendered: str) -> None:
    for value in (PLANTED, PLANTED_EMAIL, PLANTED[4:20]):
        assert value not in rendered


def test_blocks_of_a_reply_with_a_planted_secret_hold_no_trace_of_it() -> None:
    message = to_blocks(_planted_reply())

    _no_trace(json.dumps(message.blocks))
    _no_trace(message.text)
    assert message.file is not None
    _no_trace(json.dumps([message.file.filename, message.file.title, message.file.content]))
    assert "[REDACTED GitHub token]" in json.dumps(message.blocks)


def test_long_output_moved_into_a_file_holds_no_trace_of_the_secret() -> None:
    lines = [f"line {i:05d}" for i in range(INLINE_TEXT_CHARS // 8)]
    lines[5] = f"early {PLANTED}"
    lines[-5] = f"late password=hunter2-{PLANTED_EMAIL}"
    reply = Reply(title="logs", text="\n".join(lines))

    message = to_blocks(reply)

    assert message.file is not None  # the long text went into a file
    _no_trace(json.dumps(message.blocks))
    _no_trace(message.file.content)
    assert "hunter2" not in message.file.content
    _no_trace(to_text(reply))


# --- properties ----------------------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits
_value = st.text(alphabet=ALNUM, min_size=12, max_size=30)

#: Secret-shaped fragments, so that generated text often holds something to find.
SENSITIVE = st.one_of(
    st.builds(lambda v: "ghp_" + (v * 3)[:36], _value),
    st.builds(lambda v: "xoxb-" + v, _value),
    st.builds(lambda v: "AKIA" + (v.upper() * 2)[:16], _value),
    st.builds(lambda v: "hvs." + (v * 2)[:24], _value),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["password", "token", "API_KEY"]), _value),
    st.builds(lambda u, p: f"https://{u}:{p}@git.example.internal/r.git", _value, _value),
    st.builds(lambda u: f"{u}@example.com", _value),
    st.sampled_from([case.value for case in CASES]),
)
#: Fillers include the pieces redaction itself writes, and near misses.
FILLER = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        ["password=", "token:", "[REDACTED", "]", "@", "https://", ":", "+44", "4111", "-----"]
    ),
    st.sampled_from(list(EVERYDAY.values())),
)
TEXTS = st.lists(st.one_of(SENSITIVE, FILLER), max_size=8).flatmap(
    lambda parts: st.sampled_from([" ", "\n", "", ", "]).map(lambda sep: sep.join(parts))
)


def _background(text: str, findings: list[Finding]) -> str:
    """The text with every finding cut out: what redaction leaves in place."""
    out, position = [], 0
    for finding in findings:
        out.append(text[position : finding.start])
        position = finding.end
    out.append(text[position:])
    return "\0".join(out)


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_redacted_text_holds_no_span_that_was_found(text: str) -> None:
    findings = scan(text)
    redacted = redact(text, findings)

    markers = "\0".join(f"[REDACTED {f.kind}]" for f in findings)
    for finding in findings:
        value = text[finding.start : finding.end]
        # A value that also appears outside every finding (or inside a marker) is
        # legitimately still there; anything else must be gone.
        assume(value not in _background(text, findings) and value not in markers)
        assert value not in redacted


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_redacted_text_has_no_secret_left_to_find(text: str) -> None:
    redacted = redact(text)

    assert [f for f in scan(redacted) if f.category == "secret"] == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_redacting_twice_changes_nothing(case: Case) -> None:
    # Redacted text is stored (audit) and shown again (the `audit` command, through the
    # egress filter): it must come out as it went in.
    once = redact(case.text)

    assert redact(once) == once


def test_redaction_that_joins_neighbours_leaves_no_secret_behind() -> None:
    # Found by the property above: glued to the card number, the token has no word
    # boundary and is missed; once the card number becomes "[REDACTED card number]" it
    # has one, and the redacted text (stored, logged, shown again) holds a live token.
    text = "4111 1111 1111 1111ghp_R8kZpQ2vX7nW4mY1tL9sJ3hF6dC0bA5eGu2i"

    redacted = redact(text)

    assert [f for f in scan(redacted) if f.category == "secret"] == []
    assert "R8kZpQ2vX7nW4mY1" not in redacted

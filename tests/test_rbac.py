"""RBAC: patterns, roles, deny by default, refusals that say who can help, the matrix of
every registered command × role × environment, and grants that name nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import config
from bot.clock import ManualClock
from bot.config import check_permissions
from bot.governance.commands import GOVERNANCE_VERBS
from bot.governance.rbac import ALWAYS_ALLOWED, SELF_CHECKED, Pattern, Rbac, unknown_references
from bot.identity import StaticGroups
from bot.pipeline import Request
from bot.runtime import Runtime
from handlers.registry import CommandSpec, Registry
from handlers.reply import Status
from handlers.settings import RbacSettings, RoleSettings, Settings
from tests.conftest import RecordingResponder, loaded_config

# --- Pattern.grants -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "permission", "env", "granted"),
    [
        # the verb wildcard
        ("*:*", "ship", "prod", True),
        ("*:*", "env.create", "staging", True),
        ("*:*", "audit", None, True),
        ("*:staging", "ship", "staging", True),
        ("*:staging", "ship", "prod", False),
        ("*:staging", "audit", None, False),
        # a plain verb, and a verb covering its subverbs
        ("ship:*", "ship", "prod", True),
        ("ship:*", "shipment", "prod", False),
        ("ship:*", "slow", "prod", False),
        ("env:*", "env", "staging", True),
        ("env:*", "env.create", "staging", True),
        ("env:*", "env.delete", "prod", True),
        ("env:staging", "env.create", "prod", False),
        # a VERB.SUBVERB pattern grants that subverb only
        ("env.create:*", "env.create", "staging", True),
        ("env.create:*", "env.delete", "staging", False),
        ("env.create:*", "env", "staging", False),
        ("env.create:staging", "env.create", "prod", False),
        ("chaos.run:staging", "chaos.run", "staging", True),
        # environment globs
        ("ship:prod*", "ship", "prod", True),
        ("ship:prod*", "ship", "prod-eu", True),
        ("ship:prod*", "ship", "staging", False),
        ("ship:staging", "ship", "staging", True),
        ("ship:staging", "ship", "staging-2", False),
        # a command that names no environment needs ":*"
        ("ship:*", "ship", None, True),
        ("audit:*", "audit", None, True),
        ("audit:prod", "audit", None, False),
        ("audit:prod*", "audit", None, False),
        # a pattern without an environment part grants nothing
        ("ship", "ship", "prod", False),
        ("ship", "ship", None, False),
    ],
)
def test_a_pattern_grants_exactly_what_it_names(
    pattern: str, permission: str, env: str | None, granted: bool
) -> None:
    assert Pattern.parse(pattern).grants(permission, env) is granted


def test_a_pattern_parses_into_verb_and_environment() -> None:
    assert Pattern.parse("chaos.run:staging") == Pattern("chaos.run", "staging")
    assert Pattern.parse("*:*") == Pattern("*", "*")


# --- roles, bindings, deny by default ------------------------------------------------


def rbac(
    roles: dict[str, list[str]],
    users: dict[str, list[str]] | None = None,
    groups: dict[str, list[str]] | None = None,
    members: dict[str, list[str]] | None = None,
    admins: list[str] | None = None,
) -> Rbac:
    settings = RbacSettings(
        roles={name: RoleSettings(allow=allow) for name, allow in roles.items()},
        users=users or {},
        groups=groups or {},
        admins=admins or [],
    )
    return Rbac(settings, StaticGroups(members or {}))


def test_roles_come_from_the_user_everyone_and_user_groups() -> None:
    checker = rbac(
        {"viewer": ["locks:*"], "deployer": ["ship:*"], "approver": ["approve:prod"]},
        users={"U0ALICE": ["deployer"], "*": ["viewer"]},
        groups={"S0ONCALL": ["approver"], "S0EMPTY": ["deployer"]},
        members={"S0ONCALL": ["U0BOB", "U0CAROL"], "S0OTHER": ["U0ALICE"]},
    )

    assert checker.roles_of("U0ALICE") == {"deployer", "viewer"}
    assert checker.roles_of("U0BOB") == {"approver", "viewer"}
    assert checker.roles_of("U0DAVE") == {"viewer"}
    assert checker.allows("U0BOB", "approve", "prod")
    assert not checker.allows("U0DAVE", "approve", "prod")
    assert not checker.allows("U0BOB", "ship", "staging")
    assert checker.allows("U0DAVE", "locks", None)


def test_nothing_is_allowed_without_a_role_except_help_and_whoami() -> None:
    checker = rbac(
        {"deployer": ["ship:*"]}, users={"U0ALICE": ["deployer"], "U0GHOST": ["no-such-role"]}
    )

    assert {"help", "whoami"} == ALWAYS_ALLOWED
    assert checker.roles_of("U0NOBODY") == set()
    assert checker.roles_of("U0GHOST") == {"no-such-role"}  # a role that is not defined
    for user in ("U0NOBODY", "U0GHOST"):
        for permission in ("ship", "locks", "audit", "approvals", "approve", "env.create"):
            for env in (None, "staging", "prod"):
                assert not checker.allows(user, permission, env), (user, permission, env)
        for permission in ALWAYS_ALLOWED:
            assert checker.allows(user, permission, None)
            assert checker.allows(user, permission, "prod")


def test_an_empty_rbac_section_denies_everything_but_help_and_whoami() -> None:
    checker = Rbac(RbacSettings(), StaticGroups())

    assert not checker.allows("U0ALICE", "ship", "staging")
    assert not checker.allows("U0ALICE", "locks", None)
    assert checker.allows("U0ALICE", "help", None)
    assert checker.allows("U0ALICE", "whoami", None)


def test_a_refusal_names_the_permission_the_granting_roles_their_holders_and_the_admins() -> None:
    checker = rbac(
        {
            "deployer": ["ship:*"],
            "stager": ["ship:staging"],
            "lonely": ["ship:prod*"],
            "viewer": ["locks:*"],
        },
        users={"U0ALICE": ["deployer"], "U0BOB": ["stager", "deployer"], "*": ["viewer"]},
        groups={"S0DEPLOY": ["deployer"], "S0VIEW": ["viewer"]},
        admins=["U0ADMIN", "U0ROOT"],
    )

    text = checker.refusal("U0CAROL", "ship", "prod")

    assert "`ship:prod`" in text
    assert "*deployer* (held by <@U0ALICE>, <@U0BOB>, <!subteam^S0DEPLOY>)" in text
    assert "*lonely*" in text
    assert "*lonely* (held by" not in text  # a role nobody holds is named, without holders
    assert "stager" not in text  # it does not grant ship in prod
    assert "viewer" not in text
    assert "<@U0ADMIN>, <@U0ROOT>" in text
    assert "<@*>" not in text


def test_a_refusal_without_an_environment_asks_for_the_star_pattern() -> None:
    checker = rbac(
        {"auditor": ["audit:*"], "prod-auditor": ["audit:prod"]},
        users={"U0ALICE": ["auditor"], "U0BOB": ["prod-auditor"]},
    )

    text = checker.refusal("U0BOB", "audit", None)

    assert "`audit:*`" in text
    assert "*auditor* (held by <@U0ALICE>)" in text
    assert "prod-auditor" not in text
    assert "an opsbot admin" in text  # no [rbac].admins configured


def test_a_refusal_says_so_when_no_role_grants_the_permission() -> None:
    checker = rbac({"deployer": ["ship:staging"]}, admins=["U0ADMIN"])

    text = checker.refusal("U0CAROL", "ship", "prod")

    assert "`ship:prod`" in text
    assert "no role grants it" in text
    assert "<@U0ADMIN>" in text
    assert "deployer" not in text


# --- the matrix -----------------------------------------------------------------------

MATRIX_TOML = """
[environments.staging]
cluster = "staging"
[environments.prod]
cluster = "prod"
approvals = 1

[clusters.staging]
context = "staging"
[clusters.prod]
context = "prod"

[rbac]
admins = ["U0ADMIN"]

[rbac.roles.viewer]
allow = ["help:*", "whoami:*", "locks:*", "approvals:*"]
[rbac.roles.deployer]
allow = ["ship:*"]
[rbac.roles.stager]
allow = ["ship:staging"]
[rbac.roles.auditor]
allow = ["audit:*"]
[rbac.roles.approver]
allow = ["approve:prod"]
[rbac.roles.prod-auditor]
allow = ["audit:prod", "locks:staging"]

[rbac.users]
U0VIEWER = ["viewer"]
U0DEPLOYER = ["deployer"]
U0STAGER = ["stager"]
U0AUDITOR = ["auditor"]
U0APPROVER = ["approver"]
U0PRODAUDITOR = ["prod-auditor"]

[rbac.groups]
S0DEPLOY = ["deployer"]

[sandbox.groups]
S0DEPLOY = ["U0GROUPIE"]
"""

#: The user bound to each role (and to nothing else); None: a user with no role at all.
MATRIX_USERS = {
    "viewer": "U0VIEWER",
    "deployer": "U0DEPLOYER",
    "stager": "U0STAGER",
    "auditor": "U0AUDITOR",
    "approver": "U0APPROVER",
    "prod-auditor": "U0PRODAUDITOR",
    None: "U0NOBODY",
}
ENVIRONMENTS = ("staging", "prod")
ANYWHERE = "anywhere"

#: The oracle: what each role may do, written out by hand. ANYWHERE covers every
#: environment and commands that name none; a set names the environments.
GRANTS: dict[str | None, dict[str, str | set[str]]] = {
    "viewer": {"help": ANYWHERE, "whoami": ANYWHERE, "locks": ANYWHERE, "approvals": ANYWHERE},
    "deployer": {"ship": ANYWHERE},
    "stager": {"ship": {"staging"}},
    "auditor": {"audit": ANYWHERE},
    "approver": {"approve": {"prod"}},
    "prod-auditor": {"audit": {"prod"}, "locks": {"staging"}},
    None: {},
}


def expected(role: str | None, permission: str, env: str | None) -> bool:
    """Whether ``role`` may use ``permission`` in ``env``, by the table above."""
    if permission in ("help", "whoami"):
        return True
    table = GRANTS[role]
    where = table.get(permission, table.get(permission.split(".")[0]))
    if where is None:
        return False
    if where == ANYWHERE:
        return True
    assert isinstance(where, set)
    return env in where


def expected_in_help(role: str | None, spec: CommandSpec) -> bool:
    """Whether ``help`` lists the command, i.e. whether the role may run it at all:
    approve/deny need ``approve`` somewhere (the approvals module checks the request's
    environment); a command that names no environment runs with none, so it needs ``:*``;
    one that names an environment needs to be allowed in at least one."""
    if spec.verb in ("approve", "deny"):
        return any(expected(role, "approve", env) for env in (None, *ENVIRONMENTS))
    if spec.env_arg is None:
        return expected(role, spec.permission, None)
    return any(expected(role, spec.permission, env) for env in (None, *ENVIRONMENTS))


def matrix_settings() -> Settings:
    return config.parse(MATRIX_TOML, "opsbot.toml")


@pytest.fixture
def matrix_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """A real runtime on the matrix roles, with the e2e ``ship`` command and governance's own;
    ``ship`` logs each run to ``tmp_path/ship.log``."""
    monkeypatch.setenv("E2E_LOG", str(tmp_path / "ship.log"))
    monkeypatch.delenv("E2E_STATE_FILE", raising=False)
    built = Runtime.build(
        loaded_config(matrix_settings(), tmp_path),
        registry=Registry.discover(extra=["tests.e2e_handlers"]),
        clock=ManualClock(),
        environ={},
    )
    yield built
    built.close()


def test_the_matrix_settings_pass_config_validation() -> None:
    settings = matrix_settings()
    server = settings.server.model_copy(update={"handler_modules": ["tests.e2e_handlers"]})
    assert check_permissions(settings, "opsbot.toml") != []  # without ship, ship:* names nothing
    settings = settings.model_copy(update={"server": server})
    assert check_permissions(settings, "opsbot.toml") == []


def test_rbac_allows_every_command_role_and_environment_as_the_oracle_says(
    matrix_runtime: Runtime,
) -> None:
    specs = list(matrix_runtime.registry)
    verbs = {spec.verb for spec in specs}
    assert GOVERNANCE_VERBS | {"ship", "help", "whoami", "slow", "echo"} <= verbs

    checked = 0
    wrong = []
    for spec in specs:
        for role, user in MATRIX_USERS.items():
            for env in (None, *ENVIRONMENTS):
                want = expected(role, spec.permission, env)
                got = matrix_runtime.rbac.allows(user, spec.permission, env)
                checked += 1
                if got is not want:
                    wrong.append((spec.permission, role, env, f"want {want}, got {got}"))

    assert wrong == []
    assert checked == len(specs) * len(MATRIX_USERS) * 3


def test_help_filters_every_command_for_every_role_as_the_oracle_says(
    matrix_runtime: Runtime,
) -> None:
    permits = matrix_runtime.pipeline._permits
    assert permits is not None
    wrong = [
        (spec.path, role)
        for spec in matrix_runtime.registry
        for role, user in MATRIX_USERS.items()
        if permits(user, spec) is not expected_in_help(role, spec)
    ]
    assert wrong == []


def test_a_user_group_binding_grants_the_role_to_its_members(matrix_runtime: Runtime) -> None:
    assert matrix_runtime.rbac.roles_of("U0GROUPIE") == {"deployer"}
    for env in (None, *ENVIRONMENTS):
        assert matrix_runtime.rbac.allows("U0GROUPIE", "ship", env)
    assert not matrix_runtime.rbac.allows("U0GROUPIE", "audit", None)


def ask(runtime: Runtime, actor: str, text: str) -> tuple[Status, str, RecordingResponder]:
    responder = RecordingResponder()
    reply = runtime.handle(Request(text=text, actor=actor, channel="C0TEST"), responder)
    return reply.status, reply.text, responder


@pytest.mark.parametrize(
    ("actor", "text", "needed", "granted_by"),
    [
        ("U0STAGER", "ship web prod", "ship:prod", ["*deployer* (held by <@U0DEPLOYER>"]),
        (
            "U0VIEWER",
            "ship web staging",
            "ship:staging",
            ["*deployer* (held by <@U0DEPLOYER>, <!subteam^S0DEPLOY>)", "*stager* (held by"],
        ),
        ("U0APPROVER", "ship web prod rev=r9", "ship:prod", ["*deployer*"]),
        ("U0VIEWER", "audit", "audit:*", ["*auditor* (held by <@U0AUDITOR>)"]),
        ("U0AUDITOR", "locks", "locks:*", ["*viewer* (held by <@U0VIEWER>)"]),
        ("U0NOBODY", "approvals", "approvals:*", ["*viewer*"]),
        ("U0DEPLOYER", "echo hello", "echo:*", ["no role grants it"]),
        ("U0NOBODY", "slow", "slow:*", ["no role grants it"]),
    ],
)
def test_a_refused_command_names_the_permission_and_runs_nothing(
    matrix_runtime: Runtime,
    tmp_path: Path,
    actor: str,
    text: str,
    needed: str,
    granted_by: list[str],
) -> None:
    status, answer, responder = ask(matrix_runtime, actor, text)

    assert status is Status.REFUSED
    assert f"`{needed}`" in answer
    for holder in granted_by:
        assert holder in answer
    assert "<@U0ADMIN>" in answer
    assert [event.kind for event in responder.events] == ["post"]  # the refusal, no progress
    assert responder.events[0].reply.ephemeral
    assert not (tmp_path / "ship.log").exists()
    [entry] = matrix_runtime.audit.entries(actor=actor)
    assert (entry["decision"], entry["outcome"]) == ("refused", "refused")
    assert entry["detail"] == f"missing {needed}"


@pytest.mark.parametrize(
    ("actor", "text", "status"),
    [
        ("U0STAGER", "ship web staging", Status.OK),
        ("U0DEPLOYER", "ship web staging", Status.OK),
        ("U0GROUPIE", "ship web staging", Status.OK),
        ("U0DEPLOYER", "ship web prod", Status.PENDING),  # prod needs an approval
        ("U0VIEWER", "locks", Status.OK),
        ("U0VIEWER", "approvals", Status.OK),
        ("U0AUDITOR", "audit", Status.OK),
        ("U0NOBODY", "help", Status.OK),
        ("U0NOBODY", "whoami", Status.OK),
    ],
)
def test_an_allowed_command_passes_rbac(
    matrix_runtime: Runtime, tmp_path: Path, actor: str, text: str, status: Status
) -> None:
    got, answer, _ = ask(matrix_runtime, actor, text)

    assert got is status, answer
    log = tmp_path / "ship.log"
    if text == "ship web staging":
        assert log.read_text().split()[:2] == ["web", "staging"]
    else:
        assert not log.exists()


def test_an_unknown_environment_is_a_usage_error_listing_the_known_ones(
    matrix_runtime: Runtime, tmp_path: Path
) -> None:
    status, answer, _ = ask(matrix_runtime, "U0DEPLOYER", "ship web prd")

    assert status is Status.USAGE
    assert "unknown environment 'prd'" in answer
    assert "staging, prod" in answer
    assert "ship APP ENV" in answer
    assert not (tmp_path / "ship.log").exists()


def test_an_unknown_environment_is_a_usage_error_even_for_someone_without_the_permission(
    matrix_runtime: Runtime,
) -> None:
    status, answer, _ = ask(matrix_runtime, "U0VIEWER", "ship web prd")

    assert status is Status.USAGE
    assert "known: staging, prod" in answer


def help_text(runtime: Runtime, actor: str) -> str:
    status, text, _ = ask(runtime, actor, "help")
    assert status is Status.OK
    return text


def test_help_lists_only_what_the_asker_may_run(matrix_runtime: Runtime) -> None:
    viewer = help_text(matrix_runtime, "U0VIEWER")
    deployer = help_text(matrix_runtime, "U0DEPLOYER")
    stager = help_text(matrix_runtime, "U0STAGER")
    nobody = help_text(matrix_runtime, "U0NOBODY")
    approver = help_text(matrix_runtime, "U0APPROVER")

    assert "`ship " not in viewer
    assert "`locks`" in viewer
    assert "`approvals`" in viewer
    assert "`audit" not in viewer
    assert "`ship APP ENV [rev=REV] [gate=NAME]`" in deployer
    assert "`ship APP ENV" in stager  # allowed in staging at least
    assert "`locks`" not in deployer
    assert "`help [verb]`" in nobody
    assert "`whoami`" in nobody
    assert "`ship" not in nobody
    assert "`locks`" not in nobody
    assert "`echo" not in nobody
    assert "`approve ID`" in approver
    assert "`deny ID" in approver
    assert "`approve ID`" not in deployer


def test_help_does_not_list_a_command_without_an_environment_granted_only_in_one(
    matrix_runtime: Runtime,
) -> None:
    """``audit`` and ``locks`` name no environment, so they run with none and need
    ``audit:*`` / ``locks:*``; a role granting ``audit:prod`` cannot run them, and help
    (and whoami's count) must not offer them."""
    listed = help_text(matrix_runtime, "U0PRODAUDITOR")
    audit_status, _, _ = ask(matrix_runtime, "U0PRODAUDITOR", "audit")
    locks_status, _, _ = ask(matrix_runtime, "U0PRODAUDITOR", "locks")

    assert audit_status is Status.REFUSED
    assert locks_status is Status.REFUSED
    assert "`audit" not in listed
    assert "`locks`" not in listed


def test_help_for_a_verb_the_asker_may_not_run_is_a_usage_error(matrix_runtime: Runtime) -> None:
    status, answer, _ = ask(matrix_runtime, "U0VIEWER", "help ship")

    assert status is Status.USAGE
    assert "no command 'ship' you may run" in answer


def test_approve_is_checked_against_the_environment_of_the_request(
    matrix_runtime: Runtime, tmp_path: Path
) -> None:
    """``approve ID`` names no environment; RBAC leaves it to the approvals module, which
    checks ``approve:ENV`` for the request's environment."""
    assert {"approve", "deny"} == SELF_CHECKED
    asked, _, _ = ask(matrix_runtime, "U0DEPLOYER", "ship web prod")
    assert asked is Status.PENDING
    [pending] = matrix_runtime.approvals.pending()

    refused, answer, _ = ask(matrix_runtime, "U0STAGER", f"approve {pending.id}")
    assert refused is Status.REFUSED
    assert "`approve:prod`" in answer
    assert "*approver* (held by <@U0APPROVER>)" in answer

    approved, answer, _ = ask(matrix_runtime, "U0APPROVER", f"approve {pending.id}")
    assert approved is Status.OK, answer
    matrix_runtime.executor.shutdown(wait=True)  # the approved run happens on a worker
    approval = matrix_runtime.approvals.get(pending.id)
    assert approval is not None
    assert approval.state == "executed"
    assert [line.split()[:2] for line in (tmp_path / "ship.log").read_text().splitlines()] == [
        ["web", "prod"]
    ]


# --- grants that name nothing ----------------------------------------------------------


def settings_with_grants(*allow: str) -> Settings:
    return matrix_settings().model_copy(
        update={"rbac": RbacSettings(roles={"r": RoleSettings(allow=list(allow))})}
    )


def e2e_registry() -> Registry:
    return Registry.discover(extra=["tests.e2e_handlers"])


def test_unknown_references_reports_an_unknown_verb() -> None:
    problems = unknown_references(
        settings_with_grants("ship:*", "shpi:*"), e2e_registry(), GOVERNANCE_VERBS
    )

    assert problems == [("rbac.roles.r.allow[1]", "'shpi:*': no command 'shpi'")]


def test_unknown_references_reports_an_environment_pattern_that_matches_nothing() -> None:
    problems = unknown_references(
        settings_with_grants("ship:prd", "ship:qa*", "ship:staging"),
        e2e_registry(),
        GOVERNANCE_VERBS,
    )

    assert problems == [
        ("rbac.roles.r.allow[0]", "'ship:prd': no environment matches 'prd'"),
        ("rbac.roles.r.allow[1]", "'ship:qa*': no environment matches 'qa*'"),
    ]


def test_unknown_references_reports_an_unknown_subverb() -> None:
    problems = unknown_references(settings_with_grants("ship.now:*"), e2e_registry())

    assert [key for key, _ in problems] == ["rbac.roles.r.allow[0]"]
    assert "ship.now" in problems[0][1]


@pytest.mark.parametrize(
    "grant",
    ["*:*", "ship:prod*", "ship:*", "sh*:staging", "*:prod", "approve:prod", "audit:*", "locks:*"],
)
def test_unknown_references_accepts_wildcards_and_verbs_that_match(grant: str) -> None:
    assert unknown_references(settings_with_grants(grant), e2e_registry(), GOVERNANCE_VERBS) == []


def test_a_grant_for_a_governance_verb_needs_the_governance_verbs() -> None:
    problems = unknown_references(settings_with_grants("audit:*"), Registry.discover())

    assert problems == [("rbac.roles.r.allow[0]", "'audit:*': no command 'audit'")]


def test_config_check_reports_unknown_references_with_the_file_and_key() -> None:
    settings = settings_with_grants("deplo:prod", "help:prd")

    problems = [str(p) for p in check_permissions(settings, "opsbot.toml")]

    assert problems == [
        "opsbot.toml: rbac.roles.r.allow[0]: 'deplo:prod': no command 'deplo'",
        "opsbot.toml: rbac.roles.r.allow[1]: 'help:prd': no environment matches 'prd'",
    ]

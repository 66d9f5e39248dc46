"""Config: opsbot.toml → typed settings; every problem reported with its key path."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from bot import config
from bot.config import ConfigError, Problem
from tests.conftest import SHARED, run_opsbot

VALID = """
[slack]
command = "/ops"
approvals_channel = "C0APPROVALS"

[environments.staging]
cluster = "staging"
[environments.prod]
cluster = "prod"
approvals = 2
approval_ttl = "30m"

[clusters.staging]
context = "staging"
[clusters.prod]
in_cluster = true

[rbac.roles.operator]
allow = ["locks:*", "audit:*", "approve:prod"]
[rbac.users]
U0ALICE = ["operator"]
"""


def problems_in(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        config.parse(text, "opsbot.toml")
    return caught.value.problems


def lines_of(text: str) -> list[str]:
    return [str(p) for p in problems_in(text)]


def test_a_valid_file_becomes_frozen_typed_settings() -> None:
    settings = config.parse(VALID, "opsbot.toml")
    prod = settings.environments["prod"]
    assert prod.approvals == 2
    assert prod.approval_ttl == timedelta(minutes=30)
    assert settings.environments["staging"].approval_ttl == timedelta(hours=1)  # the default
    assert settings.clusters["prod"].in_cluster
    assert settings.slack.approvals_channel == "C0APPROVALS"
    with pytest.raises(ValueError, match="frozen"):
        prod.approvals = 0  # type: ignore[misc]


def test_the_design_example_config_is_valid(tmp_path: Path) -> None:
    design = SHARED / "DESIGN.md"
    if not design.exists():
        pytest.skip(f"{design} is absent on this machine; CI always has it")
    example = re.search(r"```toml\n(.*?)```", design.read_text(), re.DOTALL)
    assert example, "DESIGN.md §5 holds a ```toml example"
    settings = config.parse(example.group(1), "DESIGN.md")
    design_file = tmp_path / "design.toml"
    design_file.write_text(example.group(1))
    problems = config.check(design_file, environ={})
    assert [p.severity for p in problems] == ["warning", "warning"]  # only the unset tokens
    assert settings.environments["prod"].approvals == 1
    assert settings.apps["payments"].argocd_app == "payments-{env}"
    assert settings.rbac.groups["S0ONCALL"] == ["approver"]


def test_an_unknown_key_is_reported_with_its_path_and_a_suggestion() -> None:
    text = VALID.replace('command = "/ops"', 'comand = "/ops"').replace(
        "approvals = 2", "aprovals = 2"
    )
    assert lines_of(text) == [
        "opsbot.toml: slack.comand: unknown key; did you mean 'command'?",
        "opsbot.toml: environments.prod.aprovals: unknown key; did you mean 'approvals'?",
    ]


def test_an_unknown_section_lists_the_known_ones_when_nothing_is_close() -> None:
    (line,) = lines_of(VALID + "\n[zzz]\nx = 1\n")
    assert line.startswith("opsbot.toml: zzz: unknown key; known keys: slack, store")


def test_every_problem_is_reported_at_once() -> None:
    text = (
        VALID.replace("approvals = 2", "approvals = -1")
        .replace('approval_ttl = "30m"', 'approval_ttl = "soon"')
        .replace(
            'cluster = "staging"\n[environments.prod]', 'cluster = "stagin"\n[environments.prod]'
        )
    )
    lines = lines_of(text)
    keys = [line.split(": ")[1] for line in lines]
    assert "environments.prod.approvals" in keys
    assert "environments.prod.approval_ttl" in keys
    assert any("'soon' is not a duration" in line for line in lines)


def test_a_reference_to_an_unknown_cluster_suggests_the_closest() -> None:
    text = VALID.replace(
        '[environments.staging]\ncluster = "staging"', '[environments.staging]\ncluster = "stagng"'
    )
    assert lines_of(text) == [
        "opsbot.toml: environments.staging.cluster: unknown cluster 'stagng'; "
        "did you mean 'staging'?"
    ]


@pytest.mark.parametrize(
    ("snippet", "key", "message"),
    [
        ('[slack]\napprovals_channel = "#approvals"', "slack.approvals_channel", "channel ID"),
        ('[slack]\ncommand = "ops"', "slack.command", "slash command"),
        ('[argocd]\nurl = "argocd.internal"', "argocd.url", "http:// or https://"),
        ("[clusters.x]\n", "clusters.x", "either context"),
        ('[clusters.x]\ncontext = "a"\nin_cluster = true', "clusters.x", "either context"),
        (
            '[environments.Prod]\ncluster = "x"\n[clusters.x]\nin_cluster = true',
            "environments.Prod",
            "DNS labels",
        ),
        (
            '[apps.web]\nargocd_app = "{name}-{env}"\n[argocd]\nurl = "https://a"',
            "apps.web",
            "{app} and {env}",
        ),
        ("[apps.web]\n", "apps", "add an [argocd] section"),
        ('[rbac.roles.x]\nallow = ["deploy"]', "rbac.roles.x.allow[0]", "VERB:ENV"),
        ("[rbac.users]\nalice = []", "rbac.users.alice", "use the ID"),
        ('[rbac.users]\nU0ALICE = ["admin"]', "rbac.users.U0ALICE", "unknown role 'admin'"),
        ('[vault]\nurl = "https://v"\nauth = "kubernetes"', "vault", "needs role"),
        ('[vault]\nurl = "https://v"\nauth = "ldap"', "vault.auth", "'token'"),
        ("[environments.x]\napprovals = 1", "environments.x.cluster", "required key is missing"),
        ("[server]\nworkers = 0", "server.workers", "greater than or equal to 1"),
        (
            '[environments.x]\ncluster = "c"\napproval_ttl = 3600\n[clusters.c]\nin_cluster = true',
            "environments.x.approval_ttl",
            "with a unit",
        ),
    ],
)
def test_bad_values_are_reported_at_their_key(snippet: str, key: str, message: str) -> None:
    problems = problems_in(snippet)
    assert [p.key for p in problems] == [key], problems
    assert message in problems[0].message


def test_a_secret_pasted_into_an_env_key_is_refused_without_being_echoed() -> None:
    secret = "xoxb-1234567890-abcdefghijklmnop"
    (problem,) = problems_in(f'[argocd]\nurl = "https://argocd"\ntoken_env = "{secret}"')
    assert problem.key == "argocd.token_env"
    assert "environment variable" in problem.message
    assert secret not in str(problem)


def test_toml_syntax_errors_name_the_line() -> None:
    (problem,) = problems_in("[slack]\ncommand = \n")
    assert str(problem).startswith("opsbot.toml: not valid TOML:")
    assert "line 2" in problem.message


def test_a_missing_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path / "nope.toml")
    assert "cannot read: No such file or directory" in str(caught.value)


def test_unset_secret_variables_are_warnings(tmp_path: Path) -> None:
    path = tmp_path / "opsbot.toml"
    path.write_text('[argocd]\nurl = "https://argocd"\n')
    (warning,) = config.check(path, environ={})
    assert warning.severity == "warning"
    assert str(warning) == (
        f"{path}: argocd.token_env: warning: environment variable ARGOCD_TOKEN is not set; "
        "Argo CD commands will fail until it is"
    )
    assert config.check(path, environ={"ARGOCD_TOKEN": "t"}) == []


def test_the_config_file_is_found_by_flag_then_variable_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert config.locate(None, {}) is None
    (tmp_path / "opsbot.toml").write_text("")
    assert config.locate(None, {}) == Path("opsbot.toml")
    assert config.locate(None, {"OPSBOT_CONFIG": "/etc/o.toml"}) == Path("/etc/o.toml")
    assert config.locate("x.toml", {"OPSBOT_CONFIG": "/etc/o.toml"}) == Path("x.toml")


def test_the_store_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "opsbot.toml"
    path.parent.mkdir()
    path.write_text('[store]\npath = "state/bot.db"\n')
    assert config.load(path).store_path == tmp_path / "conf" / "state" / "bot.db"


def test_the_demo_settings_are_valid_and_need_no_file() -> None:
    demo = config.demo()
    assert demo.demo
    assert demo.settings.environments["prod"].approvals == 1
    assert not demo.base_dir.exists()  # created only when the store opens


def test_config_check_prints_each_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "opsbot.toml"
    path.write_text('[slack]\ncomand = "/ops"\n[server]\nworkers = "many"\n')
    result = run_opsbot("config", "check", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}: slack.comand: unknown key; did you mean 'command'?",
        f"{path}: server.workers: Input should be a valid integer, unable to parse string "
        "as an integer",
    ]
    assert "Traceback" not in result.stderr


def test_config_check_exits_0_on_a_clean_file(tmp_path: Path) -> None:
    path = tmp_path / "opsbot.toml"
    path.write_text(VALID)
    result = run_opsbot("config", "check", cwd=tmp_path, env={"OPSBOT_CONFIG": str(path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{path}: ok"


def test_config_check_without_any_file_says_where_it_looked(tmp_path: Path) -> None:
    result = run_opsbot("config", "check", cwd=tmp_path)
    assert result.returncode == 1
    assert "no config file" in result.stderr


def test_serve_refuses_a_bad_config_with_the_same_messages(tmp_path: Path) -> None:
    path = tmp_path / "opsbot.toml"
    path.write_text('[slack]\ncomand = "/ops"\n')
    result = run_opsbot("serve", "--config", str(path), "--port", "0", cwd=tmp_path)
    assert result.returncode == 1
    assert f"{path}: slack.comand: unknown key; did you mean 'command'?" in result.stderr
    assert "ready" not in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("grant", "message"),
    [
        ("deploi:*", "no command 'deploi'"),
        ("audit:prd", "no environment matches 'prd'"),
        ("approve:qa-*", "no environment matches 'qa-*'"),
    ],
)
def test_a_grant_naming_an_unknown_verb_or_environment_is_a_config_error(
    tmp_path: Path, grant: str, message: str
) -> None:
    path = tmp_path / "opsbot.toml"
    path.write_text(VALID.replace('"approve:prod"]', f'"approve:prod", "{grant}"]'))
    problems = config.check(path, environ={})
    assert [(p.key, p.severity) for p in problems] == [("rbac.roles.operator.allow[3]", "error")]
    assert message in problems[0].message


def test_wildcard_grants_that_match_something_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "opsbot.toml"
    path.write_text(VALID.replace('"approve:prod"]', '"approve:pro*", "*:*", "a*:staging"]'))
    assert config.check(path, environ={}) == []

"""engine.policy with the shipped policies/*.rego: every rule denies what it should, with the message it
should, and lets through what it should; loading refuses what does not parse; a policy that fails never
allows.

``CASES`` is also what ``conformance/opa_cases.py --policy-cases tests/unit/test_policy.py`` runs through
each candidate Rego evaluator (decision 0012).
"""

from __future__ import annotations

import ast
import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.config import PolicyConfig
from engine.errors import DecisionError, ModelError
from engine.policy import ENV_OPA_URL, Denial, PolicyEngine, Secret, opa_url

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"

# Shapes of secrets, written in pieces so that no scanner takes this file for a leak.
GITHUB = "ghp_" + "A1b2C3d4" * 5
GITHUB_PAT = "github_" + "pat_" + "11ABCDEFG0" * 3
GITHUB_APP = "ghs_" + "Z9y8X7w6" * 5
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
PRIVATE_KEY = "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEpAIBAAKCAQEAexample\n-----END RSA " + "PRIVATE KEY-----"
SLACK = "xoxb-" + "123456789012-abcdefghijkl"
PASSWORD = "hunter2" + "hunter2"


def task(**fields: Any) -> dict[str, Any]:
    """A normalised task.v1, every field present, plus ``fields``."""
    base: dict[str, Any] = {"id": "t1", "tool": "noop", "repo": ".", "args": {}, "files": [], "prompt": None,
                            "flags": [], "timeout_sec": 600, "retry": {"max_retries": 0, "backoff_sec": 0},
                            "tags": [], "metadata": {}}
    base.update(fields)
    return base


def doc(phase: str = "task", **parts: Any) -> dict[str, Any]:
    """A policy input: a clean task and a plugin that changes nothing unless ``parts`` say otherwise."""
    out: dict[str, Any] = {"phase": phase, "task": task(),
                           "plugin": {"id": "file-reader", "category": "acquisition", "whatif": True}}
    out.update(parts)
    return out


STATE = {"id": "git-commit", "category": "state_change", "whatif": True}


@dataclass
class Case:
    name: str
    input: dict[str, Any]
    deny: list[str] = field(default_factory=list)  # "security: <message>" / "compliance: <message>"
    secrets: list[tuple[str, str, str]] | None = None  # (path, rule, value), when the case checks them
    data: dict[str, Any] = field(default_factory=dict)  # data.engine.config


CASES = [
    # -- secrets in the task -------------------------------------------------------------------------
    Case("a plain task passes", doc(task=task(prompt="Fix the failing test in src/app.py", args={"n": 3},
                                             files=["src/app.py"], tags=["bugfix"], metadata={"owner": "ann"})),
         secrets=[]),
    Case("github token in the prompt", doc(task=task(prompt=f"use {GITHUB} to push")),
         ["security: task.prompt holds a GitHub token (rule github_token)"],
         secrets=[("task.prompt", "github_token", GITHUB)]),
    Case("fine-grained github token in args", doc(task=task(args={"auth": {"token": GITHUB_PAT}})),
         ["security: task.args.auth.token holds a GitHub token (rule github_token)"],
         secrets=[("task.args.auth.token", "github_token", GITHUB_PAT)]),
    Case("github app token in metadata under an odd key", doc(task=task(metadata={"ci creds": GITHUB_APP})),
         ['security: task.metadata["ci creds"] holds a GitHub token (rule github_token)']),
    Case("a word starting with ghp_ but too short passes", doc(task=task(prompt="see ghp_notatoken"))),
    Case("aws access key id in args", doc(task=task(args={"key": AWS_ID})),
         ["security: task.args.key holds an AWS access key id (rule aws_access_key_id)"],
         secrets=[("task.args.key", "aws_access_key_id", AWS_ID)]),
    Case("aws secret access key assignment in metadata",
         doc(task=task(metadata={"note": f"aws_secret_access_key = {AWS_SECRET}"})),
         ["security: task.metadata.note holds an AWS secret access key (rule aws_secret_access_key)"],
         secrets=[("task.metadata.note", "aws_secret_access_key", AWS_SECRET)]),
    Case("private key block in the prompt", doc(task=task(prompt=f"deploy with\n{PRIVATE_KEY}\nthanks")),
         ["security: task.prompt holds a private key block (rule private_key)"],
         secrets=[("task.prompt", "private_key", PRIVATE_KEY)]),
    Case("a public key passes", doc(task=task(prompt="-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n"))),
    Case("slack token in flags", doc(task=task(flags=["--notify", SLACK])),
         ["security: task.flags[1] holds a Slack token (rule slack_token)"],
         secrets=[("task.flags[1]", "slack_token", SLACK)]),
    Case("slack token in tags", doc(task=task(tags=[SLACK])),
         ["security: task.tags[0] holds a Slack token (rule slack_token)"]),
    Case("password assignment in args", doc(task=task(args={"cmd": f"deploy --user ann password={PASSWORD}"})),
         ["security: task.args.cmd holds a password or token assignment (rule credential_assignment)"],
         secrets=[("task.args.cmd", "credential_assignment", PASSWORD)]),
    Case("token assignment holding a github token is reported once, as the token",
         doc(task=task(prompt=f"token={GITHUB}")),
         ["security: task.prompt holds a GitHub token (rule github_token)"]),
    Case("a password that is a reference or short passes",
         doc(task=task(args={"a": "password=$DB_PASSWORD", "b": "password=${{ secrets.DB }}", "c": "token=abc"}))),
    Case("a secret in a task field named env", doc(task=task(env={"API": GITHUB})),
         ["security: task.env.API holds a GitHub token (rule github_token)"]),
    Case("a secret in a file name", doc(task=task(files=[f"notes/{AWS_ID}.txt"])),
         ["security: task.files[0] holds an AWS access key id (rule aws_access_key_id)"]),
    # -- the environment given to the plugin --------------------------------------------------------
    Case("plain environment names pass", doc(env=["HOME", "PATH", "LANG", "PASSWORD_HINT"])),
    Case("a forbidden variable", doc(env=["HOME", "GITHUB_TOKEN"]),
         ["security: the environment given to the plugin passes GITHUB_TOKEN, a forbidden variable "
          "(rule forbidden_env)"]),
    Case("a variable named like a secret", doc(env=["DB_PASSWORD", "APP_SECRET_KEY"]),
         ["security: the environment given to the plugin passes APP_SECRET_KEY, a variable named like a secret "
          "(rule forbidden_env)",
          "security: the environment given to the plugin passes DB_PASSWORD, a variable named like a secret "
          "(rule forbidden_env)"]),
    Case("environment values are searched for secrets", doc(env={"HOME": "/home/ann", "CI_AUTH": GITHUB}),
         ["security: env.CI_AUTH holds a GitHub token (rule github_token)"],
         secrets=[("env.CI_AUTH", "github_token", GITHUB)]),
    Case("the list of forbidden variables comes from data.engine.config", doc(env=["GITHUB_TOKEN", "MY_VAR"]),
         ["security: the environment given to the plugin passes MY_VAR, a forbidden variable (rule forbidden_env)"],
         data={"forbidden_env": ["MY_VAR"]}),
    # -- the diff -----------------------------------------------------------------------------------
    Case("a clean diff passes", doc(phase="apply", plugin=STATE, checkpoint="abc123",
                                    diff="--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n")),
    Case("a diff adding a token", doc(phase="apply", plugin=STATE, checkpoint="abc123",
                                      diff=f"--- a/.env\n+++ b/.env\n@@ -0,0 +1 @@\n+GH={GITHUB}\n"),
         ["security: the diff (line 4) holds a GitHub token (rule github_token)"],
         secrets=[("diff", "github_token", GITHUB)]),
    Case("a diff removing a key passes", doc(phase="apply", plugin=STATE, checkpoint="abc123",
                                             diff=f"--- a/k\n+++ b/k\n@@ -1 +0,0 @@\n-{AWS_ID}\n")),
    # -- forbidden paths ----------------------------------------------------------------------------
    Case("ordinary paths pass", doc(task=task(files=["src/git_tools.py", ".github/workflows/ci.yml",
                                                     "docs/etc/notes.md", "a/.gitignore", "certs/README"]))),
    Case("a path inside .git", doc(task=task(files=["src/a.py", ".git/config"])),
         ["security: task.files[1] names '.git/config', inside a .git/ folder (rule forbidden_path)"]),
    Case("a path inside a nested .git", doc(task=task(files=["vendor/lib/.git/hooks/pre-commit"])),
         ["security: task.files[0] names 'vendor/lib/.git/hooks/pre-commit', inside a .git/ folder "
          "(rule forbidden_path)"]),
    Case("a path inside .ssh", doc(task=task(files=["home/ann/.ssh/id_ed25519"])),
         ["security: task.files[0] names 'home/ann/.ssh/id_ed25519', inside a .ssh/ folder (rule forbidden_path)"]),
    Case("a path under /etc", doc(task=task(files=["/etc/passwd"])),
         ["security: task.files[0] names '/etc/passwd', under /etc/ (rule forbidden_path)"]),
    Case("a .pem key file", doc(task=task(files=["deploy/server.PEM"])),
         ["security: task.files[0] names 'deploy/server.PEM', a .pem key file (rule forbidden_path)"]),
    Case("a windows path inside .git", doc(task=task(files=["repo\\.git\\config"])),
         ["security: task.files[0] names 'repo\\.git\\config', inside a .git/ folder (rule forbidden_path)"]),
    # -- forbidden environments ---------------------------------------------------------------------
    Case("a development environment passes", doc(task=task(metadata={"environment": "dev"}))),
    Case("production is forbidden", doc(task=task(metadata={"environment": "Production"})),
         ["security: task.metadata.environment is 'Production', a forbidden environment; tag the task "
          "'allow-production' to allow it (rule forbidden_environment)"]),
    Case("production tagged allow-production passes",
         doc(task=task(metadata={"environment": "production"}, tags=["allow-production"]))),
    Case("the forbidden environments come from data.engine.config",
         doc(task=task(metadata={"environment": "staging"})),
         ["security: task.metadata.environment is 'staging', a forbidden environment; tag the task "
          "'allow-staging' to allow it (rule forbidden_environment)"],
         data={"forbidden_environments": ["staging"]}),
    Case("production passes when the configured list leaves it out",
         doc(task=task(metadata={"environment": "production"})), data={"forbidden_environments": ["staging"]}),
    # -- compliance: checkpoints --------------------------------------------------------------------
    Case("a state change with a checkpoint passes at apply", doc(phase="apply", plugin=STATE, checkpoint="abc123")),
    Case("a state change without a checkpoint is denied at apply", doc(phase="apply", plugin=STATE),
         ["compliance: plugin git-commit changes state, and no checkpoint was made before it applies "
          "(rule checkpoint_required)"]),
    Case("a null checkpoint is no checkpoint", doc(phase="apply", plugin=STATE, checkpoint=None),
         ["compliance: plugin git-commit changes state, and no checkpoint was made before it applies "
          "(rule checkpoint_required)"]),
    Case("before the checkpoint step (phase task) a state change passes", doc(phase="task", plugin=STATE)),
    Case("a plugin that changes nothing needs no checkpoint", doc(phase="apply")),
    # -- compliance: WhatIf -------------------------------------------------------------------------
    Case("a state change without WhatIf is denied",
         doc(plugin={"id": "deployer", "category": "state_change", "whatif": False}),
         ["compliance: plugin deployer changes state but does not support WhatIf (rule whatif_required)"]),
    Case("a state change that does not say whether it supports WhatIf is denied",
         doc(plugin={"id": "deployer", "category": "state_change"}),
         ["compliance: plugin deployer changes state but does not support WhatIf (rule whatif_required)"]),
    Case("a validation plugin without WhatIf passes",
         doc(plugin={"id": "ruff-checker", "category": "validation", "whatif": False})),
    # -- compliance: the ledger ---------------------------------------------------------------------
    Case("a ledger that verifies passes", doc(phase="run_start", ledger={"verified": True, "reason": None})),
    Case("a ledger that does not verify stops the run",
         doc(phase="run_start", ledger={"verified": False, "reason": "entry 7 was edited"}),
         ["compliance: the ledger does not verify: entry 7 was edited (rule ledger_verified)"]),
    Case("a ledger that does not verify, without a reason",
         doc(phase="run_start", ledger={"verified": False}),
         ["compliance: the ledger does not verify: no reason given (rule ledger_verified)"]),
    # -- several at once ----------------------------------------------------------------------------
    Case("every denial is reported, security first",
         doc(phase="apply", plugin={"id": "deployer", "category": "state_change", "whatif": False},
             task=task(prompt=GITHUB, files=[".git/HEAD"])),
         ["security: task.files[0] names '.git/HEAD', inside a .git/ folder (rule forbidden_path)",
          "security: task.prompt holds a GitHub token (rule github_token)",
          "compliance: plugin deployer changes state, and no checkpoint was made before it applies "
          "(rule checkpoint_required)",
          "compliance: plugin deployer changes state but does not support WhatIf (rule whatif_required)"]),
]
SECRET_VALUES = [GITHUB, GITHUB_PAT, GITHUB_APP, AWS_ID, AWS_SECRET, PRIVATE_KEY, SLACK, PASSWORD]


def engine_for(data: dict[str, Any]) -> PolicyEngine:
    key = json.dumps(data, sort_keys=True)
    if key not in _ENGINES:
        _ENGINES[key] = PolicyEngine.load(POLICIES, data=data)
    return _ENGINES[key]


_ENGINES: dict[str, PolicyEngine] = {}


def labels(result: Any) -> list[str]:
    return [f"{d.policy}: {d.message}" for d in result.denials]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_rule_denies_with_its_message_and_passes_what_it_should(case):
    result = engine_for(case.data).check(copy.deepcopy(case.input))
    security = sorted(m for m in case.deny if m.startswith("security: "))
    compliance = sorted(m for m in case.deny if m.startswith("compliance: "))
    assert sorted(labels(result)[:len(security)]) == security
    assert sorted(labels(result)[len(security):]) == compliance
    assert result.allowed == (not case.deny)
    if case.secrets is not None:
        assert [(s.path, s.rule, s.value) for s in result.secrets] == sorted(case.secrets)


@pytest.mark.parametrize("case", [c for c in CASES if c.deny], ids=[c.name for c in CASES if c.deny])
def test_a_message_names_its_rule_and_never_holds_the_secret(case):
    result = engine_for(case.data).check(copy.deepcopy(case.input))
    for denial in result.denials:
        assert denial.message.endswith(f"(rule {denial.rule})")
        assert not any(value in denial.message for value in SECRET_VALUES)
    rendered = json.dumps(result.as_dict()) + repr(result)
    assert not any(value in rendered for value in SECRET_VALUES)


def test_a_denial_carries_policy_rule_and_message():
    result = engine_for({}).check(doc(task=task(prompt=GITHUB)))
    message = "task.prompt holds a GitHub token (rule github_token)"
    assert result.denials == (Denial("security", "github_token", message),)
    assert result.as_dict()["denials"] == [{"policy": "security", "rule": "github_token", "message": message}]
    assert result.secrets == (Secret("task.prompt", "github_token", GITHUB),)
    assert result.as_dict()["secrets"] == [{"path": "task.prompt", "rule": "github_token"}]
    assert GITHUB not in repr(result.secrets[0])


def test_the_input_may_hold_paths_and_tuples():
    result = engine_for({}).check(doc(task=task(files=(Path(".git/config"),))))
    assert [d.rule for d in result.denials] == ["forbidden_path"]


def test_an_input_that_is_not_json_data_is_a_decision_error():
    with pytest.raises(DecisionError, match="not JSON data"):
        engine_for({}).check({"task": object()})


# -- loading ------------------------------------------------------------------------------------------

def copy_policies(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for path in POLICIES.glob("*.rego"):
        (dest / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return dest


def test_load_reads_every_rego_file_and_the_performance_policy(tmp_path):
    folder = copy_policies(tmp_path / "policies")
    (folder / "performance.yml").write_text("timeouts:\n  transformation: 7\n")
    engine = PolicyEngine.load(folder)
    assert [p.name for p in engine.files] == ["compliance.rego", "security.rego"]
    assert engine.performance.bound("transformation") == 7
    assert engine.evaluator == "embedded"


def test_an_extra_policy_file_adds_denials(tmp_path):
    folder = copy_policies(tmp_path / "policies")
    (folder / "team.rego").write_text('package engine.security\n\n'
                                      'deny contains "no Friday deploys (rule friday)" if {\n'
                                      '\tinput.task.tags[_] == "friday"\n}\n')
    result = PolicyEngine.load(folder).check(doc(task=task(tags=["friday"])))
    assert [(d.policy, d.rule) for d in result.denials] == [("security", "friday")]


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    folder = copy_policies(tmp_path / "policies")
    (folder / "broken.rego").write_text("package engine.extra\n\np if {\n\tx := \n}\n")
    with pytest.raises(ModelError) as caught:
        PolicyEngine.load(folder)
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == (str(folder / "broken.rego"), 4)
    assert str(folder / "broken.rego") + ":4:" in "\n".join(caught.value.lines())


def test_every_file_with_a_syntax_error_is_reported(tmp_path):
    folder = copy_policies(tmp_path / "policies")
    (folder / "a.rego").write_text("package engine.a\n\np if {\n")
    (folder / "b.rego").write_text("package engine.b\n\nq := [1,\n")
    with pytest.raises(ModelError) as caught:
        PolicyEngine.load(folder)
    assert sorted(Path(p.file).name for p in caught.value.problems) == ["a.rego", "b.rego"]


def test_a_compile_error_is_found_at_load_not_at_the_first_task(tmp_path):
    folder = copy_policies(tmp_path / "policies")
    (folder / "unsafe.rego").write_text("package engine.security\n\ndeny contains msg if {\n\tmsg := y\n}\n")
    with pytest.raises(ModelError) as caught:
        PolicyEngine.load(folder)
    [problem] = caught.value.problems
    assert (Path(problem.file).name, problem.line) == ("unsafe.rego", 4)
    assert "unsafe" in problem.message


def test_both_policies_must_be_there(tmp_path):
    folder = copy_policies(tmp_path / "policies")
    (folder / "compliance.rego").unlink()
    with pytest.raises(ModelError) as caught:
        PolicyEngine.load(folder)
    assert "package engine.compliance" in caught.value.problems[0].message


def test_a_folder_without_policies_says_how_to_get_them(tmp_path):
    with pytest.raises(ModelError, match="engine init"):
        PolicyEngine.load(tmp_path)


def test_a_policy_that_fails_while_evaluating_never_allows(tmp_path):
    folder = copy_policies(tmp_path / "policies")
    (folder / "count.rego").write_text('package engine.compliance\n\ndeny contains "too many (rule n)" if {\n'
                                       "\tcount(input.n) > 1\n}\n")
    engine = PolicyEngine.load(folder)
    assert engine.check({"n": [1]}).allowed
    with pytest.raises(DecisionError, match="could not be evaluated"):
        engine.check({"n": 5})


def test_a_deny_message_may_be_an_object_as_in_conftest(tmp_path):
    folder = copy_policies(tmp_path / "policies")
    (folder / "obj.rego").write_text('package engine.compliance\n\ndeny contains {"msg": "no", "rule": "nope"} if '
                                     "input.nope\n")
    result = PolicyEngine.load(folder).check({"nope": True})
    assert result.denials == (Denial("compliance", "nope", "no"),)


# -- settings -----------------------------------------------------------------------------------------

def test_the_environment_variable_picks_the_opa_server_over_engine_toml():
    settings = PolicyConfig(opa_url="http://opa.example:8181")
    assert opa_url(settings, {}) == "http://opa.example:8181"
    assert opa_url(settings, {ENV_OPA_URL: "http://other:8181"}) == "http://other:8181"
    assert opa_url(settings, {ENV_OPA_URL: ""}) is None
    assert opa_url(PolicyConfig(), {}) is None


def test_from_settings_passes_the_forbidden_environments_to_the_policy():
    engine = PolicyEngine.from_settings(POLICIES, PolicyConfig(forbidden_environments=["qa"]), environ={})
    assert engine.check(doc(task=task(metadata={"environment": "production"}))).allowed
    assert [d.rule for d in engine.check(doc(task=task(metadata={"environment": "QA"}))).denials] == \
        ["forbidden_environment"]


def test_only_engine_policy_imports_the_rego_engine_and_the_opa_client():
    importers = set()
    for path in (ROOT / "engine").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] in ("regorus", "opa_client") for n in names):
                importers.add(path.relative_to(ROOT).as_posix())
    assert importers == {"engine/policy.py"}

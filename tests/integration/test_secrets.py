"""Secrets in a task never reach the ledger, the logs, the run records or the reports."""

import json

import pytest

from tests.conftest import engine
from tests.integration.test_run import ledger_entries, put
from tests.unit.test_redact import AWS_ID, AWS_SECRET, GITHUB


def written(ws):
    """Every file the engine wrote in the workspace (the task files as the user wrote them excluded)."""
    for path in [*(ws / ".engine").rglob("*"), *(ws / ".tasks").rglob("*")]:
        if path.is_file() and not path.name.endswith(".jsonl") or path.is_file() and ".engine" in path.parts:
            yield path


def test_a_task_carrying_secrets_is_denied_before_any_plugin_and_none_of_them_is_written(example_ws):
    prompt = f"deploy with token {GITHUB} and key {AWS_ID} / aws_secret_access_key={AWS_SECRET}"
    put(example_ws, "100-secret.jsonl", {"id": "s1", "tool": "normalize", "repo": "example-repo", "prompt": prompt,
                                         "metadata": {"token": GITHUB, "aws": AWS_ID}})
    proc = engine("run", "--drain", cwd=example_ws, check=1)
    report = json.loads((example_ws / ".tasks" / "failed" / "100-secret.jsonl.error.json").read_text())
    assert "denied by policy" in report["reason"] and "security.github_token" in report["reason"]
    assert "aws" in report["reason"]
    steps = [e["record"] for e in ledger_entries(example_ws) if e["record"].get("task_id") == "s1"
             and e["record"]["kind"] == "step"]
    assert [s["step"] for s in steps] == ["policy"] and not any("plugin" in s for s in steps)
    files = list(written(example_ws))
    assert any(p.name == "ledger.jsonl" for p in files) and any(p.name.endswith(".error.json") for p in files)
    for path in files:
        text = path.read_text(errors="replace")
        for secret in (GITHUB, AWS_ID, AWS_SECRET):
            assert secret not in text, f"{secret[:6]}... found in {path}"
    for secret in (GITHUB, AWS_ID, AWS_SECRET):
        assert secret not in proc.stdout + proc.stderr
    assert GITHUB in (example_ws / ".tasks" / "failed" / "100-secret.jsonl").read_text()  # the user's file, kept
    engine("ledger", "verify", cwd=example_ws, check=0)


@pytest.mark.no_replay  # a plugin output holds a secret, stored redacted: it cannot be fed back
def test_a_token_shaped_value_the_policy_lets_through_is_still_never_written(example_ws):
    key = "sk-proj-" + "Q" * 40
    put(example_ws, "100-key.jsonl", {"id": "k1", "tool": "normalize", "repo": "example-repo",
                                      "prompt": f"use {key} for the model"})
    engine("run", "--drain", cwd=example_ws, check=0)
    for path in written(example_ws):
        assert key not in path.read_text(errors="replace"), path
    outputs = [json.loads(x) for p in (example_ws / ".engine" / "runs").glob("*/outputs.jsonl")
               for x in p.read_text().splitlines()]
    normalized = [o["output"]["task"] for o in outputs if o["task_id"] == "k1" and o["plugin"] == "task-parser"][0]
    assert normalized["prompt"] == "use [REDACTED:openai_key] for the model"


def test_a_token_in_the_operators_environment_is_not_given_to_plugins_so_it_denies_nothing(example_ws):
    """Workers get PATH and the variables their spec names: GITHUB_TOKEN in the shell that runs the
    engine reaches no plugin, and the policy on the environment given to plugins lets the tasks run."""
    env = {"GITHUB_TOKEN": "ghp_" + "a" * 36}
    engine("run", "--drain", cwd=example_ws, env=env, check=0)
    assert sorted(p.name for p in (example_ws / ".tasks" / "done").glob("*.jsonl")) == [
        "001-inspect.jsonl", "002-normalize.jsonl"]


def test_a_plugin_whose_spec_asks_for_a_forbidden_variable_is_denied_when_the_engine_has_it(example_ws):
    """The same variable is refused when a plugin would get it: its spec names it under env."""
    import json

    from tests.conftest import install_test_plugin

    install_test_plugin(example_ws, "echo")
    spec_path = example_ws / "plugins" / "echo" / "plugin.spec.json"
    spec = json.loads(spec_path.read_text())
    spec["env"] = ["GITHUB_TOKEN"]
    spec_path.write_text(json.dumps(spec))
    for path in (example_ws / ".tasks" / "inbox").iterdir():
        path.unlink()
    (example_ws / ".tasks" / "inbox" / "t.jsonl").write_text(json.dumps(
        {"id": "e1", "tool": "echo", "repo": "example-repo"}) + "\n")
    engine("run", "--drain", cwd=example_ws, env={"GITHUB_TOKEN": "ghp_" + "b" * 36}, check=1)
    report = json.loads((example_ws / ".tasks" / "failed" / "t.jsonl.error.json").read_text())
    assert ("the environment given to the plugin passes GITHUB_TOKEN, a forbidden variable (rule forbidden_env)"
            in report["reason"])
    assert "ghp_" not in (example_ws / ".engine" / "ledger" / "ledger.jsonl").read_text()

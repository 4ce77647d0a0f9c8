"""Secrets in a task never reach the ledger, the logs, the run records or the reports."""

import json

from tests.conftest import engine
from tests.integration.test_run import put
from tests.unit.test_redact import AWS_ID, AWS_SECRET, GITHUB


def written(ws):
    """Every file the engine wrote in the workspace (the task files as the user wrote them excluded)."""
    for path in [*(ws / ".engine").rglob("*"), *(ws / ".tasks").rglob("*")]:
        if path.is_file() and not path.name.endswith(".jsonl") or path.is_file() and ".engine" in path.parts:
            yield path


def test_a_task_carrying_secrets_leaves_none_of_them_in_what_the_engine_writes(example_ws):
    prompt = f"deploy with token {GITHUB} and key {AWS_ID} / aws_secret_access_key={AWS_SECRET}"
    put(example_ws, "100-secret.jsonl", {"id": "s1", "tool": "normalize", "repo": "example-repo", "prompt": prompt,
                                         "metadata": {"token": GITHUB, "aws": AWS_ID}})
    put(example_ws, "101-secret-fail.jsonl", {"id": "s2", "tool": "no-such-tool", "repo": "example-repo",
                                              "prompt": prompt})
    proc = engine("run", "--drain", cwd=example_ws, check=1)
    files = list(written(example_ws))
    assert any(p.name == "ledger.jsonl" for p in files) and any(p.name.endswith(".result.json") for p in files)
    for path in files:
        text = path.read_text(errors="replace")
        for secret in (GITHUB, AWS_ID, AWS_SECRET):
            assert secret not in text, f"{secret[:6]}... found in {path}"
    for secret in (GITHUB, AWS_ID, AWS_SECRET):
        assert secret not in proc.stdout + proc.stderr
    outputs = [json.loads(x) for p in (example_ws / ".engine" / "runs").glob("*/outputs.jsonl")
               for x in p.read_text().splitlines()]
    normalized = [o["output"]["task"] for o in outputs if o["task_id"] == "s1" and o["plugin"] == "task-parser"][0]
    assert "[REDACTED:github_token]" in normalized["prompt"] and normalized["metadata"]["token"] == \
        "[REDACTED:github_token]"
    assert GITHUB in (example_ws / ".tasks" / "done" / "100-secret.jsonl").read_text()  # the task file is the user's
    engine("ledger", "verify", cwd=example_ws, check=0)

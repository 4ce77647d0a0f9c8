import json
from pathlib import Path

import pytest

from engine.contracts import CONTRACTS, Task, problems, schema
from engine.errors import ContractViolation

DATA = Path(__file__).parent.parent / "data" / "contracts" / "task"
VALID = sorted((DATA / "valid").glob("*.json"))
INVALID = sorted((DATA / "invalid").glob("*.json"))


@pytest.mark.parametrize("name", CONTRACTS)
def test_every_contract_is_a_valid_2020_12_schema(name):
    import jsonschema

    body = schema(name)
    assert body["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(body)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_golden_valid_tasks_pass(path):
    data = json.loads(path.read_text())
    assert problems("task.v1", data) == []
    task = Task.from_json(data)
    assert task.id == data["id"]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_golden_invalid_tasks_list_every_problem_with_its_path(path):
    golden = json.loads(path.read_text())
    found = problems("task.v1", golden["case"])
    assert sorted({p.path for p in found}) == golden["paths"]
    with pytest.raises(ContractViolation) as caught:
        Task.from_json(golden["case"], file="inbox/x.jsonl", line=3)
    assert len(caught.value.problems) == len(found)
    assert all(p.file == "inbox/x.jsonl" and p.line == 3 for p in caught.value.problems)


def test_task_defaults_are_filled_in():
    task = Task.from_json({"id": "t1", "tool": "git"})
    data = task.as_data()
    assert data["repo"] == "."
    assert data["retry"] == {"max_retries": 0, "backoff_sec": 0}
    assert data["tags"] == [] and data["files"] == [] and data["prompt"] is None
    assert data["timeout_sec"] == 600


def test_problem_names_the_unexpected_field():
    found = problems("task.v1", {"id": "t1", "tool": "git", "colour": "red"})
    assert len(found) == 1
    assert "colour" in found[0].message and found[0].path == "$"


def test_manifest_is_checked_against_its_definition():
    good = {"id": "git-inspector", "version": "1.0.0", "entry_point": "src/x.py"}
    assert problems("plugin.v1#/$defs/manifest", good) == []
    bad = {"id": "Git Inspector", "version": "one", "entry_point": "x.sh"}
    assert {p.path for p in problems("plugin.v1#/$defs/manifest", bad)} == {"$.entry_point", "$.id", "$.version"}


def test_ledger_records_of_decisions_and_gateways_are_checked_field_by_field():
    sha = "a" * 64
    decision = {"id": "select_plugin", "result": "git-inspector", "matched_rules": ["select_plugin_git"],
                "hit_policy": "UNIQUE", "model": sha, "inputs": {"Tool": "git", "Operation": None},
                "context": {"task.retry.max_retries": 2},
                "rules": [{"id": "select_plugin_git", "row": 2, "annotation": None,
                           "outputs": {"plugin": "git-inspector"}}]}
    step = {"kind": "step", "status": "completed", "step": "Task_select_plugin", "decision": decision}
    gateway = {"kind": "step", "status": "completed", "step": "Gateway_valid", "flows": ["Flow_a", "Flow_b"]}
    assert problems("ledger.v1#/properties/record", step) == []
    assert problems("ledger.v1#/properties/record", gateway) == []
    old = {**step, "decision": {"id": "d", "result": 1, "matched_rules": ["r"]}}  # written before rows were
    assert problems("ledger.v1#/properties/record", old) == []
    bad_rules = [{"id": "r", "row": 0, "annotation": None, "outputs": {}}, {"id": "r", "row": 1, "outputs": {}},
                 {"id": "r", "row": 1, "annotation": None, "outputs": {}, "colour": "red"}]
    bad = {**step, "flows": ["Flow_a", 3], "decision": {**decision, "model": "abc", "hit_policy": 1,
                                                         "rules": bad_rules}}
    assert {p.path for p in problems("ledger.v1#/properties/record", bad)} == {
        "$.flows[1]", "$.decision.model", "$.decision.hit_policy", "$.decision.rules[0].row",
        "$.decision.rules[1]", "$.decision.rules[2]"}

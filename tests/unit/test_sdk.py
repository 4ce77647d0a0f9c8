"""The plugin surface is small on purpose: adding to it is a decision, so this test locks it."""

from dataclasses import fields

from engine import sdk


def test_exported_members():
    assert sorted(sdk.__all__) == ["Context", "PluginError", "task_problems"]


def test_context_fields():
    assert [f.name for f in fields(sdk.Context)] == ["run_id", "task_id", "now", "seed", "whatif", "workdir", "log"]


def test_task_problems_names_each_path():
    assert sdk.task_problems({"id": "t1", "tool": "git"}) == []
    assert sdk.task_problems({"id": "t 1"}) == ["$: 'tool' is a required property",
                                               "$.id: 't 1' does not match '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'"]

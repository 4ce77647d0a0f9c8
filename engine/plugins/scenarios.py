"""Behaviour scenarios for plugins (conformance level L2): the engine's Gherkin steps, a pytest plugin.

A plugin's scenarios are ``.feature`` files in ``conformance/features/``; ``engine conformance`` runs
them with pytest-bdd, through these steps (and the plugin's own, from ``conformance/features/steps.py``
if it has one), each call made as ``engine.testing.PluginRunner`` makes it: in a real worker, with a fixed
clock and seed, in a fresh workdir. A plugin author's own pytest suite gets the same steps with
``pytest_plugins = ["engine.plugins.scenarios"]`` and a ``plugin_folder`` fixture naming the plugin.

Steps (``<...>`` is a double-quoted string; a step ending in ``:`` takes the doc string below it)::

    Given the input:                                     the operation's data (doc string: JSON)
    Given the task args:                                 data {"task": {"id": <task id>, "args": JSON}}
    Given a repository with the file <path> containing:  one per file (doc string: its text); the
                                                         workdir becomes a fixture repository of them
    Given an empty repository
    Given WhatIf mode                                    ctx.whatif true
    Given the task id <id>
    When the plugin is called                            its default operation
    When the operation <name> is called
    Then it answers:                                     the output, exactly (doc string: JSON;
                                                         ``${workdir}`` stands for the workdir)
    Then the output at <path> is JSON                    path like ``words`` or ``plan.steps[0].kind``
    Then the output has <key>
    Then it fails with code <code>
    Then it fails with a message containing <text>
    Then the ledger record's status is <status>          ``completed`` or ``error``
    Then the file <path> contains <text>
    Then the file <path> does not exist
    Then the repository is unchanged                     git status shows nothing (WhatIf changes nothing)
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when

from engine.testing import Call, PluginRunner

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass
class PluginScenario:
    """What a scenario's steps have said so far, and the call once made."""

    folder: Path
    runner: PluginRunner
    data: dict[str, Any] = field(default_factory=dict)
    repo: dict[str, str] | None = None
    whatif: bool = False
    task_id: str = "scenario"
    result: Call | None = None

    @property
    def call(self) -> Call:
        assert self.result is not None, "no `When the plugin is called` (or `When the operation ... is called`) " \
                                        "step before this one"
        return self.result


@pytest.fixture(scope="module")
def plugin_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginRunner]:
    """One runner (its workers stay warm) for a module's scenarios."""
    with PluginRunner(tmp_path_factory.mktemp("scenarios")) as runner:
        yield runner


@pytest.fixture
def plugin_scenario(plugin_folder: Path, plugin_runner: PluginRunner) -> PluginScenario:
    return PluginScenario(Path(plugin_folder), plugin_runner)


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise AssertionError(f"{what} is not JSON ({e}): {text!r}") from e


@given("the input:")
def _input(plugin_scenario: PluginScenario, docstring: str) -> None:
    data = _json(docstring, "the input")
    assert isinstance(data, dict), "the input must be a JSON object"
    plugin_scenario.data = data


@given("the task args:")
def _task_args(plugin_scenario: PluginScenario, docstring: str) -> None:
    args = _json(docstring, "the task args")
    plugin_scenario.data = {"task": {"id": plugin_scenario.task_id, "args": args}}


@given(parsers.parse('a repository with the file "{path}" containing:'))
def _repo_file(plugin_scenario: PluginScenario, path: str, docstring: str) -> None:
    plugin_scenario.repo = {**(plugin_scenario.repo or {}), path: docstring + "\n"}


@given("an empty repository")
def _empty_repo(plugin_scenario: PluginScenario) -> None:
    plugin_scenario.repo = {}


@given("WhatIf mode")
def _whatif(plugin_scenario: PluginScenario) -> None:
    plugin_scenario.whatif = True


@given(parsers.parse('the task id "{task_id}"'))
def _task_id(plugin_scenario: PluginScenario, task_id: str) -> None:
    plugin_scenario.task_id = task_id


def _call(scenario: PluginScenario, operation: str | None) -> None:
    scenario.result = scenario.runner.call(scenario.folder, operation, scenario.data, repo=scenario.repo,
                                           whatif=scenario.whatif, task_id=scenario.task_id, run_id="scenario")


@when("the plugin is called")
def _called(plugin_scenario: PluginScenario) -> None:
    _call(plugin_scenario, None)


@when(parsers.parse('the operation "{operation}" is called'))
def _operation_called(plugin_scenario: PluginScenario, operation: str) -> None:
    _call(plugin_scenario, operation)


def _answered(scenario: PluginScenario) -> dict[str, Any]:
    call = scenario.call
    if call.error is not None:
        raise AssertionError(f"{call.plugin}.{call.operation} failed: {'; '.join(call.error.lines())}")
    assert call.output is not None
    return call.output


def _at(value: Any, path: str) -> Any:
    for key, index in _PATH_PART.findall(path):
        if index:
            assert isinstance(value, list) and int(index) < len(value), f"no [{index}] at {path!r}"
            value = value[int(index)]
        else:
            assert isinstance(value, dict) and key in value, f"no {key!r} at {path!r}"
            value = value[key]
    return value


@then("it answers:")
def _answers(plugin_scenario: PluginScenario, docstring: str) -> None:
    from engine.plugins.conformance import first_difference

    output = _answered(plugin_scenario)
    expected = _json(docstring.replace("${workdir}", str(plugin_scenario.call.workdir)), "the answer expected")
    difference = first_difference(expected, output)
    assert difference is None, f"at {difference[0]}: expected {difference[1]!r}, got {difference[2]!r}" \
        if difference else ""


@then(parsers.parse('the output at "{path}" is {value}'))
def _output_at(plugin_scenario: PluginScenario, path: str, value: str) -> None:
    got = _at(_answered(plugin_scenario), path)
    want = _json(value, f"the value expected at {path!r}")
    assert type(got) is type(want) and got == want, f"at {path!r}: expected {want!r}, got {got!r}"


@then(parsers.parse('the output has "{key}"'))
def _output_has(plugin_scenario: PluginScenario, key: str) -> None:
    output = _answered(plugin_scenario)
    assert key in output, f"the output has no {key!r}; it has: {', '.join(sorted(output))}"


def _failure(scenario: PluginScenario) -> str:
    call = scenario.call
    assert call.error is not None, f"{call.plugin}.{call.operation} answered {call.output!r} instead of failing"
    return "; ".join(call.error.lines())


@then(parsers.parse('it fails with code "{code}"'))
def _fails_with_code(plugin_scenario: PluginScenario, code: str) -> None:
    message = _failure(plugin_scenario)
    assert plugin_scenario.call.code == code, f"failed with code {plugin_scenario.call.code!r}, not {code!r}: " \
                                              f"{message}"


@then(parsers.parse('it fails with a message containing "{text}"'))
def _fails_with_message(plugin_scenario: PluginScenario, text: str) -> None:
    message = _failure(plugin_scenario)
    assert text in message, f"the message {message!r} does not contain {text!r}"


@then(parsers.parse('the ledger record\'s status is "{status}"'))
def _record_status(plugin_scenario: PluginScenario, status: str) -> None:
    got = plugin_scenario.call.record.get("status")
    assert got == status, f"the ledger record's status is {got!r}, not {status!r}"


@then(parsers.parse('the file "{path}" contains "{text}"'))
def _file_contains(plugin_scenario: PluginScenario, path: str, text: str) -> None:
    target = plugin_scenario.call.workdir / path
    assert target.is_file(), f"no file {path} in the workdir"
    content = target.read_text(encoding="utf-8", errors="replace")
    assert text in content, f"{path} does not contain {text!r}; it holds {content[:200]!r}"


@then(parsers.parse('the file "{path}" does not exist'))
def _file_absent(plugin_scenario: PluginScenario, path: str) -> None:
    assert not (plugin_scenario.call.workdir / path).exists(), f"{path} exists in the workdir"


@then("the repository is unchanged")
def _repo_unchanged(plugin_scenario: PluginScenario) -> None:
    workdir = plugin_scenario.call.workdir
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=workdir,
                            capture_output=True, text=True, check=False)
    assert status.returncode == 0, f"the workdir is not a repository: {status.stderr.strip()} (add a `Given a " \
                                   "repository ...` step)"
    head = subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=workdir, capture_output=True, text=True,
                          check=False).stdout.strip()
    assert status.stdout == "" and head == "1", f"the repository changed: {status.stdout.strip() or 'new commits'}"

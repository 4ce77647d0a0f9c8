"""Plugin conformance: the levels a plugin meets, checked for real (``engine conformance ID``).

Levels are cumulative, L0 first; a run goes from L0 up to the level asked for (``--level``), else the
plugin's declared ``conformance_level`` (``plugin.spec.json``), else L5:

- **L0 static**: the plugin loads (``check_plugin``: spec and manifest against ``contracts/plugin.v1.json``
  and each other, containment, the entry point imported in a worker), its manifest carries a
  ``source_digest`` equal to the source on disk, and its ``src/`` is clean under ruff and mypy, run as
  subprocesses of the engine's own interpreter with the engine's settings, whatever configuration files
  lie around the plugin: ruff with the rules of the engine's ``pyproject.toml`` (``RUFF_ARGS``), mypy
  with ``MYPY_ARGS``: every function annotated and every body checked, but not ``--strict`` (whose
  ``warn_return_any`` and friends mostly flag plugin code that reads untyped JSON). Caches go to a
  temporary folder: nothing is written into the plugin folder, whose digest would change.
- **L1 golden fixtures**: each ``conformance/fixtures/<operation>/<name>.input.json`` with its expected
  ``<name>.output.json`` or ``<name>.error.json`` (and optionally ``<name>.context.json``, WhatIf or task
  id, and ``<name>.repo/``, the files of a fixture repository as the workdir): the input valid against the
  operation's ``input_schema``, the expected output against its ``output_schema``, and the operation
  called as the kernel calls it (``engine.testing.PluginRunner``: dispatch, schemas, a worker process, also
  for an ``inprocess`` plugin, so that nothing the plugin does can end this command) with a fixed context
  (``FIXED_NOW``, seed 0, run id ``conformance``, task id the fixture's name): its output must equal the
  expected one exactly (the first differing JSON path is named), or its error have the expected code.
- **L2 behaviour scenarios**: ``conformance/features/*.feature`` run by pytest-bdd in a subprocess with the
  engine's steps (``engine.plugins.scenarios``) and the plugin's own (``conformance/features/steps.py``).
- **L3 integration**: the plugin bound (``select_plugin``) in a copy of the example process in a fresh
  example workspace, its tasks (``conformance/tasks.jsonl``, else from the fixtures) run by ``engine run
  --drain`` in a subprocess to done; the ledger verifies and the run replays.
- **L4 performance**: the P95 latency of the fixtures in a warm worker within the category's
  ``latency_p95_ms`` of the workspace's ``policies/performance.yml``.
- **L5 security**: the workspace's own policies (``policies/*.rego``) evaluated on what the plugin asks
  for, ``{"phase": "conformance", "plugin": {"id", "category", "whatif"}, "env": [names]}`` (so the
  ``forbidden_env`` and ``whatif_required`` rules apply as they would to a task), plus checks in Python:
  ``credential_env_needs_network`` (a credential-looking variable is for a network service: the plugin
  must declare the ``network`` side effect), ``inprocess_is_pure`` (an in-process plugin gets the
  engine's whole environment and no deadline: only pure transformations, side effects ``none``),
  ``no_secret_files`` (no key, ``.env``, ``.git/`` or ``.ssh/`` in the plugin folder) and
  ``state_change_plans`` (every operation of a ``state_change`` plugin answers with a ``plan``: its
  output_schema requires ``plan``, decision 0011).
A level is ``passed``, ``failed`` or ``skipped`` (nothing to check; ``failed`` when the declared level
includes it); the run passes when no level failed, and the plugin meets its declared level when every
level up to it passed. The report document (``as_dict``) is what
``--json`` prints and what is written to ``conformance/reports/<id>-<version>.json`` in the workspace, with a
readable summary (``markdown``) beside it, ``<id>-<version>.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.clock import EPOCH
from engine.contracts import problems_against
from engine.errors import EngineError, Problem, UsageError
from engine.plugins.catalog import check_plugin
from engine.plugins.loader import MANIFEST_FILE, SPEC_FILE, LoadedPlugin
from engine.workspace import ENV_PLUGIN_PATH, ENV_WORKSPACE, Workspace

if TYPE_CHECKING:
    from engine.testing import PluginRunner

LEVELS = ("L0", "L1", "L2", "L3", "L4", "L5")
FIXTURES = Path("conformance") / "fixtures"
REPORTS = Path("conformance") / "reports"
FIXED_NOW = EPOCH
RUFF_ARGS = ("--no-cache", "--isolated", "--line-length", "120", "--target-version", "py311",
             "--select", "E,F,W,I,B,UP,SIM", "--output-format", "concise")
MYPY_ARGS = ("--ignore-missing-imports", "--check-untyped-defs", "--disallow-untyped-defs",
             "--disallow-incomplete-defs", "--no-error-summary", "--show-error-codes", "--no-color-output")
TOOL_TIMEOUT_SEC = 300
_CREDENTIAL_WORDS = ("TOKEN", "API_KEY", "APIKEY", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE_KEY")
# names of files and folders a plugin folder must not hold: keys, .env files, a repository's or ssh's metadata
_SECRET_FILES = re.compile(r"^(\.env(\..*)?|id_rsa|id_ed25519|id_ecdsa|.*\.pem|.*\.key|.*\.p12|\.git|\.ssh)$")
_TOOL_LINE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<col>\d+):)?\s*(?P<message>.*)$")


@dataclass(frozen=True)
class LevelResult:
    """One level's verdict: ``passed``, ``failed`` or ``skipped`` (with why), and every problem found."""

    level: str
    status: str
    summary: str
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "status": self.status, "summary": self.summary,
                "problems": [p.as_dict() for p in self.problems]}


@dataclass(frozen=True)
class ConformanceReport:
    plugin: str
    version: str | None
    folder: Path | None
    declared: str | None
    target: str
    levels: list[LevelResult]
    written: Path | None = None

    @property
    def ok(self) -> bool:
        """No level that ran failed (a skipped level is not a pass, nor a failure of the run)."""
        return all(r.status != "failed" for r in self.levels)

    @property
    def meets_declared(self) -> bool | None:
        """Whether every level up to the declared one passed; None when the plugin declares none, or when the
        run stopped below it (``--level``)."""
        if self.declared is None or LEVELS.index(self.target) < LEVELS.index(self.declared):
            return None
        wanted = LEVELS[:LEVELS.index(self.declared) + 1]
        results = {r.level: r.status for r in self.levels}
        return all(results.get(level) == "passed" for level in wanted)

    def as_dict(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "version": self.version,
                "folder": str(self.folder) if self.folder else None, "declared_level": self.declared,
                "level": self.target, "ok": self.ok, "meets_declared_level": self.meets_declared,
                "levels": [r.as_dict() for r in self.levels],
                "report": str(self.written) if self.written else None}

    def markdown(self) -> str:
        """The readable summary written beside the JSON report (``<id>-<version>.md``)."""
        verdict = {True: f"meets its declared level {self.declared}", False: f"does NOT meet its declared level "
                   f"{self.declared}", None: "declares no level" if self.declared is None else
                   f"was run up to {self.target} only: its declared level {self.declared} is not judged"}
        lines = [f"# Conformance of {self.plugin} {self.version or '?'}", "",
                 f"Levels L0-{self.target}: {'no level failed' if self.ok else 'a level FAILED'}; the plugin "
                 f"{verdict[self.meets_declared]}.", "", "| level | status | summary |", "|---|---|---|"]
        lines += [f"| {r.level} | {r.status} | {r.summary.replace('|', '/')} |" for r in self.levels]
        for r in self.levels:
            if r.problems:
                lines += ["", f"## {r.level}: what to fix", ""] + [f"- {p}" for p in r.problems]
        return "\n".join(lines) + "\n"


@contextlib.contextmanager
def fresh_workspace() -> Iterator[Workspace]:
    """A fresh example workspace (bundled plugins, policies and budgets) in a temporary folder, removed
    afterwards."""
    from engine.workspace import init

    with tempfile.TemporaryDirectory(prefix="engine-conformance-") as temp:
        yield init(Path(temp) / "workspace", example=True)[0]


@contextlib.contextmanager
def hermetic_if_needed(ws: Workspace) -> Iterator[Workspace]:
    """``ws`` when it is an engine workspace; else a ``fresh_workspace``."""
    if ws.is_initialised():
        yield ws
        return
    with fresh_workspace() as fresh:
        yield fresh


def run_conformance(ws: Workspace, plugin_id: str, level: str | None = None, *, write: bool = True,
                    reports: Path | None = None) -> ConformanceReport:
    """Run levels L0..``level`` on the plugin the workspace uses for ``plugin_id`` and (``write``) write the
    report to ``<id>-<version>.json`` in ``reports`` (default: the workspace's ``conformance/reports``)."""
    if level is not None and level not in LEVELS:
        raise ValueError(f"no conformance level {level!r}; levels: {', '.join(LEVELS)}")
    check = check_plugin(ws, plugin_id)
    plugin = check.loaded
    folder = plugin.folder if plugin else _locate(ws, plugin_id)
    raw_spec = _raw(folder / SPEC_FILE) if folder else {}
    declared = raw_spec.get("conformance_level") if isinstance(raw_spec.get("conformance_level"), str) else None
    declared = declared if declared in LEVELS else None
    target = level or declared or LEVELS[-1]
    runs: dict[str, Callable[[], LevelResult]] = {
        "L0": lambda: _level0(check.problems, plugin, folder),
        "L1": lambda: _level1(ws, plugin, requires=_includes(declared, "L1")),
        "L2": lambda: _level2(plugin, requires=_includes(declared, "L2")),
        "L3": lambda: _level3(plugin),
        "L4": lambda: _level4(ws, plugin, requires=_includes(declared, "L4")),
        "L5": lambda: _level5(ws, plugin),
    }
    results: list[LevelResult] = []
    for name in LEVELS[:LEVELS.index(target) + 1]:
        if name != "L0" and plugin is None:
            results.append(LevelResult(name, "skipped", "not run: the plugin does not load (see L0)"))
        else:
            results.append(runs[name]())
    version = plugin.version if plugin else (raw_spec.get("version") if isinstance(raw_spec.get("version"), str)
                                             else None)
    report = ConformanceReport(plugin.id if plugin else plugin_id, version, folder, declared, target, results)
    if folder is None or not write:  # no report file named after a plugin that does not exist
        return report
    path = (reports or ws.root / REPORTS) / f"{report.plugin}-{version or 'unknown'}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    report = replace(report, written=path)
    path.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(report.markdown(), encoding="utf-8")
    return report


def _nothing_to_check(level: str, why: str, *, requires: bool, fix: str, where: Path) -> LevelResult:
    """A level with nothing to check: ``skipped``, or ``failed`` (saying what to add) when the plugin's
    declared level includes it."""
    if not requires:
        return LevelResult(level, "skipped", why)
    return LevelResult(level, "failed", why, [Problem(
        f"the plugin declares a conformance level that includes {level} but {fix}", file=str(where))])


def _includes(declared: str | None, level: str) -> bool:
    return declared is not None and LEVELS.index(declared) >= LEVELS.index(level)


def _locate(ws: Workspace, plugin_id: str) -> Path | None:
    """The first folder of the search path holding a plugin folder ``plugin_id`` (for a plugin that does
    not load, so that its source can still be checked)."""
    for _, root in ws.plugin_sources():
        if root is not None and (root / plugin_id / SPEC_FILE).is_file():
            return root / plugin_id
    return None


def _raw(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


# -- L0 -----------------------------------------------------------------------------------------------

def _level0(load_problems: list[Problem], plugin: LoadedPlugin | None, folder: Path | None) -> LevelResult:
    found = list(load_problems)
    if plugin is not None:
        manifest = plugin.folder / MANIFEST_FILE
        if plugin.manifest.source_digest is None:
            found.append(Problem(f"no source_digest: add \"source_digest\": \"{plugin.digest}\"", file=str(manifest),
                                 path="$.source_digest"))
        elif plugin.manifest.source_digest != plugin.digest:  # the loader also accepts engine 0.1's digest
            found.append(Problem(f"source_digest is engine 0.1's (code only); set it to {plugin.digest}",
                                 file=str(manifest), path="$.source_digest"))
    src = folder / "src" if folder else None
    if src is None or not src.is_dir():
        where = str(folder) if folder else "the plugin folder"
        found.append(Problem("no src/ folder: a plugin's Python source lives in src/", file=where))
    else:
        found += _tool("ruff", ["-m", "ruff", "check", *RUFF_ARGS, str(src)])
        with tempfile.TemporaryDirectory(prefix="engine-mypy-") as cache:
            found += _tool("mypy", ["-m", "mypy", *MYPY_ARGS, "--cache-dir", cache, str(src)])
    summary = "spec, manifest, source digest, ruff and mypy clean" if not found else f"{len(found)} problem(s)"
    return LevelResult("L0", "failed" if found else "passed", summary, found)


def _tool(name: str, args: list[str]) -> list[Problem]:
    """Every finding of a linter run with the engine's interpreter, one Problem per ``file:line:`` line."""
    with tempfile.TemporaryDirectory(prefix="engine-conformance-") as cwd:  # no config, no cache found here
        try:
            proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                                  timeout=TOOL_TIMEOUT_SEC, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return [Problem(f"{name} could not run: {e}")]
    if proc.returncode == 0:
        return []
    found = []
    for line in (proc.stdout + proc.stderr).splitlines():
        match = _TOOL_LINE.match(line.strip())
        if match and not match.group("message").startswith("note:"):
            found.append(Problem(f"{name}: {match.group('message')}", file=match.group("file"),
                                 line=int(match.group("line"))))
    if not found:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        missing = " (is it installed? it is a test dependency: pip install 'engine[test]')" \
            if "No module named" in tail else ""
        found.append(Problem(f"{name} exited with code {proc.returncode}{missing}: {tail}"))
    return found


# -- L1 -----------------------------------------------------------------------------------------------

def fixtures(folder: Path) -> Iterator[tuple[str, str, Path]]:
    """(operation, name, input file) of every golden fixture of the plugin in ``folder``, sorted."""
    root = folder / FIXTURES
    if root.is_dir():
        for path in sorted(root.glob("*/*.input.json")):
            yield path.parent.name, path.name.removesuffix(".input.json"), path


def _level1(ws: Workspace, plugin: LoadedPlugin | None, *, requires: bool) -> LevelResult:
    assert plugin is not None
    cases = list(fixtures(plugin.folder))
    if not cases:
        return _nothing_to_check("L1", f"not run: no fixtures in {plugin.folder / FIXTURES}/<operation>/<name>"
                                 ".input.json", requires=requires, where=plugin.folder / FIXTURES,
                                 fix="has no golden fixtures: add <operation>/<name>.input.json and "
                                     "<name>.output.json")
    from engine.testing import PluginRunner

    found: list[Problem] = []
    # in a worker even when the plugin runs in process in the kernel: a fixture must not end this command
    with tempfile.TemporaryDirectory(prefix="engine-conformance-") as base, \
            PluginRunner(Path(base), workspace=ws.root if ws.root.is_dir() else None) as runner:
        for operation, name, input_path in cases:
            found += check_fixture(runner, plugin, operation, name, input_path)
    summary = f"{len(cases)} fixture(s) reproduced" if not found else f"{len(found)} problem(s) in {len(cases)} " \
                                                                      "fixture(s)"
    return LevelResult("L1", "failed" if found else "passed", summary, found)


_CONTEXT_KEYS = {"whatif": bool, "task_id": str}


def check_fixture(runner: PluginRunner, plugin: LoadedPlugin, operation: str, name: str,
                  input_path: Path) -> list[Problem]:
    """Every problem of one golden fixture, called through ``runner`` ([] when it holds; the generated test of
    a plugin runs each fixture with this, as level L1 does): ``<name>.input.json`` with ``<name>.output.json``
    (the output expected) or ``<name>.error.json`` (the error expected: ``{"code": CODE}`` and/or
    ``{"message_contains": TEXT}``); optional ``<name>.context.json`` (``whatif``, ``task_id``) and
    ``<name>.repo/`` (the workdir: a fixture repository of those files). ``${workdir}`` in an expected string
    stands for the call's workdir."""
    output_path = input_path.with_name(f"{name}.output.json")
    error_path = input_path.with_name(f"{name}.error.json")
    context_path = input_path.with_name(f"{name}.context.json")
    repo = input_path.with_name(f"{name}.repo")
    spec_file = str(plugin.folder / SPEC_FILE)
    if operation not in plugin.spec.operations:
        return [Problem(f"fixture folder {operation!r} names no operation of the plugin (it has: "
                        f"{', '.join(plugin.spec.operations)}); rename the folder", file=str(input_path.parent))]
    found: list[Problem] = []
    if output_path.exists() == error_path.exists():
        return [Problem(f"a fixture needs exactly one of {output_path.name} (the output expected) and "
                        f"{error_path.name} (the error expected)", file=str(input_path))]
    data = _fixture_json(input_path, found)
    expected = _fixture_json(output_path if output_path.exists() else error_path, found)
    context = _fixture_json(context_path, found) if context_path.exists() else {}
    if found:
        return found
    for key, value in (context.items() if isinstance(context, dict) else [(None, context)]):
        if key not in _CONTEXT_KEYS or not isinstance(value, _CONTEXT_KEYS[key]):
            found.append(Problem(f"a fixture's context sets only {', '.join(_CONTEXT_KEYS)} "
                                 "(whatif true/false, task_id a string)", file=str(context_path),
                                 path=f"$.{key}" if key else "$"))
    if error_path.exists() and not (isinstance(expected, dict) and expected and set(expected) <= {
            "code", "message_contains"}):
        found.append(Problem('an expected error is {"code": CODE} and/or {"message_contains": TEXT}',
                             file=str(error_path), path="$"))
    op = plugin.spec.operations[operation]
    for p in problems_against(op.input_schema, data):
        found.append(Problem(f"input does not match $.operations.{operation}.input_schema of {spec_file}: "
                             f"{p.message}", file=str(input_path), path=p.path))
    if output_path.exists():
        for p in problems_against(op.output_schema, expected):
            found.append(Problem(f"expected output does not match $.operations.{operation}.output_schema of "
                                 f"{spec_file}: {p.message}", file=str(output_path), path=p.path))
    if found:
        return found
    options = context if isinstance(context, dict) else {}
    call = runner.call(plugin, operation, data, repo=repo if repo.is_dir() else None,
                       whatif=options.get("whatif", False), task_id=options.get("task_id", name),
                       run_id="conformance", now=FIXED_NOW)
    if error_path.exists():
        return _expected_error(plugin, operation, call, expected, error_path, input_path)
    if call.error is not None:
        e = call.error
        detail = "; ".join(str(p) for p in e.problems)
        return [Problem(f"{plugin.id}.{operation} failed on this input: {e.message}{': ' + detail if detail else ''}",
                        file=str(input_path))]
    difference = first_difference(_substitute(expected, str(call.workdir)), call.output)
    if difference is None:
        return []
    path, want, got = difference
    return [Problem(f"{plugin.id}.{operation} returned {_short(got)} where {output_path.name} expects {_short(want)}; "
                    "fix the plugin, or the expected output if the change is intended", file=str(output_path),
                    path=path)]


def _expected_error(plugin: LoadedPlugin, operation: str, call: Any, expected: dict[str, Any], error_path: Path,
                    input_path: Path) -> list[Problem]:
    if call.error is None:
        return [Problem(f"{plugin.id}.{operation} answered {_short(call.output)} where {error_path.name} expects "
                        "an error", file=str(error_path))]
    message = "; ".join(call.error.lines())
    found = []
    if "code" in expected and call.code != expected["code"]:
        found.append(Problem(f"{plugin.id}.{operation} failed with code {call.code!r} where {error_path.name} "
                             f"expects {expected['code']!r}: {message}", file=str(error_path), path="$.code"))
    if "message_contains" in expected and str(expected["message_contains"]) not in message:
        found.append(Problem(f"{plugin.id}.{operation} failed with {message!r}, which does not contain "
                             f"{expected['message_contains']!r}", file=str(error_path), path="$.message_contains"))
    return found


def _substitute(value: Any, workdir: str) -> Any:
    if isinstance(value, str):
        return value.replace("${workdir}", workdir)
    if isinstance(value, list):
        return [_substitute(v, workdir) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, workdir) for k, v in value.items()}
    return value


def _fixture_json(path: Path, found: list[Problem]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        found.append(Problem(f"missing {path.name}: every fixture needs its expected output", file=str(path)))
    except ValueError as e:
        found.append(Problem(f"not valid JSON: {e}", file=str(path)))
    return None


_MISSING = object()


def first_difference(expected: Any, actual: Any, path: str = "$") -> tuple[str, Any, Any] | None:
    """The first JSON path where ``actual`` differs from ``expected`` (keys in sorted order), with both
    values there (``<missing>`` for an absent key); None when they are equal. ``1`` and ``1.0`` differ,
    as do ``true`` and ``1``: JSON is compared as JSON."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            sub = f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f"{path}[{json.dumps(key)}]"
            found = first_difference(expected.get(key, _MISSING), actual.get(key, _MISSING), sub)
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        for i in range(max(len(expected), len(actual))):
            found = first_difference(expected[i] if i < len(expected) else _MISSING,
                                     actual[i] if i < len(actual) else _MISSING, f"{path}[{i}]")
            if found:
                return found
        return None
    if type(expected) is type(actual) and expected == actual:
        return None
    return path, expected, actual


def _short(value: Any) -> str:
    if value is _MISSING:
        return "<missing>"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


# -- L2 -----------------------------------------------------------------------------------------------

FEATURES = Path("conformance") / "features"
_SCENARIO_CONFTEST = '''\
import json, os
from pathlib import Path

import pytest

RESULTS = os.environ["ENGINE_SCENARIO_RESULTS"]


@pytest.fixture(scope="session")
def plugin_folder():
    return Path(os.environ["ENGINE_PLUGIN_FOLDER"])


def _write(feature, scenario, status, step=None, message=None):
    with open(RESULTS, "a", encoding="utf-8") as out:
        out.write(json.dumps({"feature": feature.filename, "scenario": scenario.name,
                              "line": step.line_number if step is not None else scenario.line_number,
                              "step": f"{step.keyword} {step.name}".strip() if step is not None else None,
                              "status": status, "message": message}) + "\\n")


def pytest_bdd_step_error(request, feature, scenario, step, step_func, step_func_args, exception):
    request.node.engine_failed = True
    first = (str(exception).strip().splitlines() or [""])[0]  # not pytest's rewritten-assert explanation
    _write(feature, scenario, "failed", step, f"{type(exception).__name__}: {first}")


def pytest_bdd_step_func_lookup_error(request, feature, scenario, step, exception):
    request.node.engine_failed = True
    _write(feature, scenario, "undefined", step, str(exception))


def pytest_bdd_after_scenario(request, feature, scenario):
    if not getattr(request.node, "engine_failed", False):
        _write(feature, scenario, "passed")
'''


def _level2(plugin: LoadedPlugin | None, *, requires: bool) -> LevelResult:
    """The plugin's behaviour scenarios (``conformance/features/*.feature``) run by pytest-bdd in a
    subprocess, with the engine's steps (``engine.plugins.scenarios``) and the plugin's own
    (``conformance/features/steps.py``); one problem per scenario that fails, naming its step."""
    assert plugin is not None
    features = plugin.folder / FEATURES
    files = sorted(features.rglob("*.feature")) if features.is_dir() else []
    if not files:
        return _nothing_to_check("L2", f"not run: no scenarios in {features}/*.feature", requires=requires,
                                 where=features, fix="has no behaviour scenarios: add a .feature file (steps: "
                                                     "engine.plugins.scenarios, docs/plugin-guide.md)")
    with tempfile.TemporaryDirectory(prefix="engine-scenarios-") as temp:
        root = Path(temp)
        results = root / "results.jsonl"
        (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        (root / "conftest.py").write_text(_SCENARIO_CONFTEST, encoding="utf-8")
        steps = features / "steps.py"
        own = f"exec(compile(open({str(steps)!r}).read(), {str(steps)!r}, 'exec'))\n" if steps.is_file() else ""
        (root / "test_scenarios.py").write_text(
            "from pytest_bdd import scenarios\n" + own + f"scenarios({str(features)!r})\n", encoding="utf-8")
        env = {**os.environ, "ENGINE_SCENARIO_RESULTS": str(results), "ENGINE_PLUGIN_FOLDER": str(plugin.folder)}
        try:
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                                   "engine.plugins.scenarios", "--rootdir", str(root), "-c", str(root / "pytest.ini"),
                                   str(root / "test_scenarios.py")], cwd=root, env=env, capture_output=True,
                                  text=True, timeout=TOOL_TIMEOUT_SEC, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return LevelResult("L2", "failed", "the scenarios could not run", [Problem(f"pytest could not run: {e}")])
        outcomes = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()] \
            if results.is_file() else []
    found = [Problem(f"scenario {o['scenario']!r}: {o['step'] or 'the scenario'} "
                     f"{'has no step definition' if o['status'] == 'undefined' else 'failed'}: {o['message']}",
                     file=o["feature"], line=o["line"]) for o in outcomes if o["status"] != "passed"]
    passed = sum(1 for o in outcomes if o["status"] == "passed")
    if proc.returncode != 0 and not found:  # collection errors: bad Gherkin, a broken steps.py, no pytest-bdd
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        missing = " (pytest and pytest-bdd are test dependencies: pip install 'engine[test]')" \
            if re.search(r"No module named '?pytest", tail) else ""
        found.append(Problem(f"the scenarios could not run{missing}: {tail}", file=str(features)))
    summary = f"{passed} scenario(s) passed" if not found else f"{len(found)} problem(s); {passed} scenario(s) passed"
    return LevelResult("L2", "failed" if found else "passed", summary, found)


# -- L3 -----------------------------------------------------------------------------------------------

TASKS_FILE = Path("conformance") / "tasks.jsonl"
ENGINE_TOML = Path("conformance") / "engine.toml"
RUN_TIMEOUT_SEC = 600


def integration_tasks(plugin: LoadedPlugin) -> tuple[list[dict[str, Any]], list[Problem], str]:
    """The tasks level L3 runs, their problems, and where they came from: ``conformance/tasks.jsonl`` (one
    task per line; ``tool`` defaults to the plugin's id, ``repo`` to the example repository), else one task
    per golden fixture whose input holds a task (its ``args``), else one task with no args."""
    path = plugin.folder / TASKS_FILE
    found: list[Problem] = []
    tasks: list[dict[str, Any]] = []
    if path.is_file():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                task = json.loads(line)
            except ValueError as e:
                found.append(Problem(f"not valid JSON: {e}", file=str(path), line=number))
                continue
            if not isinstance(task, dict):
                found.append(Problem("a task is a JSON object", file=str(path), line=number))
                continue
            tasks.append({"id": f"conformance-{number}", "tool": plugin.id, "repo": "example-repo", **task})
        if not tasks and not found:
            found.append(Problem("no tasks: one JSON object per line", file=str(path)))
        return tasks, found, str(path)
    for operation, name, input_path in fixtures(plugin.folder):
        if input_path.with_name(f"{name}.error.json").exists() or input_path.with_name(f"{name}.context.json").exists():
            continue  # a fixture of a failure, or of WhatIf, is not a task that should end done
        data = _raw(input_path)
        task = data.get("task") if isinstance(data.get("task"), dict) else None
        if task is None:
            continue
        # the process calls the operation a task's args.operation names (decision 0023)
        args = {**(task.get("args") if isinstance(task.get("args"), dict) else {}), "operation": operation}
        tasks.append({"id": f"conformance-{operation}-{name}", "tool": plugin.id, "repo": "example-repo",
                      "args": args, **{k: task[k] for k in ("files", "prompt", "flags") if k in task}})
    if tasks:
        return tasks, found, f"the golden fixtures in {plugin.folder / FIXTURES}"
    return [{"id": "conformance-1", "tool": plugin.id, "repo": "example-repo", "args": {}}], found, \
        "one task with no args (add conformance/tasks.jsonl for others)"


def _level3(plugin: LoadedPlugin | None) -> LevelResult:
    """The plugin bound in a copy of the example process (``select_plugin`` routes tool ``<id>`` to it) in a
    fresh example workspace, its tasks run there by ``engine run --drain`` in a subprocess: every task must
    end done with the plugin called, the ledger verify and the run replay to what its ledger holds."""
    assert plugin is not None
    import shutil

    from engine.plugins.binding import route_tool
    from engine.workspace import init

    tasks, found, source = integration_tasks(plugin)
    if found:
        return LevelResult("L3", "failed", "the tasks cannot be read", found)
    with tempfile.TemporaryDirectory(prefix="engine-conformance-") as temp:
        root = Path(temp) / "workspace"
        init(root, example=True)
        if not _is_bundled(plugin):  # the fresh workspace finds the bundled plugins itself
            shutil.copytree(plugin.folder, root / "plugins" / plugin.id,
                            ignore=shutil.ignore_patterns("__pycache__", "reports"))
        if (plugin.folder / ENGINE_TOML).is_file():
            shutil.copy(plugin.folder / ENGINE_TOML, root / "engine.toml")
        route_tool(root / "process" / "decisions.dmn", plugin.id, plugin.id,
                   worktree=plugin.spec.category == "state_change", label="conformance")
        inbox = root / ".tasks" / "inbox"
        for old in inbox.iterdir():
            old.unlink()
        (inbox / "conformance.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks), encoding="utf-8")
        try:
            # this workspace and no other: not the one $ENGINE_WORKSPACE names, nor plugins $ENGINE_PLUGIN_PATH adds
            env = {k: v for k, v in os.environ.items() if k not in (ENV_WORKSPACE, ENV_PLUGIN_PATH)}
            proc = subprocess.run([sys.executable, "-m", "engine", "--workspace", str(root), "run", "--drain"],
                                  cwd=root, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_SEC,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return LevelResult("L3", "failed", "the run did not finish", [Problem(f"engine run --drain: {e}")])
        found = _integration_problems(root, plugin, tasks, source, proc)
    summary = f"{len(tasks)} task(s) done through the example process (from {source}), ledger verified, " \
              "run replayed" if not found else f"{len(found)} problem(s) with {len(tasks)} task(s) from {source}"
    return LevelResult("L3", "failed" if found else "passed", summary, found)


def _integration_problems(root: Path, plugin: LoadedPlugin, tasks: list[dict[str, Any]], source: str,
                          proc: subprocess.CompletedProcess[str]) -> list[Problem]:
    from engine.kernel import load_registry
    from engine.ledger import Ledger
    from engine.process.replay import replay_run

    queue = root / ".tasks"
    report = next((p for p in (queue / "done" / "conformance.jsonl.result.json",
                               queue / "failed" / "conformance.jsonl.error.json") if p.is_file()), None)
    if report is None:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        return [Problem(f"the task file did not finish (engine run exited {proc.returncode}): {tail}")]
    found: list[Problem] = []
    body = _raw(report)
    for task in body.get("tasks") or []:
        if task.get("status") != "done":
            found.append(Problem(f"task {task.get('task_id')} (from {source}) ended {task.get('status')}: "
                                 f"{task.get('reason') or task.get('end_event')}"))
    if body.get("status") != "done" and not found:
        found.append(Problem(f"the task file ended {body.get('status')}: {body.get('reason')}"))
    called = set()
    for path in (root / ".engine" / "runs").glob("*/outputs.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("plugin") == plugin.id:
                called.add(record.get("task_id"))
    for task in tasks:
        if task["id"] not in called and not found:
            found.append(Problem(f"task {task['id']} ended without {plugin.id} answering: the example process did "
                                 f"not route tool {task.get('tool')!r} to it"))
    from engine.workspace import Workspace as _Workspace

    hermetic = _Workspace(root)
    try:
        Ledger(hermetic.ledger_dir).verify()
        registry = load_registry(hermetic)
        for run in sorted(p.parent.name for p in hermetic.runs_dir.glob("*/run.json")):
            for result in replay_run(hermetic, registry, run):
                if not result.ok:
                    found.append(Problem(f"run {run} does not replay to its ledger: {result.as_dict()}"))
    except EngineError as e:
        found.append(Problem(f"the ledger or the replay failed: {e.message}"))
    return found


# -- L4 -----------------------------------------------------------------------------------------------

LATENCY_CALLS = 20  # timed calls per fixture, after one untimed call that warms the worker ...
LATENCY_MIN_CALLS, LATENCY_SPEND_SEC = 5, 5.0  # ... or fewer (at least 5) once they took 5 s together


def _level4(ws: Workspace, plugin: LoadedPlugin | None, *, requires: bool) -> LevelResult:
    """P95 latency of the plugin's golden fixtures (each called ``LATENCY_CALLS`` times in a warm worker, or
    at least ``LATENCY_MIN_CALLS`` when they are slow) within its category's budget in the workspace's
    ``policies/performance.yml`` (``latency_p95_ms``)."""
    assert plugin is not None
    from engine.testing import PluginRunner

    cases = list(fixtures(plugin.folder))
    if not cases:
        return _nothing_to_check("L4", f"not run: L4 times the golden fixtures and there are none in "
                                 f"{plugin.folder / FIXTURES}", requires=requires, where=plugin.folder / FIXTURES,
                                 fix="has no golden fixtures to time")
    try:
        performance = ws.performance()
    except EngineError as e:
        return LevelResult("L4", "failed", "no budget", e.problems or [Problem(e.message)])
    budget_ms = performance.latency_p95_ms.get(plugin.spec.category)
    policy_file = ws.root / "policies" / "performance.yml"
    if budget_ms is None:
        return LevelResult("L4", "failed", "no budget", [Problem(
            f"no latency budget for category {plugin.spec.category}", file=str(policy_file),
            path=f"$.latency_p95_ms.{plugin.spec.category}")])
    seconds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="engine-conformance-") as base, \
            PluginRunner(Path(base), workspace=ws.root if ws.root.is_dir() else None) as runner:
        for operation, name, input_path in cases:
            data = _raw(input_path) if input_path.is_file() else {}
            context = _raw(input_path.with_name(f"{name}.context.json"))
            repo = input_path.with_name(f"{name}.repo")
            workdir = runner.workdir(repo if repo.is_dir() else None)
            timed: list[float] = []
            for i in range(LATENCY_CALLS + 1):
                call = runner.call(plugin, operation, data, workdir=workdir, whatif=bool(context.get("whatif")),
                                   task_id=name, run_id="conformance")
                if i:
                    timed.append(call.seconds)
                if len(timed) >= LATENCY_MIN_CALLS and sum(timed) >= LATENCY_SPEND_SEC:
                    break
            seconds.setdefault(operation, []).extend(timed)
    found = []
    shown = []
    for operation, values in seconds.items():
        p95 = _percentile(values, 95) * 1000
        shown.append(f"{operation} {p95:.1f} ms")
        if p95 > budget_ms:
            found.append(Problem(f"{plugin.id}.{operation}: P95 latency {p95:.1f} ms over {len(values)} calls is "
                                 f"over the {plugin.spec.category} budget of {budget_ms:g} ms: make it faster, or "
                                 "raise the budget if the category's is wrong for it", file=str(policy_file),
                                 path=f"$.latency_p95_ms.{plugin.spec.category}"))
    summary = f"P95 {', '.join(shown)} (budget {budget_ms:g} ms)"
    return LevelResult("L4", "failed" if found else "passed", summary, found)


def _percentile(values: list[float], pct: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


# -- L5 -----------------------------------------------------------------------------------------------

def _level5(ws: Workspace, plugin: LoadedPlugin | None) -> LevelResult:
    assert plugin is not None
    spec, spec_file = plugin.spec, str(plugin.folder / SPEC_FILE)
    found: list[Problem] = []
    found += _policies(ws, plugin)
    credentials = [n for n in spec.env if any(w in n.upper() for w in _CREDENTIAL_WORDS)]
    if credentials and "network" not in spec.side_effects:
        found.append(Problem(f"asks for {', '.join(credentials)}, named like credentials, without declaring the "
                             "network side effect they are for: add \"network\" to side_effects or drop them from "
                             "env (check credential_env_needs_network)", file=spec_file, path="$.env"))
    if spec.isolation == "inprocess" and set(spec.side_effects or ["none"]) != {"none"}:
        found.append(Problem("runs in the engine's process (isolation inprocess: the engine's whole environment, no "
                             f"deadline) but declares side effects {', '.join(spec.side_effects)}: only pure "
                             "transformations may; set isolation to \"process\" (check inprocess_is_pure)",
                             file=spec_file, path="$.isolation"))
    flagged: list[Path] = []
    for path in sorted(plugin.folder.rglob("*")):
        if any(path.is_relative_to(f) for f in flagged):
            continue  # one problem for a .git/ folder, not one per file in it
        if _SECRET_FILES.match(path.name):
            flagged.append(path)
            found.append(Problem("looks like a key, a credentials file or a repository's metadata; a plugin folder "
                                 "must not carry secrets: remove it (check no_secret_files)", file=str(path)))
    if spec.category == "state_change":
        for name, op in spec.operations.items():
            schema = op.output_schema
            if "plan" not in (schema.get("properties") or {}) or "plan" not in (schema.get("required") or []):
                found.append(Problem(f"state_change operation {name!r} must answer with a plan in both modes "
                                     "(WhatIf: ctx.whatif true plans, false applies; decision 0011): add \"plan\" to "
                                     "its output_schema's properties and required (check state_change_plans)",
                                     file=spec_file, path=f"$.operations.{name}.output_schema"))
    summary = "policies and security checks pass" if not found else f"{len(found)} problem(s)"
    return LevelResult("L5", "failed" if found else "passed", summary, found)


def _policies(ws: Workspace, plugin: LoadedPlugin) -> list[Problem]:
    """The workspace's own policies on what the plugin asks for (its id, category, WhatIf, env names)."""
    from engine.policy import PolicyEngine

    spec_file = str(plugin.folder / SPEC_FILE)
    try:
        engine = PolicyEngine.from_settings(ws.policies, ws.config().policy)
    except EngineError as e:
        return [Problem(f"the workspace's policies cannot be loaded: {e.message}", file=str(ws.policies))]
    try:
        result = engine.check({"phase": "conformance", "env": list(plugin.spec.env),
                               "plugin": {"id": plugin.id, "category": plugin.spec.category,
                                          "whatif": plugin.spec.whatif}})
    except EngineError as e:
        return [Problem(f"the workspace's policies could not be evaluated: {e.message}", file=str(ws.policies))]
    finally:
        engine.close()
    where = {"forbidden_env": "$.env", "whatif_required": "$.whatif"}
    return [Problem(f"policy engine.{d.policy} denies: {d.message}", file=spec_file, path=where.get(d.rule))
            for d in result.denials]


# -- many plugins: the matrix, the changed ones -------------------------------------------------------

def _is_bundled(plugin: LoadedPlugin) -> bool:
    from engine.bundled import bundled

    return plugin.origin == "builtin" or plugin.folder.resolve().is_relative_to(bundled("plugins").resolve())


@dataclass(frozen=True)
class ConformanceSet:
    """Several plugins' reports (``--matrix``: every bundled plugin, in a fresh example workspace;
    ``--changed-since``: the plugins whose folders changed), with the SDK versions each was run for."""

    selection: str
    kernel: str
    sdk_versions: list[str]
    reports: list[ConformanceReport]
    sdk_of: dict[str, list[str]]  # plugin id -> the SDK versions it declares (this kernel's when none)
    written: Path | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok and r.meets_declared is not False for r in self.reports) and all(
            set(v) & set(self.sdk_versions) for v in self.sdk_of.values())

    def as_dict(self) -> dict[str, Any]:
        return {"selection": self.selection, "kernel": self.kernel, "sdk_versions": self.sdk_versions, "ok": self.ok,
                "plugins": [r.as_dict() for r in self.reports], "declared_sdk_versions": self.sdk_of,
                "output": str(self.written) if self.written else None}


def matrix(ws: Workspace, output: Path | None = None) -> ConformanceSet:
    """Every bundled plugin at its declared level (L5 when it declares none) against this kernel, in ``ws``
    (a ``fresh_workspace``: nothing of the user's replaces a bundled plugin); ``output``: write the Markdown
    table there (docs/compatibility.md)."""
    from engine import __version__
    from engine.bundled import bundled
    from engine.sdk import SUPPORTED_SDK_VERSIONS

    ids = sorted(p.parent.name for p in bundled("plugins").glob(f"*/{SPEC_FILE}"))
    reports = [run_conformance(ws, plugin_id, write=False) for plugin_id in ids]
    sdk_of = {r.plugin: _declared_sdk(r.folder) for r in reports}
    result = ConformanceSet("matrix", __version__, list(SUPPORTED_SDK_VERSIONS), reports, sdk_of)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(matrix_markdown(result), encoding="utf-8")
        result = replace(result, written=output)
    return result


def _declared_sdk(folder: Path | None) -> list[str]:
    from engine.sdk import SDK_VERSION

    declared = _raw(folder / SPEC_FILE).get("sdk_versions") if folder else None
    return [str(v) for v in declared] if isinstance(declared, list) and declared else [SDK_VERSION]


_MARK = {"passed": "pass", "failed": "FAIL", "skipped": "skip"}


def matrix_markdown(result: ConformanceSet) -> str:
    """The compatibility matrix as Markdown: one row per plugin and SDK version it declares; a level's
    cell pass / FAIL / skip (no timings: the file is the same on every run that gives the same verdicts)."""
    import textwrap

    about = ("Generated by `engine conformance --matrix --output docs/compatibility.md` (CI: "
             "`.github/workflows/compatibility-matrix.yml`); do not edit by hand. Each bundled plugin is run "
             "through the conformance levels L0 up to the one it declares (L5 when it declares none) against "
             f"engine {result.kernel}, which provides plugin SDK {', '.join(result.sdk_versions)}. A level "
             "above the declared one is `-`. What each level checks: docs/plugin-guide.md, section 8.")
    lines = ["# Plugin compatibility matrix", "", *textwrap.wrap(about, width=110, break_on_hyphens=False), "",
             "| plugin | version | category | SDK | declared | L0 | L1 | L2 | L3 | L4 | L5 | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for report in result.reports:
        statuses = {r.level: _MARK[r.status] for r in report.levels}
        spec = _raw(report.folder / SPEC_FILE) if report.folder else {}
        for sdk in result.sdk_of.get(report.plugin, []):
            if sdk not in result.sdk_versions:
                cells = ["-"] * len(LEVELS)
                verdict = f"not run: engine {result.kernel} does not provide SDK {sdk}"
            else:
                cells = [statuses.get(level, "-") for level in LEVELS]
                verdict = ("ok" if report.ok else "FAIL") if report.declared is None else \
                    f"{'meets' if report.meets_declared else 'does not meet'} {report.declared}"
            lines.append(f"| {report.plugin} | {report.version or '?'} | {spec.get('category', '?')} | {sdk} | "
                         f"{report.declared or '-'} | " + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(lines) + "\n"


def changed_since(ws: Workspace, rev: str, cwd: Path, reports: Path | None = None) -> ConformanceSet:
    """Each plugin whose folder (``plugins/<id>/`` anywhere in the git repository at ``cwd``) changed since
    ``rev`` (in commits since, or in the work tree) and still exists, run at its declared level in ``ws``."""
    from engine import __version__
    from engine.sdk import SUPPORTED_SDK_VERSIONS

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise UsageError(f"git {' '.join(args)}: {proc.stderr.strip() or 'failed'}")
        return proc.stdout

    top = Path(git("rev-parse", "--show-toplevel").strip())
    ids: list[str] = []
    # committed since REV, changed in the work tree, new in it
    changed = git("diff", "--name-only", f"{rev}...HEAD") + git("diff", "--name-only", "HEAD") + \
        git("ls-files", "--others", "--exclude-standard", "--full-name")
    for name in changed.splitlines():
        parts = Path(name).parts
        for i in range(len(parts) - 1):
            if parts[i] == "plugins" and (top.joinpath(*parts[:i + 2]) / SPEC_FILE).is_file() \
                    and parts[i + 1] not in ids:
                ids.append(parts[i + 1])
                break
    done = [run_conformance(ws, plugin_id, reports=reports) for plugin_id in sorted(ids)]
    return ConformanceSet(f"changed since {rev}", __version__, list(SUPPORTED_SDK_VERSIONS), done,
                          {r.plugin: _declared_sdk(r.folder) for r in done})

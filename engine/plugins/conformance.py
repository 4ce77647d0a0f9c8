"""Plugin conformance: the levels a plugin meets, checked for real (``engine conformance ID``).

Levels are cumulative, L0 first; a run goes from L0 up to the level asked for (``--level``), else the
plugin's declared ``conformance_level`` (``plugin.spec.json``), else L5. Built so far:

- **L0 static**: the plugin loads (``check_plugin``: spec and manifest against ``contracts/plugin.v1.json``
  and each other, containment, the entry point imported in a worker), its manifest carries a
  ``source_digest`` equal to the source on disk, and its ``src/`` is clean under ruff and mypy, run as
  subprocesses of the engine's own interpreter with the engine's settings, whatever configuration files
  lie around the plugin: ruff with the rules of the engine's ``pyproject.toml`` (``RUFF_ARGS``), mypy
  with ``MYPY_ARGS``: every function annotated and every body checked, but not ``--strict`` (whose
  ``warn_return_any`` and friends mostly flag plugin code that reads untyped JSON). Caches go to a
  temporary folder: nothing is written into the plugin folder, whose digest would change.
- **L1 golden fixtures**: each ``conformance/fixtures/<operation>/<name>.input.json`` with its
  ``<name>.output.json``: the input valid against the operation's ``input_schema``, the expected output
  against its ``output_schema``, and the operation called for real through the engine's dispatch
  (``Dispatcher`` and a ``WorkerPool``) in a worker process, also for an ``inprocess`` plugin, so that
  nothing the plugin does can end this command, with a fixed context (``FIXED_NOW``, seed 0, run id
  ``conformance``, task id the fixture's name, not WhatIf, an empty temporary ``workdir``): its output
  must equal the expected one exactly; the first differing JSON path is named.
- **L5 security**: the workspace's own policies (``policies/*.rego``) evaluated on what the plugin asks
  for, ``{"phase": "conformance", "plugin": {"id", "category", "whatif"}, "env": [names]}`` (so the
  ``forbidden_env`` and ``whatif_required`` rules apply as they would to a task), plus checks in Python:
  ``credential_env_needs_network`` (a credential-looking variable is for a network service: the plugin
  must declare the ``network`` side effect), ``inprocess_is_pure`` (an in-process plugin gets the
  engine's whole environment and no deadline: only pure transformations, side effects ``none``),
  ``no_secret_files`` (no key, ``.env``, ``.git/`` or ``.ssh/`` in the plugin folder) and
  ``state_change_plans`` (every operation of a ``state_change`` plugin answers with a ``plan``: its
  output_schema requires ``plan``, decision 0011).
- **L2, L3, L4** are not built yet: reported ``skipped`` with that reason, never as passed.

A level is ``passed``, ``failed`` or ``skipped``; the run passes when no level failed, and the plugin
meets its declared level when every level up to it passed. The report document (``as_dict``) is what
``--json`` prints and what is written to ``conformance/reports/<id>-<version>.json`` in the workspace.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.contracts import problems_against
from engine.errors import ContractViolation, EngineError, PluginError, Problem
from engine.plugins.catalog import check_plugin
from engine.plugins.loader import MANIFEST_FILE, SPEC_FILE, LoadedPlugin
from engine.workspace import Workspace

LEVELS = ("L0", "L1", "L2", "L3", "L4", "L5")
NOT_BUILT = {"L2": "not built yet: behaviour tests", "L3": "not built yet: determinism and replay",
             "L4": "not built yet: faults and performance budgets"}
FIXTURES = Path("conformance") / "fixtures"
REPORTS = Path("conformance") / "reports"
FIXED_NOW = datetime(2026, 1, 1, tzinfo=UTC)
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
        """Whether every level up to the declared one passed; None when the plugin declares none."""
        if self.declared is None:
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


def run_conformance(ws: Workspace, plugin_id: str, level: str | None = None) -> ConformanceReport:
    """Run levels L0..``level`` on the plugin the workspace uses for ``plugin_id`` and write the report
    to ``conformance/reports/<id>-<version>.json`` in the workspace."""
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
        "L5": lambda: _level5(ws, plugin),
    }
    results: list[LevelResult] = []
    for name in LEVELS[:LEVELS.index(target) + 1]:
        if name in NOT_BUILT:
            results.append(LevelResult(name, "skipped", NOT_BUILT[name]))
        elif name != "L0" and plugin is None:
            results.append(LevelResult(name, "skipped", "not run: the plugin does not load (see L0)"))
        else:
            results.append(runs[name]())
    version = plugin.version if plugin else (raw_spec.get("version") if isinstance(raw_spec.get("version"), str)
                                             else None)
    report = ConformanceReport(plugin.id if plugin else plugin_id, version, folder, declared, target, results)
    if folder is None:  # nothing to report on: no report file named after a plugin that does not exist
        return report
    path = ws.root / REPORTS / f"{report.plugin}-{version or 'unknown'}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    report = replace(report, written=path)
    path.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    return report


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
        why = f"not run: no fixtures in {plugin.folder / FIXTURES}/<operation>/<name>.input.json"
        if requires:
            return LevelResult("L1", "failed", why, [Problem(
                "the plugin declares a conformance level that includes L1 but has no golden fixtures: add "
                "<operation>/<name>.input.json and <name>.output.json", file=str(plugin.folder / FIXTURES))])
        return LevelResult("L1", "skipped", why)
    from engine.plugins.dispatch import Dispatcher
    from engine.plugins.pool import WorkerPool

    # in a worker even when the plugin runs in process in the kernel: a fixture must not end this command
    isolated = replace(plugin, spec=plugin.spec.model_copy(update={"isolation": "process"}))
    pool = WorkerPool(ws.root if ws.root.is_dir() else Path.cwd())
    dispatcher = Dispatcher(pool)
    found: list[Problem] = []
    try:
        with tempfile.TemporaryDirectory(prefix="engine-conformance-") as workdir:
            for operation, name, input_path in cases:
                found += _fixture(dispatcher, isolated, operation, name, input_path, Path(workdir))
    finally:
        pool.close()
    summary = f"{len(cases)} fixture(s) reproduced" if not found else f"{len(found)} problem(s) in {len(cases)} " \
                                                                      "fixture(s)"
    return LevelResult("L1", "failed" if found else "passed", summary, found)


def _fixture(dispatcher: Any, plugin: LoadedPlugin, operation: str, name: str, input_path: Path,
             workdir: Path) -> list[Problem]:
    import structlog

    from engine.sdk import Context

    output_path = input_path.with_name(f"{name}.output.json")
    spec_file = str(plugin.folder / SPEC_FILE)
    if operation not in plugin.spec.operations:
        return [Problem(f"fixture folder {operation!r} names no operation of the plugin (it has: "
                        f"{', '.join(plugin.spec.operations)}); rename the folder", file=str(input_path.parent))]
    found: list[Problem] = []
    data, expected = _fixture_json(input_path, found), _fixture_json(output_path, found)
    if found:
        return found
    op = plugin.spec.operations[operation]
    for p in problems_against(op.input_schema, data):
        found.append(Problem(f"input does not match $.operations.{operation}.input_schema of {spec_file}: "
                             f"{p.message}", file=str(input_path), path=p.path))
    for p in problems_against(op.output_schema, expected):
        found.append(Problem(f"expected output does not match $.operations.{operation}.output_schema of "
                             f"{spec_file}: {p.message}", file=str(output_path), path=p.path))
    if found:
        return found
    ctx = Context(run_id="conformance", task_id=name, now=FIXED_NOW, seed=0, whatif=False, workdir=workdir,
                  log=structlog.get_logger("engine").bind(plugin=plugin.id, conformance=True))
    try:
        actual = dispatcher.call(plugin, operation, ctx, data)
    except (ContractViolation, PluginError) as e:
        detail = "; ".join(str(p) for p in e.problems)
        return [Problem(f"{plugin.id}.{operation} failed on this input: {e.message}{': ' + detail if detail else ''}",
                        file=str(input_path))]
    except EngineError as e:
        return [Problem(f"{plugin.id}.{operation} could not be called: {e.message}", file=str(input_path))]
    difference = first_difference(expected, actual)
    if difference is None:
        return []
    path, want, got = difference
    return [Problem(f"{plugin.id}.{operation} returned {_short(got)} where {output_path.name} expects {_short(want)}; "
                    "fix the plugin, or the expected output if the change is intended", file=str(output_path),
                    path=path)]


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

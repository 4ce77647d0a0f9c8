"""Run OPA's own conformance cases (and our policies' cases) through the embedded Rego evaluators.

    python conformance/opa_cases.py CASES_DIR [--engine NAME ...] [--case PATTERN] [--verbose]
    python conformance/opa_cases.py --policy-cases tests/unit/test_policy.py [--engine NAME ...]

``CASES_DIR`` holds YAML files in the format of OPA's ``test/cases/testdata/v1/**.yaml`` (github.com/
open-policy-agent/opa): each file has ``cases``, each case a ``note``, a ``query`` (``data.test.p = x``),
``modules`` (Rego v1 source), optional ``data``, ``input`` or ``input_term``, and either ``want_result``
(a list of bindings; ``[]`` for undefined) or ``want_error`` / ``want_error_code``. The cases are not
part of this repository: point the script at a folder of them.

The engines (each is skipped with a note when its package is not installed):

- ``regorus``: ``regorus.Engine`` (pip ``celine-regorus``, bindings of microsoft/regorus), Rego v1 mode;
- ``regopy``: ``regopy.Interpreter`` (pip ``regopy``, bindings of microsoft/rego-cpp);
- ``opa-eval``: ``opa_eval.OpaEval`` (pip ``opa-eval``, regorus underneath): one policy file per
  evaluator and a rule path as the query, as its API allows; a case it cannot express fails;
- ``opa-eval+import``: the same, with ``import rego.v1`` added after each ``package`` line (its parser
  reads Rego v0 unless told), to show what the package does with help.

How a case is judged, as OPA's own runner does: the engine's bindings for the query's variables are
compared, as JSON, with ``want_result`` (``sort_bindings`` sorts arrays in bindings first; a set is an
array in Rego's order). A case that wants an error passes when the engine reports one. One line per
case (``PASS``/``FAIL``/``ERROR`` note: detail), a total per engine and a last line ``N passed, M failed``
summed over the engines. ``--json`` prints one JSON object of totals per engine as the last line.

``--policy-cases tests/unit/test_policy.py`` instead loads ``policies/*.rego`` (or ``--policies DIR``)
into each engine and runs the ``CASES`` of that test module: for each, the input and
``data.engine.config`` it gives, the messages of ``data.engine.security.deny`` and
``data.engine.compliance.deny`` it expects and, where it lists them, the secrets it expects.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
QUERY_VAR = re.compile(r"\b([a-z_][a-zA-Z0-9_]*)\b")
RULE_QUERY = re.compile(r"^(data(?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*=\s*([a-z_][A-Za-z0-9_]*)$")


class EngineError(Exception):
    """The engine reported an error (parse, compile or evaluation)."""


class Unsupported(Exception):
    """The engine's API cannot express this case."""


@dataclass
class Case:
    note: str
    query: str
    modules: list[str]
    data: Any = None
    input: Any = None
    has_input: bool = False
    want_result: list[dict[str, Any]] | None = None
    want_error: bool = False
    strict_error: bool = False
    sort_bindings: bool = False
    file: str = ""


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    order_only: int = 0  # passed only once arrays were compared as multisets (reported, counted failed)
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)


# -- Rego value order and normalisation -----------------------------------------------------------

def _rank(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    if isinstance(value, list):
        return (4, [_rank(v) for v in value])
    if isinstance(value, dict):
        return (5, sorted((_rank(k), _rank(v)) for k, v in value.items()))
    return (6, repr(value))


def normalise(value: Any) -> Any:
    """Engine output as plain JSON data: sets become arrays in Rego's order, keys become strings."""
    if isinstance(value, set | frozenset):
        return sorted((normalise(v) for v in value), key=_rank)
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else json.dumps(normalise(k), separators=(",", ":"))): normalise(v)
                for k, v in value.items()}
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _sorted_arrays(value: Any) -> Any:
    if isinstance(value, list):
        return sorted((_sorted_arrays(v) for v in value), key=_rank)
    if isinstance(value, dict):
        return {k: _sorted_arrays(v) for k, v in value.items()}
    return value


def query_vars(query: str) -> list[str]:
    """The variables a query binds: names in it that are not ``data``/``input`` refs, keywords or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|`[^`]*`', "", query)
    text = re.sub(r"\b(?:data|input)(?:\.[A-Za-z_][A-Za-z0-9_]*)*", "", text)
    keywords = {"true", "false", "null", "not", "with", "as", "some", "in", "every", "if", "contains"}
    return sorted({m for m in QUERY_VAR.findall(text) if m not in keywords and not m.startswith("__")})


# -- the engines --------------------------------------------------------------------------------------

Runner = Callable[[Case], list[dict[str, Any]]]


def _package_name(module: str) -> str:
    match = re.search(r"^\s*package\s+([A-Za-z0-9_.]+)", module, re.MULTILINE)
    return match.group(1) if match else "unknown"


def run_regorus(case: Case) -> list[dict[str, Any]]:
    import regorus

    engine = regorus.Engine()
    engine.set_rego_v0(False)
    try:
        for index, module in enumerate(case.modules):
            engine.add_policy(f"test-{index}.rego", module)
        if case.data is not None:
            engine.add_data_json(json.dumps(case.data))
        if case.has_input:
            engine.set_input_json(json.dumps(case.input))
        answer = json.loads(engine.eval_query_as_json(case.query))
    except RuntimeError as e:
        raise EngineError(str(e).split("Stack backtrace")[0].strip()) from e
    wanted = query_vars(case.query)
    return [{k: normalise(v) for k, v in row.get("bindings", {}).items() if k in wanted}
            for row in answer.get("result", [])]


def run_regopy(case: Case) -> list[dict[str, Any]]:
    import regopy

    rego = regopy.Interpreter()
    rego.strict_built_in_errors = case.strict_error
    try:
        for index, module in enumerate(case.modules):
            rego.add_module(f"test-{index}.rego", module)
        if case.data is not None:
            rego.add_data_json(json.dumps(case.data))
        if case.has_input:
            rego.set_input_term(json.dumps(case.input))
        output = rego.query(case.query)
    except regopy.RegoError as e:
        raise EngineError(str(e)) from e
    if not output.ok():
        raise EngineError(str(output).strip())
    text = str(output)
    if text == "undefined":
        return []
    rows = json.loads(text)
    rows = rows if isinstance(rows, list) else [rows]
    wanted = query_vars(case.query)
    out = []
    for row in rows:
        if any(v is False for v in row.get("expressions", [])):
            continue
        out.append({k: normalise(v) for k, v in row.get("bindings", {}).items() if k in wanted})
    return out


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """File descriptor 1 to /dev/null for a while (native code writes there, not to sys.stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _run_opa_eval(case: Case, add_import: bool) -> list[dict[str, Any]]:
    import opa_eval

    match = RULE_QUERY.match(case.query.strip())
    if len(case.modules) != 1 or not match:
        raise Unsupported("opa-eval takes one policy file and a rule path as its query")
    module = case.modules[0]
    if add_import:
        module = re.sub(r"^(\s*package\s+[A-Za-z0-9_.]+)", r"\1\nimport rego.v1", module, count=1, flags=re.MULTILINE)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "test-0.rego"
        path.write_text(module, encoding="utf-8")
        try:
            with _quiet_stdout():  # its parser prints a warning for every v1 keyword it reads as a name
                evaluator = opa_eval.OpaEval(str(path), data_json=json.dumps(case.data or {}), query=match.group(1))
                raw = evaluator.evaluate(json.dumps(case.input if case.has_input else None))
        except RuntimeError as e:
            raise EngineError(str(e).split("Stack backtrace")[0].strip()) from e
    value = json.loads(raw)
    if value == "<undefined>":
        return []
    return [{match.group(2): normalise(value)}]


ENGINES: dict[str, tuple[str, Runner]] = {
    "regorus": ("regorus", run_regorus),
    "regopy": ("regopy", run_regopy),
    "opa-eval": ("opa_eval", lambda case: _run_opa_eval(case, add_import=False)),
    "opa-eval+import": ("opa_eval", lambda case: _run_opa_eval(case, add_import=True)),
}


def available(name: str) -> bool:
    module = ENGINES[name][0]
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# -- OPA's case files -------------------------------------------------------------------------------

def load_cases(folder: Path, pattern: str | None) -> list[Case]:
    cases = []
    for path in sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for raw in doc.get("cases", []):
            note = str(raw.get("note", path.stem))
            if pattern and not (fnmatch.fnmatch(note, pattern) or pattern in note):
                continue
            has_input = "input" in raw or "input_term" in raw
            value = raw.get("input")
            if "input_term" in raw:
                value = json.loads(raw["input_term"])  # the cases used here write JSON terms
            cases.append(Case(
                note=note, query=raw["query"], modules=list(raw.get("modules") or []), data=raw.get("data"),
                input=value, has_input=has_input, want_result=raw.get("want_result"),
                want_error=bool(raw.get("want_error") or raw.get("want_error_code")),
                strict_error=bool(raw.get("strict_error")), sort_bindings=bool(raw.get("sort_bindings")),
                file=str(path.relative_to(folder))))
    return cases


def _one_line(message: str) -> str:
    """An engine's (often multi-line, caret-drawing) error as one line: where, then what."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    where = next((line[4:] for line in lines if line.startswith("--> ") or line.startswith("-- ")), "")
    what = next((line for line in lines if line.startswith("error:")), lines[0] if lines else "error")
    return f"{where} {what}".strip()


def judge(case: Case, runner: Runner) -> tuple[str, str, bool]:
    """(PASS|FAIL|ERROR, detail, passed-only-without-array-order)."""
    try:
        got = runner(case)
    except Unsupported as e:
        return "FAIL", f"unsupported: {e}", False
    except EngineError as e:
        if case.want_error:
            return "PASS", "", False
        return "ERROR", _one_line(str(e)), False
    except Exception as e:  # a crash in a binding is a failure of that engine, not of this script
        return "ERROR", f"{type(e).__name__}: {e}", False
    if case.want_error:
        return "FAIL", f"expected an error, got {json.dumps(got)[:200]}", False
    want = [{k: normalise(v) for k, v in row.items()} for row in (case.want_result or [])]
    if case.sort_bindings:
        got = [{k: _sorted_arrays(v) for k, v in row.items()} for row in got]
        want = [{k: _sorted_arrays(v) for k, v in row.items()} for row in want]
    if got == want:
        return "PASS", "", False
    loose = [{k: _sorted_arrays(v) for k, v in row.items()} for row in got] == \
        [{k: _sorted_arrays(v) for k, v in row.items()} for row in want]
    return "FAIL", f"expected {json.dumps(want)[:200]} got {json.dumps(got)[:200]}", loose


# -- our policies -----------------------------------------------------------------------------------

POLICY_QUERY = "s := data.engine.security.deny; c := data.engine.compliance.deny; k := data.engine.security.secrets"


def policy_cases(path: Path, policies: Path) -> list[Case]:
    """The ``CASES`` of ``tests/unit/test_policy.py`` as cases of this script: the policies of
    ``policies``, the case's input and ``data.engine.config``; wanted: its messages (and secrets)."""
    spec = importlib.util.spec_from_file_location("policy_cases", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # the test module imports engine
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    modules = [p.read_text(encoding="utf-8") for p in sorted(policies.glob("*.rego"))]
    out = []
    for raw in module.CASES:
        want: dict[str, Any] = {"d": sorted(raw.deny)}
        if raw.secrets is not None:
            want["k"] = sorted([list(s) for s in raw.secrets])
        out.append(Case(note=raw.name, query=POLICY_QUERY, modules=modules,
                        data={"engine": {"config": raw.data}}, input=raw.input, has_input=True,
                        want_result=[want], file=path.name))
    return out


def policy_runner(runner: Runner) -> Runner:
    """An engine's bindings of POLICY_QUERY as the cases write them: "policy: message" lines, sorted,
    and the secrets as [path, rule, value] when the case checks them."""
    def run(case: Case) -> list[dict[str, Any]]:
        wanted = case.want_result[0] if case.want_result else {}
        out = []
        for row in runner(case):
            got: dict[str, Any] = {"d": sorted([f"security: {m}" for m in row.get("s", [])]
                                               + [f"compliance: {m}" for m in row.get("c", [])])}
            if "k" in wanted:
                got["k"] = sorted([[s.get("path"), s.get("rule"), s.get("value")] for s in row.get("k", [])])
            out.append(got)
        return out
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases_dir", type=Path, nargs="?", help="a folder of OPA case files (YAML)")
    parser.add_argument("--engine", action="append", choices=sorted(ENGINES), help="default: every installed one")
    parser.add_argument("--case", help="only cases whose note matches this glob or contains this text")
    parser.add_argument("--policy-cases", type=Path, help="run our policies' cases (tests/unit/test_policy.py)")
    parser.add_argument("--policies", type=Path, default=ROOT / "policies", help="the folder of our .rego files")
    parser.add_argument("--verbose", action="store_true", help="a line for every case, not only failures")
    parser.add_argument("--json", action="store_true", help="print the totals as one JSON object last")
    args = parser.parse_args(argv)
    os.environ.setdefault("RUST_BACKTRACE", "0")
    if args.policy_cases:
        cases = policy_cases(args.policy_cases, args.policies)
        wrap: Callable[[Runner], Runner] = policy_runner
    elif args.cases_dir and args.cases_dir.is_dir():
        cases = load_cases(args.cases_dir, args.case)
        wrap = lambda runner: runner  # noqa: E731
    else:
        parser.error("give a folder of OPA case files, or --policy-cases FILE")
    names = args.engine or list(ENGINES)
    totals: dict[str, Tally] = {}
    for name in names:
        if not available(name):
            print(f"SKIP [{name}]: package {ENGINES[name][0]!r} is not installed")
            continue
        runner = wrap(ENGINES[name][1])
        tally = Tally()
        start = time.perf_counter()
        for case in cases:
            verdict, detail, loose = judge(case, runner)
            if verdict == "PASS":
                tally.passed += 1
            else:
                tally.failed += 1
                tally.order_only += loose
            if args.verbose or verdict != "PASS":
                tally.lines.append(f"{verdict} [{name}] {case.file}: {case.note}" + (f": {detail}" if detail else ""))
        tally.seconds = time.perf_counter() - start
        totals[name] = tally
        for line in tally.lines:
            print(line)
    print()
    for name, tally in totals.items():
        extra = f" ({tally.order_only} of the failures differ only in array order)" if tally.order_only else ""
        print(f"{name:16} {tally.passed:4} passed, {tally.failed:4} failed of {len(cases)}{extra}  "
              f"[{tally.seconds:.2f} s]")
    passed = sum(t.passed for t in totals.values())
    failed = sum(t.failed for t in totals.values())
    if args.json:
        print(json.dumps({name: {"passed": t.passed, "failed": t.failed, "cases": len(cases),
                                 "seconds": round(t.seconds, 3)} for name, t in totals.items()}))
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Run DMN TCK test cases (github.com/dmn-tck/tck) through ``engine.dmn`` and report what passes.

    python conformance/dmn_tck.py TCK_DIR... [--case PATTERN] [--verbose] [--results CSV]

``TCK_DIR`` holds one folder per case (as ``TestCases/compliance-level-2/`` does); each folder has a
``.dmn`` model and one or more test files (``*-test-01.xml``) in the TCK test-case format
(namespace ``http://www.omg.org/spec/DMN/20160719/testcase``). For every ``resultNode`` of every
``testCase`` this prints one line::

    PASS 0004-simpletable-U 001 Approval Status
    FAIL 0105-feel-math 001 Decision16: expected null got 2
    ERROR 0009-invocation-arithmetic 001 MonthlyPayment: <the engine's message>

then a total per case, the test cases (all of whose result nodes pass) and a last line ``N passed, M
failed`` over result nodes (errors count as failed). ``--results CSV`` also writes the suite's own
results file (one row per testCase, ``SUCCESS`` or ``ERROR``) and ``tck_results.properties`` beside
it. A model that does not load counts every one of its result nodes as failed, with the load message:
the numbers are honest about unsupported features. Exit status 0 when everything passed, 1 otherwise,
2 on bad usage.

Comparison: numbers as decimals, equal or within 1e-8 of each other, as the TCK's own runners compare
(the suite writes rounded irrational results and double-precision loan payments); dates, times,
date-times and durations by value; strings exactly; lists item by item; contexts (``component``) key by key. An
expected value without ``xsi:type`` is compared as text with the result's natural spelling (numbers
still as decimals). Needs nothing but this repository and the TCK folder.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import traceback
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine import dmn  # noqa: E402
from engine.dmn.temporal import KINDS, parse_date, parse_datetime, parse_duration, parse_time  # noqa: E402
from engine.dmn.values import to_json  # noqa: E402
from engine.errors import EngineError  # noqa: E402

TC = "http://www.omg.org/spec/DMN/20160719/testcase"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_NUMBER_TYPES = {"decimal", "double", "float", "integer", "int", "long", "short", "byte", "number"}


@dataclass(frozen=True)
class Untyped:
    """An expected value given as bare text (no ``xsi:type``)."""

    text: str


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    lines: list[str] = field(default_factory=list)
    # per testCase, as the TCK publishes results: (test file stem, testCase id, ok, first problem or "")
    cases: list[tuple[str, str, bool, str]] = field(default_factory=list)


def _tag(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _children(el: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in el if _tag(c) == name]


def parse_value(el: etree._Element, *, expected: bool) -> Any:
    """A TCK ``<value>``/``<component>``/``<list>`` holder as a Python value."""
    values = _children(el, "value")
    components = _children(el, "component")
    lists = _children(el, "list")
    if components:
        return {c.get("name"): parse_value(c, expected=expected) for c in components}
    if lists:
        return [parse_value(item, expected=expected) for item in _children(lists[0], "item")]
    if not values:
        return None
    return _scalar(values[0], expected=expected)


def _scalar(el: etree._Element, *, expected: bool) -> Any:
    if el.get(f"{{{XSI}}}nil") == "true":
        return None
    text = el.text or ""
    xsi_type = el.get(f"{{{XSI}}}type")
    if xsi_type is None:
        if not text.strip() and len(el) == 0:
            return None
        return Untyped(text) if expected else text
    kind = xsi_type.split(":", 1)[-1]
    if kind in _NUMBER_TYPES:
        number = Decimal(text.strip())
        return int(number) if number == number.to_integral_value() and "." not in text else number
    if kind == "boolean":
        return text.strip() == "true"
    if kind == "date":
        return parse_date(text.strip())
    if kind == "dateTime":
        return parse_datetime(text.strip())
    if kind == "time":
        return parse_time(text.strip())
    if kind in ("duration", "dayTimeDuration", "yearMonthDuration"):
        return parse_duration(text.strip())
    return text


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None


NUMBER_TOLERANCE = Decimal("0.00000001")  # what the TCK's own runners allow (CompareValuesUtil, Drools runner)


def _numbers_equal(expected: Decimal, got: Decimal) -> bool:
    """Equal as decimals, or within 1e-8 of each other, as the TCK's own runners compare numbers: the
    suite writes rounded irrational results (``exp(4)`` as ``54.59815003``) and computed its loan payments
    in double precision (they differ from the exact 34-digit result in the 13th digit)."""
    if expected == got:
        return True
    if not expected.is_finite() or not got.is_finite():
        return False
    return abs(expected - got) < NUMBER_TOLERANCE


def _spell(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(to_json(value))


def matches(expected: Any, got: Any) -> bool:
    """Whether a result equals a TCK expected value (see the module docstring)."""
    if isinstance(expected, Untyped):
        if isinstance(got, bool) or got is None:
            return expected.text.strip() == _spell(got)
        exp_num, got_num = _decimal(expected.text), _decimal(got)
        if exp_num is not None and got_num is not None and not isinstance(got, str):
            return _numbers_equal(exp_num, got_num)
        if isinstance(got, str):
            return got == expected.text
        return expected.text.strip() == _spell(got)
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected is got
    exp_num, got_num = _decimal(expected), _decimal(got)
    if isinstance(expected, int | Decimal) and got_num is not None and not isinstance(got, str):
        return exp_num is not None and _numbers_equal(exp_num, got_num)
    if isinstance(expected, dict):
        return isinstance(got, dict) and set(expected) == set(got) and all(
            matches(v, got[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(
            matches(e, g) for e, g in zip(expected, got, strict=True))
    if type(expected) in KINDS:  # Python's temporal types and the engine's own (years past 9999, nanoseconds)
        return type(expected) is type(got) and expected == got
    return bool(expected == got)


def show(value: Any) -> str:
    if isinstance(value, Untyped):
        return repr(value.text)
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return _spell(value)


def _one_line(message: str) -> str:
    return " | ".join(line.strip() for line in str(message).splitlines() if line.strip())


def _test_files(folder: Path) -> list[Path]:
    found = []
    for path in sorted(folder.glob("*.xml")):
        try:
            root = etree.parse(str(path)).getroot()
        except etree.XMLSyntaxError:
            continue
        if etree.QName(root).namespace == TC and etree.QName(root).localname == "testCases":
            found.append(path)
    tests = [p for p in found if "test" in p.stem.lower()]
    return tests or found


def _model_file(folder: Path, root: etree._Element) -> Path | None:
    names = [c.text.strip() for c in root if _tag(c) == "modelName" and c.text]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    models = sorted(folder.glob("*.dmn"))
    own = [m for m in models if m.stem == folder.name]
    return own[0] if own else (models[0] if len(models) == 1 else None)


def run_case(folder: Path, verbose: bool) -> Tally:
    tally = Tally()
    case = folder.name

    def report(ok: bool, line: str) -> None:
        if ok:
            tally.passed += 1
        else:
            tally.failed += 1
        tally.lines.append(line)

    for test_file in _test_files(folder):
        root = etree.parse(str(test_file)).getroot()
        model_path = _model_file(folder, root)
        model = None
        load_error = None
        if model_path is None:
            load_error = "no .dmn model found for this test file"
        else:
            try:
                model = dmn.load(model_path)
            except EngineError as e:
                problems = getattr(e, "problems", None) or []
                load_error = "; ".join(_one_line(p.message) for p in problems) or _one_line(str(e))
        for test in _children(root, "testCase"):
            tid = test.get("id") or "?"
            results = _children(test, "resultNode")
            before = len(tally.lines)
            run_test(case, tid, test, results, model, load_error, report, verbose)
            bad = [line for line in tally.lines[before:] if not line.startswith("PASS ")]
            tally.cases.append((test_file.stem, tid, not bad, bad[0].split(": ", 1)[-1] if bad else ""))
    if not tally.lines:
        report(False, f"ERROR {case} - -: no test file in the TCK format")
    return tally


def run_test(case: str, tid: str, test: etree._Element, results: list[etree._Element], model: Any,
             load_error: str | None, report: Any, verbose: bool) -> None:
    """Every result node of one testCase, each reported PASS, FAIL or ERROR."""
    if model is None:
        for node in results:
            report(False, f"ERROR {case} {tid} {node.get('name')}: model does not load: {load_error}")
        return
    context: dict[str, Any] = {}
    for node in _children(test, "inputNode"):
        context[node.get("name") or ""] = parse_value(node, expected=False)
    for node in results:
        name = node.get("name") or ""
        holder = next((c for c in node if _tag(c) in ("expected", "computed")), None)
        want_error = node.get("errorResult") == "true"
        expected = parse_value(holder, expected=True) if holder is not None else None
        try:
            got = model.evaluate(name, context).value
        except EngineError as e:
            if want_error:
                report(True, f"PASS {case} {tid} {name}")
            else:
                detail = "\n" + traceback.format_exc() if verbose else ""
                report(False, f"ERROR {case} {tid} {name}: {_one_line(str(e))}{detail}")
            continue
        except Exception as e:  # a crash is a finding, not a reason to stop the run
            detail = "\n" + traceback.format_exc() if verbose else ""
            report(False, f"ERROR {case} {tid} {name}: crash {type(e).__name__}: {e}{detail}")
            continue
        if matches(expected, got) or (want_error and got is None):
            report(True, f"PASS {case} {tid} {name}")
        else:
            extra = f" (inputs {show(context)})" if verbose else ""
            report(False, f"FAIL {case} {tid} {name}: expected {show(expected)} got {show(got)}{extra}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tck_dirs", type=Path, nargs="+", metavar="TCK_DIR",
                        help="folders of TCK case folders, e.g. TestCases/compliance-level-2 and -3")
    parser.add_argument("--case", help="only cases whose folder name matches this glob or contains this text")
    parser.add_argument("--verbose", action="store_true", help="tracebacks for errors, inputs for failures")
    parser.add_argument("--results", type=Path, metavar="CSV",
                        help="also write the TCK's results file (one row per testCase, as "
                             "TestResults/<engine>/<version>/tck_results.csv) and tck_results.properties beside it")
    args = parser.parse_args(argv)
    totals: list[tuple[str, Tally]] = []
    for tck_dir in args.tck_dirs:
        if not tck_dir.is_dir():
            parser.error(f"{tck_dir} is not a directory")
        folders = sorted(p for p in tck_dir.iterdir() if p.is_dir() and any(p.glob("*.dmn")))
        if args.case:
            folders = [p for p in folders if fnmatch.fnmatch(p.name, args.case) or args.case in p.name]
        for folder in folders:
            tally = run_case(folder, args.verbose)
            totals.append((f"{tck_dir.name}/{folder.name}", tally))
            for line in tally.lines:
                print(line)
    print()
    for name, tally in totals:
        mark = "ok  " if tally.failed == 0 else "FAIL"
        print(f"{mark} {name}: {tally.passed} passed, {tally.failed} failed")
    passed = sum(t.passed for _, t in totals)
    failed = sum(t.failed for _, t in totals)
    full = sum(1 for _, t in totals if t.failed == 0)
    tests = [c for _, t in totals for c in t.cases]
    print(f"cases: {full} of {len(totals)} pass fully")
    print(f"test cases: {sum(1 for c in tests if c[2])} of {len(tests)} pass")
    print(f"{passed} passed, {failed} failed")
    if args.results is not None:
        write_results(args.results, totals)
    return 0 if failed == 0 else 1


def write_results(path: Path, totals: list[tuple[str, Tally]]) -> None:
    """The TCK's own results format: ``"<level>/<case>","<test file>","<testCase id>","SUCCESS|ERROR","<why>"``
    per testCase, and the product's ``tck_results.properties``."""
    from engine import __version__

    def quoted(*cells: str) -> str:
        return ",".join('"' + cell.replace('"', "'").replace("\n", " ") + '"' for cell in cells)

    rows = [quoted(case, stem, tid, "SUCCESS" if ok else "ERROR", "" if ok else why[:200])
            for case, tally in totals for stem, tid, ok, why in tally.cases]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    properties = {  # the vendor and product URLs are the publisher's to fill in before a pull request
        "vendor.name": "the engine project", "vendor.url": "",
        "product.name": "engine.dmn (Python)", "product.url": "",
        "product.version": __version__,
        "product.comment": "A DMN engine in Python, part of the engine workflow engine; FEEL compiled to closures.",
        "last.update": date.today().isoformat(),
        "instructions.url": "docs/dmn-conformance.md"}
    (path.parent / "tck_results.properties").write_text(
        "".join(f"{key}={value.replace(':', chr(92) + ':')}\n" for key, value in properties.items()), encoding="utf-8")

if __name__ == "__main__":
    sys.exit(main())

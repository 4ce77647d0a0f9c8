"""contract-validator: JSON, JSON Lines and YAML documents checked against one of the engine's contracts
(``task.v1``, ``plugin.v1``, ``ledger.v1``), answered as a quality-gate verdict with one finding per
problem, each with its JSON path and, where it can be told, its line.

``task.v1`` is checked by the engine itself (``engine.sdk.task_problems``); the other contracts are read
from the engine's bundled ``contracts/`` folder and checked with jsonschema here, with the same draft,
``$ref`` registry and format checks as the engine's own validation. A contract part can be named with a
fragment: ``plugin.v1#/$defs/manifest`` checks a ``manifest.json``.

It only reads: files are parsed, never written, so WhatIf runs it as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import engine.sdk
from engine.sdk import Context, PluginError, task_problems, verdict

CHECK = "contract-validator"
JSON_LINES = (".jsonl", ".ndjson")
YAML = (".yaml", ".yml")
CHECKED = (".json", *JSON_LINES, *YAML)  # the changed files this check looks at
MAX_LINE_MAP = 2_000_000  # larger documents are checked without line numbers
PATTERN = "*?["

Problems = Callable[[Any], list[tuple[str, str]]]  # a document -> [(JSON path, message)]


def _args(data: Mapping[str, Any]) -> Mapping[str, Any]:
    task = data.get("task")
    args = task.get("args") if isinstance(task, Mapping) else None
    return args if isinstance(args, Mapping) else {}


def _contracts() -> Path:
    """The engine's contracts: in an installed engine ``engine/_bundled/contracts``, in a source checkout
    the repository's ``contracts/``."""
    package = Path(engine.sdk.__file__).resolve().parent
    for folder in (package / "_bundled" / "contracts", package.parent / "contracts"):
        if folder.is_dir():
            return folder
    raise PluginError(f"the engine's contracts are not found next to {package}; reinstall the engine",
                      retryable=False)


def _split(problem: str) -> tuple[str, str]:
    path, sep, message = problem.partition(": ")
    return (path, message) if sep and path.startswith("$") else ("$", problem)


def _json_path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _checker(contract: str) -> Problems:
    name, _, fragment = contract.partition("#")
    folder = _contracts()
    known = sorted(p.stem for p in folder.glob("*.json"))
    if name not in known:
        raise PluginError(f"task.args.contract {contract!r} names no contract; known: {', '.join(known)}",
                          retryable=False)
    if name == "task.v1" and not fragment:
        return lambda document: [_split(p) for p in task_problems(document)]
    import jsonschema
    from referencing import Registry, Resource

    schemas = {n: json.loads((folder / f"{n}.json").read_text(encoding="utf-8")) for n in known}
    registry: Registry[Any] = Registry().with_resources(
        [(s["$id"], Resource.from_contents(s)) for s in schemas.values() if isinstance(s, dict) and "$id" in s])
    root = schemas[name]
    target = {"$ref": f"{root['$id']}#{fragment}"} if fragment else root
    if fragment:
        from referencing.exceptions import Unresolvable

        try:
            registry.resolver().lookup(target["$ref"])
        except Unresolvable as e:
            raise PluginError(f"task.args.contract {contract!r}: {name} has no part {fragment!r}",
                              retryable=False) from e
    cls = jsonschema.validators.validator_for(root)
    validator = cls(target, registry=registry, format_checker=cls.FORMAT_CHECKER)

    def problems(document: Any) -> list[tuple[str, str]]:
        errors = sorted(validator.iter_errors(document), key=lambda e: (list(map(str, e.absolute_path)), e.message))
        return [(_json_path(e.absolute_path), e.message) for e in errors]

    return problems


def _path_parts(path: str) -> list[str | int]:
    """``$.a.b[0]`` as ``["a", "b", 0]``."""
    import re

    return [int(index) if index else key for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path)]


def _line(node: Any, path: str) -> int | None:
    """The line of the value at ``path`` in a composed YAML (or JSON) node, or of its nearest parent."""
    import yaml

    if node is None:
        return None
    for part in _path_parts(path):
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), node)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
    return int(node.start_mark.line) + 1


def _nodes(text: str) -> list[Any]:
    """The composed documents of ``text`` (for line numbers only), or [] when YAML cannot read it."""
    import yaml

    if len(text) > MAX_LINE_MAP:
        return []
    try:
        return list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return []


class _Unreadable(Exception):
    def __init__(self, rule: str, line: int | None, message: str) -> None:
        super().__init__(message)
        self.rule, self.line, self.message = rule, line, message


def _at(line: int) -> Callable[[str], int | None]:
    """A line finder giving ``line`` for every path (a document on one line)."""
    return lambda _path: line


def _finder(node: Any) -> Callable[[str], int | None]:
    """A line finder over the composed ``node`` (None: no line for any path)."""
    return lambda path: _line(node, path)


def _documents(path: Path) -> Iterator[tuple[Any, Callable[[str], int | None], str]]:
    """(document, its line finder, a label) for each document of a file."""
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix in JSON_LINES:
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                document = json.loads(raw)
            except json.JSONDecodeError as e:
                raise _Unreadable("json", number, f"line {number} is not JSON: {e.msg}") from e
            yield document, _at(number), ""
        return
    if suffix in YAML:
        import yaml

        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise _Unreadable("yaml", mark.line + 1 if mark else None, f"not YAML: {e}") from e
        nodes = _nodes(text)
        for index, document in enumerate(documents):
            node = nodes[index] if index < len(nodes) else None
            yield document, _finder(node), f"document {index + 1}" if len(documents) > 1 else ""
        return
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise _Unreadable("json", e.lineno, f"not JSON: {e.msg} (column {e.colno})") from e
    nodes = _nodes(text)
    node = nodes[0] if len(nodes) == 1 else None
    yield document, _finder(node), ""


def _inside(name: str, field: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or ".." in parts:
        raise PluginError(f"{field}: {name!r} is not inside the repository; name files relative to it",
                          retryable=False)


def _targets(workdir: Path, args: Mapping[str, Any], files: list[Any] | None) -> tuple[list[str], list[str]]:
    """(the files to check, those named in task.args.files that do not exist)."""
    root = workdir.resolve()
    named = args.get("files")
    chosen: list[str] = []
    missing: list[str] = []
    if named is not None:
        if isinstance(named, str):
            named = [named]
        if not isinstance(named, list) or not all(isinstance(n, str) and n for n in named):
            raise PluginError("task.args.files must be a list of paths or glob patterns in the repository",
                              retryable=False)
        for name in named:
            _inside(name, "task.args.files")
            if any(c in name for c in PATTERN):
                chosen += [p.relative_to(workdir).as_posix() for p in sorted(workdir.glob(name)) if p.is_file()]
            elif (workdir / name).is_file():
                chosen.append(Path(name).as_posix())
            else:
                missing.append(name)
    elif files is not None:
        for name in map(str, files):
            _inside(name, "files")
            if Path(name).suffix.lower() in CHECKED and (workdir / name).is_file():
                chosen.append(Path(name).as_posix())
    for name in chosen:
        if not (workdir / name).resolve().is_relative_to(root):
            raise PluginError(f"{name!r} leads outside the repository through a symlink", retryable=False)
    return sorted(set(chosen)), missing


def _finding(contract: str, file: str | None, line: int | None, path: str | None, message: str,
             rule: str | None = None, label: str = "") -> dict[str, Any]:
    where = " ".join(part for part in (label, path) if part)
    text = f"{where}: {message}" if where else message
    return {"tool": CHECK, "file": file, "line": line, "rule": rule or contract, "path": path,
            "message": text[:1000]}


def _verdict(passed: bool, summary: str, findings: list[dict[str, Any]], counts: dict[str, int], *,
             skipped: bool = False) -> dict[str, Any]:
    return {"verdict": verdict(CHECK, passed, summary, findings, counts, skipped=skipped)}


def check(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``task.args.files`` (paths or glob patterns), else ``task.args.data`` (one document), else the
    JSON/YAML files among ``data.files`` (the changed paths) against ``task.args.contract``."""
    args = _args(data)
    contract = args.get("contract")
    if contract is None:
        return _verdict(False, "skipped: the task names no contract (task.args.contract)", [], {"documents": 0},
                        skipped=True)
    if not isinstance(contract, str) or not contract:
        raise PluginError("task.args.contract must name a contract: task.v1, plugin.v1 or ledger.v1",
                          retryable=False)
    problems_of = _checker(contract)
    workdir = Path(ctx.workdir)
    findings: list[dict[str, Any]] = []
    counts = {"files": 0, "documents": 0, "invalid": 0, "missing": 0, "problems": 0}
    if args.get("files") is None and "data" in args:
        found = problems_of(args["data"])
        counts.update(documents=1, invalid=int(bool(found)))
        findings = [_finding(contract, None, None, path, message) for path, message in found]
    else:
        files = data.get("files")
        targets, missing = _targets(workdir, args, None if files is None else list(files))
        if not targets and not missing:
            return _verdict(True, "no JSON or YAML files to check", [], counts)
        findings += [_finding(contract, name, None, None, "no such file", rule="missing") for name in missing]
        counts.update(files=len(targets), missing=len(missing))
        for name in targets:
            try:
                for document, line_of, label in _documents(workdir / name):
                    counts["documents"] += 1
                    found = problems_of(document)
                    counts["invalid"] += int(bool(found))
                    findings += [_finding(contract, name, line_of(path), path, message, label=label)
                                 for path, message in found]
            except _Unreadable as e:
                counts["documents"] += 1
                counts["invalid"] += 1
                findings.append(_finding(contract, name, e.line, None, e.message, rule=e.rule))
            except (OSError, UnicodeDecodeError) as e:
                counts["invalid"] += 1
                findings.append(_finding(contract, name, None, None, f"cannot be read: {e}", rule="unreadable"))
    counts["problems"] = len(findings)
    ctx.log.info("contracts_checked", contract=contract, **counts)
    if not findings:
        return _verdict(True, f"{contract}: {counts['documents']} document(s) conform", [], counts)
    summary = f"{contract}: {len(findings)} problem(s) in {counts['invalid']} of {counts['documents']} document(s)"
    if counts["missing"]:
        summary += f"; {counts['missing']} named file(s) missing"
    return _verdict(False, summary, findings, counts)

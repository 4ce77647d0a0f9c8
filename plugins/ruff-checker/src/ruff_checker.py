"""ruff-checker: ``ruff check`` on the task's changed files (or the whole repository), with the
repository's own settings, answered as a quality-gate verdict.

Ruff runs in ``ctx.workdir`` and finds the repository's ``ruff.toml`` / ``.ruff.toml`` /
``pyproject.toml`` itself: the plugin never passes ``--config``. ``--force-exclude`` applies the
repository's excludes to files named on the command line too, and ``--no-cache`` keeps ``.ruff_cache``
out of the repository: the check writes nothing, so WhatIf runs it as it is.

Ruff is the one on the worker's ``PATH``, else the engine's own (``python -m ruff``: ruff is a runtime
dependency of the engine). With neither, the verdict is ``skipped``, for the tier table to judge.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.sdk import Context, PluginError, run_tool, verdict

CHECK = "ruff-checker"
TOOL = "ruff"
DEFAULT_TIMEOUT = 300.0
LINT = ["check", "--output-format", "json", "--no-cache", "--force-exclude"]


def _args(data: Mapping[str, Any]) -> Mapping[str, Any]:
    task = data.get("task")
    args = task.get("args") if isinstance(task, Mapping) else None
    return args if isinstance(args, Mapping) else {}


def _ruff() -> list[str] | None:
    """The command that starts ruff: the one on PATH, else the engine's own, else None."""
    import shutil

    if shutil.which(TOOL) is not None:
        return [TOOL]
    if importlib.util.find_spec(TOOL) is not None:
        return [sys.executable, "-m", TOOL]
    return None


def _changed(workdir: Path, files: list[Any]) -> list[str]:
    """The changed files that still exist, relative to the repository; a path outside it refuses the call."""
    root = workdir.resolve()
    out: list[str] = []
    for name in map(str, files):
        parts = name.replace("\\", "/").split("/")
        if name.startswith("/") or ".." in parts:
            raise PluginError(f"files: {name!r} is not inside the repository; name files relative to it",
                              retryable=False)
        path = workdir / name
        if not path.resolve().is_relative_to(root):
            raise PluginError(f"files: {name!r} leads outside the repository through a symlink", retryable=False)
        if path.is_file():  # a deleted file has nothing left to check
            out.append(Path(name).as_posix())
    return sorted(set(out))


def _relative(workdir: Path, filename: str) -> str:
    path = Path(filename)
    for root in (workdir, workdir.resolve()):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return filename


def _run(ctx: Context, ruff: list[str], args: list[str], timeout: float) -> tuple[int, str]:
    result = run_tool(ctx, [*ruff, *args], timeout=timeout)
    if result.returncode not in (0, 1):
        raise PluginError(f"ruff exited with code {result.returncode}: {result.tail(2000)}", retryable=False)
    return result.returncode, result.stdout


def _selected(ctx: Context, ruff: list[str], changed: list[str], timeout: float) -> list[str]:
    """The changed files ruff would check when it looks at the whole repository (its ``include``,
    ``extend-include``, ``exclude`` and ``.gitignore``): ruff checks any file named on its command line,
    a README included."""
    _, listing = _run(ctx, ruff, ["check", "--show-files", "--no-cache", "--force-exclude"], timeout)
    known = {_relative(ctx.workdir, line.strip()) for line in listing.splitlines() if line.strip()}
    return [name for name in changed if name in known]


def _finding(workdir: Path, item: Mapping[str, Any]) -> dict[str, Any]:
    location = item.get("location") or {}
    row = location.get("row") if isinstance(location, Mapping) else None
    code = item.get("code")
    return {"tool": TOOL, "file": _relative(workdir, str(item.get("filename", ""))) or None,
            "line": row if isinstance(row, int) and row > 0 else None,
            "rule": str(code) if code else None, "message": str(item.get("message", ""))[:1000]}


def _safe_fix(item: Any) -> bool:
    """Whether ``ruff check --fix`` would fix the diagnostic (a fix ruff marks unsafe needs --unsafe-fixes)."""
    fix = item.get("fix") if isinstance(item, Mapping) else None
    return isinstance(fix, Mapping) and fix.get("applicability", "safe") == "safe"


def _verdict(passed: bool, summary: str, findings: list[dict[str, Any]], counts: dict[str, int], *,
             skipped: bool = False) -> dict[str, Any]:
    return {"verdict": verdict(CHECK, passed, summary, findings, counts, skipped=skipped)}


def check(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """``ruff check`` on ``data.files`` (the changed paths) or, when it is null, the whole repository."""
    timeout = float(_args(data).get("timeout_sec") or DEFAULT_TIMEOUT)
    workdir = Path(ctx.workdir)
    ruff = _ruff()
    if ruff is None:
        return _verdict(False, "skipped: ruff not found", [], {"findings": 0}, skipped=True)
    files = data.get("files")
    targets: list[str] = []
    if files is not None:
        changed = _changed(workdir, list(files))
        targets = _selected(ctx, ruff, changed, timeout) if changed else []
        if not targets:
            return _verdict(True, f"no Python files among the {len(files)} changed file(s)", [],
                            {"findings": 0, "fixable": 0, "files_with_findings": 0, "files": 0})
    code, out = _run(ctx, ruff, [*LINT, *(["--", *targets] if targets else [])], timeout)
    try:
        items = json.loads(out or "[]")
    except json.JSONDecodeError as e:
        raise PluginError(f"ruff printed something that is not its JSON report: {out[:500]!r}",
                          retryable=False) from e
    if not isinstance(items, list):
        raise PluginError("ruff's JSON report is not a list of diagnostics", retryable=False)
    findings = sorted((_finding(workdir, i) for i in items if isinstance(i, Mapping)),
                      key=lambda f: (f["file"] or "", f["line"] or 0, f["rule"] or ""))
    counts = {"findings": len(findings), "fixable": sum(1 for i in items if _safe_fix(i)),
              "files_with_findings": len({f["file"] for f in findings})}
    if files is not None:
        counts["files"] = len(targets)
    where = f"{len(targets)} file(s)" if files is not None else "the repository"
    ctx.log.info("ruff_checked", exit_code=code, findings=len(findings), where=where)
    if code == 0 and not findings:
        return _verdict(True, f"ruff: no findings in {where}", [], counts)
    rules = sorted({f["rule"] or "?" for f in findings})
    return _verdict(False, f"ruff: {len(findings)} finding(s) in {where} ({', '.join(rules[:10])})", findings,
                    counts)


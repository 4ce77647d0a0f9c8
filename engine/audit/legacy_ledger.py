"""The old worker's ledger: one line per task attempt, ``{ts, id, tool, attempt, exit, ok, repo}``.

During a migration (``[ledger] dual_write = true``) the kernel also appends, after each task's outcome is
recorded, the lines the old PowerShell QueueWorker would have written for it, so that scripts and people
reading the old ledger keep working. The hash-chained ledger (``engine.ledger``) stays the record; this
file is a translation of it, written the same way the queue's durable writes are (each batch of lines
one ``write`` with ``O_APPEND``, then ``fsync``; the folder fsync'd when the file is made) and through
``engine.redact``: no secret is ever written to it.

Exit codes keep the old meanings (``EXIT_*``): 0 done; 403 refused by a policy or by confinement; 999 a
bad task line (one line per bad line: the file ran nothing); 127 the tool's executable is missing; 998 a
timeout (``engine.timeout``); otherwise the tool's own exit code when the plugin's error or output carries
one (``<tool> exited with code N``, ``exit_code``), else 1.

Attempts are the calls of the process's ``dispatch`` step (``Execute`` in the shipped model), read from
the run's ``outputs.jsonl``: a call that failed and was retried is an attempt of its own; the last
attempt's line carries the task's outcome. A task that ended before any attempt (refused, invalid, no
plugin) gets one line, attempt 1. Attempts made by an earlier run of a task that was resumed (after a
stop or a crash) are in that run's outputs and not counted again: the resumed task's lines start at 1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from engine.durable import append_durably
from engine.redact import redact

FIELDS = ("ts", "id", "tool", "attempt", "exit", "ok", "repo")
EXIT_OK = 0
EXIT_FAILED = 1  # a failure that carries no exit code of its own
EXIT_NOT_FOUND = 127
EXIT_REJECTED = 403
EXIT_TIMEOUT = 998
EXIT_BAD_JSON = 999

TIMEOUT_CODES = frozenset({"engine.timeout"})
REFUSED_CODES = frozenset({"engine.policy_denied", "NOT_ALLOWED", "EXECUTABLE_NOT_ALLOWED"})
# The SDK's run_tool says "<tool> not found on PATH" (without a code) when a tool's executable is missing;
# a plugin that declares a code for it in its plugin.spec.json `errors` uses one of these names.
MISSING_CODES = frozenset({"TOOL_NOT_FOUND", "EXECUTABLE_NOT_FOUND", "COMMAND_NOT_FOUND", "NOT_FOUND"})
_MISSING = re.compile(r"\bnot found (?:on PATH|in the repository)\b|\bexecutable not found\b")
# command-runner's refusal of an executable [plugins] command_runner_allow does not name: a policy's refusal.
_NOT_ALLOWED = re.compile(r"\bis not an executable this workspace allows\b")
_EXITED = re.compile(r"\bexited with (?:exit )?code (-?\d+)")
# The reasons engine.process.runtime gives a task refused before its first step.
_REFUSED = ("denied by policy", "task field ")


@dataclass(frozen=True)
class Attempt:
    """One old-format line, without its time."""

    attempt: int
    exit: int
    ok: bool


def call_exit(call: Mapping[str, Any]) -> int:
    """The old exit code of one failed plugin call (an entry of a run's ``outputs.jsonl``)."""
    error = call.get("error") if isinstance(call.get("error"), Mapping) else {}
    code = str((error or {}).get("code") or "")
    reason = str(call.get("reason") or "")
    if code in TIMEOUT_CODES:
        return EXIT_TIMEOUT
    if code.upper() in REFUSED_CODES or code in REFUSED_CODES or _NOT_ALLOWED.search(reason):
        return EXIT_REJECTED
    if code.upper() in MISSING_CODES or _MISSING.search(reason):
        return EXIT_NOT_FOUND
    found = _EXITED.search(reason)
    if found and int(found.group(1)) != 0:
        return int(found.group(1))
    output = call.get("output")
    if isinstance(output, Mapping) and isinstance(output.get("exit_code"), int) and output["exit_code"] != 0:
        return int(output["exit_code"])
    return EXIT_FAILED


def attempts(status: str, reason: str | None, calls: Sequence[Mapping[str, Any]], attempt_steps: Iterable[str]
             ) -> list[Attempt]:
    """The old lines of one task that ended ``status`` (done, failed, quarantine), given its plugin calls in
    order (``outputs.jsonl`` entries) and the ids of the steps whose calls are attempts."""
    steps = set(attempt_steps)
    tries = [c for c in calls if c.get("step") in steps]
    lines = [Attempt(n, call_exit(c), False) for n, c in enumerate(tries[:-1], start=1) if "error" in c]
    number = len(tries) or 1
    if status == "done":
        return [*lines, Attempt(number, EXIT_OK, True)]
    if not tries and (reason or "").startswith(_REFUSED):
        return [Attempt(1, EXIT_REJECTED, False)]
    failed = [c for c in calls if "error" in c]
    return [*lines, Attempt(number, call_exit(failed[-1]) if failed else EXIT_FAILED, False)]


def old_line(ts: str, task_id: str, tool: str | None, repo: str | None, attempt: Attempt) -> dict[str, Any]:
    """One line of the old ledger, in its field order, redacted."""
    line = {"ts": ts, "id": task_id, "tool": tool, "attempt": attempt.attempt, "exit": attempt.exit,
            "ok": attempt.ok, "repo": repo}
    return dict(redact(line))


def bad_lines(raw: bytes, lines: Iterable[int | None], file_name: str) -> list[tuple[str, str | None, str | None]]:
    """(id, tool, repo) of each bad line of a task file that failed to parse: what the line says when it is a
    JSON object, else ``<file>:<line>`` as its id (``<file>`` for a problem of the whole file)."""
    text = raw.decode("utf-8-sig", "replace").split("\n")
    out: list[tuple[str, str | None, str | None]] = []
    for number in sorted(set(lines), key=lambda n: (n is None, n or 0)):
        if number is None:
            out.append((file_name, None, None))
            continue
        try:
            body = json.loads(text[number - 1]) if 0 < number <= len(text) else None
        except (ValueError, RecursionError):
            body = None
        body = body if isinstance(body, dict) else {}

        def text_of(key: str, body: dict[str, Any] = body) -> str | None:
            value = body.get(key)
            return value if isinstance(value, str) else None

        out.append((text_of("id") or f"{file_name}:{number}", text_of("tool"), text_of("repo")))
    return out


def append_lines(path: Path, lines: list[dict[str, Any]]) -> None:
    """Append ``lines`` (JSON objects) to ``path`` in one write, and fsync it: once this returns they are on
    disk. A file (or folder) made here is made durable too. A file that cannot be written is logged, not
    raised: the old ledger is a translation of the engine's, and must never stop the queue."""
    if not lines:
        return
    try:
        _append(path, lines)
    except OSError as e:
        structlog.get_logger("engine").error("dual_write_failed", path=str(path), error=str(e), lines=len(lines))


def _append(path: Path, lines: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    append_durably(path, "".join(json.dumps(line, ensure_ascii=False, default=str) + "\n"
                                 for line in lines).encode("utf-8"))


def read_old_ledger(path: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """An old worker's ledger: each task id's last attempt (the highest ``attempt``, the later line when
    equal), and the problems of the lines that could not be read (``<path>:<line>: why``)."""
    last: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError as e:
            problems.append(f"{path}:{number}: not JSON: {e}")
            continue
        if not isinstance(line, dict) or not isinstance(line.get("id"), str) or "exit" not in line:
            problems.append(f"{path}:{number}: not an old-worker ledger line (needs id and exit)")
            continue
        attempt = line.get("attempt") if isinstance(line.get("attempt"), int) else 1
        held = last.get(line["id"])
        if held is None or attempt >= held["attempt"]:
            last[line["id"]] = {**line, "attempt": attempt}
    return last, problems


class DualWriter:
    """Appends the old worker's lines for each task the kernel finishes (``[ledger] dual_write``)."""

    def __init__(self, path: Path, attempt_steps: Iterable[str]) -> None:
        self.path = path
        self.attempt_steps = frozenset(attempt_steps)
        self._read: dict[Path, int] = {}  # an outputs file -> the bytes of it already read
        self._calls: dict[tuple[str, int, str], list[dict[str, Any]]] = {}  # (file, line, task id) -> its calls

    def _take(self, outputs: Path | None, key: tuple[str, int, str]) -> list[dict[str, Any]]:
        """The calls of one task: the outputs file read on from where it was left (each line once)."""
        if outputs is not None and outputs.exists():
            with outputs.open("rb") as handle:
                handle.seek(self._read.get(outputs, 0))
                data = handle.read()
            end = data.rfind(b"\n") + 1  # a line being written is read next time
            self._read[outputs] = self._read.get(outputs, 0) + end
            for raw in data[:end].splitlines():
                try:
                    call = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(call, dict):
                    at = (str(call.get("task_file")), int(call.get("line") or 0), str(call.get("task_id")))
                    self._calls.setdefault(at, []).append(call)
        return self._calls.pop(key, [])

    def task(self, ts: str, outputs: Path | None, task_file: str, line: int, task: Any, status: str,
             reason: str | None) -> list[dict[str, Any]]:
        """Append the old lines of a task that ended ``status``; returns them."""
        calls = self._take(outputs, (task_file, line, task.id))
        lines = [old_line(ts, task.id, task.tool, task.repo, a)
                 for a in attempts(status, reason, calls, self.attempt_steps)]
        append_lines(self.path, lines)
        return lines

    def invalid(self, ts: str, raw: bytes, lines: Iterable[int | None], file_name: str) -> list[dict[str, Any]]:
        """Append one line (exit 999) per bad line of a file that failed to parse; returns them."""
        out = [old_line(ts, task_id, tool, repo, Attempt(1, EXIT_BAD_JSON, False))
               for task_id, tool, repo in bad_lines(raw, lines, file_name)]
        append_lines(self.path, out)
        return out


def attempt_steps(models: Any) -> frozenset[str]:
    """The ids of the service tasks whose topic is ``dispatch`` (the tool's own call) in ``models``."""
    from engine.process.models import DISPATCH_TOPIC

    specs = [models.spec, *models.subprocess_specs.values()]
    return frozenset(str(s.bpmn_id) for spec in specs for s in spec.task_specs.values()
                     if getattr(s, "topic", None) == DISPATCH_TOPIC and getattr(s, "bpmn_id", None))


def dual_writer(root: Path, config: Any, models: Any) -> DualWriter | None:
    """The workspace's dual writer, or None when ``[ledger] dual_write`` is off."""
    if not config.ledger.dual_write:
        return None
    return DualWriter(root / config.ledger.dual_write_path, attempt_steps(models))

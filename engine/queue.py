"""TaskQueue: task files moving through ``.tasks/{inbox,processing,done,failed,quarantine}``.

What the queue guarantees:

- A file is claimed by an atomic rename from ``inbox/`` into ``processing/``; only ``*.jsonl`` files are
  claimed, so writers can write ``name.tmp`` and rename it when complete.
- A claim is held as an exclusive ``flock`` on ``processing/<name>.lease``. The operating system releases
  it when the worker dies, however it dies, so a file left in ``processing/`` by a dead worker is
  recovered by the next worker that starts or polls, and never by two live workers at once.
- The outcome of every finished line is appended to ``processing/<name>.progress.jsonl`` before the
  next line starts, so a recovered file resumes after its last finished line.
- Nothing is deleted: a finished file moves to ``done/``, ``failed/`` or ``quarantine/`` with a sibling
  report (``<name>.result.json``, or ``<name>.error.json`` in ``failed/``). Only the queue's own
  bookkeeping (lease and progress files) is removed, after its content is in the report.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.contracts import Task
from engine.errors import ContractViolation, Problem

FOLDERS = ("inbox", "processing", "done", "failed", "quarantine")
FINAL = ("done", "failed", "quarantine")
TASK_SUFFIX = ".jsonl"


@dataclass
class TaskLine:
    line: int
    task: Task


@dataclass
class Claim:
    """A task file this worker holds. ``recovered`` is true when a dead worker had it before."""

    name: str
    path: Path
    lease_fd: int
    recovered: bool = False
    done_lines: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ParsedFile:
    tasks: list[TaskLine]
    problems: list[Problem]


class TaskQueue:
    def __init__(self, root: Path, *, worker: str) -> None:
        self.root = root
        self.worker = worker

    def folder(self, name: str) -> Path:
        return self.root / name

    def ensure(self) -> None:
        for name in FOLDERS:
            self.folder(name).mkdir(parents=True, exist_ok=True)

    def counts(self) -> dict[str, int]:
        return {name: len(list(self._task_files(self.folder(name)))) for name in FOLDERS}

    @staticmethod
    def _task_files(folder: Path) -> Iterator[Path]:
        if not folder.is_dir():
            return iter(())
        return iter(sorted(p for p in folder.iterdir() if p.suffix == TASK_SUFFIX and p.is_file()
                           and not p.name.endswith(".progress.jsonl")))

    # -- claiming -----------------------------------------------------------------------------------

    def _lock_lease(self, name: str) -> int | None:
        """Take the lease of ``name``; None when a live worker holds it."""
        lease = self.folder("processing") / f"{name}.lease"
        while True:
            fd = os.open(lease, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            try:
                same = os.fstat(fd).st_ino == os.stat(lease).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            # The holder finished and removed the lease between our open and our lock: try again.
            os.close(fd)

    def _write_lease(self, fd: int, name: str, recovered: bool) -> None:
        body = json.dumps({"worker": self.worker, "pid": os.getpid(), "host": socket.gethostname(),
                           "file": name, "recovered": recovered}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, body, 0)

    def _release(self, name: str, fd: int) -> None:
        lease = self.folder("processing") / f"{name}.lease"
        lease.unlink(missing_ok=True)
        os.close(fd)

    def claim_next(self) -> Claim | None:
        """Claim the next file: first one a dead worker left in processing/, then the inbox in name order."""
        processing = self.folder("processing")
        for path in self._task_files(processing):
            fd = self._lock_lease(path.name)
            if fd is None:
                continue
            if not path.exists():
                self._release(path.name, fd)
                continue
            self._write_lease(fd, path.name, recovered=True)
            return Claim(path.name, path, fd, recovered=True, done_lines=self._read_progress(path.name))
        for path in self._task_files(self.folder("inbox")):
            fd = self._lock_lease(path.name)
            if fd is None:
                continue
            target = processing / path.name
            if target.exists():
                # A file of the same name is being worked on: leave this one for later.
                os.close(fd)
                continue
            # A progress file left by a worker killed after it moved its file on belongs to that old file.
            self._progress_path(path.name).unlink(missing_ok=True)
            try:
                os.rename(path, target)
            except FileNotFoundError:
                self._release(path.name, fd)
                continue
            self._write_lease(fd, path.name, recovered=False)
            return Claim(path.name, target, fd)
        return None

    # -- reading ------------------------------------------------------------------------------------

    def parse(self, claim: Claim) -> ParsedFile:
        """Every task of the file, or every problem of every bad line (line numbers are 1-based)."""
        tasks: list[TaskLine] = []
        found: list[Problem] = []
        seen: dict[str, int] = {}
        label = f"{self.root.name}/processing/{claim.name}"
        try:
            text = claim.path.read_text(encoding="utf-8-sig")  # a BOM from a Windows editor is fine
        except UnicodeDecodeError as e:
            return ParsedFile([], [Problem(f"file is not UTF-8 text: {e.reason} at byte {e.start}", file=label)])
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as e:
                found.append(Problem(f"not valid JSON: {e.msg} (column {e.colno})", file=label, line=number))
                continue
            try:
                task = Task.from_json(data, file=label, line=number)
            except ContractViolation as e:
                found.extend(e.problems)
                continue
            if task.id in seen:
                found.append(Problem(f"task id {task.id!r} repeats the one on line {seen[task.id]}",
                                     file=label, line=number, path="$.id"))
                continue
            seen[task.id] = number
            tasks.append(TaskLine(number, task))
        if not tasks and not found:
            found.append(Problem("file holds no task", file=label))
        return ParsedFile(tasks, found)

    # -- progress -----------------------------------------------------------------------------------

    def _progress_path(self, name: str) -> Path:
        return self.folder("processing") / f"{name}.progress.jsonl"

    def _read_progress(self, name: str) -> dict[int, dict[str, Any]]:
        path = self._progress_path(name)
        done: dict[int, dict[str, Any]] = {}
        if not path.exists():
            return done
        for raw in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line torn by a kill: that line is simply run again
            done[int(entry["line"])] = entry
        return done

    def record(self, claim: Claim, line: int, outcome: dict[str, Any]) -> None:
        """Durably note that ``line`` finished with ``outcome`` (before the next line starts)."""
        entry = {"line": line, **outcome}
        data = (json.dumps(entry, sort_keys=True) + "\n").encode()
        fd = os.open(self._progress_path(claim.name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        claim.done_lines[line] = entry

    # -- finishing ----------------------------------------------------------------------------------

    def _free_name(self, folder: Path, name: str) -> str:
        stem, suffix = name[: -len(TASK_SUFFIX)], TASK_SUFFIX
        candidate, n = name, 1
        while (folder / candidate).exists():
            candidate = f"{stem}.{n}{suffix}"
            n += 1
        return candidate

    def finish(self, claim: Claim, dest: str, report: dict[str, Any]) -> Path:
        """Move the file to ``dest`` (done, failed or quarantine) with its report beside it."""
        if dest not in FINAL:
            raise ValueError(f"not a final folder: {dest}")
        folder = self.folder(dest)
        final_name = self._free_name(folder, claim.name)
        sidecar = folder / f"{final_name}.{'error' if dest == 'failed' else 'result'}.json"
        tmp = sidecar.with_name(sidecar.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, sidecar)
        target = folder / final_name
        os.rename(claim.path, target)
        self._progress_path(claim.name).unlink(missing_ok=True)
        self._release(claim.name, claim.lease_fd)
        return target

    def release(self, claim: Claim) -> None:
        """Give a claim back without finishing it (on shutdown): the file stays in processing/."""
        os.close(claim.lease_fd)

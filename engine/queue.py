"""TaskQueue: task files moving through ``.tasks/{inbox,processing,done,failed,quarantine}``.

What the queue guarantees:

- A file is claimed by an atomic rename from ``inbox/`` into ``processing/``; only ``*.jsonl`` files are
  claimed, so writers can write ``name.tmp`` and rename it when complete.
- A claim is held as an exclusive ``flock`` on ``processing/<name>.lease``. The operating system releases
  it when the worker dies, however it dies, so a file left in ``processing/`` by a dead worker is
  recovered by the next worker that starts or polls, and never by two live workers at once.
- Every claim is counted before ``claim_next`` hands it out, and before any of the file's work: it is
  appended to ``processing/<name>.claims.json``, written durably (temp file, fsync, rename, fsync of the
  folder). ``release`` (a clean give-back, on a stop signal) marks its claim as ended cleanly; a claim
  that neither finished nor was released is one whose worker died. ``Claim.crashes`` counts those, so
  a file that kills every worker that runs it (a poison task) is seen on its next claim and can be
  quarantined instead of run (the kernel does so at ``[queue] max_claims`` of ``engine.toml``). A fresh
  claim from ``inbox/`` starts a new count.
- The outcome of every finished line is appended to ``processing/<name>.progress.jsonl`` before the
  next line starts, so a recovered file resumes after its last finished line.
- ``parse`` reads a line only after checking, without recursion, that it nests at most ``MAX_DEPTH``
  arrays and objects; a deeper line is a problem of that line, never a crash of the worker.
- Nothing is deleted: a finished file moves to ``done/``, ``failed/`` or ``quarantine/`` with a sibling
  report (``<name>.result.json``, or ``<name>.error.json`` in ``failed/``) whose ``file`` field is the
  file's full name and whose ``claims`` field lists its claims. Only the queue's own bookkeeping
  (lease, claims and progress files) is removed, after its content is in the report.
- Every file the queue makes fits the file name limit (``NAME_MAX`` bytes of UTF-8): where
  ``<name><suffix>`` would not, it is named ``<first bytes of name>~<12 hex digits of the SHA-256 of the
  name><suffix>`` instead (``side_name``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.durable import append_durably, write_durably
from engine.errors import ContractViolation, Problem
from engine.redact import redact

if TYPE_CHECKING:
    from engine.contracts import Task
    from engine.legacy import TaskAdapter

FOLDERS = ("inbox", "processing", "done", "failed", "quarantine")
FINAL = ("done", "failed", "quarantine")
TASK_SUFFIX = ".jsonl"
NAME_MAX = 255  # bytes in one file name: ext4, xfs, btrfs, tmpfs and APFS all stop there
MAX_DEPTH = 64  # nested arrays and objects in one task line; far below anything that could recurse out
LINE_EXCERPT = 1000  # characters of an in-flight line quoted in a report

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def side_name(name: str, suffix: str) -> str:
    """``name + suffix`` when it fits in ``NAME_MAX`` bytes; otherwise the longest prefix of ``name`` that
    fits with ``~`` and the first 12 hex digits of the SHA-256 of ``name`` before ``suffix``."""
    whole = name + suffix
    if len(os.fsencode(whole)) <= NAME_MAX:
        return whole
    tag = "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:12]
    room = NAME_MAX - len(os.fsencode(tag + suffix))
    stem, used = [], 0
    for char in name:  # whole characters only, so the prefix stays valid UTF-8
        size = len(os.fsencode(char))
        if used + size > room:
            break
        stem.append(char)
        used += size
    return "".join(stem) + tag + suffix


def nesting_depth(raw: str, *, limit: int = MAX_DEPTH) -> int:
    """How deeply the JSON text ``raw`` nests arrays and objects, counted without recursion; counting
    stops at ``limit + 1``. Brackets inside strings do not count."""
    depth = deepest = 0
    for char in _NOT_BRACKET.sub("", _STRING.sub("", raw)):
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


@dataclass
class TaskLine:
    line: int
    task: Task


@dataclass
class Claim:
    """A task file this worker holds. ``recovered`` is true when a dead worker had it before.

    ``claims`` lists every claim of the file since it left the inbox, this one last; an earlier claim
    with ``"ended": "released"`` was given back cleanly, any other earlier one died.
    """

    name: str
    path: Path
    lease_fd: int
    recovered: bool = False
    done_lines: dict[int, dict[str, Any]] = field(default_factory=dict)
    claims: list[dict[str, Any]] = field(default_factory=list)

    @property
    def crashes(self) -> int:
        """Earlier claims of this file that neither finished it nor gave it back: their worker died."""
        return sum(1 for c in self.claims[:-1] if c.get("ended") not in ("released", "parked"))

    @property
    def unparked(self) -> bool:
        """Whether this claim takes up a file whose task was parked on a timer (by the claim before it)."""
        return len(self.claims) > 1 and self.claims[-2].get("ended") == "parked"


@dataclass
class ParsedFile:
    tasks: list[TaskLine]
    problems: list[Problem]


def _lines(text: str) -> list[str]:
    """The lines of a task file: split on LF (CRLF too), never on U+2028 and the like, which JSON strings
    may hold."""
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    return lines[:-1] if lines and lines[-1] == "" else lines


class TaskQueue:
    def __init__(self, root: Path, *, worker: str) -> None:
        self.root = root
        self.worker = worker
        self._inbox: list[str] = []  # names read from the inbox and not claimed yet, the next one last
        # Asked of each inbox file just before it is claimed: False leaves it unclaimed (the canary router
        # routes it then, so a file that arrived after a routing pass is still routed before it runs).
        self.admit: Callable[[Path], bool] | None = None

    def folder(self, name: str) -> Path:
        return self.root / name

    def ensure(self) -> None:
        for name in FOLDERS:
            self.folder(name).mkdir(parents=True, exist_ok=True)

    def counts(self) -> dict[str, int]:
        return {name: len(list(self._task_files(self.folder(name)))) for name in FOLDERS}

    def inbox_files(self) -> list[Path]:
        """The task files waiting in the inbox, in the order they would be claimed."""
        return list(self._task_files(self.folder("inbox")))

    def pending(self) -> list[Path]:
        """The task files work waits on: those in processing/ (parked, or left by a stopped or dead
        worker), then the inbox's."""
        return [*self._task_files(self.folder("processing")), *self._task_files(self.folder("inbox"))]

    @staticmethod
    def _task_files(folder: Path) -> Iterator[Path]:
        """The task files of ``folder`` in name order (one directory read: the kinds come with the names)."""
        try:
            with os.scandir(folder) as entries:
                names = sorted(e.name for e in entries if e.name.endswith(TASK_SUFFIX)
                               and not e.name.endswith(".progress.jsonl") and e.is_file())
        except (FileNotFoundError, NotADirectoryError):
            return iter(())
        return iter([folder / name for name in names])

    def strays(self) -> list[dict[str, str]]:
        """What lies in the inbox that will never be claimed, and why: only regular ``*.jsonl`` files are
        task files (a ``*.tmp`` may be a file still being written; anything else waits for nobody)."""
        found = []
        try:
            entries = sorted(os.scandir(self.folder("inbox")), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        for entry in entries:
            name = entry.name
            if entry.is_dir(follow_symlinks=False):
                why = "a folder: task files are *.jsonl files in inbox/ itself"
            elif not entry.is_file():
                why = "not a regular file (a FIFO, socket, device or broken link)"
            elif name.endswith(".progress.jsonl"):
                why = "a *.progress.jsonl file is the queue's own bookkeeping, never a task file: rename it"
            elif not name.endswith(TASK_SUFFIX):
                why = ("being written? task files are claimed once renamed to *.jsonl" if name.endswith(".tmp")
                       else "not a *.jsonl file")
            else:
                continue
            found.append({"name": name, "why": why})
        return found

    # -- claiming -----------------------------------------------------------------------------------

    def _lease_path(self, name: str) -> Path:
        return self.folder("processing") / side_name(name, ".lease")

    def _lock_lease(self, name: str) -> int | None:
        """Take the lease of ``name``; None when a live worker holds it."""
        lease = self._lease_path(name)
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
        self._lease_path(name).unlink(missing_ok=True)
        os.close(fd)

    def claim_next(self, now: datetime | None = None) -> Claim | None:
        """Claim the next file: first one a dead worker left in processing/ or a parked one whose task is due
        (at ``now``), then the inbox in name order.

        The claim is counted durably in ``processing/<name>.claims.json`` before this returns.
        """
        processing = self.folder("processing")
        for path in self._task_files(processing):
            wake = self.parked_until(path.name)
            if wake is not None and (now is None or wake > now):
                continue  # parked, not due yet
            claim = self.claim_recovered(path.name)
            if claim is not None:
                return claim
        # The inbox is read once per batch of claims (claiming N files reads it about once, not N times):
        # names come out in order; a file that arrives meanwhile waits for the next read, which happens
        # when the batch runs out, before this says there is nothing to claim.
        if self._inbox:
            claim = self._claim_from_batch()
            if claim is not None:
                return claim
        self._inbox = [p.name for p in reversed(list(self._task_files(self.folder("inbox"))))]
        return self._claim_from_batch()

    def _claim_from_batch(self) -> Claim | None:
        """The first file of the batch read from the inbox that can be claimed (the batch shrinks by every
        file looked at: one another worker took or holds is seen again at the next read)."""
        processing = self.folder("processing")
        while self._inbox:
            path = self.folder("inbox") / self._inbox.pop()
            if not path.exists():
                continue  # another worker took it
            if self.admit is not None and not self.admit(path):
                continue  # not this worker's to run (moved elsewhere, or to be left)
            fd = self._lock_lease(path.name)
            if fd is None:
                continue
            target = processing / path.name
            if target.exists():
                # A file of the same name is being worked on: leave this one for later.
                os.close(fd)
                continue
            # Progress and claims left by a worker killed after it moved its file on belong to that old
            # file: this one starts with none. The count is written before the file enters processing/.
            self._progress_path(path.name).unlink(missing_ok=True)
            claims = self._count_claim(path.name, [], recovered=False)
            try:
                os.rename(path, target)
            except FileNotFoundError:
                self._claims_path(path.name).unlink(missing_ok=True)
                self._release(path.name, fd)
                continue
            self._write_lease(fd, path.name, recovered=False)
            return Claim(path.name, target, fd, claims=claims)
        return None

    def claim_recovered(self, name: str) -> Claim | None:
        """Claim the file ``name`` that a dead worker left in processing/; None when a live worker holds it
        or it is not there. Counted like every claim."""
        path = self.folder("processing") / name
        fd = self._lock_lease(name)
        if fd is None:
            return None
        if not path.is_file():
            self._release(name, fd)
            return None
        self._write_lease(fd, name, recovered=True)
        claims = self._count_claim(name, self._read_claims(name), recovered=True)
        return Claim(name, path, fd, recovered=True, done_lines=self._read_progress(name), claims=claims)

    # -- putting files in -----------------------------------------------------------------------------

    def submit(self, name: str, body: bytes) -> Path:
        """Put a task file into the inbox whole: written under a name no worker claims, fsync'd, renamed.
        ``FileExistsError`` when the inbox (or processing/) already holds a file of that name."""
        if not name.endswith(TASK_SUFFIX) or "/" in name or name.startswith("."):
            raise ValueError(f"{name!r} is not a task file name (NAME.jsonl)")
        target = self.folder("inbox") / name
        if target.exists() or (self.folder("processing") / name).exists():
            raise FileExistsError(str(target))
        write_durably(self.folder("inbox") / side_name(name, ".submitting"), body)
        os.link(self.folder("inbox") / side_name(name, ".submitting"), target)  # fails if it appeared meanwhile
        (self.folder("inbox") / side_name(name, ".submitting")).unlink()
        return target

    def requeue(self, name: str) -> tuple[str, Path]:
        """Move a failed or quarantined file back into the inbox; its report stays where it is (the file's
        history: the next report beside it gets a name of its own). Returns (the folder it came from, its
        new path). ``FileNotFoundError`` when neither folder holds it, ``FileExistsError`` when the inbox
        holds a file of that name."""
        for folder in ("failed", "quarantine"):
            source = self.folder(folder) / name
            if source.is_file():
                target = self.folder("inbox") / name
                if target.exists() or (self.folder("processing") / name).exists():
                    raise FileExistsError(str(target))
                os.rename(source, target)
                return folder, target
        raise FileNotFoundError(name)

    # -- parking ------------------------------------------------------------------------------------

    def _parked_path(self, name: str) -> Path:
        return self.folder("processing") / side_name(name, ".parked.json")

    def park(self, claim: Claim, line: int, task_id: str, wake: datetime) -> None:
        """Give the file back while its task waits on a timer until ``wake``: it stays in processing/, no
        worker claims it before then, and the claim is recorded as ended ``parked`` (not a crash)."""
        body = {"file": claim.name, "line": line, "task_id": task_id, "wake": wake.isoformat()}
        write_durably(self._parked_path(claim.name), (json.dumps(body, sort_keys=True) + "\n").encode())
        try:
            claim.claims[-1]["ended"] = "parked"
            self._write_claims(claim.name, claim.claims)
        finally:
            os.close(claim.lease_fd)

    def unpark(self, claim: Claim) -> None:
        self._parked_path(claim.name).unlink(missing_ok=True)

    def parked_until(self, name: str) -> datetime | None:
        try:
            body = json.loads(self._parked_path(name).read_text(encoding="utf-8"))
            return datetime.fromisoformat(body["wake"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def parked(self) -> list[dict[str, Any]]:
        """The parked tasks: file, line, task id and when each wakes, earliest first."""
        found = []
        for path in self.folder("processing").glob("*.parked.json"):
            try:
                body = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(body, dict) and isinstance(body.get("wake"), str):
                found.append(body)
        return sorted(found, key=lambda b: str(b["wake"]))

    # -- counting claims ----------------------------------------------------------------------------

    def _claims_path(self, name: str) -> Path:
        return self.folder("processing") / side_name(name, ".claims.json")

    def _read_claims(self, name: str) -> list[dict[str, Any]]:
        try:
            body = json.loads(self._claims_path(name).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return []  # none yet (a file claimed by an older engine), or edited by hand into nonsense
        claims = body.get("claims") if isinstance(body, dict) else None
        return [c for c in claims if isinstance(c, dict)] if isinstance(claims, list) else []

    def _write_claims(self, name: str, claims: list[dict[str, Any]]) -> None:
        body = json.dumps({"file": name, "claims": claims}, indent=2, sort_keys=True) + "\n"
        write_durably(self._claims_path(name), body.encode())

    def _count_claim(self, name: str, earlier: list[dict[str, Any]], *, recovered: bool) -> list[dict[str, Any]]:
        claims = [*earlier, {"claim": len(earlier) + 1, "worker": self.worker, "pid": os.getpid(),
                             "host": socket.gethostname(), "from": "processing" if recovered else "inbox"}]
        self._write_claims(name, claims)
        return claims

    # -- reading ------------------------------------------------------------------------------------

    def parse(self, claim: Claim) -> ParsedFile:
        """Every task of the file, or every problem of every bad line (line numbers are 1-based)."""
        return self.parse_file(claim.path, f"{self.root.name}/processing/{claim.name}")

    def parse_file(self, path: Path, label: str, *, adapter: TaskAdapter | None = None) -> ParsedFile:
        """``parse`` for any task file (a what-if run reads the inbox without claiming). Each line is task.v1,
        or an old worker's line that ``adapter`` converts (default: as ``[legacy]`` of the workspace's
        ``engine.toml`` says)."""
        if adapter is None:
            from engine.legacy import TaskAdapter

            adapter = TaskAdapter.for_workspace(self.root.parent)
        tasks: list[TaskLine] = []
        found: list[Problem] = []
        seen: dict[str, int] = {}
        try:
            text = path.read_text(encoding="utf-8-sig")  # a BOM from a Windows editor is fine
        except UnicodeDecodeError as e:
            return ParsedFile([], [Problem(f"file is not UTF-8 text: {e.reason} at byte {e.start}", file=label)])
        for number, raw in enumerate(_lines(text), start=1):
            if not raw.strip():
                continue
            if nesting_depth(raw) > MAX_DEPTH:  # json.loads, the contract check and the ledger all recurse
                found.append(Problem(f"nested too deeply (more than {MAX_DEPTH} levels of arrays and objects)",
                                     file=label, line=number))
                continue
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as e:
                found.append(Problem(f"not valid JSON: {e.msg} (column {e.colno})", file=label, line=number))
                continue
            try:
                task = adapter.read(data, raw, file=label, line=number)
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

    def in_flight(self, claim: Claim) -> dict[str, Any] | None:
        """The first line not recorded as finished: the one a worker that died was running. Read without
        parsing the file as tasks, since that may be what killed it; None when every line finished."""
        text = claim.path.read_bytes().decode("utf-8-sig", errors="replace")
        for number, raw in enumerate(_lines(text), start=1):
            if not raw.strip() or number in claim.done_lines:
                continue
            line: dict[str, Any] = {"line": number, "text": raw if len(raw) <= LINE_EXCERPT
                                    else raw[:LINE_EXCERPT] + "..."}
            if nesting_depth(raw) <= MAX_DEPTH:
                try:
                    data = json.loads(raw)
                except ValueError:
                    data = None
                if isinstance(data, dict) and isinstance(data.get("id"), str):
                    line["task_id"] = data["id"]
            return line
        return None

    # -- progress -----------------------------------------------------------------------------------

    def state_path(self, name: str, line: int) -> Path:
        """Where the state journal of line ``line`` of the claimed file ``name`` is kept while it runs
        (``engine.process.state``): beside the file, removed once the line's outcome is recorded."""
        return self.folder("processing") / side_name(name, f".line-{line}.state")

    def _progress_path(self, name: str) -> Path:
        return self.folder("processing") / side_name(name, ".progress.jsonl")

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
        entry = redact({"line": line, **outcome})
        append_durably(self._progress_path(claim.name), (json.dumps(entry, sort_keys=True) + "\n").encode())
        claim.done_lines[line] = entry

    # -- finishing ----------------------------------------------------------------------------------

    def _free_name(self, folder: Path, name: str, report_suffix: str) -> str:
        """``name``, or ``<stem>.<n>.jsonl`` with the first free ``n``, such that neither the file nor its
        report exists (a report left by an earlier run of the same file is kept); within ``NAME_MAX``."""
        stem = name[: -len(TASK_SUFFIX)] if name.endswith(TASK_SUFFIX) else name
        candidate, n = name, 1
        while (folder / candidate).exists() or (folder / side_name(candidate, report_suffix)).exists():
            candidate = side_name(stem, f".{n}{TASK_SUFFIX}")
            n += 1
        return candidate

    def finish(self, claim: Claim, dest: str, report: dict[str, Any]) -> Path:
        """Move the file to ``dest`` (done, failed or quarantine) with its report beside it.

        The report gets the file's full name as ``file`` and the list of its claims as ``claims``.
        """
        if dest not in FINAL:
            raise ValueError(f"not a final folder: {dest}")
        folder = self.folder(dest)
        suffix = ".error.json" if dest == "failed" else ".result.json"
        final_name = self._free_name(folder, claim.name, suffix)
        sidecar = folder / side_name(final_name, suffix)
        body = redact({**report, "file": claim.name, "claims": claim.claims})  # secrets never reach a report
        write_durably(sidecar, (json.dumps(body, indent=2, sort_keys=True, default=str) + "\n").encode())
        target = folder / final_name
        os.rename(claim.path, target)
        self._progress_path(claim.name).unlink(missing_ok=True)
        self._claims_path(claim.name).unlink(missing_ok=True)
        self._parked_path(claim.name).unlink(missing_ok=True)
        lines = target.read_bytes().count(b"\n") + 1
        for line in range(1, lines + 1):  # a state journal left by a line that did not finish
            self.state_path(claim.name, line).unlink(missing_ok=True)
        self._release(claim.name, claim.lease_fd)
        return target

    def release(self, claim: Claim) -> None:
        """Give a claim back without finishing it (on shutdown): the file stays in processing/, and this
        claim is recorded as ended cleanly, so it does not count as a crash."""
        try:
            if claim.claims:
                claim.claims[-1]["ended"] = "released"
                self._write_claims(claim.name, claim.claims)
        finally:
            os.close(claim.lease_fd)

"""The audit ledger: append-only, hash-chained JSONL in ``.engine/ledger/``.

Each line is one entry (contract ``ledger.v1``)::

    {"v": 1, "seq": N, "prev": <hash of entry N-1>, "record": {...deterministic part...},
     "record_hash": sha256(record), "envelope": {...run id, time, host...}, "hash": sha256(all but hash)}

Hashes are SHA-256 over canonical JSON (sorted keys, no spaces). The first entry's ``prev`` is 64 zeros.

Writes are group commits: inside ``with ledger.group():`` (the kernel opens one per task file) appends
are kept in memory and ``commit()`` writes them, chained, with one ``write()`` and one ``fsync`` under
an exclusive ``flock``; an append outside a group is a commit of its own. The kernel commits before
each queue transition, so what the ledger says happened is on disk before the queue shows it.
Concurrent workers interleave whole groups; a killed worker leaves at most one torn last line (the
whole lines before it are entries like any other), which the next commit moves aside to
``<file>.torn`` (kept, never deleted) before continuing the chain. ``head.json`` (seq and hash of the
last entry) is rewritten once per commit, after the fsync: it may lag behind the ledger, never run ahead.

Entries go to ``ledger.jsonl``, the current file. A commit that finds it at or over ``segment_bytes``
first renames it to the next sealed segment, ``ledger-000001.jsonl``, ``ledger-000002.jsonl``, ...
(never written again) and writes into a fresh ``ledger.jsonl``: seq keeps counting and the chain goes on
across files (a file's first ``prev`` is the hash of the previous segment's last entry). Readers take the
segments in number order, then the current file. The lock is on the folder (a rotation renames the
file): exclusive for a commit, shared for a read, so no reader sees a rotation half done.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.contracts import problems as contract_problems
from engine.errors import LedgerBroken
from engine.redact import redact

GENESIS = "0" * 64
LEDGER_FILE = "ledger.jsonl"  # the current file; sealed segments are ledger-000001.jsonl, ledger-000002.jsonl, ...
SEGMENT_BYTES = 64 << 20  # a commit that finds the current file this large seals it first
_SEGMENT = re.compile(r"ledger-(\d+)\.jsonl")
HEAD_FILE = "head.json"  # seq and hash of the last entry: a removed last line is noticed too


def segment_name(number: int) -> str:
    """The file name of sealed segment ``number`` (from 1)."""
    return f"ledger-{number:06d}.jsonl"


def _number(path: Path) -> int:
    match = _SEGMENT.fullmatch(path.name)
    return int(match.group(1)) if match else 0


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical(data: Any) -> bytes:
    """Sorted-key, compact JSON. Keys of mixed types (a script task's ``{1: "a", "b": 2}``) are made
    strings first, as JSON would write them anyway."""
    try:
        text = _CANONICAL.encode(data)
    except TypeError:
        plain = json.loads(json.dumps(data, ensure_ascii=False, default=str))
        text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


def digest(data: Any) -> str:
    """SHA-256 hex of the canonical JSON of ``data``."""
    return hashlib.sha256(canonical(data)).hexdigest()


CAP_CHARS = 4096  # a string in a record longer than this is stored cut, with its length and digest


def _capped(value: Any) -> Any:
    """``value`` with every string longer than ``CAP_CHARS`` cut there, its length and SHA-256 kept (a
    2 MB error message is not stored whole in every entry that names it)."""
    if isinstance(value, str) and len(value) > CAP_CHARS:
        whole = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{value[:CAP_CHARS]}... [capped: {len(value)} characters, sha256 {whole}]"
    if isinstance(value, dict):
        return {k: _capped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_capped(v) for v in value]
    return value


def _entry(seq: int, prev: str, record: dict[str, Any], envelope: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """Entry ``seq`` and its line. The canonical JSON of an entry is its fields' canonical JSON in key
    order, so the record and the envelope are serialised once for the record hash, the entry hash and
    the line (the same bytes ``canonical(entry)`` gives)."""
    body, env = canonical(record), canonical(envelope)
    if len(body) > CAP_CHARS:  # only a record this long can hold a string longer than the cap
        capped = _capped(record)
        if capped != record:
            record, body = capped, canonical(capped)
    record_hash = hashlib.sha256(body).hexdigest()
    # keys in sorted order: envelope, [hash,] prev, record, record_hash, seq, v
    tail = (b',"prev":"' + prev.encode() + b'","record":' + body + b',"record_hash":"' + record_hash.encode()
            + b'","seq":' + str(seq).encode() + b',"v":1}')
    entry_hash = hashlib.sha256(b'{"envelope":' + env + tail).hexdigest()
    entry = {"v": 1, "seq": seq, "prev": prev, "record": record, "record_hash": record_hash, "envelope": envelope,
             "hash": entry_hash}
    return entry, b'{"envelope":' + env + b',"hash":"' + entry_hash.encode() + b'"' + tail + b"\n"


def record_hash(record: Mapping[str, Any]) -> str:
    """The ``record_hash`` an entry of ``record`` gets: of the record as ``append`` writes it (redacted, long
    strings capped). A resumed or replayed task compares what it makes with what the ledger holds by it."""
    entry, _ = _entry(1, GENESIS, dict(redact(dict(record))), {})
    return str(entry["record_hash"])


def _entry_hash(entry: Mapping[str, Any]) -> str:
    return digest({k: v for k, v in entry.items() if k != "hash"})


@dataclass(frozen=True)
class VerifyReport:
    files: int
    entries: int
    last_hash: str


class Ledger:
    def __init__(self, folder: Path, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        if segment_bytes < 1:
            raise ValueError(f"segment_bytes must be positive, not {segment_bytes}")
        self.folder = folder
        self.path = folder / LEDGER_FILE
        self.head = folder / HEAD_FILE
        self.segment_bytes = segment_bytes  # a commit finding the current file this large seals it first
        self._pending: list[tuple[dict[str, Any], dict[str, Any]]] | None = None  # a group's entries to write
        self.commits = 0  # group commits written (each one write and one fsync)

    def segments(self) -> list[Path]:
        """The sealed segments, oldest first (by number, not by name)."""
        if not self.folder.is_dir():
            return []
        return sorted((p for p in self.folder.iterdir() if _SEGMENT.fullmatch(p.name)),
                      key=lambda p: (_number(p), p.name))

    def files(self) -> list[Path]:
        """The ledger's files in chain order: the sealed segments, then the current file."""
        return [*self.segments(), *([self.path] if self.path.exists() else [])]

    @contextmanager
    def _locked(self, operation: int) -> Iterator[int | None]:
        """The folder's descriptor, ``flock``ed (``None`` when there is no folder yet). Writers lock it
        exclusively for a commit (and a rotation), readers shared: the lock is on the folder, not on
        ``ledger.jsonl``, because a rotation renames that file away while others may be waiting on it."""
        try:
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            yield None
            return
        try:
            fcntl.flock(fd, operation)
            yield fd
        finally:
            os.close(fd)  # closing releases the lock

    def append(self, record: Mapping[str, Any], envelope: Mapping[str, Any]) -> dict[str, Any]:
        """Append one entry. ``record`` must be deterministic; ``envelope`` is not hashed apart. The record
        is redacted first (``engine.redact``): no secret is ever written to the ledger; the envelope holds
        only what the engine makes (run id, time, host, pid, worker, trace ids, duration). Inside a group
        the entry is written by the group's next commit (returned without seq and hashes); outside, now."""
        clean: tuple[dict[str, Any], dict[str, Any]] = (dict(redact(dict(record))), dict(envelope))
        if self._pending is not None:
            self._pending.append(clean)
            return {"record": clean[0], "envelope": clean[1]}
        return self._write([clean])[-1]

    @contextmanager
    def group(self) -> Iterator[Ledger]:
        """Buffer the appends of the block; they are committed by ``commit()`` and when the block ends
        (also when it raises: what happened is recorded). Groups nest: the outermost one commits."""
        if self._pending is not None:
            yield self
            return
        self._pending = []
        try:
            yield self
        finally:
            pending, self._pending = self._pending, None
            if pending:
                self._write(pending)

    def commit(self) -> None:
        """Write the group's entries so far: one write, one fsync. Nothing to write costs nothing."""
        if self._pending:
            pending, self._pending = self._pending, []
            self._write(pending)

    def _write(self, items: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
        self.folder.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
        with self._locked(fcntl.LOCK_EX) as folder_fd:
            assert folder_fd is not None  # the folder was just made
            fd = os.open(self.path, flags, 0o644)
            try:
                seq, prev = self._tail(fd)
                self._check_tail(seq, prev)
                if os.fstat(fd).st_size >= self.segment_bytes:
                    self._seal()
                    fresh = os.open(self.path, flags, 0o644)
                    os.close(fd)
                    fd = fresh
                    os.fsync(folder_fd)  # the rename and the fresh file, before any entry goes into it
                entries: list[dict[str, Any]] = []
                lines: list[bytes] = []
                for record, envelope in items:
                    seq += 1
                    entry, line = _entry(seq, prev, record, envelope)
                    prev = entry["hash"]
                    entries.append(entry)
                    lines.append(line)
                os.write(fd, b"".join(lines))
                os.fsync(fd)
                tmp = self.head.with_name(HEAD_FILE + ".tmp")
                tmp.write_bytes(canonical({"seq": seq, "hash": prev}))
                os.replace(tmp, self.head)
                self.commits += 1
                return entries
            finally:
                os.close(fd)

    def _seal(self) -> None:
        """Rename the current file to the next numbered segment (under the exclusive lock). A sealed
        segment is never written again; the next entry goes into a fresh current file and chains on to
        the segment's last entry."""
        sealed = self.segments()
        os.rename(self.path, self.folder / segment_name(_number(sealed[-1]) + 1 if sealed else 1))

    def _tail(self, fd: int) -> tuple[int, str]:
        """seq and hash of the last whole entry; moves a torn last line of the current file aside first.
        A current file without entries (just sealed, or a crash between the rename and the first write)
        continues the last sealed segment."""
        size = os.fstat(fd).st_size
        data = _end(fd, size)
        if not data.endswith(b"\n") and data:
            torn = data[data.rfind(b"\n") + 1:]
            with open(str(self.path) + ".torn", "ab") as handle:
                handle.write(torn + b"\n")
            os.ftruncate(fd, size - len(torn))
            data = data[: len(data) - len(torn)]
        last = _last_line(data)
        if last is None:
            sealed = self.segments()
            if not sealed:
                return 0, GENESIS
            segment = os.open(sealed[-1], os.O_RDONLY)
            try:
                last = _last_line(_end(segment, os.fstat(segment).st_size))
            finally:
                os.close(segment)
            if last is None:
                return 0, GENESIS
        entry = json.loads(last)
        return int(entry["seq"]), str(entry["hash"])

    def _check_tail(self, seq: int, last: str) -> None:
        """Refuse to write after a tail the head does not vouch for: entries were removed (the head records
        more than the file holds), the last entry was replaced, or the head is gone while entries remain.
        Writing on would make the shortened chain look whole. (A head behind the tail is a writer killed
        between its fsync and its head: the entries after it chain on, and ``verify`` checks them.)"""
        head = self._read_head(missing=None)
        if head is None:
            if seq:
                sealed = len(self.segments())
                holder = f"the ledger ({sealed} sealed segment(s) and {self.path.name})" if sealed else self.path.name
                raise LedgerBroken(f"{self.head.name} is missing while {holder} holds {seq} entries: "
                                   "truncation cannot be ruled out, so nothing more is written. Investigate "
                                   "with `engine ledger verify --no-head` and a head you kept (`engine ledger "
                                   "anchor`)", file=str(self.head))
            return
        if head["seq"] > seq or head["seq"] == seq and head["hash"] != last:
            raise LedgerBroken(f"the ledger's tail (entry seq {seq}) is not what its head ({self.head.name}, entry "
                               f"seq {head['seq']}) records: entries were removed or replaced, so nothing more "
                               "is written. Investigate with `engine ledger verify`", file=str(self.path))

    def _read_head(self, missing: Any = ...) -> Any:
        if not self.head.exists():
            if missing is not ...:
                return missing
            return {"seq": 0, "hash": GENESIS}
        try:
            head = json.loads(self.head.read_text(encoding="utf-8"))
            if isinstance(head, dict) and isinstance(head.get("seq"), int) and isinstance(head.get("hash"), str):
                return head
        except json.JSONDecodeError:
            pass
        raise LedgerBroken(f"{self.head.name} is not the head the ledger writes ({{\"seq\": N, \"hash\": ...}}): "
                           "it was edited", file=str(self.head))

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every entry, oldest first (the sealed segments, then the current file), read under the shared
        lock (a commit or a rotation in progress is not seen half done). Not verified: ``verify`` is what
        checks them."""
        with self._locked(fcntl.LOCK_SH) as locked:
            for path in self.files() if locked is not None else []:  # no folder yet: no entries (nor a lock)
                with path.open(encoding="utf-8") as handle:
                    for raw in handle:
                        if raw.strip():
                            yield json.loads(raw)

    def anchor(self) -> dict[str, Any]:
        """``{"seq", "hash"}`` of the last entry, for the operator to keep elsewhere: ``verify(anchor=hash)``
        later proves the ledger still holds that entry (and so was not cut before it)."""
        report = self.verify()
        return {"seq": report.entries, "hash": report.last_hash}

    def verify(self, *, no_head: bool = False, anchor: str | None = None) -> VerifyReport:
        """Check every entry against ledger.v1 and the chain, across the sealed segments and the current
        file; raise ``LedgerBroken`` naming the first bad one (file and line).

        A ledger with entries and no head fails (its tail could have been cut) unless ``no_head``; with
        ``anchor`` (an entry hash kept from ``anchor()``), a ledger that does not hold that entry fails.
        It reads under a shared lock: a commit or a rotation in progress (another worker's) is seen whole
        or not at all."""
        with self._locked(fcntl.LOCK_SH) as locked:
            # No folder yet is a new, empty ledger (one a writer makes meanwhile is not read half written).
            return self._verify(no_head=no_head, anchor=anchor, present=locked is not None)

    def _verify(self, *, no_head: bool, anchor: str | None, present: bool) -> VerifyReport:
        prev, seq, count = GENESIS, 0, 0
        sealed = self.segments() if present else []
        files = self.files() if present else []
        head = self._read_head(missing=None) if present else None
        if head is None:
            if any(path.stat().st_size for path in files) and not no_head:
                raise LedgerBroken(f"no head: {self.head.name} is missing, so truncation cannot be ruled out "
                                   "(verify --no-head checks the chain alone; verify --anchor HASH checks it "
                                   "against a head you kept)", file=str(self.head))
            head = {"seq": 0, "hash": GENESIS}
        numbers = {_number(p) for p in sealed}
        gaps = [segment_name(n) for n in range(1, max(numbers, default=0) + 1) if n not in numbers]
        missing = f" ({', '.join(gaps)} missing)" if gaps else ""
        anchored = anchor is None
        last_file, last_at = "", ""  # the file, and file:line, of the last entry read
        for path in files:
            with path.open(encoding="utf-8") as handle:
                number = 0
                for number, raw in enumerate(handle, start=1):
                    where: dict[str, Any] = {"file": str(path), "line": number}
                    name = f"{path.name}:{number}"
                    try:
                        entry = json.loads(raw)
                    except json.JSONDecodeError as e:
                        raise LedgerBroken(f"{name}: entry is not valid JSON ({e.msg})", **where) from e
                    found = contract_problems("ledger.v1", entry, file=str(path), line=number)
                    if found:
                        raise LedgerBroken(f"{name}: entry does not match contract ledger.v1",
                                           problems=found, **where)
                    if entry["seq"] != seq + 1:
                        if number == 1 and last_at:
                            why = (f", the last entry of {last_file}: a segment between them is "
                                   f"missing{missing}, or the segments are out of order")
                        elif number == 1 and sealed:
                            why = (f" (the ledger's start): the entries before it were removed (a whole segment"
                                   f"{missing} or lines), or the segments are out of order")
                        else:
                            why = ": an entry was removed, inserted or moved"
                        raise LedgerBroken(f"{name}: entry seq {entry['seq']} follows seq {seq}{why}", **where)
                    if entry["prev"] != prev:
                        why = (f" ({last_at}; prev hash differs): that segment was replaced, or the segments "
                               "are out of order") if number == 1 and last_at else " (prev hash differs)"
                        raise LedgerBroken(f"{name}: entry seq {entry['seq']} does not chain to the entry "
                                           f"before it{why}", **where)
                    if entry["record_hash"] != digest(entry["record"]):
                        raise LedgerBroken(f"{name}: entry seq {entry['seq']} was edited (record hash differs)",
                                           **where)
                    if entry["hash"] != _entry_hash(entry):
                        raise LedgerBroken(f"{name}: entry seq {entry['seq']} was edited (entry hash differs)",
                                           **where)
                    if entry["seq"] == head["seq"] and entry["hash"] != head["hash"]:
                        raise LedgerBroken(f"{name}: entry seq {entry['seq']} is not the entry the head "
                                           f"({self.head.name}) records: the ledger was rewritten", **where)
                    prev, seq, count = entry["hash"], entry["seq"], count + 1
                    last_file, last_at = path.name, name
                    anchored = anchored or entry["hash"] == anchor
            if number == 0 and path != self.path:
                raise LedgerBroken(f"{path.name}: a sealed segment holds no entry: it was emptied",
                                   file=str(path))
        if not anchored:
            raise LedgerBroken(f"the anchor {anchor} is no entry of the ledger (it ends at entry seq {seq}): "
                               "the ledger was cut or rewritten after that anchor was taken", file=str(self.path))
        # The head may lag one entry behind (a worker killed between the two writes), never run ahead.
        if head["seq"] > seq:
            end = f" ({last_at})" if last_at else ""
            raise LedgerBroken(
                f"the ledger ends at entry seq {seq}{end} but its head ({self.head.name}) records entry seq "
                f"{head['seq']}: entries after seq {seq} were removed (lines at its end, or a whole "
                f"segment{missing})", file=str(self.head))
        return VerifyReport(files=len(files), entries=count, last_hash=prev)


def _end(fd: int, size: int) -> bytes:
    """The end of a file, long enough to hold its last whole line (and any torn bytes after it)."""
    if size == 0:
        return b""
    chunk = min(size, 1 << 16)
    while True:
        data = os.pread(fd, chunk, size - chunk)
        body = data if data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]
        if body.count(b"\n") >= 2 or chunk == size:
            return data
        chunk = min(size, chunk * 2)


def _last_line(data: bytes) -> bytes | None:
    """The last whole line of ``data`` (the end of a file: torn bytes after it are ignored), if any."""
    body = data if data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]
    last = body.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return last or None

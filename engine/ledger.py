"""The audit ledger: append-only, hash-chained JSONL in ``.engine/ledger/``.

Each line is one entry (contract ``ledger.v1``)::

    {"v": 1, "seq": N, "prev": <hash of entry N-1>, "record": {...deterministic part...},
     "record_hash": sha256(record), "envelope": {...run id, time, host...}, "hash": sha256(all but hash)}

Hashes are SHA-256 over canonical JSON (sorted keys, no spaces). The first entry's ``prev`` is 64 zeros.
Appends are one ``write()`` of one whole line under an exclusive ``flock``, so concurrent workers
interleave whole entries and a killed worker leaves at most one torn last line, which the next append
moves aside to ``<file>.torn`` (kept, never deleted) before continuing the chain.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.contracts import problems as contract_problems
from engine.errors import LedgerBroken
from engine.redact import redact

GENESIS = "0" * 64
LEDGER_FILE = "ledger.jsonl"
HEAD_FILE = "head.json"  # seq and hash of the last entry: a removed last line is noticed too


def canonical(data: Any) -> bytes:
    """Sorted-key, compact JSON. Keys of mixed types (a script task's ``{1: "a", "b": 2}``) are made
    strings first, as JSON would write them anyway."""
    try:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    except TypeError:
        plain = json.loads(json.dumps(data, ensure_ascii=False, default=str))
        text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


def digest(data: Any) -> str:
    """SHA-256 hex of the canonical JSON of ``data``."""
    return hashlib.sha256(canonical(data)).hexdigest()


def _entry_hash(entry: Mapping[str, Any]) -> str:
    return digest({k: v for k, v in entry.items() if k != "hash"})


@dataclass(frozen=True)
class VerifyReport:
    files: int
    entries: int
    last_hash: str


class Ledger:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LEDGER_FILE
        self.head = folder / HEAD_FILE

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []

    def append(self, record: Mapping[str, Any], envelope: Mapping[str, Any]) -> dict[str, Any]:
        """Append one entry and return it. ``record`` must be deterministic; ``envelope`` is not hashed apart.
        Both are redacted first (``engine.redact``): no secret is ever written to the ledger."""
        record, envelope = redact(dict(record)), redact(dict(envelope))
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            seq, prev = self._tail(fd)
            entry: dict[str, Any] = {
                "v": 1,
                "seq": seq + 1,
                "prev": prev,
                "record": dict(record),
                "record_hash": digest(record),
                "envelope": dict(envelope),
            }
            entry["hash"] = _entry_hash(entry)
            os.write(fd, canonical(entry) + b"\n")
            tmp = self.head.with_name(HEAD_FILE + ".tmp")
            tmp.write_bytes(canonical({"seq": entry["seq"], "hash": entry["hash"]}))
            os.replace(tmp, self.head)
            return entry
        finally:
            os.close(fd)  # closing releases the lock

    def _tail(self, fd: int) -> tuple[int, str]:
        """seq and hash of the last whole entry; moves a torn last line aside first."""
        size = os.fstat(fd).st_size
        if size == 0:
            return 0, GENESIS
        chunk = min(size, 1 << 16)
        while True:
            data = os.pread(fd, chunk, size - chunk)
            body = data if data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]
            if body.count(b"\n") >= 2 or chunk == size:
                break
            chunk = min(size, chunk * 2)
        if not data.endswith(b"\n"):
            torn = data[data.rfind(b"\n") + 1:]
            with open(str(self.path) + ".torn", "ab") as handle:
                handle.write(torn + b"\n")
            os.ftruncate(fd, size - len(torn))
            if not body:
                return 0, GENESIS
        last = body.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        if not last:
            return 0, GENESIS
        entry = json.loads(last)
        return int(entry["seq"]), str(entry["hash"])

    def _read_head(self) -> dict[str, Any]:
        if not self.head.exists():
            return {"seq": 0, "hash": GENESIS}
        try:
            head = json.loads(self.head.read_text(encoding="utf-8"))
            if isinstance(head, dict) and isinstance(head.get("seq"), int) and isinstance(head.get("hash"), str):
                return head
        except json.JSONDecodeError:
            pass
        raise LedgerBroken(f"{self.head.name} is not the head the ledger writes ({{\"seq\": N, \"hash\": ...}}): "
                           "it was edited", file=str(self.head))

    def verify(self) -> VerifyReport:
        """Check every entry against ledger.v1 and the chain; raise ``LedgerBroken`` naming the first bad one."""
        prev, seq, count = GENESIS, 0, 0
        files = self.files()
        head = self._read_head()
        for path in files:
            with path.open(encoding="utf-8") as handle:
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
                        raise LedgerBroken(
                            f"{name}: entry seq {entry['seq']} follows seq {seq}: an entry was removed, "
                            "inserted or moved", **where)
                    if entry["prev"] != prev:
                        raise LedgerBroken(f"{name}: entry seq {entry['seq']} does not chain to the entry "
                                           "before it (prev hash differs)", **where)
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
        # The head may lag one entry behind (a worker killed between the two writes), never run ahead.
        if head["seq"] > seq:
            raise LedgerBroken(
                f"the ledger ends at entry seq {seq} but its head ({self.head.name}) records entry seq "
                f"{head['seq']}: entries after seq {seq} were removed", file=str(self.head))
        return VerifyReport(files=len(files), entries=count, last_hash=prev)



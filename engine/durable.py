"""Writes that must survive a crash: once these functions return, the data is on disk.

The queue's claim counters, the kernel's apply journal and the circuit breakers' state are written
here: to a temporary file, fsync'd, renamed over the target, and the folder fsync'd.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

NAME_MAX = 255  # bytes in one file name on the file systems the engine runs on


def tmp_name(name: str) -> str:
    """``<name>.tmp``, or a shortened name with a hash of ``name`` when that would not fit NAME_MAX."""
    candidate = name + ".tmp"
    if len(candidate.encode()) <= NAME_MAX:
        return candidate
    return hashlib.sha256(name.encode()).hexdigest()[:32] + ".tmp"


def write_durably(path: Path, body: bytes) -> None:
    """Write ``body`` to a temp file, fsync it, rename it over ``path`` and fsync the folder: once this
    returns, ``path`` holds ``body`` whole, even after a power cut."""
    tmp = path.with_name(tmp_name(path.name))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    sync_folder(path.parent)


def append_durably(path: Path, body: bytes, mode: int = 0o644) -> None:
    """Append ``body`` to ``path`` in one ``write`` (``O_APPEND``) and fsync it; a file this makes has its
    folder fsync'd too: once this returns, the lines are on disk."""
    made = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    if made:
        sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """fsync ``folder``: the names created, renamed or removed in it are on disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Pinned models: the exact BPMN and DMN files each run used, kept by content hash.

A run names its models in every ledger entry by their hashes (``Models.hashes``: ``bpmn`` covers the
process file and the files its call activities reach, ``dmn`` the decisions file). Before it claims
anything, the kernel copies those files into the workspace's ``.engine/models/``::

    bpmn-<bpmn hash>/<the process file's name>, <each called file's name>, pinned.json
    dmn-<dmn hash>.dmn

so that whatever later happens to ``process/``, the run can be shown, explained, replayed and resumed
on the models it ran: ``load_pinned(store, hashes, registry)`` parses them again and refuses when the
files no longer have the hashes they are kept under (the store was edited by hand).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.durable import sync_folder, write_durably
from engine.errors import ModelError, Problem

if TYPE_CHECKING:  # parsing models needs SpiffWorkflow; reading the pinned files does not
    from engine.plugins.loader import Registry
    from engine.process.models import Models

PINNED_FILE = "pinned.json"


def bpmn_hash(files: Sequence[tuple[str, bytes]]) -> str:
    """The hash a run names its process by: the process file's bytes, then for each file its call
    activities reach ``\\0 name \\0 content``."""
    content = files[0][1]
    for name, data in files[1:]:
        content += b"\0" + name.encode() + b"\0" + data
    return hashlib.sha256(content).hexdigest()


def bpmn_folder(store: Path, bpmn_hash: str) -> Path:
    return store / f"bpmn-{bpmn_hash}"


def dmn_file(store: Path, dmn_hash: str) -> Path:
    return store / f"dmn-{dmn_hash}.dmn"


def pin(models: Models, store: Path) -> None:
    """Keep ``models``' files in ``store`` (once per hash; files written durably, a folder renamed into
    place whole, so a crash never leaves half a model under a hash)."""
    store.mkdir(parents=True, exist_ok=True)
    folder = bpmn_folder(store, models.bpmn_hash)
    if not folder.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=".pinning-", dir=store))
        try:
            for path in (models.bpmn_path, *models.called_files):
                write_durably(staging / path.name, path.read_bytes())
            write_durably(staging / PINNED_FILE, (json.dumps(
                {"process_file": models.bpmn_path.name, "bpmn": models.bpmn_hash,
                 "called_files": [p.name for p in models.called_files]}, indent=2, sort_keys=True) + "\n").encode())
            try:
                os.rename(staging, folder)
            except OSError:  # another kernel pinned the same hash meanwhile
                if not folder.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    target = dmn_file(store, models.dmn_hash)
    if not target.is_file():  # written under a name of its own, then renamed: kernels may pin at once
        fd, staged = tempfile.mkstemp(prefix=".pinning-", suffix=".dmn", dir=store)
        try:
            os.write(fd, models.dmn_path.read_bytes())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(staged, target)
    sync_folder(store)


def pinned(store: Path, hashes: Mapping[str, str]) -> tuple[Path, Path] | None:
    """The pinned process file and decisions file of ``hashes``, or None when they were never pinned."""
    folder = bpmn_folder(store, str(hashes.get("bpmn")))
    dmn = dmn_file(store, str(hashes.get("dmn")))
    try:
        process_file = json.loads((folder / PINNED_FILE).read_text(encoding="utf-8"))["process_file"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    bpmn = folder / str(process_file)
    return (bpmn, dmn) if bpmn.is_file() and dmn.is_file() else None


def read_pinned(store: Path, hashes: Mapping[str, str]) -> tuple[list[tuple[str, bytes]], bytes, Path]:
    """The pinned files of ``hashes`` without parsing them: ([(name, bytes)] of the process file then its
    called files, the DMN bytes, the process file's path). ``ModelError`` when they were never pinned or
    no longer have their hashes."""
    found = pinned(store, hashes)
    name = f"bpmn {str(hashes.get('bpmn'))[:12]}…, dmn {str(hashes.get('dmn'))[:12]}…"
    if found is None:
        raise ModelError(f"the models {name} are not pinned in {store} (runs before pinning existed, or the "
                         "folder was removed)", file=str(store))
    process_file, dmn_path = found
    manifest = json.loads((process_file.parent / PINNED_FILE).read_text(encoding="utf-8"))
    files = [(process_file.name, process_file.read_bytes())]
    files += [(str(n), (process_file.parent / str(n)).read_bytes()) for n in manifest.get("called_files") or []]
    dmn = dmn_path.read_bytes()
    if bpmn_hash(files) != hashes.get("bpmn") or hashlib.sha256(dmn).hexdigest() != hashes.get("dmn"):
        raise ModelError(f"the pinned models {name} in {store} were changed after they were pinned: their "
                         "files no longer have the hashes they are kept under", file=str(process_file),
                         problems=[Problem("pinned model changed", file=str(process_file))])
    return files, dmn, process_file


def load_pinned(store: Path, hashes: Mapping[str, str], registry: Registry) -> Models:
    """The models a run used, parsed again from ``store``. ``ModelError`` when they were never pinned,
    when their files no longer have their hashes, or when this engine (its plugins) cannot load them."""
    from engine.process.models import load_models

    read_pinned(store, hashes)  # refused unless pinned and unchanged
    found = pinned(store, hashes)
    assert found is not None
    return load_models(*found, registry)

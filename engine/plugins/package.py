"""``engine plugin pack``: a plugin folder as one reproducible archive, to publish and install elsewhere.

What the kernel guarantees about an archive ``<id>-<version>.tar.gz``:

- Only a plugin that loads (every check of ``engine plugin check``, the worker's import included) and whose
  ``manifest.json`` holds the ``source_digest`` of the folder as it is now is packed: a missing, stale or
  engine 0.1 (legacy) digest is refused, naming ``manifest.json`` and ``$.source_digest``.
- It holds exactly the files that digest covers, plus ``manifest.json``, under ``<id>/``, in sorted order;
  Python caches never. Extracted into a workspace's ``plugins/``, the folder has the same digest, so
  ``engine plugin check <id>`` there passes (the manifest vouches for what was packed).
- The bytes depend on the files' paths, contents and executable bits only: every entry has mtime 0,
  owner 0:0 with no names, mode 0644 (0755 when the file is executable by its owner), and the gzip header
  has mtime 0 and no file name. Packing the same folder twice gives the same bytes, and the same SHA-256.
- Beside it, ``<archive>.sha256`` holds ``<hex>  <archive name>`` (the format of ``sha256sum``), so
  ``sha256sum -c`` checks a download. Both files are written whole (a temporary file, then renamed).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import PluginLoadError, Problem
from engine.plugins.catalog import check_plugin
from engine.plugins.loader import MANIFEST_FILE, legacy_source_digest, source_digest, source_files
from engine.workspace import Workspace

GZIP_LEVEL = 9  # fixed: the level is part of the bytes


@dataclass(frozen=True)
class Package:
    """What ``pack_plugin`` wrote: the archive, its SHA-256 (hex), and the files in it."""

    plugin: str
    version: str
    archive: Path
    sha256: str
    files: list[str]
    source_digest: str

    def as_dict(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "version": self.version, "archive": str(self.archive),
                "sha256": self.sha256, "files": len(self.files), "source_digest": self.source_digest}


def _digest_problems(folder: Path, recorded: str | None) -> list[Problem]:
    """Why the manifest's ``source_digest`` cannot vouch for the folder as packed; [] when it can."""
    manifest, field = str(folder / MANIFEST_FILE), "$.source_digest"
    if not recorded:
        return [Problem("has no source_digest: a packed plugin must say what it holds; run `engine plugin new "
                        f"{folder.name}` (or write the digest) and pack again", file=manifest, path=field)]
    current = source_digest(folder)
    if recorded == current:
        return []
    if recorded == legacy_source_digest(folder):
        return [Problem(f"source_digest is the engine 0.1 digest, which leaves out tests, fixtures and docs; "
                        f"write the current one ({current}) and pack again", file=manifest, path=field)]
    return [Problem(f"source_digest does not match the source on disk ({current}); update it if the change is "
                    "intended, then pack again", file=manifest, path=field)]


def _entry(name: str, path: Path) -> tuple[tarfile.TarInfo, bytes | None]:
    """The archive entry of ``path`` as ``name``: only what it holds and whether it is executable."""
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if path.is_symlink():  # the digest counts a link as where it points; the loader keeps it inside the folder
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
        return info, None
    data = path.read_bytes()
    info.size = len(data)
    info.mode = 0o755 if path.stat().st_mode & 0o100 else 0o644
    return info, data


def _archive_bytes(plugin_id: str, folder: Path, names: list[str]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in names:
            info, data = _entry(f"{plugin_id}/{rel}", folder / rel)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, compresslevel=GZIP_LEVEL, mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def _write_whole(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pack_plugin(ws: Workspace, plugin_id: str, output: Path) -> Package:
    """Pack the plugin the workspace uses for ``plugin_id`` into ``output/<id>-<version>.tar.gz`` (and its
    ``.sha256``); see the module docstring for what the archive holds.

    Raises ``PluginLoadError`` (nothing written) with every problem when the plugin is unknown, does not
    load, or its manifest's ``source_digest`` is missing or not the folder's, and when a file changed while
    it was read."""
    report = check_plugin(ws, plugin_id)
    plugin = report.loaded
    recorded = plugin.manifest.source_digest if plugin is not None else None
    found = list(report.problems)
    if plugin is not None and not found:
        found = _digest_problems(plugin.folder, recorded)
    if found or plugin is None or recorded is None:
        raise PluginLoadError(f"plugin {plugin_id!r} cannot be packed", plugin=plugin_id, problems=found)
    folder = plugin.folder
    names = sorted([MANIFEST_FILE, *(p.relative_to(folder).as_posix() for p in source_files(folder))])
    data = _archive_bytes(plugin.id, folder, names)
    if source_digest(folder) != recorded:  # changed while it was read: the archive may mix old and new
        raise PluginLoadError(f"plugin {plugin_id!r} cannot be packed", plugin=plugin_id, problems=[
            Problem("the folder changed while it was packed; pack again", file=str(folder))])
    output.mkdir(parents=True, exist_ok=True)
    archive = (output / f"{plugin.id}-{plugin.version}.tar.gz").absolute()
    hexdigest = hashlib.sha256(data).hexdigest()
    _write_whole(archive, data)
    _write_whole(archive.with_name(archive.name + ".sha256"), f"{hexdigest}  {archive.name}\n".encode())
    return Package(plugin.id, plugin.version, archive, hexdigest, names, recorded)

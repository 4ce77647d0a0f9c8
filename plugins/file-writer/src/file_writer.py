"""file-writer: writes and deletes files in the task's worktree, and nowhere else.

Every path of ``task.args.files`` is checked before anything is written: a path must be relative,
without ``..``, outside ``.git``, and must not lead out of ``ctx.workdir`` through a symlink; content is
not written through a symlink at all. One bad path refuses the whole call. The plan lists exactly what
the apply then does: ``create`` for a new file, ``modify`` for a file whose content differs, ``delete``
for a file that is there; a file that already has the content, or a deletion of a file that is not
there, is no change.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from engine.sdk import Context, PluginError


def _target(root: Path, raw: str) -> tuple[str, Path]:
    """The path as the change names it (relative, POSIX) and the file to touch; PluginError if it may not be."""
    path = PurePosixPath(raw.replace("\\", "/"))
    if path.is_absolute():
        raise PluginError(f"file-writer refuses {raw!r}: an absolute path; name files relative to the repository",
                          retryable=False, path=raw)
    parts = [p for p in path.parts if p != "."]
    if not parts or ".." in parts:
        raise PluginError(f"file-writer refuses {raw!r}: it is not a file inside the repository", retryable=False,
                          path=raw)
    if any(p.lower() == ".git" for p in parts):
        raise PluginError(f"file-writer refuses {raw!r}: files under .git are git's, not the task's",
                          retryable=False, path=raw)
    parent = root.joinpath(*parts[:-1]).resolve()
    if not parent.is_relative_to(root):
        raise PluginError(f"file-writer refuses {raw!r}: it leads through a symlink to {parent}, outside the "
                          f"repository {root}", retryable=False, path=raw)
    inside = parent.relative_to(root).parts
    if any(p.lower() == ".git" for p in inside):
        raise PluginError(f"file-writer refuses {raw!r}: it leads through a symlink into .git", retryable=False,
                          path=raw)
    return PurePosixPath(*inside, parts[-1]).as_posix(), parent / parts[-1]


def _action(raw: str, target: Path, spec: Mapping[str, Any]) -> str | None:
    if target.is_dir() and not target.is_symlink():
        raise PluginError(f"file-writer refuses {raw!r}: it is a folder, not a file", retryable=False, path=raw)
    if spec.get("delete"):
        return "delete" if target.is_symlink() or target.exists() else None
    if target.is_symlink():
        raise PluginError(f"file-writer refuses {raw!r}: it is a symlink; name the file it points to",
                          retryable=False, path=raw)
    if not target.exists():
        folder = next(p for p in (target.parent, *target.parent.parents) if p.exists())
        if not folder.is_dir():
            raise PluginError(f"file-writer refuses {raw!r}: {folder.name} on its way is a file, not a folder",
                              retryable=False, path=raw)
        return "create"
    return "modify" if target.read_bytes() != str(spec["content"]).encode("utf-8") else None


def write(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    root = Path(ctx.workdir).resolve()
    planned: list[tuple[str, Path, str, Mapping[str, Any]]] = []
    seen: set[str] = set()
    for spec in data["task"]["args"]["files"]:
        rel, target = _target(root, str(spec["path"]))
        if rel in seen:
            raise PluginError(f"file-writer refuses {spec['path']!r}: {rel} is named twice", retryable=False,
                              path=spec["path"])
        seen.add(rel)
        action = _action(str(spec["path"]), target, spec)
        if action is not None:
            planned.append((rel, target, action, spec))
    changes = [{"path": rel, "action": action} for rel, _, action, _ in planned]
    counts = {a: sum(c["action"] == a for c in changes) for a in ("create", "modify", "delete")}
    plan = {"summary": f"would create {counts['create']}, modify {counts['modify']} and delete {counts['delete']} "
                       f"file(s) in {root}", "changes": changes, "commands": []}
    if ctx.whatif:
        return {"plan": plan}
    for _, target, action, spec in planned:
        if action == "delete":
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(str(spec["content"]).encode("utf-8"))
    return {"plan": plan, "applied": {"changes": changes}}

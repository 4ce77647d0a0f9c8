"""git-inspector: read-only views of the task's git repository, through GitPython.

"Read-only" means: the working tree, the index, the refs and the config are never touched. A
snapshot (``status``) writes the tree objects of the current working tree into the object store, through
a temporary index, so that ``diff`` can later say exactly what changed since; those objects are
unreferenced and git's own garbage collection removes them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import git

from engine.sdk import Context, PluginError

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def _repo(ctx: Context) -> git.Repo:
    try:
        return git.Repo(ctx.workdir)
    except git.NoSuchPathError as e:
        raise PluginError(f"repository {ctx.workdir} does not exist", retryable=False) from e
    except git.InvalidGitRepositoryError as e:
        raise PluginError(f"{ctx.workdir} is not a git repository", retryable=False) from e
    except git.GitCommandNotFound as e:
        raise PluginError("git is not installed or not on PATH", retryable=False) from e


def _head(repo: git.Repo) -> str | None:
    try:
        return repo.head.commit.hexsha
    except ValueError:  # no commit yet
        return None


def _snapshot(repo: git.Repo) -> str:
    """The tree of the working tree as it is now (tracked and untracked, .gitignore respected)."""
    with tempfile.TemporaryDirectory(prefix="engine-snapshot-") as tmp:
        index = os.path.join(tmp, "index")
        real = os.path.join(repo.git_dir, "index")
        if os.path.exists(real):
            shutil.copyfile(real, index)
        env = {"GIT_INDEX_FILE": index}
        try:
            repo.git.add("-A", env=env)
            return str(repo.git.write_tree(env=env))
        except git.GitCommandError as e:
            raise PluginError(f"cannot snapshot {repo.working_dir}: {e.stderr.strip()}", retryable=True) from e


def status(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    repo = _repo(ctx)
    branch = None if repo.head.is_detached else repo.active_branch.name
    head = _head(repo)
    changed: set[str] = set()
    if head is not None:
        changed.update(d.a_path or d.b_path for d in repo.index.diff(None))
        changed.update(d.a_path or d.b_path for d in repo.index.diff("HEAD"))
    untracked = sorted(repo.untracked_files)
    return {"repo_state": {"branch": branch, "head": head, "dirty": bool(changed or untracked),
                           "changed": sorted(changed), "untracked": untracked, "snapshot": _snapshot(repo)}}


def diff(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Changes of the working tree (untracked files included) since ``data.since`` (a snapshot from
    ``status``), else since ``task.args.base`` (default ``HEAD``)."""
    repo = _repo(ctx)
    if data.get("since"):
        base = str(data["since"])
    else:
        base = str(data["task"].get("args", {}).get("base", "HEAD"))
        if base == "HEAD" and _head(repo) is None:
            base = EMPTY_TREE
    try:
        numstat = repo.git.diff("--numstat", "--no-renames", base, _snapshot(repo))
    except git.GitCommandError as e:
        raise PluginError(f"git diff from {base} failed: {e.stderr.strip()}", retryable=False) from e
    files = []
    for row in numstat.splitlines():
        added, removed, path = row.split("\t", 2)
        files.append({"path": path, "added": int(added) if added != "-" else 0,
                      "removed": int(removed) if removed != "-" else 0})
    total = sum(f["added"] + f["removed"] for f in files)
    return {"diff": {"base": base, "files": files, "changed_files": len(files), "diff_lines": total}}


def log(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    repo = _repo(ctx)
    count = int(data["task"].get("args", {}).get("max_count", 10))
    if _head(repo) is None:
        return {"log": []}
    return {"log": [{"sha": c.hexsha, "summary": c.summary, "author": c.author.name,
                     "date": c.authored_datetime.isoformat()} for c in repo.iter_commits(max_count=count)]}

"""git-inspector: read-only views of the task's git repository, through GitPython."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import git

from engine.sdk import Context, PluginError


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
                           "changed": sorted(changed), "untracked": untracked}}


def diff(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    repo = _repo(ctx)
    base = str(data["task"].get("args", {}).get("base", "HEAD"))
    if _head(repo) is None:
        return {"diff": {"files": [], "changed_files": 0, "diff_lines": 0}}
    try:
        numstat = repo.git.diff(base, "--numstat")
    except git.GitCommandError as e:
        raise PluginError(f"git diff {base} failed: {e.stderr.strip()}", retryable=False) from e
    files = []
    for row in numstat.splitlines():
        added, removed, path = row.split("\t", 2)
        files.append({"path": path, "added": int(added) if added != "-" else 0,
                      "removed": int(removed) if removed != "-" else 0})
    total = sum(f["added"] + f["removed"] for f in files)
    return {"diff": {"files": files, "changed_files": len(files), "diff_lines": total}}


def log(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    repo = _repo(ctx)
    count = int(data["task"].get("args", {}).get("max_count", 10))
    if _head(repo) is None:
        return {"log": []}
    return {"log": [{"sha": c.hexsha, "summary": c.summary, "author": c.author.name,
                     "date": c.authored_datetime.isoformat()} for c in repo.iter_commits(max_count=count)]}

"""A git worktree per task: where a task's changes happen, away from the user's checkout.

``create`` adds ``.engine/worktrees/<task-id>`` on a new branch ``engine/<task-id>`` from the
repository's current HEAD; the user's working tree, index and branch are not touched. ``remove``
takes the worktree away and keeps the branch (a task's commit lives there). A worktree of a task that
failed is kept for inspection until ``prune``. A task run again replaces its old worktree and branch.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError
from engine.lazy import lazy

if TYPE_CHECKING:
    import git
else:
    git = lazy("git")  # GitPython costs ~25 ms to import: `engine status` lists worktrees without it

BRANCH_PREFIX = "engine/"
MARKER = "engine-worktree.json"  # beside the worktree's own git files: which repository, task and run


class WorktreeError(EngineError):
    """A worktree could not be made, found or removed."""


@dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str
    repo: Path
    base: str
    task_id: str
    base_branch: str | None = None  # the branch the repository was on: what a merge goes into

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "branch": self.branch, "repo": str(self.repo), "base": self.base,
                "task_id": self.task_id, "base_branch": self.base_branch}


def _branch_of(repo: git.Repo) -> str | None:
    return None if repo.head.is_detached else str(repo.head.ref.name)


def branch_for(task_id: str) -> str:
    """``engine/<task-id>``, made a valid branch name (``..``, ``.lock`` and a trailing ``.`` replaced)."""
    safe = re.sub(r"\.\.+", "_", task_id)
    safe = re.sub(r"\.lock$", "_lock", safe).rstrip(".") or "task"
    return BRANCH_PREFIX + safe


def _repo(path: Path) -> git.Repo:
    try:
        return git.Repo(path)
    except (git.NoSuchPathError, git.InvalidGitRepositoryError) as e:
        raise WorktreeError(f"{path} is not a git repository: a task that changes files needs one",
                            repo=str(path)) from e
    except git.GitCommandNotFound as e:
        raise WorktreeError("git is not installed or not on PATH", repo=str(path)) from e


def _start(repo_path: Path) -> tuple[git.Repo, str]:
    """The repository and the commit a task's worktree starts from (its HEAD)."""
    repo = _repo(repo_path)
    try:
        return repo, str(repo.head.commit.hexsha)
    except ValueError as e:
        raise WorktreeError(f"{repo_path} has no commit yet: a worktree needs one to start from",
                            repo=str(repo_path)) from e


def create(repo_path: Path, root: Path, task_id: str, *, run_id: str) -> Worktree:
    """A fresh worktree for ``task_id`` under ``root`` on branch ``engine/<task-id>`` from HEAD."""
    repo, base = _start(repo_path)
    path = root / task_id
    branch = branch_for(task_id)
    if path.exists() or any(w.path == path for w in listed(repo_path)):
        remove(path, keep_branch=False)
    try:
        root.mkdir(parents=True, exist_ok=True)
        repo.git.worktree("add", "-q", "-B", branch, str(path), base)
    except git.GitCommandError as e:
        raise WorktreeError(f"cannot make a worktree for task {task_id}: {e.stderr.strip()}",
                            repo=str(repo_path)) from e
    made = Worktree(path, branch, Path(repo.working_tree_dir or repo_path), base, task_id, _branch_of(repo))
    (Path(git.Repo(path).git_dir) / MARKER).write_text(json.dumps({**made.as_dict(), "run_id": run_id}),
                                                        encoding="utf-8")
    return made


def rehearse(repo_path: Path, root: Path, task_id: str) -> Worktree:
    """For a WhatIf run: a throwaway clone at ``root/<task-id>`` that looks like the task's worktree would
    (HEAD checked out on branch ``engine/<task-id>``), so plans are made against what the apply would
    see. It borrows the repository's objects read-only (``--shared``): nothing is written into the
    repository, no ref, no object, no worktree entry. Remove it with ``shutil.rmtree``."""
    repo, base = _start(repo_path)
    path = root / task_id
    branch = branch_for(task_id)
    if path.exists():
        shutil.rmtree(path)
    root.mkdir(parents=True, exist_ok=True)
    source = Path(repo.working_tree_dir or repo_path)
    try:
        git.Repo.clone_from(str(source), str(path), shared=True, no_checkout=True, quiet=True)
        clone = git.Repo(path)
        clone.git.checkout("-q", "-B", branch, base)
        for key in ("user.name", "user.email"):  # commits planned as the worktree would make them
            with contextlib.suppress(git.GitCommandError):
                clone.git.config(key, repo.git.config("--get", key))
    except git.GitCommandError as e:
        raise WorktreeError(f"cannot rehearse a worktree for task {task_id}: {e.stderr.strip()}",
                            repo=str(repo_path)) from e
    return Worktree(path, branch, source, base, task_id, _branch_of(repo))


def listed(repo_path: Path) -> list[Worktree]:
    """The engine's worktrees of a repository (branches under ``engine/``)."""
    repo = _repo(repo_path)
    found: list[Worktree] = []
    current: dict[str, str] = {}
    for line in [*repo.git.worktree("list", "--porcelain").splitlines(), ""]:
        if line:
            key, _, value = line.partition(" ")
            current[key] = value
            continue
        branch = current.get("branch", "").removeprefix("refs/heads/")
        if branch.startswith(BRANCH_PREFIX) and "worktree" in current:
            found.append(Worktree(Path(current["worktree"]), branch, Path(repo.working_tree_dir or repo_path),
                                  current.get("HEAD", ""), branch.removeprefix(BRANCH_PREFIX)))
        current = {}
    return found


def remove(path: Path, *, keep_branch: bool = True) -> None:
    """Remove the worktree at ``path`` (its changes go with it); keep its branch unless told not to."""
    if not path.exists():
        return
    try:
        repo = git.Repo(path)
        main = Path(repo.git.rev_parse("--path-format=absolute", "--git-common-dir")).parent
        branch = None if repo.head.is_detached else repo.head.ref.name
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError):
        shutil.rmtree(path)  # not a worktree any more: only our folder is left
        return
    owner = git.Repo(main)
    try:
        owner.git.worktree("remove", "--force", "--force", str(path))
        if not keep_branch and branch and branch.startswith(BRANCH_PREFIX):
            owner.git.branch("-D", branch)
    except git.GitCommandError as e:
        raise WorktreeError(f"cannot remove the worktree {path}: {e.stderr.strip()}", repo=str(main)) from e


def info(path: Path) -> dict[str, Any] | None:
    """What ``create`` noted about the worktree at ``path`` (None when it is not one of ours)."""
    try:
        marker = Path(git.Repo(path).git_dir) / MARKER
        loaded: dict[str, Any] = json.loads(marker.read_text(encoding="utf-8"))
        return loaded
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, OSError, ValueError):
        return None


def kept(root: Path) -> list[dict[str, Any]]:
    """The worktrees under ``root`` (``.engine/worktrees``): what ``create`` noted, plus the folder's age.
    Those of finished tasks are gone; the ones left belong to tasks that failed or are running."""
    if not root.is_dir():
        return []
    found = []
    for path in sorted(p for p in root.iterdir() if p.is_dir()):
        found.append({**(info(path) or {"path": str(path), "task_id": path.name}), "mtime": path.stat().st_mtime})
    return found


def prune(root: Path, *, older_than_sec: float, now: float) -> list[dict[str, Any]]:
    """Remove the worktrees under ``root`` untouched for ``older_than_sec``; their branches stay."""
    removed = []
    for entry in kept(root):
        if now - float(entry["mtime"]) >= older_than_sec:
            remove(Path(entry["path"]))
            removed.append(entry)
    repos = {str(e.get("repo")) for e in removed if e.get("repo")}
    for repo in repos:
        with contextlib.suppress(git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError):
            git.Repo(repo).git.worktree("prune")  # forget worktrees whose folders are gone
    return removed


def _checked_out(repo: git.Repo, branch: str) -> list[Path]:
    """The working trees (the main one or linked ones) that have ``branch`` checked out."""
    found, current = [], ""
    for line in repo.git.worktree("list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            current = line[len("worktree "):]
        elif line == f"branch refs/heads/{branch}":
            found.append(Path(current))
    return found


def _ancestor(repo: git.Repo, older: str, newer: str) -> bool:
    try:
        repo.git.merge_base("--is-ancestor", older, newer)
    except git.GitCommandError:
        return False
    return True


def merge_plan(worktree: Path) -> dict[str, Any]:
    """What merging the task's branch into its base branch would do: ``{"into", "how", "where", ...}``
    with ``how`` one of ``up to date``, ``fast-forward``, ``merge``. ``WorktreeError`` when there is no
    base branch to merge into."""
    noted = info(worktree)
    if noted is None:
        raise WorktreeError(f"{worktree} is not a worktree the engine made: nothing to merge")
    base, branch = noted.get("base_branch"), str(noted.get("branch"))
    if not base:
        raise WorktreeError(f"the repository {noted.get('repo')} was on a detached HEAD when the task started: "
                            f"there is no base branch to merge {branch} into; merge it by hand")
    repo = _repo(Path(str(noted.get("repo"))))
    task_sha = str(repo.git.rev_parse("--verify", f"refs/heads/{branch}"))
    base_sha = str(repo.git.rev_parse("--verify", f"refs/heads/{base}"))
    if task_sha == base_sha or _ancestor(repo, task_sha, base_sha):
        how = "up to date"
    else:
        how = "fast-forward" if _ancestor(repo, base_sha, task_sha) else "merge"
    where = _checked_out(repo, base)
    return {"into": base, "branch": branch, "how": how, "task_sha": task_sha, "base_sha": base_sha,
            "checked_out": [str(p) for p in where], "repo": str(noted.get("repo"))}


def merge(worktree: Path, *, when: str) -> dict[str, Any]:
    """Merge the task's branch into its base branch, only when that is safe: the base branch is not
    checked out anywhere (its ref is moved; a merge commit is made in a temporary worktree), or it is
    checked out in a clean working tree (merged there, as ``git merge`` would). Conflicts leave
    everything as it was. Returns the plan with the resulting ``sha``; ``WorktreeError`` says why not."""
    plan = merge_plan(worktree)
    repo = _repo(Path(plan["repo"]))
    base, branch = plan["into"], plan["branch"]
    if plan["how"] == "up to date":
        return {**plan, "sha": plan["base_sha"]}
    env = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    try:
        repo.git.config("--get", "user.email")
    except git.GitCommandError:
        env.update({"GIT_AUTHOR_NAME": "engine", "GIT_AUTHOR_EMAIL": "engine@localhost",
                    "GIT_COMMITTER_NAME": "engine", "GIT_COMMITTER_EMAIL": "engine@localhost"})
    message = f"Merge {branch} into {base}"
    where = [Path(p) for p in plan["checked_out"]]
    if where:
        checkout = git.Repo(where[0])
        dirty = checkout.git.status("--porcelain", "--untracked-files=all")
        if dirty:
            raise WorktreeError(f"{base} is checked out in {where[0]} with uncommitted changes: the engine does not "
                                f"merge {branch} under them; merge it by hand")
        try:
            checkout.git.merge("--no-edit", "-m", message, branch, env=env)
        except git.GitCommandError as e:
            with contextlib.suppress(git.GitCommandError):
                checkout.git.merge("--abort")
            raise WorktreeError(f"merging {branch} into {base} conflicts: {e.stderr.strip()[:500]}; nothing was "
                                "changed, merge it by hand") from e
        return {**plan, "sha": str(checkout.head.commit.hexsha)}
    if plan["how"] == "fast-forward":
        repo.git.update_ref(f"refs/heads/{base}", plan["task_sha"], plan["base_sha"])
        return {**plan, "sha": plan["task_sha"]}
    with tempfile.TemporaryDirectory(prefix="engine-merge-") as tmp:
        scratch = Path(tmp) / "merge"
        repo.git.worktree("add", "-q", "--detach", str(scratch), plan["base_sha"])
        try:
            work = git.Repo(scratch)
            try:
                work.git.merge("--no-edit", "-m", message, branch, env=env)
            except git.GitCommandError as e:
                raise WorktreeError(f"merging {branch} into {base} conflicts: {e.stderr.strip()[:500]}; nothing "
                                    "was changed, merge it by hand") from e
            sha = str(work.head.commit.hexsha)
            repo.git.update_ref(f"refs/heads/{base}", sha, plan["base_sha"])
        finally:
            repo.git.worktree("remove", "--force", str(scratch))
    return {**plan, "sha": sha}

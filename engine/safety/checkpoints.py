"""Git checkpoints: the exact state of a working tree, kept on a private ref, and restored exactly.

A checkpoint is one commit on ``refs/engine/checkpoints/...`` (never a branch) whose tree holds two
trees: ``worktree``, every file of the working tree (tracked and untracked, ``.gitignore`` respected),
and ``index``, the index as it was; its first parent is HEAD, and its message records HEAD's branch and
the ignored files present, as JSON. Nothing of the user's is touched while taking it: the files are
added through a temporary index.

``restore`` puts back HEAD (the branch moved back if a tool committed), the working tree (changed
files rewritten, new files removed, ignored files that were not there deleted) and the index, so
``git status --porcelain`` and the content of every file are as they were at the checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git

from engine.errors import EngineError

CHECKPOINT_REFS = "refs/engine/checkpoints"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
IDENTITY = {"GIT_AUTHOR_NAME": "engine", "GIT_AUTHOR_EMAIL": "engine@localhost",
            "GIT_COMMITTER_NAME": "engine", "GIT_COMMITTER_EMAIL": "engine@localhost"}


class CheckpointError(EngineError):
    """A checkpoint could not be taken or restored; ``repo`` names the repository."""


@dataclass(frozen=True)
class Checkpoint:
    ref: str
    sha: str
    head: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "sha": self.sha, "head": self.head}


def _repo(path: Path) -> git.Repo:
    try:
        return git.Repo(path)
    except (git.NoSuchPathError, git.InvalidGitRepositoryError) as e:
        raise CheckpointError(f"{path} is not a git repository: no checkpoint can be taken", repo=str(path)) from e
    except git.GitCommandNotFound as e:
        raise CheckpointError("git is not installed or not on PATH", repo=str(path)) from e


def _head(repo: git.Repo) -> str | None:
    try:
        return str(repo.head.commit.hexsha)
    except ValueError:
        return None


def _ignored(repo: git.Repo) -> list[str]:
    out = repo.git.ls_files("--others", "--ignored", "--exclude-standard", "-z")
    return sorted(p for p in out.split("\0") if p)


def _worktree_tree(repo: git.Repo) -> str:
    """The tree of every file of the working tree, through a temporary index (the real one untouched)."""
    with tempfile.TemporaryDirectory(prefix="engine-checkpoint-") as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        real = Path(repo.git_dir) / "index"
        if real.exists():
            shutil.copy2(real, env["GIT_INDEX_FILE"])  # its mtime kept: git still re-reads racily clean files
        repo.git.add("-A", "--", ".", env=env)
        return str(repo.git.write_tree(env=env))


def take(path: Path, name: str) -> Checkpoint:
    """Take a checkpoint of the repository (or worktree) at ``path`` on ``refs/engine/checkpoints/<name>``."""
    repo = _repo(path)
    try:
        head = _head(repo)
        index_tree = str(repo.git.write_tree()) if (Path(repo.git_dir) / "index").exists() else EMPTY_TREE
        worktree = _worktree_tree(repo)
        listing = f"040000 tree {worktree}\tworktree\n040000 tree {index_tree}\tindex\n"
        made = subprocess.run(["git", "mktree"], cwd=repo.working_tree_dir, input=listing, capture_output=True,
                              text=True, check=True)
        tree = made.stdout.strip()
        branch = None if repo.head.is_detached else repo.head.ref.path
        message = json.dumps({"engine_checkpoint": 1, "branch": branch, "head": head, "ignored": _ignored(repo)},
                             sort_keys=True)
        args = ["-m", message] + (["-p", head] if head else [])
        sha = str(repo.git.commit_tree(tree, *args, env=IDENTITY))
        ref = f"{CHECKPOINT_REFS}/{name}"
        repo.git.update_ref(ref, sha)
    except (git.GitCommandError, subprocess.CalledProcessError) as e:
        raise CheckpointError(f"cannot take a checkpoint of {path}: {str(e.stderr).strip()}", repo=str(path)) from e
    return Checkpoint(ref, sha, head)


def restore(path: Path, checkpoint: str) -> None:
    """Put the repository at ``path`` back exactly as it was at ``checkpoint`` (a ref or a sha)."""
    repo = _repo(path)
    try:
        sha = str(repo.git.rev_parse("--verify", f"{checkpoint}^{{commit}}"))
        meta = json.loads(repo.git.log("-1", "--format=%B", sha))
        head, branch, ignored = meta.get("head"), meta.get("branch"), set(meta.get("ignored") or [])
        if branch and (repo.head.is_detached or repo.head.ref.path != branch):
            repo.git.symbolic_ref("HEAD", branch)
        if head:
            repo.git.update_ref("HEAD", head)  # the branch back where it was, if a tool committed
        # the working tree: tracked and untracked files of the checkpoint back, everything else removed
        repo.git.read_tree("--reset", "-u", f"{sha}:worktree")
        repo.git.clean("-f", "-d", "-q")
        for rel in _ignored(repo):
            if rel not in ignored:
                (Path(repo.working_tree_dir or path) / rel).unlink(missing_ok=True)
        repo.git.read_tree(f"{sha}:index")  # the index as it was (the working tree stays)
    except (git.GitCommandError, ValueError, KeyError) as e:
        detail = e.stderr.strip() if isinstance(e, git.GitCommandError) else str(e)
        raise CheckpointError(f"cannot restore {path} to checkpoint {checkpoint}: {detail}", repo=str(path)) from e


def changed_lines(path: Path, checkpoint: str) -> int:
    """How many lines (added plus removed; a binary file counts one) differ between the checkpoint and the
    working tree now: the ``diff_lines`` a rollback decision reads."""
    repo = _repo(path)
    try:
        now = _worktree_tree(repo)
        numstat = repo.git.diff("--numstat", "--no-renames", f"{checkpoint}:worktree", now)
    except git.GitCommandError as e:
        raise CheckpointError(f"cannot compare {path} with checkpoint {checkpoint}: {e.stderr.strip()}",
                              repo=str(path)) from e
    total = 0
    for row in numstat.splitlines():
        added, removed, _ = row.split("\t", 2)
        total += (int(added) + int(removed)) if added != "-" else 1
    return total


def diff_text(path: Path, checkpoint: str, *, limit: int = 512 * 1024) -> str:
    """The unified diff from the checkpoint to the working tree now (untracked files included), cut at
    ``limit`` characters: what a policy reads to look for secrets a change brought in."""
    repo = _repo(path)
    try:
        now = _worktree_tree(repo)
        text = str(repo.git.diff("--no-renames", "--no-color", "--no-ext-diff", f"{checkpoint}:worktree", now))
    except git.GitCommandError as e:
        raise CheckpointError(f"cannot compare {path} with checkpoint {checkpoint}: {e.stderr.strip()}",
                              repo=str(path)) from e
    return text[:limit]


def drop(path: Path, ref: str) -> None:
    """Remove a checkpoint's ref (its objects go with git's garbage collection)."""
    if not ref.startswith(CHECKPOINT_REFS + "/"):
        raise CheckpointError(f"{ref} is not a checkpoint ref", repo=str(path))
    repo = _repo(path)
    try:
        repo.git.update_ref("-d", ref)
    except git.GitCommandError as e:
        raise CheckpointError(f"cannot remove {ref}: {e.stderr.strip()}", repo=str(path)) from e


def fingerprint(path: Path) -> dict[str, str]:
    """Every file under ``path`` (``.git`` excluded) with the SHA-256 of its content: what a rollback must
    give back. For tests and for the auditor's comparison."""
    import hashlib

    out: dict[str, str] = {}
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not (Path(root) == path and d == ".git")]
        for name in files:
            full = Path(root) / name
            rel = full.relative_to(path).as_posix()
            if rel == ".git":
                continue
            data = os.readlink(full).encode() if full.is_symlink() else full.read_bytes()
            out[rel] = hashlib.sha256(data).hexdigest()
    return out

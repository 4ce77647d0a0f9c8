"""git-inspector: read-only views of the task's git repository, through GitPython.

"Read-only" means: the working tree, the index, the refs and the config are never touched, and git is
run without optional locks (``GIT_OPTIONAL_LOCKS=0``), so even ``git status`` does not rewrite the index.
A snapshot (``status``) writes the tree objects of the current working tree into the object store,
through a temporary index, so that ``diff`` can later say exactly what changed since; those objects are
unreferenced and git's own garbage collection removes them.

With ``ctx.whatif`` nothing at all is written into ``.git``: ``status`` and ``diff`` build the tree of the
working tree in a scratch object store in a temporary folder outside the repository (the repository's
objects read as alternates), deleted afterwards. The snapshot id is the same as a real run's (a tree id
is its content's hash); a ``diff`` since a snapshot equal to the tree now is empty without reading it.

A ref or a snapshot given as input (``task.args.base``, ``since``) is refused when it starts with ``-``:
git would read it as an option (``--output=FILE`` truncates FILE).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

from engine.sdk import Context, PluginError

try:
    import git
except ImportError:  # GitPython refuses to import when it finds no git executable
    git = None

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
# The tree of each commit a clean working tree was snapshotted at, kept by this warm worker: a clean
# repository's snapshot is then `git status` alone, without `git add` (commit ids are content hashes).
_HEAD_TREES: dict[str, str] = {}
READ_ENV = {"GIT_OPTIONAL_LOCKS": "0"}


def _repo(ctx: Context) -> Any:
    if shutil.which("git") is None:
        raise PluginError("git is not installed or not on PATH; install git or put it on the engine's PATH",
                          retryable=False)
    if git is None:
        raise PluginError("GitPython cannot be imported in the plugin's worker; install GitPython>=3.1 in the "
                          "engine's environment", retryable=False)
    try:
        return git.Repo(ctx.workdir)
    except git.NoSuchPathError as e:
        raise PluginError(f"repository {ctx.workdir} does not exist", retryable=False) from e
    except git.InvalidGitRepositoryError as e:
        raise PluginError(f"{ctx.workdir} is not a git repository", retryable=False) from e


def _args(data: Mapping[str, Any]) -> Mapping[str, Any]:
    task = data.get("task")
    args = task.get("args") if isinstance(task, Mapping) else None
    return args if isinstance(args, Mapping) else {}


def _ref(field: str, value: Any) -> str:
    """``value`` as a ref, never as an option."""
    if not isinstance(value, str) or not value:
        raise PluginError(f"{field} {value!r} is not a ref: give a non-empty string", retryable=False)
    if value.startswith("-"):
        raise PluginError(f"{field} {value!r} is not a ref: a ref may not start with '-'", retryable=False)
    return value


def _head(repo: Any) -> str | None:
    """HEAD's commit id, read from the refs (no git process: ``repo.head.commit`` would start a
    ``git cat-file`` to look the object up); None before the first commit."""
    try:
        return str(git.refs.SymbolicReference.dereference_recursive(repo, "HEAD"))
    except ValueError:  # no commit yet
        return None


@contextlib.contextmanager
def _store(repo: Any, scratch: bool) -> Iterator[dict[str, str]]:
    """The environment for writing a snapshot: the repository's object store, or with ``scratch`` a
    temporary one outside the repository that reads the repository's objects as alternates."""
    if not scratch:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="engine-inspect-") as tmp:
        yield {"GIT_OBJECT_DIRECTORY": tmp,
               "GIT_ALTERNATE_OBJECT_DIRECTORIES": os.path.join(repo.common_dir, "objects")}


def _snapshot(repo: Any, store: Mapping[str, str]) -> str:
    """The tree of the working tree as it is now (tracked and untracked, .gitignore respected), written
    into ``store`` through a temporary copy of the index."""
    with tempfile.TemporaryDirectory(prefix="engine-snapshot-") as tmp:
        index = os.path.join(tmp, "index")
        real = os.path.join(repo.git_dir, "index")
        if os.path.exists(real):
            shutil.copy2(real, index)  # its mtime kept, so git still re-reads racily clean files
        env = {**READ_ENV, **store, "GIT_INDEX_FILE": index}
        try:
            repo.git.add("-A", env=env)
            tree = _write_tree(repo, index, store)
            return tree if tree is not None else str(repo.git.write_tree(env=env))
        except git.GitCommandError as e:
            raise PluginError(f"cannot snapshot {repo.working_dir}: {e.stderr.strip()}", retryable=True) from e


def _write_tree(repo: Any, index: str, store: Mapping[str, str]) -> str | None:
    """What ``git write-tree`` writes for ``index``, written here (GitPython's index reader and tree
    writer: one git process less per snapshot); None when GitPython cannot read this index (index
    format 3 or 4, unmerged entries), and git does it."""
    from git.index.fun import write_tree_from_cache
    from gitdb.db import LooseObjectDB, MemoryDB

    try:
        entries = sorted(git.IndexFile(repo, file_path=index).entries.values(), key=lambda e: (e.path, e.stage))
    except Exception:  # noqa: BLE001 (any index GitPython does not read goes to git)
        return None
    if any(e.stage != 0 for e in entries):
        return None
    if not entries:
        return EMPTY_TREE
    memory = MemoryDB()
    binsha, _ = write_tree_from_cache(entries, memory, slice(0, len(entries)))
    objects = store.get("GIT_OBJECT_DIRECTORY") or os.path.join(repo.common_dir, "objects")
    memory.stream_copy(memory.sha_iter(), LooseObjectDB(objects))
    return binsha.hex()


def status(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    repo = _repo(ctx)
    branch = None if repo.head.is_detached else repo.active_branch.name
    raw = repo.git.status("--porcelain", "-z", "--untracked-files=all", "--no-renames", env=READ_ENV,
                          strip_newline_in_stdout=False)
    changed: set[str] = set()
    untracked: list[str] = []
    for entry in raw.split("\0"):
        if len(entry) <= 3:
            continue
        if entry[:2] == "??":
            untracked.append(entry[3:])
        else:
            changed.add(entry[3:])
    head = _head(repo)
    snapshot = _HEAD_TREES.get(head) if head is not None and not (changed or untracked) else None
    if snapshot is None:
        with _store(repo, scratch=ctx.whatif) as store:  # WhatIf: the same tree id, nothing written into .git
            snapshot = _snapshot(repo, store)
        if head is not None and not (changed or untracked):
            # clean: the working tree is HEAD's tree, which a commit id names for good (in every repository)
            if len(_HEAD_TREES) >= 4096:
                _HEAD_TREES.clear()
            _HEAD_TREES[head] = snapshot
    return {"repo_state": {"branch": branch, "head": head, "dirty": bool(changed or untracked),
                           "changed": sorted(changed), "untracked": sorted(untracked), "snapshot": snapshot}}


def diff(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Changes of the working tree (untracked files included) since ``data.since`` (a snapshot from
    ``status``), else since ``task.args.base`` (default ``HEAD``)."""
    repo = _repo(ctx)
    if data.get("since"):
        base = _ref("since", data["since"])
    else:
        base = _ref("task.args.base", _args(data).get("base", "HEAD"))
        if base == "HEAD" and _head(repo) is None:
            base = EMPTY_TREE
    with _store(repo, scratch=ctx.whatif) as store:
        tree = _snapshot(repo, store)
        try:  # "--" ends the revisions: neither can be read as an option or a path
            numstat = "" if base == tree else repo.git.diff("--numstat", "--no-renames", base, tree, "--",
                                                            env={**READ_ENV, **store})
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
    count = _args(data).get("max_count", 10)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise PluginError(f"task.args.max_count {count!r} is not a positive integer", retryable=False)
    if _head(repo) is None:
        return {"log": []}
    return {"log": [{"sha": c.hexsha, "summary": c.summary, "author": c.author.name,
                     "date": c.authored_datetime.isoformat()} for c in repo.iter_commits(max_count=count)]}

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

A warm worker does the least git work it can: a snapshot is one ``git add -A`` into a temporary copy of
the index, the tree is written here, and ``status`` compares that index with the repository's index and
HEAD's tree here (GitPython's index reader, gitdb's object reader) instead of running ``git status``; an
index it cannot read that way (split, sparse, unmerged, assume-unchanged, skip-worktree or intent-to-add
entries, submodules) is left to ``git status``. The snapshot of a working tree is kept, with the size,
times and inode of every file and folder in it (``.git`` aside) and of the index, the config and
``info/exclude``, and given again, without any git process, while every one of them is unchanged and
was already older than two seconds when the snapshot began (a change in the same clock tick could
otherwise go unseen, as git's own "racy clean" rule says). A working tree of more than 20,000 files
and folders is not kept.

A ref or a snapshot given as input (``task.args.base``, ``since``) is refused when it starts with ``-``:
git would read it as an option (``--output=FILE`` truncates FILE).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from engine.sdk import Context, PluginError

try:
    import git
except ImportError:  # GitPython refuses to import when it finds no git executable
    GITPYTHON = False
else:
    GITPYTHON = True

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
READ_ENV = {"GIT_OPTIONAL_LOCKS": "0"}
RACY_NS = 2_000_000_000  # a file or folder changed this close to a snapshot's start does not let it be kept
MAX_WATCHED = 20_000  # files and folders of a working tree whose snapshot is kept
KEPT = 64  # working trees (and HEAD trees) a warm worker remembers
GITLINK = 0o160000
Files = dict[str, tuple[int, bytes]]  # path -> (mode, object id)


@dataclass(frozen=True)
class _Snapshot:
    tree: str
    files: Files | None  # the working tree as `git add -A` staged it; None when GitPython cannot read that index
    seen: tuple[Any, ...] | None  # what the working tree looked like (_look); None: not to be given again


_SNAPSHOTS: dict[str, _Snapshot] = {}  # working tree -> its last snapshot (this warm worker's)
_HEAD_FILES: dict[str, Files] = {}  # commit id -> the files of its tree (commit ids are content hashes)
_INDEXES: dict[str, tuple[Any, Files | None]] = {}  # index file -> (its stat, its entries or None)
_SCRATCH: list[str] = []
_REPOS: dict[str, tuple[Any, Any]] = {}  # working tree -> (what its .git is, its Repo)


def _repo(ctx: Context) -> Any:
    """The task's repository; the same GitPython object again while its ``.git`` is the same (a warm
    worker reads the repository's config once, not at every call)."""
    if shutil.which("git") is None:
        raise PluginError("git is not installed or not on PATH; install git or put it on the engine's PATH",
                          retryable=False)
    if not GITPYTHON:
        raise PluginError("GitPython cannot be imported in the plugin's worker; install GitPython>=3.1 in the "
                          "engine's environment", retryable=False)
    path = str(ctx.workdir)
    try:
        st = os.stat(os.path.join(path, ".git"))
        key = (st.st_ino, st.st_dev, st.st_mode)
    except OSError:
        key = None
    known = _REPOS.get(path)
    if key is not None and known is not None and known[0] == key:
        return known[1]
    try:
        repo = git.Repo(ctx.workdir)
    except git.NoSuchPathError as e:
        raise PluginError(f"repository {ctx.workdir} does not exist", retryable=False) from e
    except git.InvalidGitRepositoryError as e:
        raise PluginError(f"{ctx.workdir} is not a git repository", retryable=False) from e
    if key is not None and os.path.realpath(repo.working_dir) == os.path.realpath(path):
        _remember(_REPOS, path, (key, repo))
    return repo


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


def _scratch_index() -> str:
    """A temporary index file of this worker and thread, in a folder removed when the worker exits."""
    if not _SCRATCH:
        _SCRATCH.append(tempfile.mkdtemp(prefix="engine-snapshot-"))
        atexit.register(shutil.rmtree, _SCRATCH[0], True)
    return os.path.join(_SCRATCH[0], f"index-{threading.get_ident()}")


def _look(repo: Any, before_ns: int | None = None) -> tuple[Any, ...] | None:
    """(path, mode, size, mtime, ctime, inode) of every file and folder of the working tree (``.git``
    aside, nested ones too) and of the index, config and ``info/exclude``; None for a working tree of
    more than ``MAX_WATCHED``, or with ``before_ns`` when one of them changed at or after it."""
    root = repo.working_dir
    rows: list[tuple[Any, ...]] = []
    for path in (root, os.path.join(repo.git_dir, "index"), os.path.join(repo.git_dir, "config.worktree"),
                 os.path.join(repo.common_dir, "config"), os.path.join(repo.common_dir, "info", "exclude")):
        try:
            st = os.stat(path)
            rows.append((path, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
        except OSError:
            rows.append((path, None))
    folders = [""]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(os.path.join(root, folder)) as found:
                for entry in found:
                    if entry.name == ".git":
                        continue
                    st = entry.stat(follow_symlinks=False)
                    path = f"{folder}/{entry.name}" if folder else entry.name
                    rows.append((path, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
                    if stat.S_ISDIR(st.st_mode):
                        folders.append(path)
        except OSError:
            return None
        if len(rows) > MAX_WATCHED:
            return None
    if before_ns is not None and any(len(r) > 2 and (r[3] >= before_ns or r[4] >= before_ns) for r in rows):
        return None
    rows.sort(key=lambda r: r[0])
    return tuple(rows)


def _kept(repo: Any) -> _Snapshot | None:
    """The working tree's last snapshot while nothing in it has changed since (its tree still stored)."""
    known = _SNAPSHOTS.get(repo.working_dir)
    if known is None or known.seen is None or known.seen != _look(repo):
        return None
    if known.tree != EMPTY_TREE and not os.path.exists(
            os.path.join(repo.common_dir, "objects", known.tree[:2], known.tree[2:])):
        return None  # garbage-collected meanwhile
    return known


def _snapshot(repo: Any, store: Mapping[str, str]) -> _Snapshot:
    """The tree of the working tree as it is now (tracked and untracked, .gitignore respected), written
    into ``store`` through a temporary copy of the index; the last one again while nothing changed."""
    known = _kept(repo)
    if known is not None:
        return known
    started = time.time_ns()
    index = _scratch_index()
    real = os.path.join(repo.git_dir, "index")
    if os.path.exists(real):
        shutil.copy2(real, index)  # its mtime kept, so git still re-reads racily clean files
    elif os.path.exists(index):
        os.remove(index)
    env = {**READ_ENV, **store, "GIT_INDEX_FILE": index}
    try:
        repo.git.add("-A", env=env)
        entries = _entries(repo, index)
        tree = _write_tree(repo, entries, store) if entries is not None else str(repo.git.write_tree(env=env))
    except git.GitCommandError as e:
        raise PluginError(f"cannot snapshot {repo.working_dir}: {e.stderr.strip()}", retryable=True) from e
    files = {e.path: (e.mode, e.binsha) for e in entries} if entries is not None else None
    if store:  # a scratch store (WhatIf) is gone afterwards: such a snapshot is not kept
        return _Snapshot(tree, files, None)
    snapshot = _Snapshot(tree, files, _look(repo, before_ns=started - RACY_NS))
    _remember(_SNAPSHOTS, repo.working_dir, snapshot)
    return snapshot


def _remember(cache: dict[str, Any], key: str, value: Any) -> None:
    if len(cache) >= KEPT and key not in cache:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _entries(repo: Any, index: str) -> list[Any] | None:
    """The entries of ``index`` in path order; None when GitPython cannot read it (index format 4) or it
    has unmerged entries: then git writes the tree."""
    try:
        entries = sorted(git.IndexFile(repo, file_path=index).entries.values(), key=lambda e: (e.path, e.stage))
    except Exception:  # noqa: BLE001 (any index GitPython does not read goes to git)
        return None
    return None if any(e.stage != 0 for e in entries) else entries


def _write_tree(repo: Any, entries: list[Any], store: Mapping[str, str]) -> str:
    """What ``git write-tree`` writes for ``entries``, written here (GitPython's tree writer: one git
    process less per snapshot)."""
    from git.index.fun import write_tree_from_cache
    from gitdb.db import LooseObjectDB, MemoryDB

    if not entries:
        return EMPTY_TREE
    memory = MemoryDB()
    binsha, _ = write_tree_from_cache(entries, memory, slice(0, len(entries)))
    objects = store.get("GIT_OBJECT_DIRECTORY") or os.path.join(repo.common_dir, "objects")
    memory.stream_copy(memory.sha_iter(), LooseObjectDB(objects))
    return str(binsha.hex())


def _index_files(repo: Any) -> Files | None:
    """The repository's index as path -> (mode, blob id); None when ``git status`` must read it: unmerged,
    assume-unchanged, skip-worktree or intent-to-add entries, submodules, a split or sparse index, or a
    format GitPython does not read."""
    path = os.path.join(repo.git_dir, "index")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    known = _INDEXES.get(path)
    if known is not None and known[0] == key:
        return known[1]
    files: Files | None = None
    try:
        index = git.IndexFile(repo, file_path=path)
        entries = list(index.entries.values())
        plain = not any(e.stage or e.flags & 0x8000 or e.extended_flags or e.mode == GITLINK for e in entries)
        if plain and not _extensions(index._extension_data) & {b"link", b"sdir"}:
            files = {os.fspath(e.path): (e.mode, e.binsha) for e in entries}
    except Exception:  # noqa: BLE001 (any index GitPython does not read goes to git)
        files = None
    _remember(_INDEXES, path, (key, files))
    return files


def _extensions(data: bytes) -> set[bytes]:
    """The signatures of an index's extensions (``data``: what follows its entries, checksum last)."""
    found, at = set(), 0
    while at + 8 <= len(data) - 20:
        found.add(data[at:at + 4])
        at += 8 + int.from_bytes(data[at + 4:at + 8], "big")
    return found


def _head_files(repo: Any, head: str) -> Files | None:
    """The files of HEAD's tree, read here (gitdb) and kept by commit id; None when gitdb cannot read them."""
    known = _HEAD_FILES.get(head)
    if known is not None:
        return known
    from git.objects.fun import tree_entries_from_data
    from gitdb import GitDB

    try:
        db = GitDB(os.path.join(repo.common_dir, "objects"))
        commit = db.stream(bytes.fromhex(head)).read()
        if not commit.startswith(b"tree "):
            return None
        files: Files = {}
        trees = [("", bytes.fromhex(commit[5:45].decode()))]
        while trees:
            folder, binsha = trees.pop()
            for sha, mode, name in tree_entries_from_data(db.stream(binsha).read()):
                path = f"{folder}/{name}" if folder else name
                if mode >> 12 == 0o04:
                    trees.append((path, sha))
                else:
                    files[path] = (mode, sha)
    except Exception:  # noqa: BLE001 (a store gitdb does not read goes to git status)
        return None
    _remember(_HEAD_FILES, head, files)
    return files


def _changes(repo: Any, head: str | None, worktree: Files | None) -> tuple[list[str], list[str]] | None:
    """(changed, untracked) as ``git status --porcelain --untracked-files=all --no-renames`` says them:
    paths whose index entry differs from HEAD's tree or whose working tree file differs from the index
    entry, and files only in the working tree; None when git must tell."""
    if worktree is None or any(mode == GITLINK for mode, _ in worktree.values()):
        return None
    index = _index_files(repo)
    tree = _head_files(repo, head) if head is not None else {}
    if index is None or tree is None:
        return None
    changed = {p for p in index.keys() | tree.keys() if index.get(p) != tree.get(p)}
    changed.update(p for p, entry in index.items() if worktree.get(p) != entry)
    return sorted(changed), sorted(p for p in worktree if p not in index)


def _porcelain(repo: Any) -> tuple[list[str], list[str]]:
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
    return sorted(changed), sorted(untracked)


def status(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    repo = _repo(ctx)
    branch = None if repo.head.is_detached else repo.active_branch.name
    head = _head(repo)
    with _store(repo, scratch=ctx.whatif) as store:  # WhatIf: the same tree id, nothing written into .git
        snapshot = _snapshot(repo, store)
    changed, untracked = _changes(repo, head, snapshot.files) or _porcelain(repo)
    return {"repo_state": {"branch": branch, "head": head, "dirty": bool(changed or untracked),
                           "changed": changed, "untracked": untracked, "snapshot": snapshot.tree}}


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
        tree = _snapshot(repo, store).tree
        try:  # "--" ends the revisions: neither can be read as an option or a path
            numstat = "" if base == tree else repo.git.diff("--numstat", "--no-renames", base, tree, "--",
                                                            env={**READ_ENV, **store})
        except git.GitCommandError as e:
            raise PluginError(f"git diff from {base} failed: {e.stderr.strip()}", retryable=False) from e
    files: list[dict[str, Any]] = []
    total = 0
    for row in numstat.splitlines():
        added, removed, path = row.split("\t", 2)
        lines_added = int(added) if added != "-" else 0
        lines_removed = int(removed) if removed != "-" else 0
        files.append({"path": path, "added": lines_added, "removed": lines_removed})
        total += lines_added + lines_removed
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

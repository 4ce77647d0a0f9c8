"""git-executor: changes the task's git repository (commit, merge, fetch, push, branch), through GitPython.

Every operation is one function in two modes (docs/decisions/0011-state-change-plugins.md). With
``ctx.whatif`` it plans: it reads the repository and answers ``{"plan": {summary, changes, commands}}``
having written nothing at all, in the working tree or in ``.git`` (no object, no index, no ref, no
network). What a plan needs to compute (the tree a commit or a merge would make) is built in a scratch
index and object store in a temporary folder outside the repository, with the repository's objects as
read-only alternates. Without ``whatif`` it computes the same plan, runs exactly ``plan.commands`` and
adds ``"applied"``: what the repository now holds, read back from git rather than assumed.

What is refused, before any git command that could act on it runs, with a ``PluginError`` that is
never retryable: any ref, branch or remote value starting with ``-`` (git would read it as an option),
paths that are absolute or leave the repository, force-pushing or deleting a protected branch
(``PROTECTED_BRANCH``), touching a ref under ``refs/engine/`` (the kernel's checkpoints,
``CHECKPOINT_REF``), deleting the current branch (``CURRENT_BRANCH``), merging into a working tree
with local changes (``DIRTY_WORKTREE``). A merge that conflicts changes nothing (``MERGE_CONFLICT``); a
push the remote rejects is ``PUSH_REJECTED``.

Repository hooks are not run (``-c core.hooksPath=/dev/null`` on every command that writes): a hook
could change what is committed or pushed, and the plan would no longer be what the apply did.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.sdk import Context, PluginError

try:
    import git
except ImportError:  # GitPython refuses to import when it finds no git executable
    GITPYTHON = False
else:
    GITPYTHON = True

FALLBACK_NAME = "engine"
FALLBACK_EMAIL = "engine@localhost"
DEFAULT_PROTECTED = ("main", "master")
CHECKPOINTS = "refs/engine/"
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
# For every git command: no optional index refresh (a plan must not rewrite the index), no fsmonitor
# daemon started, no prompt for credentials (a worker has no terminal).
GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "core.fsmonitor", "GIT_CONFIG_VALUE_0": "false"}
ACTIONS = {"A": "create", "M": "modify", "T": "modify", "D": "delete"}

Change = dict[str, str]


# -- the repository and git ---------------------------------------------------------------------------


def _repo(ctx: Context) -> Any:
    if shutil.which("git") is None:
        raise PluginError(f"git is not installed or not on PATH ({os.environ.get('PATH', '')}); install git "
                          "or put it on the engine's PATH", retryable=False)
    if not GITPYTHON:
        raise PluginError("GitPython cannot be imported in the plugin's worker; install GitPython>=3.1 in the "
                          "engine's environment", retryable=False)
    try:
        return git.Repo(ctx.workdir)
    except git.NoSuchPathError as e:
        raise PluginError(f"repository {ctx.workdir} does not exist", retryable=False) from e
    except git.InvalidGitRepositoryError as e:
        raise PluginError(f"{ctx.workdir} is not a git repository", retryable=False) from e


def _git(repo: Any, argv: Sequence[str], *, env: Mapping[str, str] | None = None, check: bool = True,
         strip: bool = True) -> tuple[int, str, str]:
    """Run ``argv`` (``["git", ...]``) in the working tree; a failure is a non-retryable ``PluginError``
    when ``check``, else ``(status, stdout, stderr)`` tells."""
    try:
        status, out, err = repo.git.execute(list(argv), with_extended_output=True, with_exceptions=False,
                                            env={**GIT_ENV, **(env or {})}, strip_newline_in_stdout=strip)
    except git.GitCommandNotFound as e:
        raise PluginError("git is not installed or not on PATH; install git or put it on the engine's PATH",
                          retryable=False) from e
    if check and status != 0:
        raise PluginError(f"{' '.join(argv)} failed (exit {status}): {err.strip()}", retryable=False)
    return status, out, err


def _rev(repo: Any, what: str) -> str | None:
    status, out, _ = _git(repo, ["git", "rev-parse", "--verify", "-q", f"{what}^{{commit}}"], check=False)
    return out.strip() if status == 0 else None


def _current_branch(repo: Any) -> str | None:
    status, out, _ = _git(repo, ["git", "symbolic-ref", "-q", "--short", "HEAD"], check=False)
    return out.strip() if status == 0 else None


def _empty_tree(repo: Any) -> str:
    return _git(repo, ["git", "hash-object", "-t", "tree", "/dev/null"])[1].strip()  # no -w: writes nothing


def _changes(raw: str) -> list[Change]:
    """``--name-status --no-renames -z`` output as ``[{path, action}]``, sorted by path."""
    fields = raw.split("\0")
    changes = [{"path": path, "action": ACTIONS.get(status[:1], "modify")}
               for status, path in zip(fields[0::2], fields[1::2], strict=False) if status and path]
    return sorted(changes, key=lambda c: c["path"])


@contextlib.contextmanager
def _scratch(repo: Any, *, copy_index: bool) -> Iterator[dict[str, str]]:
    """The environment of a scratch index (a copy of the real one, or empty) and a scratch object store,
    in a temporary folder outside the repository; the repository's objects are read as alternates."""
    with tempfile.TemporaryDirectory(prefix="engine-git-plan-") as tmp:
        objects, index = os.path.join(tmp, "objects"), os.path.join(tmp, "index")
        os.mkdir(objects)
        real = os.path.join(repo.git_dir, "index")
        if copy_index and os.path.exists(real):
            shutil.copy2(real, index)  # its mtime kept, so git still re-reads racily clean files
        yield {"GIT_INDEX_FILE": index, "GIT_OBJECT_DIRECTORY": objects,
               "GIT_ALTERNATE_OBJECT_DIRECTORIES": os.path.join(repo.common_dir, "objects")}


def _identity(repo: Any, ctx: Context) -> tuple[dict[str, str], str]:
    """The environment of a command that makes a commit: dated ``ctx.now`` (a replayed run makes the same
    commits), by the repository's configured user, else by ``engine <engine@localhost>``."""
    offset = ctx.now.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    date = f"{int(ctx.now.timestamp())} {'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    env = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    name = _git(repo, ["git", "config", "--get", "user.name"], check=False)[1].strip()
    email = _git(repo, ["git", "config", "--get", "user.email"], check=False)[1].strip()
    if not (name and email):
        name, email = FALLBACK_NAME, FALLBACK_EMAIL
        env.update(GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email, GIT_COMMITTER_NAME=name,
                   GIT_COMMITTER_EMAIL=email)
    return env, f"{name} <{email}>"


# -- inputs ------------------------------------------------------------------------------------------


def _args(data: Mapping[str, Any]) -> Mapping[str, Any]:
    task = data.get("task")
    args = task.get("args") if isinstance(task, Mapping) else None
    return args if isinstance(args, Mapping) else {}


def _text(args: Mapping[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value.strip():
        raise PluginError(f"task.args.{name} is required: a non-empty string", retryable=False)
    return value


def _flag(args: Mapping[str, Any], name: str) -> bool:
    value = args.get(name, False)
    if not isinstance(value, bool):
        raise PluginError(f"task.args.{name} {value!r} is not a boolean", retryable=False)
    return value


def _not_option(field: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise PluginError(f"task.args.{field} {value!r} is not a {what}: give a non-empty string", retryable=False)
    if value.startswith("-"):
        raise PluginError(f"task.args.{field} {value!r} is not a {what}: a {what} may not start with '-'",
                          retryable=False)
    return value


def _no_options(args: Mapping[str, Any], *fields: str) -> Mapping[str, Any]:
    """``args``, once none of ``fields`` that is given could be read by git as an option: checked first,
    before any git command runs."""
    for field in fields:
        if args.get(field) is not None:
            _not_option(field, args[field], "remote" if field == "remote" else "ref")
    return args


def _branch_name(repo: Any, field: str, value: Any) -> str:
    """A branch name (``x`` or ``refs/heads/x``) as its short name; refs outside ``refs/heads/`` are refused,
    those under ``refs/engine/`` as ``CHECKPOINT_REF``."""
    name = _not_option(field, value, "ref")
    if name.startswith(CHECKPOINTS):
        raise PluginError(f"task.args.{field} {name!r} is a checkpoint ref of the engine: refs under "
                          f"{CHECKPOINTS} are the kernel's and are never changed by a plugin", code="CHECKPOINT_REF")
    if name.startswith("refs/heads/"):
        name = name[len("refs/heads/"):]
    elif name.startswith("refs/"):
        raise PluginError(f"task.args.{field} {name!r} is not a branch: name a branch (x or refs/heads/x)",
                          retryable=False)
    if _git(repo, ["git", "check-ref-format", f"refs/heads/{name}"], check=False)[0] != 0:
        raise PluginError(f"task.args.{field} {name!r} is not a valid branch name (see git check-ref-format)",
                          retryable=False)
    return name


def _remote(repo: Any, args: Mapping[str, Any]) -> tuple[str, str]:
    """The remote named by ``task.args.remote`` (default ``origin``) and its URL; it must be configured."""
    name = _not_option("remote", args.get("remote", "origin"), "remote")
    names = [r.name for r in repo.remotes]
    if name not in names:
        raise PluginError(f"task.args.remote {name!r} is not a remote of {repo.working_tree_dir} (remotes: "
                          f"{', '.join(names) or 'none'}); add it with git remote add", retryable=False)
    url = _git(repo, ["git", "config", "--get", f"remote.{name}.url"], check=False)[1].strip()
    return name, url


def _protected(args: Mapping[str, Any]) -> set[str]:
    extra = args.get("protected", [])
    if not isinstance(extra, list) or not all(isinstance(b, str) for b in extra):
        raise PluginError(f"task.args.protected {extra!r} is not a list of branch names", retryable=False)
    return {*DEFAULT_PROTECTED, *(b.removeprefix("refs/heads/") for b in extra)}


def _paths(repo: Any, value: Any) -> list[str] | None:
    """``task.args.paths`` checked: relative, inside the repository (symlinks followed), never ``.git``."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise PluginError(f"task.args.paths {value!r} is not a non-empty list of paths", retryable=False)
    root = Path(repo.working_tree_dir).resolve()
    out: list[str] = []
    for i, path in enumerate(value):
        field = f"task.args.paths[{i}]"
        if not isinstance(path, str) or not path:
            raise PluginError(f"{field} {path!r} is not a path", retryable=False)
        if path.startswith("/") or os.path.isabs(path):
            raise PluginError(f"{field} {path!r} is absolute: give a path relative to the repository",
                              retryable=False)
        norm = posixpath.normpath(path)
        if norm == ".." or norm.startswith("../") or not (root / norm).resolve().is_relative_to(root):
            raise PluginError(f"{field} {path!r} leaves the repository", retryable=False)
        if ".git" in norm.split("/"):
            raise PluginError(f"{field} {path!r} is inside .git", retryable=False)
        out.append(norm)
    return out


def _plan(summary: str, changes: list[Change], commands: list[list[str]]) -> dict[str, Any]:
    return {"summary": summary, "changes": changes, "commands": commands}


def _run_all(repo: Any, commands: list[list[str]], env: Mapping[str, str] | None = None) -> None:
    for argv in commands:
        _git(repo, argv, env=env)


def _commit_files(repo: Any, sha: str) -> list[Change]:
    raw = _git(repo, ["git", "diff-tree", "-r", "--root", "--no-commit-id", "--name-status", "--no-renames",
                      "-z", sha], strip=False)[1]
    return _changes(raw)


# -- operations ----------------------------------------------------------------------------------------


def commit(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Commit every change of the working tree (untracked files included, ignored ones not), or only
    ``task.args.paths``; the message is ``task.args.message``, else the input ``message`` (what a process's
    Commit step passes for a task whose own work was something else, an AI edit say)."""
    repo = _repo(ctx)
    args = _args(data)
    message = _text(args if args.get("message") is not None or data.get("message") is None else
                    {"message": data.get("message")}, "message")
    paths = _paths(repo, args.get("paths"))
    head = _rev(repo, "HEAD")
    base = head or _empty_tree(repo)
    if paths is None:
        add = ["git", "add", "-A"]
        make = ["git", *NO_HOOKS, "commit", "-q", "-m", message]
    else:
        add = ["git", "--literal-pathspecs", "add", "-A", "--", *paths]
        make = ["git", *NO_HOOKS, "--literal-pathspecs", "commit", "-q", "--only", "-m", message, "--", *paths]
    # The plan: the same `git add` into a scratch index (a copy of the real one, or for --only HEAD's tree,
    # as git commit --only builds it), then what that index holds against HEAD.
    with _scratch(repo, copy_index=paths is None) as scratch:
        if paths is not None and head is not None:
            _git(repo, ["git", "read-tree", head], env=scratch)
        _git(repo, add, env=scratch)
        raw = _git(repo, ["git", "diff-index", "--cached", "--name-status", "--no-renames", "-z", base],
                   env=scratch, strip=False)[1]
    changes = _changes(raw)
    on_branch = _current_branch(repo)
    env, author = _identity(repo, ctx)
    where = f"on {on_branch}" if on_branch else "on a detached HEAD"
    if not changes:
        plan = _plan(f"nothing to commit {where}", [], [])
    else:
        plan = _plan(f"commit {len(changes)} file(s) {where} as {author}: {message.splitlines()[0]}", changes,
                     [add, make])
    if ctx.whatif:
        return {"plan": plan}
    if not changes:
        return {"plan": plan, "applied": {"commit": None, "branch": on_branch, "author": author, "files": []}}
    _run_all(repo, plan["commands"], env)
    sha = _rev(repo, "HEAD")
    assert sha is not None
    files = _commit_files(repo, sha)
    if files != changes:
        ctx.log.warning("commit_differs_from_plan", planned=len(changes), committed=len(files))
    return {"plan": plan, "applied": {"commit": sha, "branch": on_branch, "author": author, "files": files}}


def merge(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``task.args.branch`` into the current branch: a fast-forward when possible (unless
    ``task.args.no_ff``), else a merge commit. A conflict changes nothing and raises MERGE_CONFLICT."""
    args = _no_options(_args(data), "branch")
    repo = _repo(ctx)
    source = _not_option("branch", args.get("branch"), "ref")
    if source.startswith(CHECKPOINTS):
        raise PluginError(f"task.args.branch {source!r} is a checkpoint ref of the engine; restoring a "
                          "checkpoint is the kernel's rollback, not a merge", code="CHECKPOINT_REF")
    no_ff = _flag(args, "no_ff")
    message = args.get("message")
    if message is not None:
        message = _text(args, "message")
    current = _current_branch(repo)
    head = _rev(repo, "HEAD")
    if current is None or head is None:
        raise PluginError("merge needs a current branch with a commit; HEAD is detached or unborn", retryable=False)
    target = _rev(repo, source)
    if target is None:
        raise PluginError(f"task.args.branch {source!r} names no commit in {repo.working_tree_dir}", retryable=False)
    if _git(repo, ["git", "merge-base", "--is-ancestor", target, head], check=False)[0] == 0:
        plan = _plan(f"{current} already contains {source} ({target[:12]}): nothing to merge", [], [])
        if ctx.whatif:
            return {"plan": plan}
        return {"plan": plan, "applied": {"head": head, "merged": target, "fast_forward": False, "files": []}}
    fast_forward = not no_ff and _git(repo, ["git", "merge-base", "--is-ancestor", head, target], check=False)[0] == 0

    with _scratch(repo, copy_index=True) as scratch:
        _git(repo, ["git", "add", "-u"], env=scratch)  # tracked changes, staged or not
        if _git(repo, ["git", "diff-index", "--cached", "--quiet", head], env=scratch, check=False)[0] != 0:
            raise PluginError(f"the working tree of {current} has uncommitted changes; commit or discard them "
                              "before merging", code="DIRTY_WORKTREE")
        status, out, err = _git(repo, ["git", "merge-tree", "--write-tree", "--name-only", "--no-messages", "-z",
                                       head, target], env=scratch, check=False, strip=False)
        if status not in (0, 1):
            raise PluginError(f"git merge-tree {current} {source} failed (planning a merge needs git 2.38 or later): "
                              f"{err.strip()}", retryable=False)
        tree, *rest = out.split("\0")
        if status == 1:
            conflicted = sorted({p for p in rest if p})
            raise PluginError(f"merging {source} into {current} conflicts in {', '.join(conflicted)}; nothing was "
                              "changed", code="MERGE_CONFLICT")
        raw = _git(repo, ["git", "diff-tree", "-r", "--name-status", "--no-renames", "-z", head, tree],
                   env=scratch, strip=False)[1]
    changes = _changes(raw)
    in_the_way = [c["path"] for c in changes if c["action"] == "create"
                  and os.path.lexists(os.path.join(repo.working_tree_dir, c["path"]))]
    if in_the_way:
        raise PluginError(f"untracked or ignored files would be overwritten by merging {source}: "
                          f"{', '.join(in_the_way)}; move them away first", code="DIRTY_WORKTREE")
    if fast_forward:
        argv = ["git", *NO_HOOKS, "merge", "-q", "--ff-only", source]
        summary = f"fast-forward {current} to {source} ({target[:12]}), {len(changes)} file(s)"
    else:
        argv = ["git", *NO_HOOKS, "merge", "-q", "--no-ff", "--no-edit", *(["-m", message] if message else []),
                source]
        summary = f"merge {source} ({target[:12]}) into {current} with a merge commit, {len(changes)} file(s)"
    plan = _plan(summary, changes, [argv])
    if ctx.whatif:
        return {"plan": plan}
    env, _ = _identity(repo, ctx)
    status, out, err = _git(repo, argv, env=env, check=False)
    if status != 0:
        conflict = "CONFLICT" in out + err or _git(repo, ["git", "ls-files", "-u"])[1].strip() != ""
        _git(repo, ["git", *NO_HOOKS, "merge", "--abort"], check=False)
        raise PluginError(f"git merge {source} into {current} failed and was aborted: {err.strip()}",
                          code="MERGE_CONFLICT" if conflict else None, retryable=False)
    new = _rev(repo, "HEAD")
    assert new is not None
    raw = _git(repo, ["git", "diff-tree", "-r", "--name-status", "--no-renames", "-z", head, new], strip=False)[1]
    return {"plan": plan, "applied": {"head": new, "merged": target, "fast_forward": fast_forward,
                                      "files": _changes(raw)}}


def _checked_out(repo: Any) -> dict[str, str]:
    """The branch ref checked out in each worktree of the repository -> that worktree's folder."""
    out = _git(repo, ["git", "worktree", "list", "--porcelain"])[1]
    found: dict[str, str] = {}
    folder = ""
    for field in out.splitlines():
        if field.startswith("worktree "):
            folder = field[len("worktree "):]
        elif field.startswith("branch "):
            found[field[len("branch "):]] = folder
    return found


def _refs(repo: Any) -> dict[str, str]:
    out = _git(repo, ["git", "for-each-ref", "--format=%(refname) %(objectname)"])[1]
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def _network_error(what: str, err: str) -> PluginError:
    return PluginError(f"{what} failed: {err.strip()}", retryable=True)


def fetch(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Fetch ``task.args.remote`` (default ``origin``) with its configured refspecs."""
    args = _no_options(_args(data), "remote")
    repo = _repo(ctx)
    remote, url = _remote(repo, args)
    specs = _git(repo, ["git", "config", "--get-all", f"remote.{remote}.fetch"], check=False)[1].split()
    for spec in specs:
        dst = spec.lstrip("+").partition(":")[2].split("*")[0]
        if dst and (CHECKPOINTS.startswith(dst) or dst.startswith(CHECKPOINTS)):
            raise PluginError(f"remote.{remote}.fetch {spec!r} would write refs under {CHECKPOINTS}, the engine's "
                              "checkpoints; fetch with a refspec that leaves them alone", code="CHECKPOINT_REF")
    argv = ["git", *NO_HOOKS, "fetch", remote]
    where = ", ".join(s.lstrip("+").partition(":")[2] for s in specs) or "FETCH_HEAD only"
    plan = _plan(f"fetch from {remote} ({url}) into {where}; the network is not contacted to plan", [], [argv])
    if ctx.whatif:
        return {"plan": plan}
    before = _refs(repo)
    status, _, err = _git(repo, argv, check=False)
    if status != 0:
        raise _network_error(f"git fetch {remote} ({url})", err)
    after = _refs(repo)
    updated = [{"ref": ref, "old": before.get(ref), "new": after.get(ref)}
               for ref in sorted(set(before) | set(after)) if before.get(ref) != after.get(ref)]
    return {"plan": plan, "applied": {"remote": remote, "url": url, "updated": updated}}


PUSH_RESULTS = {" ": "fast-forward", "+": "forced", "*": "new", "=": "up to date", "-": "deleted"}


def push(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Push the local branch ``task.args.branch`` (default: the current one) to the branch of the same name
    on ``task.args.remote`` (default ``origin``); ``task.args.force`` overwrites it, but only where the
    last fetch saw it (``--force-with-lease``), and never on a protected branch."""
    args = _no_options(_args(data), "remote", "branch")
    repo = _repo(ctx)
    remote, url = _remote(repo, args)
    force = _flag(args, "force")
    protected = _protected(args)
    if args.get("branch") is None:
        local = _current_branch(repo)
        if local is None:
            raise PluginError("HEAD is detached: name the branch to push in task.args.branch", retryable=False)
    else:
        local = _branch_name(repo, "branch", args["branch"])
    if force and local in protected:
        raise PluginError(f"force-pushing to the protected branch {local!r} is refused (protected: "
                          f"{', '.join(sorted(protected))}); push without force, or open a review",
                          code="PROTECTED_BRANCH")
    sha = _rev(repo, f"refs/heads/{local}")
    if sha is None:
        raise PluginError(f"task.args.branch {local!r} is not a local branch with a commit", retryable=False)
    ref = f"refs/heads/{local}"
    seen = _rev(repo, f"refs/remotes/{remote}/{local}")
    lease = [f"--force-with-lease={ref}:{seen or ''}"] if force else []
    argv = ["git", *NO_HOOKS, "push", "--porcelain", *lease, remote, f"{ref}:{ref}"]
    last = f"last seen there at {seen[:12]}" if seen else "not seen there by any fetch"
    how = "force-push" if force else "push"
    plan = _plan(f"{how} {local} ({sha[:12]}) to {remote} ({url}) as {local}, {last}; the network is not "
                 "contacted to plan", [], [argv])
    if ctx.whatif:
        return {"plan": plan}
    status, out, err = _git(repo, argv, check=False)
    rows = [line.split("\t") for line in out.splitlines() if line.count("\t") >= 2]
    row = next((r for r in rows if r[1].endswith(f":{ref}")), None)
    if row is not None and row[0] == "!":
        raise PluginError(f"{remote} rejected the push of {local}: {row[2]}; fetch and merge first"
                          + ("" if force else ", or push with force"), code="PUSH_REJECTED")
    if status != 0 or row is None:
        raise _network_error(f"git push {remote} ({url}) {local}", err or out)
    return {"plan": plan, "applied": {"remote": remote, "url": url, "ref": ref, "sha": sha,
                                      "result": PUSH_RESULTS.get(row[0], row[2])}}


def branch(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Create the branch ``task.args.name`` at ``task.args.start`` (default HEAD), or delete it with
    ``task.args.delete: true``."""
    args = _no_options(_args(data), "name", "start")
    repo = _repo(ctx)
    name = _branch_name(repo, "name", args.get("name"))
    delete = _flag(args, "delete")
    ref = f"refs/heads/{name}"
    existing = _rev(repo, ref)
    if delete:
        if args.get("start") is not None:
            raise PluginError("task.args.start and task.args.delete exclude each other", retryable=False)
        if existing is None:
            raise PluginError(f"task.args.name {name!r}: there is no branch {name!r} to delete", retryable=False)
        if name == _current_branch(repo):
            raise PluginError(f"{name!r} is the current branch and cannot be deleted; switch branches first",
                              code="CURRENT_BRANCH")
        elsewhere = _checked_out(repo).get(ref)
        if elsewhere is not None:
            raise PluginError(f"{name!r} is checked out in the worktree {elsewhere} and cannot be deleted; remove "
                              "that worktree first", code="CURRENT_BRANCH")
        protected = _protected(args)
        if name in protected:
            raise PluginError(f"deleting the protected branch {name!r} is refused (protected: "
                              f"{', '.join(sorted(protected))})", code="PROTECTED_BRANCH")
        head = _rev(repo, "HEAD")
        if head is None or _git(repo, ["git", "merge-base", "--is-ancestor", existing, head], check=False)[0] != 0:
            raise PluginError(f"branch {name!r} ({existing[:12]}) is not merged into HEAD; merge it first, deleting "
                              "it would lose its commits", retryable=False)
        plan = _plan(f"delete branch {name} ({existing[:12]}), merged into HEAD", [],
                     [["git", *NO_HOOKS, "branch", "-D", name]])
        applied = {"name": name, "ref": ref, "sha": existing, "action": "delete"}
    else:
        start = _not_option("start", args.get("start", "HEAD"), "ref")
        sha = _rev(repo, start)
        if sha is None:
            raise PluginError(f"task.args.start {start!r} names no commit", retryable=False)
        if existing is not None:
            raise PluginError(f"task.args.name {name!r}: branch {name!r} exists already (at {existing[:12]})",
                              retryable=False)
        plan = _plan(f"create branch {name} at {start} ({sha[:12]})", [],
                     [["git", *NO_HOOKS, "branch", "--no-track", name, sha]])
        applied = {"name": name, "ref": ref, "sha": sha, "action": "create"}
    if ctx.whatif:
        return {"plan": plan}
    _run_all(repo, plan["commands"])
    if (_rev(repo, ref) is None) != delete:
        raise PluginError(f"git branch {name} did not {applied['action']} {ref}", retryable=False)
    return {"plan": plan, "applied": applied}

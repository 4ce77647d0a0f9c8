"""Legacy task lines (the old worker's JSONL) read as task.v1.

The old worker had no schema of its own. Its lines carry ``tool`` (``aider``, ``codex``, ``claude``, ``git``
or the name of any executable), an argv array in ``args`` (for ``git`` and executables), ``flags``,
``files``, ``prompt``, ``timeout_sec`` (0: none), top-level retry fields (``max_retries``,
``backoff_sec``, ``backoff_max``, ``jitter_sec``), ``attempt`` and ``metadata``; ``id`` and ``repo`` are
optional. ``TaskAdapter`` turns such a line into a task.v1 task.

What the adapter guarantees:

- It never guesses silently. Every line it converts carries ``metadata.legacy``: the SHA-256 of the line
  as the file holds it (``line_sha256``), why it was read as a legacy line (``recognised_by``), and one
  note per field saying what it became (``converted``). The run's first ledger record of the task holds
  the same under ``detail.legacy``.
- The conversion is a function of the line: a line without ``id`` gets ``legacy-`` and the first 10 hex
  digits of the SHA-256 of its canonical JSON (sorted keys, no spaces), so the same line is the same task
  in every run and in the ledger (decision 0021).
- ``git`` argv becomes an operation of the git plugins (git-inspector, git-executor) or is refused,
  naming the operations there are; it never runs as an arbitrary git command.
- In ``auto`` mode (the default) a line that is a valid task.v1 task is task.v1, whatever its tool; only
  a line task.v1 refuses and that looks like the old worker's (``markers``) is converted. A line neither
  reading accepts gets both lists of problems, each with its line and JSON path.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from engine.errors import ContractViolation, Problem

if TYPE_CHECKING:
    from engine.contracts import Task

Mode = Literal["auto", "always", "off"]
MODES: tuple[Mode, ...] = ("auto", "always", "off")
AI_TOOLS = ("aider", "codex", "claude")
FIELDS = ("id", "tool", "repo", "args", "flags", "files", "prompt", "timeout_sec", "max_retries", "backoff_sec",
          "backoff_max", "jitter_sec", "attempt", "metadata")
RETRY_FIELDS = ("max_retries", "backoff_sec", "backoff_max", "jitter_sec", "attempt")
OLD_RETRY_DEFAULTS = {"max_retries": 3, "backoff_sec": 5, "backoff_max": 120, "jitter_sec": 3}
# The tools the shipped plugin selection (process/decisions.dmn) knows, and command-runner's: a line task.v1
# refuses whose tool is none of these looks like the old worker's (an executable's name).
TASK_V1_TOOLS = frozenset({"git", "aider", "claude", "codex", "write", "file", "parse", "normalize", "command"})
GIT_OPERATIONS = ("git-inspector: status, diff [BASE], log [-n N]; git-executor: commit -m MESSAGE [-- PATHS], "
                  "merge BRANCH [--no-ff] [-m MESSAGE], fetch [REMOTE], push [REMOTE [BRANCH]] [--force], "
                  "branch [-d] NAME [START]")
_OUTPUT_ONLY = {  # git options that change only how git prints: the plugins return structured data instead
    "status": {"-s", "--short", "--porcelain", "--porcelain=v1", "--porcelain=v2", "-b", "--branch", "--long"},
    "diff": {"--stat", "--name-only", "--name-status", "--no-color", "--shortstat", "--numstat"},
    "log": {"--oneline", "--no-color", "--decorate", "--no-decorate"},
}


def canonical(data: Any) -> bytes:
    """The canonical JSON of a line: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def derived_id(data: Any) -> str:
    """The id of a legacy line that has none: ``legacy-`` and 10 hex digits of its canonical JSON's SHA-256."""
    return "legacy-" + hashlib.sha256(canonical(data)).hexdigest()[:10]


@dataclass(frozen=True)
class Conversion:
    """A legacy line as task.v1 data, and what became what."""

    task: dict[str, Any]
    notes: list[str]


class _Refusal(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class TaskAdapter:
    """Reads task lines as task.v1 or, when they are the old worker's, converts them (``mode``: ``auto`` by
    shape, ``always`` every line, ``off`` never). ``repo``: the repository of a legacy line that names none
    (the old worker's own); ``workspace``: where relative repositories lie (to make absolute ``files``
    relative)."""

    def __init__(self, mode: Mode = "auto", *, repo: str = ".", workspace: Path | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"legacy adapter mode {mode!r}; modes: {', '.join(MODES)}")
        self.mode, self.repo, self.workspace = mode, repo, workspace

    @classmethod
    def for_workspace(cls, root: Path) -> TaskAdapter:
        """The adapter ``[legacy]`` of the workspace's ``engine.toml`` asks for (defaults without one)."""
        from engine.config import load_config

        settings = load_config(root).legacy
        return cls(settings.adapter, repo=settings.repo, workspace=root)

    # -- reading a line -------------------------------------------------------------------------------------

    def read(self, data: Any, raw: str | None = None, *, file: str | None = None, line: int | None = None) -> Task:
        """The task a line holds; ``ContractViolation`` listing every problem of every reading tried."""
        from engine.contracts import Task

        if self.mode == "off":
            return Task.from_json(data, file=file, line=line)
        if self.mode == "always":
            return self._converted(data, raw, ["[legacy] adapter = \"always\""], file=file, line=line)
        try:
            return Task.from_json(data, file=file, line=line)
        except ContractViolation as e:
            found = self.markers(data)
            if not found:
                raise
            try:
                return self._converted(data, raw, found, file=file, line=line)
            except ContractViolation as legacy:
                as_v1 = [Problem(f"read as task.v1: {p.message}", file=p.file, line=p.line, path=p.path)
                         for p in e.problems]
                raise ContractViolation("task matches neither task.v1 nor the old worker's format",
                                        problems=[*as_v1, *legacy.problems]) from legacy

    def _converted(self, data: Any, raw: str | None, why: list[str], *, file: str | None,
                   line: int | None) -> Task:
        from engine.contracts import Task

        label = "read as a legacy task" + (f" ({'; '.join(why)})" if why else "")
        try:
            done = self.convert(data, raw, recognised_by=why)
        except _Refusal as e:
            raise ContractViolation("legacy task cannot be converted", problems=[
                Problem(f"{label}: {p.message}", file=file, line=line, path=p.path) for p in e.problems]) from e
        try:
            return Task.from_json(done.task, file=file, line=line)
        except ContractViolation as e:
            raise ContractViolation("converted legacy task does not match task.v1", problems=[
                Problem(f"{label}, converted to task.v1: {p.message}", file=file, line=line, path=p.path)
                for p in e.problems]) from e

    @staticmethod
    def markers(data: Any) -> list[str]:
        """Why a line looks like the old worker's: [] when nothing does."""
        if not isinstance(data, Mapping):
            return []
        found = []
        tool = data.get("tool")
        if "id" not in data:
            found.append("no id")
        if isinstance(data.get("args"), list):
            found.append("args is an argv array")
        top = [k for k in RETRY_FIELDS if k in data]
        if top:
            found.append(f"top-level {', '.join(top)}")
        if data.get("timeout_sec") == 0 and not isinstance(data.get("timeout_sec"), bool):
            found.append("timeout_sec 0 (none)")
        if "flags" in data and isinstance(tool, str) and tool not in AI_TOOLS:
            found.append(f"flags for {tool}")
        if isinstance(tool, str) and tool and tool.lower() not in TASK_V1_TOOLS:
            found.append(f"tool {tool!r} has no task.v1 plugin")
        return found

    # -- converting -----------------------------------------------------------------------------------------

    def convert(self, data: Any, raw: str | None = None, *, recognised_by: list[str] | None = None) -> Conversion:
        """A legacy line as task.v1 data (not yet validated); ``_Refusal`` with every problem otherwise."""
        if not isinstance(data, Mapping):
            raise _Refusal([Problem(f"a legacy task is a JSON object, not {type(data).__name__}", path="$")])
        problems: list[Problem] = []
        notes: list[str] = []

        def bad(message: str, path: str = "$") -> None:
            problems.append(Problem(message, path=path))

        for key in data:
            if key not in FIELDS:
                bad(f"unknown field {key!r}; the old worker's fields are {', '.join(FIELDS)} (move anything else "
                    "into metadata)", f"$.{key}")
        tool = data.get("tool")
        if not isinstance(tool, str) or not tool.strip():
            bad("'tool' is required: aider, codex, claude, git, or an executable's name", "$.tool")
            tool = ""
        task: dict[str, Any] = {}
        legacy: dict[str, Any] = {}

        # id
        if "id" in data:
            if isinstance(data["id"], str):
                task["id"] = data["id"]
            else:
                bad("'id' must be a string", "$.id")
        else:
            task["id"] = derived_id(data)
            notes.append(f"id: none -> {task['id']} (SHA-256 of the line's canonical JSON)")

        # repo
        repo = data.get("repo", None)
        if repo is None:
            repo = self.repo
            notes.append(f"repo: none -> {repo!r} (the old worker's repository: [legacy] repo)")
        elif not isinstance(repo, str) or not repo:
            bad("'repo' must be a non-empty string", "$.repo")
            repo = self.repo
        task["repo"] = repo

        args = data.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            bad("'args' must be an argv array of strings", "$.args")
            args = []
        flags = data.get("flags", [])
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            bad("'flags' must be an array of strings", "$.flags")
            flags = []
        prompt = data.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            bad("'prompt' must be a string", "$.prompt")
            prompt = None

        # tool, args, flags, prompt
        if tool == "git":
            if prompt:
                bad("'prompt' means nothing for git", "$.prompt")
            argv = [*args, *flags]
            if flags:
                notes.append(f"flags {json.dumps(flags)} -> appended to git's argv")
            try:
                operation, operation_args = git_operation(argv)
            except ValueError as e:
                bad(str(e), "$.args")
            else:
                task["tool"] = "git"
                task["args"] = {"operation": operation, **operation_args}
                plugin = "git-inspector" if operation in ("status", "diff", "log") else "git-executor"
                notes.append(f"args {json.dumps(args)} -> {plugin} {operation}"
                             + "".join(f", args.{k} {json.dumps(v)}" for k, v in operation_args.items()))
        elif tool in AI_TOOLS:
            task["tool"] = tool
            if args:
                bad(f"'args' (an argv) means nothing for {tool}; give its options in 'flags'", "$.args")
            if not prompt:
                bad(f"{tool} needs a 'prompt' (the old worker passed it as --message-file)", "$.prompt")
            else:
                task["prompt"] = prompt
                notes.append(f"prompt -> prompt ({tool}-executor gives it to {tool})")
            joined = _joined_flags(flags)
            if joined != flags:
                notes.append(f"flags {json.dumps(flags)} -> {json.dumps(joined)} (--name value as --name=value)")
            elif flags:
                notes.append(f"flags -> flags ({tool}-executor checks them)")
            if joined:
                task["flags"] = joined
        elif tool:
            task["tool"] = "command"
            task["args"] = {"operation": "legacy", "executable": tool, "argv": args, "flags": flags, "legacy": True}
            notes.append(f"tool {tool!r} -> command (command-runner, as the legacy executor: [legacy] executor = "
                         f"true and [plugins] command_runner_allow naming it), args.executable {tool!r}, "
                         "args -> args.argv, flags -> args.flags, args.legacy true")
            if prompt is not None:
                task["prompt"] = prompt
                notes.append("prompt -> prompt (command-runner)")

        # files
        files = data.get("files", [])
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            bad("'files' must be an array of paths", "$.files")
            files = []
        relative = []
        for index, name in enumerate(files):
            made = self._relative(name, repo)
            if made is None:
                bad(f"{name!r} is not inside the repository {repo!r}", f"$.files[{index}]")
            else:
                if made != name:
                    notes.append(f"files[{index}] {name!r} -> {made!r} (relative to the repository)")
                relative.append(made)
        if relative:
            task["files"] = relative

        # timeout
        if "timeout_sec" in data:
            timeout = data["timeout_sec"]
            if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
                bad("'timeout_sec' must be a number of seconds, 0 for none", "$.timeout_sec")
            elif timeout == 0:
                notes.append("timeout_sec 0 (none) -> unset (the engine's default bounds each plugin call)")
            else:
                task["timeout_sec"] = timeout

        # retry
        retry: dict[str, Any] = {}
        for key in RETRY_FIELDS:
            value = data.get(key)
            if value is None:
                continue
            integer = key in ("max_retries", "attempt")
            if isinstance(value, bool) or not isinstance(value, int if integer else int | float) or value < 0:
                bad(f"'{key}' must be {'a whole number' if integer else 'a number'} >= 0", f"$.{key}")
            else:
                retry[key] = value
        max_retries = retry.get("max_retries", OLD_RETRY_DEFAULTS["max_retries"])
        backoff = retry.get("backoff_sec", OLD_RETRY_DEFAULTS["backoff_sec"])
        task["retry"] = {"max_retries": max_retries, "backoff_sec": backoff}
        notes.append(f"max_retries {_given(data, 'max_retries')} -> retry.max_retries {max_retries}")
        notes.append(f"backoff_sec {_given(data, 'backoff_sec')} -> retry.backoff_sec {backoff}")
        legacy["retry"] = {k: retry.get(k, OLD_RETRY_DEFAULTS[k]) for k in ("backoff_max", "jitter_sec")}
        notes.append(f"backoff_max {_given(data, 'backoff_max')}, jitter_sec {_given(data, 'jitter_sec')} -> "
                     "metadata.legacy.retry (not in task.v1: no cap, no jitter)")
        if "attempt" in retry:
            legacy["attempt"] = retry["attempt"]
            notes.append(f"attempt {retry['attempt']} -> metadata.legacy.attempt")

        # metadata
        metadata = data.get("metadata", {})
        if not isinstance(metadata, Mapping):
            bad("'metadata' must be an object", "$.metadata")
            metadata = {}
        elif "legacy" in metadata:
            bad("'metadata.legacy' is where the conversion is recorded; rename that key", "$.metadata.legacy")
        elif metadata:
            notes.append("metadata -> metadata (kept as it was)")

        if problems:
            raise _Refusal(problems)
        line_digest = hashlib.sha256(raw.encode("utf-8") if raw is not None else canonical(data)).hexdigest()
        task["metadata"] = {**metadata, "legacy": {"line_sha256": line_digest,
                                                    "recognised_by": list(recognised_by or []),
                                                    **legacy, "converted": notes}}
        return Conversion(task, notes)

    def _relative(self, name: str, repo: str) -> str | None:
        """``name`` relative to the repository (the old worker made files absolute against it); None when an
        absolute path lies outside it."""
        if not posixpath.isabs(name) and not Path(name).is_absolute():
            return name
        base = Path(repo)
        if not base.is_absolute():
            if self.workspace is None:
                return None
            base = self.workspace / base
        try:
            return Path(posixpath.normpath(name)).relative_to(Path(posixpath.normpath(str(base)))).as_posix()
        except ValueError:
            return None


def _given(data: Mapping[str, Any], key: str) -> str:
    return json.dumps(data[key]) if key in data else f"none (old default {OLD_RETRY_DEFAULTS[key]})"


def _joined_flags(flags: list[str]) -> list[str]:
    """``["--model", "x"]`` as ``["--model=x"]``: the executors take options with values in one item."""
    out: list[str] = []
    for item in flags:
        if out and not item.startswith("-") and out[-1].startswith("--") and "=" not in out[-1]:
            out[-1] = f"{out[-1]}={item}"
        else:
            out.append(item)
    return out


def git_operation(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """The git plugins' operation (and its args) an old worker's git argv asks for; ``ValueError`` naming
    the operations there are when none does what the argv does."""
    if not argv:
        raise ValueError(f"git with no argv does nothing; give one of {GIT_OPERATIONS}")
    command, rest = argv[0], argv[1:]
    found = _GIT.get(command, _no_operation)(rest)
    if found is None:
        raise ValueError(f"git argv {json.dumps(argv)}: no git plugin operation does this; the operations are "
                         f"{GIT_OPERATIONS}. Write it as a task.v1 task, or run it as an executable "
                         '("tool": "command", "args": {"executable": "git", ...}) if command-runner allows git')
    return command, found


def _no_operation(rest: list[str]) -> None:
    return None


def _options(rest: list[str], *, flags: set[str], valued: dict[str, str]) -> tuple[dict[str, Any], list[str]] | None:
    """Split argv into options (``flags`` -> True, ``valued`` option -> its key, given as ``-x V``, ``-xV``,
    ``--x V`` or ``--x=V``) and positionals (everything after ``--`` too); None for an unknown option."""
    found: dict[str, Any] = {}
    positionals: list[str] = []
    items = iter(rest)
    for item in items:
        if item == "--":
            positionals.extend(items)
            break
        if not item.startswith("-") or item == "-":
            positionals.append(item)
            continue
        if item in flags:
            found[item] = True
            continue
        name, eq, value = item.partition("=")
        if name in valued and name.startswith("--") and eq:
            found[valued[name]] = value
            continue
        if item in valued:
            following = next(items, None)
            if following is None:
                return None
            found[valued[item]] = following
            continue
        short = item[:2]
        if short in valued and not item.startswith("--") and len(item) > 2:
            found[valued[short]] = item[2:]
            continue
        return None
    return found, positionals


def _status(rest: list[str]) -> dict[str, Any] | None:
    split = _options(rest, flags=_OUTPUT_ONLY["status"], valued={})
    return {} if split is not None and not split[1] else None


def _diff(rest: list[str]) -> dict[str, Any] | None:
    split = _options(rest, flags=_OUTPUT_ONLY["diff"], valued={})
    if split is None or len(split[1]) > 1 or "--" in rest:
        return None
    return {"base": split[1][0]} if split[1] else {}


def _log(rest: list[str]) -> dict[str, Any] | None:
    rest = [f"-n{item[1:]}" if item[1:].isdigit() and item.startswith("-") else item for item in rest]  # -5
    split = _options(rest, flags=_OUTPUT_ONLY["log"], valued={"-n": "max_count", "--max-count": "max_count"})
    if split is None or split[1]:
        return None
    if "max_count" not in split[0]:
        return {}
    count = split[0]["max_count"]
    return {"max_count": int(count)} if count.isdigit() and int(count) > 0 else None


def _commit(rest: list[str]) -> dict[str, Any] | None:
    rest = ["-a", "-m", *rest[1:]] if rest[:1] == ["-am"] else rest
    split = _options(rest, flags={"-a", "--all"}, valued={"-m": "message", "--message": "message"})
    if split is None or "message" not in split[0]:
        return None
    options, paths = split
    if paths and (options.get("-a") or options.get("--all")):
        return None  # git refuses paths with --all too
    return {"message": options["message"], **({"paths": paths} if paths else {})}


def _merge(rest: list[str]) -> dict[str, Any] | None:
    split = _options(rest, flags={"--no-ff"}, valued={"-m": "message", "--message": "message"})
    if split is None or len(split[1]) != 1:
        return None
    options, [branch] = split
    return {"branch": branch, **({"no_ff": True} if options.get("--no-ff") else {}),
            **({"message": options["message"]} if "message" in options else {})}


def _fetch(rest: list[str]) -> dict[str, Any] | None:
    split = _options(rest, flags=set(), valued={})
    if split is None or len(split[1]) > 1:
        return None
    return {"remote": split[1][0]} if split[1] else {}


def _push(rest: list[str]) -> dict[str, Any] | None:
    split = _options(rest, flags={"-f", "--force"}, valued={})
    if split is None or len(split[1]) > 2:
        return None
    options, positionals = split
    out: dict[str, Any] = {}
    if positionals:
        out["remote"] = positionals[0]
    if len(positionals) == 2:
        if ":" in positionals[1]:
            return None  # a refspec: the plugin pushes a branch to its namesake
        out["branch"] = positionals[1]
    if options.get("-f") or options.get("--force"):
        out["force"] = True
    return out


def _branch(rest: list[str]) -> dict[str, Any] | None:
    split = _options(rest, flags={"-d", "-D", "--delete"}, valued={})
    if split is None or not split[1] or len(split[1]) > 2:
        return None
    options, positionals = split
    delete = bool(options)
    if delete and len(positionals) != 1:
        return None
    return {"name": positionals[0], **({"start": positionals[1]} if len(positionals) == 2 else {}),
            **({"delete": True} if delete else {})}


_GIT = {"status": _status, "diff": _diff, "log": _log, "commit": _commit, "merge": _merge, "fetch": _fetch,
        "push": _push, "branch": _branch}

"""The story of one task, told from the ledger (``engine explain TASK [--file F] [--run R] [--json]``).

What it guarantees:

- **One task, one story.** A task's entries are its ``step``, ``run`` and ``safety`` records (same
  ``task_id``, ``task_file`` and ``line``) from the claim of its file out of the inbox on: a task the
  engine resumed in a later run (the worker died) is one story across those runs, and a file run again
  (moved back into the inbox) is another one. Task ids repeat across files and runs: with one story
  left by ``--file``/``--run`` it is explained; with several, ``explain`` refuses (``UsageError``), naming
  each candidate's run, file and line and how to pick it.
- **What the ledger says, nothing else.** Steps in ledger order, each with its element id, name, type,
  status, plugin (id@version, operation), the duration the envelope recorded, the flows a gateway took,
  the error; a step that ran before is its attempt 2, 3..., with the error of the attempt before it.
  Decisions with their inputs, the rows that matched (number, annotation, outputs) and the result.
  Records written before decisions recorded their inputs and rows are explained without them.
- **Decisions re-derived from the model the run used.** Each decision is evaluated again, offline, from
  the pinned copy of the DMN file its record names (``.engine/models/dmn-<hash>.dmn``), never from the
  workspace's ``process/``, over the inputs (and ``context``) the record holds: it *agrees* when the
  result and the matched rules are the ones recorded, *differs* (what was recorded, what was derived)
  otherwise, and *cannot re-derive* when the record holds no inputs, a value the ledger redacted or cut,
  or the model is not pinned (decision 0016).

Nothing is written, and the ledger is read as it is: ``engine ledger verify`` is what checks it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError, Problem, UsageError

if TYPE_CHECKING:
    from engine.dmn import DecisionModel
    from engine.workspace import Workspace

AGREES, DIFFERS, CANNOT = "agrees", "differs", "cannot re-derive"
REDACTED, CAPPED = "[REDACTED:", "... [capped: "  # what engine.redact and the ledger's cap write in place of a value
TASK_KINDS = ("step", "run", "safety")


@dataclass(frozen=True)
class Rederived:
    """A decision evaluated again: ``verdict`` is AGREES, DIFFERS or CANNOT; ``reason`` says what differs or
    why it cannot; ``derived`` is the result the pinned model gives (when it gave one)."""

    verdict: str
    reason: str | None = None
    derived: Any = None
    derived_rules: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verdict": self.verdict, "reason": self.reason}
        if self.verdict == DIFFERS and self.derived_rules is not None:
            out.update(derived=self.derived, derived_rules=self.derived_rules)
        return out


class _Models:
    """The pinned DMN models of a workspace, loaded once each (or why one cannot be)."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self._loaded: dict[str, DecisionModel | str] = {}

    def get(self, dmn_hash: str) -> DecisionModel | str:
        found = self._loaded.get(dmn_hash)
        if found is None:
            found = self._loaded[dmn_hash] = self._load(dmn_hash)
        return found

    def _load(self, dmn_hash: str) -> DecisionModel | str:
        from engine import dmn
        from engine.process.pinned import dmn_file

        path = dmn_file(self.store, dmn_hash)
        try:
            data = path.read_bytes()
        except OSError:
            return (f"the model dmn {dmn_hash[:12]}… is not pinned in {self.store} (a run from before models were "
                    "pinned, or the folder was removed)")
        if hashlib.sha256(data).hexdigest() != dmn_hash:
            return f"the pinned model {path.name} was changed after it was pinned: it no longer has its hash"
        try:
            return dmn.load(data, filename=str(path))
        except EngineError as e:
            return f"the pinned model {path.name} does not load: {e.message}"


def rederive(record: Mapping[str, Any], models: _Models | Path) -> Rederived:
    """Evaluate the decision of step ``record`` again from the pinned DMN model it names (``models``: the
    workspace's ``.engine/models``), over the inputs and context it records; compare with what it
    records. Raises nothing: what stands in the way is the verdict CANNOT."""
    store = models if isinstance(models, _Models) else _Models(models)
    decision = record.get("decision")
    if not isinstance(decision, Mapping) or not isinstance(decision.get("id"), str):
        return Rederived(CANNOT, "the step records no decision")
    if not isinstance(decision.get("inputs"), Mapping):
        return Rederived(CANNOT, "recorded before decisions recorded their inputs")
    inputs, context = decision["inputs"], decision.get("context") or {}
    hidden = sorted({*_hidden(inputs, "inputs"), *_hidden(context, "context"),
                     *_hidden(decision.get("result"), "result")})
    if hidden:
        return Rederived(CANNOT, "the ledger holds redacted or cut values in its place: " + ", ".join(hidden))
    dmn_hash = decision.get("model") or _pinned_hashes(record).get("dmn")
    if not isinstance(dmn_hash, str):
        return Rederived(CANNOT, "the record names no DMN model")
    model = store.get(dmn_hash)
    if isinstance(model, str):
        return Rederived(CANNOT, model)
    try:
        ctx = model.rederivation_context(decision["id"], inputs, context)
        result = model.evaluate(decision["id"], ctx)
    except EngineError as e:
        return Rederived(DIFFERS, f"the pinned model cannot evaluate it again: {e.message}")
    derived, rules = _plain(result.as_dict()["value"]), list(result.matched_rules)
    differences = []
    if derived != _plain(decision.get("result")):
        differences.append(f"result recorded {_show(decision.get('result'))}, derived {_show(derived)}")
    recorded_rules = decision.get("matched_rules")
    if rules != recorded_rules:
        differences.append(f"matched rules recorded {_show(recorded_rules)}, derived {_show(rules)}")
    derived_inputs = _plain(result.explanation()["inputs"])
    if derived_inputs != _plain(inputs):
        differences.append(f"inputs recorded {_show(inputs)}, derived {_show(derived_inputs)}")
    if differences:
        return Rederived(DIFFERS, "; ".join(differences), derived, rules)
    return Rederived(AGREES, None, derived, rules)


def _pinned_hashes(record: Mapping[str, Any]) -> Mapping[str, Any]:
    models = record.get("models")
    return models if isinstance(models, Mapping) else {}


def _hidden(value: Any, where: str) -> list[str]:
    """The places in ``value`` (named from ``where``) holding a redacted or capped string."""
    if isinstance(value, str):
        return [where] if REDACTED in value or CAPPED in value else []
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in _hidden(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _hidden(v, f"{where}[{i}]")]
    return []


def _plain(value: Any) -> Any:
    """``value`` as the ledger's JSON gives it back (so that a recorded and a derived value compare)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


# ---- the story ------------------------------------------------------------------------------------------


@dataclass
class StoryStep:
    """One ledger record of the task: a step (or a safety record), as the story tells it."""

    seq: int | None
    kind: str
    step: str | None
    name: str | None
    type: str | None
    status: str | None
    run_id: str | None
    attempt: int = 1
    after: str | None = None  # the error of the attempt before this one
    duration_ms: float | None = None
    plugin: dict[str, Any] | None = None
    reason: str | None = None
    error: dict[str, Any] | None = None
    flows: list[str] | None = None
    instance: int | None = None
    decision: dict[str, Any] | None = None
    rederived: Rederived | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "kind": self.kind, "step": self.step, "name": self.name,
                               "type": self.type, "status": self.status, "run_id": self.run_id,
                               "attempt": self.attempt, "duration_ms": self.duration_ms}
        for key in ("after", "plugin", "reason", "error", "flows", "instance"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.decision is not None:
            out["decision"] = {**self.decision, "rederived": self.rederived.as_dict() if self.rederived else None}
        return out


@dataclass
class Story:
    """One task's story; ``as_dict`` is ``--json``, ``lines`` the text ``engine explain`` prints."""

    task_id: str
    task_file: str | None
    line: int | None
    runs: list[str]
    models: dict[str, Any] | None
    steps: list[StoryStep] = field(default_factory=list)
    outcome: dict[str, Any] = field(default_factory=dict)

    @property
    def plugins(self) -> list[dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for s in self.steps:
            if s.plugin and isinstance(s.plugin.get("id"), str):
                key = (s.plugin["id"], str(s.plugin.get("version")))
                entry = found.setdefault(key, {"id": key[0], "version": s.plugin.get("version"),
                                               "digest": s.plugin.get("digest"), "operations": []})
                if s.plugin.get("operation") not in entry["operations"]:
                    entry["operations"].append(s.plugin.get("operation"))
        return list(found.values())

    @property
    def retries(self) -> list[dict[str, Any]]:
        return [{"seq": s.seq, "step": s.step, "name": s.name, "attempt": s.attempt, "after": s.after}
                for s in self.steps if s.after is not None]

    @property
    def rederivation(self) -> dict[str, int]:
        counts = {AGREES: 0, DIFFERS: 0, CANNOT: 0}
        for s in self.steps:
            if s.rederived is not None:
                counts[s.rederived.verdict] += 1
        return counts

    @property
    def differences(self) -> list[dict[str, Any]]:
        """The decisions whose re-derivation differs from their record: where, and what differs."""
        return [{"seq": s.seq, "step": s.step, "name": s.name, "decision": (s.decision or {}).get("id"),
                 "reason": s.rederived.reason} for s in self.steps if s.rederived and s.rederived.verdict == DIFFERS]

    def as_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "task_file": self.task_file, "line": self.line, "runs": self.runs,
                "models": self.models, "outcome": self.outcome, "steps": [s.as_dict() for s in self.steps],
                "plugins": self.plugins, "retries": self.retries, "rederivation": self.rederivation,
                "differences": self.differences}

    def lines(self) -> list[str]:
        runs = self.runs[0] + (f" (resumed in {', '.join(self.runs[1:])})" if len(self.runs) > 1 else "") \
            if self.runs else "?"
        out = [f"task {self.task_id}: line {self.line} of {self.task_file}, run {runs}"]
        if self.models:
            out.append("models: " + ", ".join(f"{k} {str(v)[:12]}" for k, v in sorted(self.models.items())))
        out.append(f"outcome: {self.outcome.get('status')}" + (f": {self.outcome['reason']}"
                                                              if self.outcome.get("reason") else ""))
        out.append("steps:")
        width = len(str(len(self.steps)))
        for number, step in enumerate(self.steps, start=1):
            out += _step_lines(step, f"  {number:>{width}}. ", " " * (width + 4))
        plugins = ", ".join(f"{p['id']}@{p['version']} ({', '.join(map(str, p['operations']))})"
                            for p in self.plugins)
        out.append(f"plugins: {plugins or 'none'}")
        for retry in self.retries:
            out.append(f"retry: {retry['step']} attempt {retry['attempt']}, after: {retry['after']}")
        counts = self.rederivation
        if any(counts.values()):
            out.append(f"decisions re-derived from the pinned model: {counts[AGREES]} agree, {counts[DIFFERS]} "
                       f"differ, {counts[CANNOT]} cannot be re-derived")
        for d in self.differences:
            name = f" '{d['name']}'" if d["name"] else ""
            out.append(f"  differs: step {d['step']}{name} (entry seq {d['seq']}), decision {d['decision']}: "
                       f"{d['reason']}")
        return out


def _step_lines(step: StoryStep, head: str, pad: str) -> list[str]:
    label = step.step or step.kind
    text = f"{head}{label}" + (f" '{step.name}'" if step.name else "") + (f" ({step.type})" if step.type else "")
    text += f" {step.status}"
    if step.instance is not None:
        text += f", instance {step.instance}"
    if step.attempt > 1:
        text += f", attempt {step.attempt}"
    if step.duration_ms is not None:
        text += f", {step.duration_ms:g} ms"
    if step.plugin:
        text += f"  {step.plugin.get('id')}@{step.plugin.get('version')} {step.plugin.get('operation')}"
    if step.flows is not None:
        text += "  -> " + (", ".join(step.flows) or "no flow")
    lines = [text]
    if step.after is not None:
        lines.append(f"{pad}after: {step.after}")
    if step.reason and (step.status != "completed" or step.kind != "step"):
        lines.append(f"{pad}reason: {step.reason}")
    if step.decision is not None:
        lines += _decision_lines(step.decision, step.rederived, pad)
    return lines


def _decision_lines(decision: Mapping[str, Any], rederived: Rederived | None, pad: str) -> list[str]:
    policy = f" ({decision['hit_policy']})" if decision.get("hit_policy") else ""
    lines = [f"{pad}decision {decision.get('id')}{policy} -> {_show(decision.get('result'))}"]
    inputs = decision.get("inputs")
    if isinstance(inputs, Mapping):
        shown = ", ".join(f"{name} = {_show(value)}" for name, value in inputs.items())
        lines.append(f"{pad}  inputs: {shown or 'none'}")
        for path, value in (decision.get("context") or {}).items():
            lines.append(f"{pad}  also read: {path} = {_show(value)}")
    rules = decision.get("rules")
    if isinstance(rules, list):
        for rule in rules:
            outputs = ", ".join(f"{k} = {_show(v)}" for k, v in (rule.get("outputs") or {}).items())
            note = f": {rule['annotation']}" if rule.get("annotation") else ""
            lines.append(f"{pad}  row {rule.get('row')} ({rule.get('id')}){note} -> {outputs}")
        if not rules:
            lines.append(f"{pad}  no rule matched")
    else:
        lines.append(f"{pad}  matched rules: {', '.join(decision.get('matched_rules') or []) or 'none'} "
                     "(recorded before rows were)")
    for warning in decision.get("warnings") or []:
        lines.append(f"{pad}  warning: {warning}")
    if rederived is not None:
        verdict = rederived.verdict + (f": {rederived.reason}" if rederived.reason else "")
        lines.append(f"{pad}  re-derived from the pinned model: {verdict}")
    return lines


# ---- finding the task ---------------------------------------------------------------------------------------


@dataclass
class _Candidate:
    task_file: str | None
    line: int | None
    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def runs(self) -> list[str]:
        runs: list[str] = []
        for entry in self.entries:
            run = (entry.get("envelope") or {}).get("run_id")
            if isinstance(run, str) and run not in runs:
                runs.append(run)
        return runs


def _candidates(entries: Iterable[Mapping[str, Any]], task_id: str) -> tuple[list[_Candidate], set[str]]:
    """The stories of ``task_id`` in ledger order (a file's claim out of the inbox starts new ones), and
    every task id the ledger holds (for a did-you-mean)."""
    claims: dict[Any, int] = {}
    found: dict[tuple[Any, int, Any], _Candidate] = {}
    ids: set[str] = set()
    for entry in entries:
        record = entry.get("record") or {}
        name = record.get("task_file")
        if record.get("kind") == "queue" and record.get("transition") == "inbox->processing":
            claims[name] = claims.get(name, 0) + 1
            continue
        if record.get("kind") not in TASK_KINDS or not isinstance(record.get("task_id"), str):
            continue
        ids.add(record["task_id"])
        if record["task_id"] != task_id:
            continue
        key = (name, claims.get(name, 0), record.get("line"))
        if key not in found:
            found[key] = _Candidate(name, record.get("line"))
        found[key].entries.append(dict(entry))
    return list(found.values()), ids


def _pick(candidates: list[_Candidate], ids: set[str], task_id: str, task_file: str | None,
          run: str | None) -> _Candidate:
    chosen = [c for c in candidates
              if (task_file is None or c.task_file in (task_file, Path(task_file).name))
              and (run is None or any(r == run or r.startswith(run) for r in c.runs))]
    if len(chosen) == 1:
        return chosen[0]
    narrowed = "".join((f" in file {task_file}" if task_file else "", f" in run {run}" if run else ""))
    if not chosen:
        if candidates:
            listed = [_describe(c, task_id) for c in candidates]
            raise UsageError(f"task '{task_id}' has no ledger entries{narrowed}; it has in:",
                             problems=listed, task=task_id)
        close = difflib.get_close_matches(task_id, sorted(ids), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UsageError(f"no ledger entries for task '{task_id}'{narrowed}.{hint}", task=task_id)
    files = {c.task_file for c in chosen}
    how = "--file FILE" if len(files) == len(chosen) else "--run RUN" if len(files) == 1 else \
        "--run RUN and --file FILE"
    raise UsageError(f"task '{task_id}' ran {len(chosen)} times{narrowed}; pick one with {how}:",
                     problems=[_describe(c, task_id) for c in chosen], task=task_id)


def _describe(c: _Candidate, task_id: str) -> Problem:
    runs = c.runs
    run = (runs[0] + (f" (resumed in {', '.join(runs[1:])})" if len(runs) > 1 else "")) if runs else "?"
    pick = " ".join(filter(None, (f"--run {runs[0]}" if runs else None, f"--file {c.task_file}" if c.task_file
                                  else None)))
    return Problem(f"run {run}: engine explain {task_id} {pick}", file=c.task_file, line=c.line)


# ---- telling it -----------------------------------------------------------------------------------------------


def story(entries: Iterable[Mapping[str, Any]], task_id: str, models_dir: Path, *, task_file: str | None = None,
          run: str | None = None) -> Story:
    """The story of ``task_id`` from ``entries`` (ledger entries, oldest first), its decisions re-derived
    from the models pinned in ``models_dir``. ``UsageError`` when no story, or several, match."""
    candidates, ids = _candidates(entries, task_id)
    chosen = _pick(candidates, ids, task_id, task_file, run)
    models = _Models(models_dir)
    told = Story(task_id, chosen.task_file, chosen.line, chosen.runs, None)
    seen: dict[str, StoryStep] = {}
    for entry in chosen.entries:
        record, envelope = entry.get("record") or {}, entry.get("envelope") or {}
        if told.models is None and isinstance(record.get("models"), Mapping):
            told.models = dict(record["models"])
        if record.get("kind") == "run":
            if record.get("status") != "started":
                told.outcome = {"status": record.get("status"), "reason": record.get("reason")}
            continue
        told.steps.append(_step(entry, record, envelope, seen, models))
    if not told.outcome:
        told.outcome = {"status": "unfinished", "reason": "the ledger records no outcome for this task (its run "
                        "stopped or died, and no later run finished it yet)"}
    return told


def _step(entry: Mapping[str, Any], record: Mapping[str, Any], envelope: Mapping[str, Any],
          seen: dict[str, StoryStep], models: _Models) -> StoryStep:
    plugin = record.get("plugin") if isinstance(record.get("plugin"), Mapping) else None
    step = StoryStep(
        seq=entry.get("seq"), kind=str(record.get("kind")), step=record.get("step"), name=record.get("step_name"),
        type=record.get("step_type"), status=record.get("status"), run_id=envelope.get("run_id"),
        duration_ms=envelope.get("duration_ms"), plugin=dict(plugin) if plugin else None,
        reason=record.get("reason"), error=record.get("error"), flows=record.get("flows"),
        instance=record.get("instance"))
    if record.get("kind") == "step" and step.step is not None:
        key = f"{step.step}#{step.instance}" if step.instance is not None else step.step
        before = seen.get(key)
        if before is not None:
            step.attempt = before.attempt + 1
            if before.status == "error":
                step.after = before.reason or "an error"
        seen[key] = step
    decision = record.get("decision")
    if isinstance(decision, Mapping):
        step.decision = _ordered(dict(decision), models, record)
        step.rederived = rederive(record, models)
    return step


def _ordered(decision: dict[str, Any], models: _Models, record: Mapping[str, Any]) -> dict[str, Any]:
    """The decision with its inputs in column order (the ledger's JSON sorts keys), when its model is here."""
    inputs = decision.get("inputs")
    dmn_hash = decision.get("model") or _pinned_hashes(record).get("dmn")
    if not isinstance(inputs, Mapping) or not isinstance(dmn_hash, str):
        return decision
    model = models.get(dmn_hash)
    if isinstance(model, str) or decision.get("id") not in model.decisions:
        return decision
    target = model.decisions[decision["id"]]
    names = target.input_names if target.literal is None else ()
    order = {name: i for i, name in enumerate(names)}
    decision["inputs"] = dict(sorted(inputs.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    return decision


def explain(ws: Workspace, task_id: str, *, task_file: str | None = None, run: str | None = None) -> Story:
    """The story of ``task_id`` in the workspace's ledger (see the module docstring)."""
    from engine.ledger import Ledger

    return story(Ledger(ws.ledger_dir).entries(), task_id, ws.models_dir, task_file=task_file, run=run)

"""The picture of a run: one self-contained HTML file (``engine show RUN [--task ID]``).

What it guarantees:

- **The models the run used.** The diagram and the decision tables come from the files the run pinned
  in ``.engine/models/`` (``engine.process.pinned``), never from ``process/``; a run whose models are not
  pinned, or whose pinned files no longer have their hashes, is refused (``ModelError``).
- **Every element drawn, once.** Each BPMNShape and BPMNEdge of the pinned files' diagram interchange is
  one ``<g data-element-id="<bpmn id>">`` of an inline SVG, in each task's section.
- **Highlighting is what the ledger says.** An element is ``visited`` (with ``data-status``: the status
  of its last step record) exactly when the ledger records a step of that task on it. A sequence flow
  is ``taken`` when a gateway's step record lists it in ``flows``; without ``flows``, when it leads into
  a visited element from the element visited most recently before it (since the target's previous
  visit; every such flow into a converging parallel or inclusive gateway). Decision rows are
  ``matched`` when the step's ``decision.matched_rules`` (or ``decision.rules[].row``) names them.
- **No network.** No script, no link, no external font, image or URL; a Content-Security-Policy that
  allows nothing but the inline style; all text escaped.

``gather`` reads a workspace (run.json, the pinned models, the ledger); ``render`` is a pure function
of what ``gather`` returns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

from lxml import etree

from engine.errors import ModelError, UsageError

if TYPE_CHECKING:
    from engine.workspace import Workspace

# status -> (stroke, fill); any other status is drawn in OTHER_COLOURS
STATUS_COLOURS: dict[str, tuple[str, str]] = {
    "completed": ("#1a7f37", "#c6f0d0"),
    "done": ("#1a7f37", "#c6f0d0"),  # a task's final status
    "error": ("#cf222e", "#ffd3d0"),
    "failed": ("#cf222e", "#ffd3d0"),
    "cancelled": ("#57606a", "#dde1e5"),
}
OTHER_COLOURS = ("#9a6700", "#fff1c2")
TAKEN_COLOUR = "#1a7f37"
PLAIN_STROKE = "#57606a"

EVENTS = frozenset({"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"})
GATEWAYS = frozenset({"exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway",
                      "complexGateway"})
ACTIVITIES = frozenset({"task", "serviceTask", "businessRuleTask", "scriptTask", "userTask", "manualTask",
                        "sendTask", "receiveTask", "callActivity", "subProcess", "transaction", "adHocSubProcess"})
SUBPROCESSES = frozenset({"subProcess", "transaction", "adHocSubProcess"})
JOINS = frozenset({"parallelGateway", "inclusiveGateway", "complexGateway"})
HIT_POLICIES = {"UNIQUE": "U", "FIRST": "F", "PRIORITY": "P", "ANY": "A", "COLLECT": "C", "RULE ORDER": "R",
                "OUTPUT ORDER": "O"}
AGGREGATIONS = {"SUM": "+", "MIN": "<", "MAX": ">", "COUNT": "#"}


@dataclass(frozen=True)
class TaskTrace:
    """One task of a run: where it came from, how it ended and its step entries (ledger entries, with
    ``record`` and ``envelope``), oldest first."""

    task_id: str
    task_file: str
    line: int | None
    status: str | None  # the task's final status from its run record; None when the run did not finish it
    reason: str | None
    started: str | None
    steps: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class RunTrace:
    """What ``render`` draws: the run, its pinned models (the process file first, then the files its call
    activities reach) and its tasks."""

    run_id: str
    models: Mapping[str, str]
    bpmn: tuple[tuple[str, bytes], ...]
    dmn: bytes
    tasks: tuple[TaskTrace, ...]
    state: str | None = None


# --- gathering a run from a workspace ----------------------------------------------------------------


def gather(ws: Workspace, run_id: str, task_id: str | None = None) -> RunTrace:
    """A run's pinned models and its tasks' ledger entries (only ``task_id``'s with one). ``UsageError``
    for an unknown run or a task the run did not run; ``ModelError`` when the run's models are not pinned,
    or were changed after they were pinned."""
    from engine.ledger import Ledger
    from engine.process.pinned import read_pinned

    run_file = ws.runs_dir / run_id / "run.json"
    if not run_id or run_id in (".", "..") or "/" in run_id or "\\" in run_id or not run_file.is_file():
        raise UsageError(f"no run {run_id!r} in {ws.runs_dir}; {_recent_runs(ws)}", run=run_id)
    try:
        body = json.loads(run_file.read_text(encoding="utf-8"))
        hashes = {kind: str(body["models"][kind]["sha256"]) for kind in ("bpmn", "dmn")}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(f"run {run_id}: {run_file} does not name the models the run used ({e})",
                         file=str(run_file), run=run_id) from e
    try:
        files, dmn, process_file = read_pinned(ws.models_dir, hashes)
    except ModelError as e:
        raise ModelError(f"run {run_id} cannot be shown: {e.message} (process/ may have changed since the run)",
                         file=str(ws.models_dir), run=run_id) from e
    bpmn = [(name, data) for name, data in files]

    tasks: dict[tuple[str, int | None, str], dict[str, Any]] = {}
    for entry in Ledger(ws.ledger_dir).entries():
        record, envelope = entry.get("record") or {}, entry.get("envelope") or {}
        if envelope.get("run_id") != run_id or record.get("kind") not in ("run", "step") or \
                not isinstance(record.get("task_id"), str):
            continue
        key = (str(record.get("task_file")), record.get("line"), record["task_id"])
        task = tasks.setdefault(key, {"steps": [], "status": None, "reason": None, "started": None})
        if record["kind"] == "step":
            task["steps"].append(entry)
        elif record.get("status") == "started":
            task["started"] = envelope.get("ts")
        else:
            task["status"], task["reason"] = record.get("status"), record.get("reason")
    traces = [TaskTrace(task_id=k[2], task_file=k[0], line=k[1], status=v["status"], reason=v["reason"],
                        started=v["started"], steps=tuple(v["steps"])) for k, v in tasks.items()]
    if task_id is not None:
        chosen = [t for t in traces if t.task_id == task_id]
        if not chosen:
            known = ", ".join(dict.fromkeys(t.task_id for t in traces)) or "none"
            raise UsageError(f"run {run_id} has no task {task_id!r}; its tasks: {known}", run=run_id, task=task_id)
        traces = chosen
    return RunTrace(run_id=run_id, models=hashes, bpmn=tuple(bpmn), dmn=dmn, tasks=tuple(traces),
                    state=body.get("state"))


def _recent_runs(ws: Workspace, count: int = 5) -> str:
    runs = sorted((p.parent.name for p in ws.runs_dir.glob("*/run.json")), reverse=True)
    if not runs:
        return "there are no runs yet (`engine run` makes them)"
    more = f" (and {len(runs) - count} older)" if len(runs) > count else ""
    return "the most recent: " + ", ".join(runs[:count]) + more


# --- reading the models --------------------------------------------------------------------------------

Box = tuple[float, float, float, float]


def _local(el: Any) -> str:
    tag = el.tag
    return str(etree.QName(tag).localname) if isinstance(tag, str) else ""


def _parse(data: bytes) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, huge_tree=False)
    return etree.fromstring(data, parser)


def _bounds(el: Any) -> Box | None:
    for child in el:
        if _local(child) == "Bounds":
            try:
                return (float(child.get("x", 0)), float(child.get("y", 0)), float(child.get("width", 0)),
                        float(child.get("height", 0)))
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class _Shape:
    element_id: str
    box: Box
    label: Box | None
    expanded: bool | None
    marker_visible: bool
    horizontal: bool


@dataclass(frozen=True)
class _Edge:
    element_id: str
    points: tuple[tuple[float, float], ...]
    label: Box | None


@dataclass(frozen=True)
class _Diagram:
    file: str
    name: str
    shapes: tuple[_Shape, ...]
    edges: tuple[_Edge, ...]


@dataclass
class _Model:
    """The BPMN elements of every pinned file, by id, and their diagrams."""

    elements: dict[str, Any] = field(default_factory=dict)
    flows: dict[str, tuple[str, str]] = field(default_factory=dict)  # sequenceFlow id -> (source, target)
    incoming: dict[str, list[str]] = field(default_factory=dict)
    diagrams: list[_Diagram] = field(default_factory=list)

    def kind(self, element_id: str) -> str:
        el = self.elements.get(element_id)
        return _local(el) if el is not None else "unknown"

    def name(self, element_id: str) -> str:
        el = self.elements.get(element_id)
        if el is None:
            return ""
        if _local(el) == "textAnnotation":
            return "".join(c.text or "" for c in el if _local(c) == "text").strip()
        if _local(el) == "group" and el.get("categoryValueRef"):
            value = self.elements.get(str(el.get("categoryValueRef")))
            return str(value.get("value") or "") if value is not None else ""
        return str(el.get("name") or "")


def _read_bpmn(files: Sequence[tuple[str, bytes]]) -> _Model:
    model = _Model()
    for name, data in files:
        root = _parse(data)
        for el in root.iter():
            element_id = el.get("id") if isinstance(el.tag, str) else None
            if element_id and "BPMN/20100524/MODEL" in str(etree.QName(el.tag).namespace or ""):
                model.elements.setdefault(str(element_id), el)
                if _local(el) == "sequenceFlow":
                    source, target = str(el.get("sourceRef") or ""), str(el.get("targetRef") or "")
                    model.flows[str(element_id)] = (source, target)
                    model.incoming.setdefault(target, []).append(str(element_id))
        for diagram in (el for el in root.iter() if _local(el) == "BPMNDiagram"):
            shapes, edges = [], []
            for di in diagram.iter():
                kind, element_id = _local(di), str(di.get("bpmnElement") or "")
                label = next((_bounds(c) for c in di if _local(c) == "BPMNLabel"), None)
                if kind == "BPMNShape":
                    box = _bounds(di)
                    if box is not None:
                        expanded = di.get("isExpanded")
                        shapes.append(_Shape(element_id, box, label, None if expanded is None else expanded == "true",
                                             di.get("isMarkerVisible") == "true", di.get("isHorizontal") != "false"))
                elif kind == "BPMNEdge":
                    points = []
                    for w in di:
                        if _local(w) == "waypoint":
                            try:
                                points.append((float(w.get("x", 0)), float(w.get("y", 0))))
                            except ValueError:
                                continue
                    edges.append(_Edge(element_id, tuple(points), label))
            model.diagrams.append(_Diagram(name, str(diagram.get("name") or ""), tuple(shapes), tuple(edges)))
    return model


@dataclass(frozen=True)
class _Rule:
    ref: str  # the rule's id, or rule-N as the ledger names a rule without one
    row: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    annotation: str


@dataclass(frozen=True)
class _Decision:
    id: str
    name: str
    hit_policy: str | None  # None for a literal expression
    inputs: tuple[tuple[str, str], ...]  # (label, expression)
    outputs: tuple[tuple[str, str], ...]  # (label, name)
    rules: tuple[_Rule, ...]
    literal: str | None


def _text_of(el: Any) -> str:
    return "".join(c.text or "" for c in el if _local(c) == "text").strip()


def _read_dmn(data: bytes) -> dict[str, _Decision]:
    decisions: dict[str, _Decision] = {}
    for decision in (el for el in _parse(data).iter() if _local(el) == "decision"):
        decision_id = str(decision.get("id") or "")
        table = next((c for c in decision if _local(c) == "decisionTable"), None)
        literal = next((c for c in decision if _local(c) == "literalExpression"), None)
        if table is None:
            decisions[decision_id] = _Decision(decision_id, str(decision.get("name") or decision_id), None, (), (), (),
                                               _text_of(literal) if literal is not None else None)
            continue
        policy = str(table.get("hitPolicy") or "UNIQUE").upper()
        hit = HIT_POLICIES.get(policy, policy) + AGGREGATIONS.get(str(table.get("aggregation") or "").upper(), "")
        inputs: list[tuple[str, str]] = []
        outputs: list[tuple[str, str]] = []
        rules: list[_Rule] = []
        for child in table:
            kind = _local(child)
            if kind == "input":
                expression = next((_text_of(c) for c in child if _local(c) == "inputExpression"), "")
                inputs.append((str(child.get("label") or expression), expression))
            elif kind == "output":
                outputs.append((str(child.get("label") or child.get("name") or ""), str(child.get("name") or "")))
            elif kind == "rule":
                row = len(rules) + 1
                cells: dict[str, list[str]] = {"inputEntry": [], "outputEntry": []}
                annotation = ""
                for c in child:
                    if _local(c) in cells:
                        cells[_local(c)].append(_text_of(c))
                    elif _local(c) == "description":
                        annotation = (c.text or "").strip()
                rules.append(_Rule(str(child.get("id") or f"rule-{row}"), row, tuple(cells["inputEntry"]),
                                   tuple(cells["outputEntry"]), annotation))
        decisions[decision_id] = _Decision(decision_id, str(decision.get("name") or decision_id), hit,
                                           tuple(inputs), tuple(outputs), tuple(rules), None)
    return decisions


# --- what the ledger says -----------------------------------------------------------------------------


def _records(task: TaskTrace) -> list[Mapping[str, Any]]:
    return [entry.get("record") or {} for entry in task.steps]


def taken_flows(records: Sequence[Mapping[str, Any]], flows: Mapping[str, tuple[str, str]],
                incoming: Mapping[str, Sequence[str]], kinds: Mapping[str, str]) -> set[str]:
    """The sequence flows a task took, from its step records in order (see the module docstring)."""
    taken: set[str] = set()
    recorded: set[str] = set()  # gateways whose records say which flows they took
    for record in records:
        if isinstance(record.get("flows"), list) and isinstance(record.get("step"), str):
            recorded.add(record["step"])
            taken.update(str(f) for f in record["flows"])
    last: dict[str, int] = {}
    for position, record in enumerate(records):
        step = record.get("step")
        if not isinstance(step, str):
            continue
        since = last.get(step, -1)
        candidates = [(last[flows[f][0]], f) for f in incoming.get(step, ())
                      if flows[f][0] in last and last[flows[f][0]] > since]
        if candidates:
            chosen = candidates if kinds.get(step) in JOINS else [max(candidates)]
            taken.update(f for _, f in chosen if flows[f][0] not in recorded)
        last[step] = position
    return taken


def _matched(decision: Mapping[str, Any]) -> tuple[set[str], set[int]]:
    refs = {str(r) for r in decision.get("matched_rules") or []}
    rows: set[int] = set()
    for rule in decision.get("rules") or []:
        if isinstance(rule, Mapping):
            if isinstance(rule.get("row"), int):
                rows.add(rule["row"])
            if rule.get("id") is not None:
                refs.add(str(rule["id"]))
    return refs, rows


# --- drawing ------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _wrap(text: str, width: float, font_px: float = 12.0, max_lines: int = 6) -> list[str]:
    """Greedy word wrap by an average glyph width (no font metrics on the server side)."""
    per_line = max(3, int(width / (font_px * 0.56)))
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            while len(word) > per_line:
                if current:
                    lines.append(current)
                    current = ""
                lines.append(word[:per_line])
                word = word[per_line:]
            candidate = f"{current} {word}" if current else word
            if len(candidate) <= per_line:
                current = candidate
            else:
                lines.append(current)
                current = word
        lines.append(current)
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(0, per_line - 1)] + "…"
    return lines


def _text(lines: Sequence[str], x: float, y: float, *, anchor: str = "middle", size: float = 12.0,
          css: str = "label", middle: bool = True) -> str:
    """Lines of text at ``x``; vertically centred on ``y`` (``middle``) or starting there."""
    if not lines:
        return ""
    height = size * 1.2
    top = y - (len(lines) - 1) * height / 2 + size * 0.35 if middle else y + size
    spans = "".join(f'<tspan x="{_n(x)}" y="{_n(top + i * height)}">{_e(line)}</tspan>'
                    for i, line in enumerate(lines))
    return f'<text class="{css}" text-anchor="{anchor}" font-size="{_n(size)}">{spans}</text>'


def _box_text(text: str, box: Box, *, size: float = 11.0) -> str:
    x, y, w, h = box
    # a modeler sizes label bounds by its own font's metrics: some slack keeps its line breaks
    return _text(_wrap(text, max(w + 10, 30), size), x + w / 2, y + h / 2, size=size)


@dataclass(frozen=True)
class _Visit:
    status: str
    count: int
    order: tuple[int, ...]


def _event_marker(el: Any, cx: float, cy: float, r: float, throwing: bool) -> str:
    definitions = [_local(c) for c in el if _local(c).endswith("EventDefinition")] if el is not None else []
    if not definitions:
        return ""
    kind, s = definitions[0], r / 18
    fill = "filled" if throwing else ""
    if kind == "timerEventDefinition":
        hands = f"M{_n(cx)} {_n(cy - 8 * s)} L{_n(cx)} {_n(cy)} L{_n(cx + 6 * s)} {_n(cy + 3 * s)}"
        return (f'<circle class="marker" cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(11 * s)}"/>'
                f'<path class="marker" d="{hands}"/>')
    if kind == "messageEventDefinition":
        x, y, w, h = cx - 9 * s, cy - 6 * s, 18 * s, 12 * s
        return (f'<rect class="marker {fill}" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}"/>'
                f'<path class="marker{" light" if throwing else ""}" d="M{_n(x)} {_n(y)} L{_n(cx)} {_n(cy)} '
                f'L{_n(x + w)} {_n(y)}"/>')
    if kind == "errorEventDefinition":
        points = [(-8, 9), (-3, -9), (2, 3), (8, -9), (3, 9), (-2, -3)]
        return _polygon(points, cx, cy, s, fill)
    if kind == "signalEventDefinition":
        return _polygon([(0, -9), (9, 7), (-9, 7)], cx, cy, s, fill)
    if kind == "escalationEventDefinition":
        return _polygon([(0, -9), (7, 8), (0, 2), (-7, 8)], cx, cy, s, fill)
    if kind == "terminateEventDefinition":
        return f'<circle class="marker filled" cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(10 * s)}"/>'
    if kind == "conditionalEventDefinition":
        lines = "".join(f"M{_n(cx - 5 * s)} {_n(cy + d * s)} L{_n(cx + 5 * s)} {_n(cy + d * s)} "
                        for d in (-5, -1, 3, 7))
        return (f'<rect class="marker" x="{_n(cx - 7 * s)}" y="{_n(cy - 9 * s)}" width="{_n(14 * s)}" '
                f'height="{_n(18 * s)}"/><path class="marker" d="{lines}"/>')
    if kind == "linkEventDefinition":
        return _polygon([(-8, -3), (1, -3), (1, -8), (9, 0), (1, 8), (1, 3), (-8, 3)], cx, cy, s, fill)
    if kind == "compensateEventDefinition":
        return _polygon([(-9, 0), (0, -6), (0, 6)], cx, cy, s, fill) + _polygon([(0, 0), (9, -6), (9, 6)], cx, cy, s,
                                                                                 fill)
    if kind == "cancelEventDefinition":
        return (f'<path class="marker thick" d="M{_n(cx - 7 * s)} {_n(cy - 7 * s)} L{_n(cx + 7 * s)} {_n(cy + 7 * s)} '
                f'M{_n(cx + 7 * s)} {_n(cy - 7 * s)} L{_n(cx - 7 * s)} {_n(cy + 7 * s)}"/>')
    return ""


def _polygon(points: Iterable[tuple[float, float]], cx: float, cy: float, s: float, css: str = "") -> str:
    text = " ".join(f"{_n(cx + px * s)},{_n(cy + py * s)}" for px, py in points)
    return f'<polygon class="marker {css}" points="{text}"/>'


def _gateway_marker(kind: str, shape: _Shape) -> str:
    x, y, w, h = shape.box
    cx, cy, s = x + w / 2, y + h / 2, min(w, h) / 50
    cross = (f"M{_n(cx - 12 * s)} {_n(cy)} L{_n(cx + 12 * s)} {_n(cy)} "
             f"M{_n(cx)} {_n(cy - 12 * s)} L{_n(cx)} {_n(cy + 12 * s)}")
    diagonal = (f"M{_n(cx - 9 * s)} {_n(cy - 9 * s)} L{_n(cx + 9 * s)} {_n(cy + 9 * s)} "
                f"M{_n(cx + 9 * s)} {_n(cy - 9 * s)} L{_n(cx - 9 * s)} {_n(cy + 9 * s)}")
    if kind == "exclusiveGateway":
        return f'<path class="marker thick" d="{diagonal}"/>' if shape.marker_visible else ""
    if kind == "parallelGateway":
        return f'<path class="marker thick" d="{cross}"/>'
    if kind == "complexGateway":
        return f'<path class="marker thick" d="{cross} {diagonal}"/>'
    if kind == "inclusiveGateway":
        return f'<circle class="marker thick" cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(11 * s)}"/>'
    if kind == "eventBasedGateway":
        pentagon = [(math.cos(math.radians(-90 + 72 * i)) * 7, math.sin(math.radians(-90 + 72 * i)) * 7)
                    for i in range(5)]
        return (f'<circle class="marker" cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(13 * s)}"/>'
                f'<circle class="marker" cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(10.5 * s)}"/>'
                + _polygon(pentagon, cx, cy, s))
    return ""


def _task_icon(kind: str, x: float, y: float) -> str:
    if kind == "serviceTask":
        teeth = [(math.cos(math.radians(22.5 * i)) * (7 if i % 2 == 0 else 5),
                  math.sin(math.radians(22.5 * i)) * (7 if i % 2 == 0 else 5)) for i in range(16)]
        return (_polygon(teeth, x + 10, y + 10, 1)
                + f'<circle class="marker" cx="{_n(x + 10)}" cy="{_n(y + 10)}" r="2.5"/>')
    if kind == "businessRuleTask":
        return (f'<rect class="marker" x="{_n(x + 3)}" y="{_n(y + 4)}" width="16" height="12"/>'
                f'<path class="marker" d="M{_n(x + 3)} {_n(y + 8)} L{_n(x + 19)} {_n(y + 8)} '
                f'M{_n(x + 8)} {_n(y + 8)} L{_n(x + 8)} {_n(y + 16)}"/>')
    if kind == "scriptTask":
        lines = "".join(f"M{_n(x + 6)} {_n(y + d)} L{_n(x + 14)} {_n(y + d)} " for d in (7, 10, 13))
        return (f'<rect class="marker" x="{_n(x + 4)}" y="{_n(y + 3)}" width="12" height="14"/>'
                f'<path class="marker" d="{lines}"/>')
    if kind == "userTask":
        return (f'<circle class="marker" cx="{_n(x + 10)}" cy="{_n(y + 7)}" r="3.5"/>'
                f'<path class="marker" d="M{_n(x + 3)} {_n(y + 18)} Q{_n(x + 3)} {_n(y + 11)} '
                f'{_n(x + 10)} {_n(y + 11)} '
                f'Q{_n(x + 17)} {_n(y + 11)} {_n(x + 17)} {_n(y + 18)} Z"/>')
    if kind in ("sendTask", "receiveTask"):
        fill = "filled" if kind == "sendTask" else ""
        return (f'<rect class="marker {fill}" x="{_n(x + 3)}" y="{_n(y + 5)}" width="15" height="10"/>'
                f'<path class="marker{" light" if fill else ""}" d="M{_n(x + 3)} {_n(y + 5)} L{_n(x + 10.5)} '
                f'{_n(y + 10)} L{_n(x + 18)} {_n(y + 5)}"/>')
    if kind == "manualTask":
        return (f'<path class="marker" d="M{_n(x + 3)} {_n(y + 9)} L{_n(x + 17)} {_n(y + 9)} M{_n(x + 3)} '
                f'{_n(y + 13)} L{_n(x + 15)} {_n(y + 13)} M{_n(x + 3)} {_n(y + 17)} L{_n(x + 13)} {_n(y + 17)}"/>')
    return ""


def _loop_marker(el: Any, cx: float, bottom: float) -> str:
    loops = [c for c in el if _local(c) in ("multiInstanceLoopCharacteristics", "standardLoopCharacteristics")] \
        if el is not None else []
    if not loops:
        return ""
    if _local(loops[0]) == "standardLoopCharacteristics":
        return (f'<path class="marker" d="M{_n(cx - 4)} {_n(bottom - 3)} A6 6 0 1 1 {_n(cx + 4)} {_n(bottom - 3)}"/>'
                f'<path class="marker" d="M{_n(cx - 8)} {_n(bottom - 4)} L{_n(cx - 4)} {_n(bottom - 3)} '
                f'L{_n(cx - 4)} {_n(bottom - 7)}"/>')
    if loops[0].get("isSequential") == "true":
        d = "".join(f"M{_n(cx - 6)} {_n(bottom - o)} L{_n(cx + 6)} {_n(bottom - o)} " for o in (2, 6, 10))
    else:
        d = "".join(f"M{_n(cx + o)} {_n(bottom - 12)} L{_n(cx + o)} {_n(bottom)} " for o in (-4, 0, 4))
    return f'<path class="marker thick" d="{d}"/>'


def _shape_body(shape: _Shape, kind: str, model: _Model) -> tuple[str, list[str]]:
    """The SVG of one shape (without its group) and any extra classes."""
    el = model.elements.get(shape.element_id)
    name = model.name(shape.element_id)
    x, y, w, h = shape.box
    cx, cy = x + w / 2, y + h / 2
    extra: list[str] = []
    below = shape.label or (cx - 50, y + h + 4, 100, 14 * 2)
    if kind in EVENTS:
        r = min(w, h) / 2
        parts = [f'<circle class="body" cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(r)}"/>']
        if kind in ("intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"):
            parts.append(f'<circle class="ring" cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(max(r - 3, 1))}"/>')
        if kind == "boundaryEvent" and el is not None and el.get("cancelActivity") == "false":
            extra.append("noninterrupting")
        if kind == "startEvent" and el is not None and el.get("isInterrupting") == "false":
            extra.append("noninterrupting")
        parts.append(_event_marker(el, cx, cy, r, kind in ("endEvent", "intermediateThrowEvent")))
        parts.append(_label_in(name, below))
        return "".join(parts), extra
    if kind in GATEWAYS:
        diamond = f"{_n(cx)},{_n(y)} {_n(x + w)},{_n(cy)} {_n(cx)},{_n(y + h)} {_n(x)},{_n(cy)}"
        return (f'<polygon class="body" points="{diamond}"/>' + _gateway_marker(kind, shape)
                + _label_in(name, shape.label or (cx - 50, y + h + 4, 100, 28))), extra
    if kind in ACTIVITIES:
        parts = [f'<rect class="body" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" rx="10" ry="10"/>']
        if kind == "transaction":
            parts.append(f'<rect class="ring" x="{_n(x + 3)}" y="{_n(y + 3)}" width="{_n(max(w - 6, 1))}" '
                         f'height="{_n(max(h - 6, 1))}" rx="8" ry="8"/>')
        if el is not None and el.get("triggeredByEvent") == "true":
            extra.append("eventsub")
        # a sub-process drawn without isExpanded: expanded when it is drawn large enough to hold its children
        expanded = kind in SUBPROCESSES and (shape.expanded if shape.expanded is not None else w > 200 or h > 120)
        if expanded:
            extra.append("expanded")
            parts.append(_text(_wrap(name, max(w - 16, 30), 12, 2), x + 8, y + 4, anchor="start", middle=False))
        else:
            parts.append(_task_icon(kind, x, y))
            # the lines fit between the type icon and the markers at the bottom
            parts.append(_text(_wrap(name, max(w - 12, 30), 12, max(1, int((h - 28) // 14.4))), cx, cy))
        bottom = y + h - 4
        if (kind in SUBPROCESSES and not expanded) or kind == "callActivity":
            parts.append(f'<rect class="marker" x="{_n(cx - 7)}" y="{_n(bottom - 14)}" width="14" height="14"/>'
                         f'<path class="marker" d="M{_n(cx - 4)} {_n(bottom - 7)} L{_n(cx + 4)} {_n(bottom - 7)} '
                         f'M{_n(cx)} {_n(bottom - 11)} L{_n(cx)} {_n(bottom - 3)}"/>')
            cx -= 18
        parts.append(_loop_marker(el, cx, bottom))
        return "".join(parts), extra
    if kind in ("participant", "lane"):
        band = 30
        parts = [f'<rect class="body" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}"/>']
        if shape.horizontal:
            parts.append(f'<path class="ring" d="M{_n(x + band)} {_n(y)} L{_n(x + band)} {_n(y + h)}"/>')
            lines = _wrap(name, max(h - 10, 30), 12, 2)
            parts.append(f'<g transform="rotate(-90 {_n(x + band / 2)} {_n(cy)})">'
                         f"{_text(lines, x + band / 2, cy)}</g>")
        else:
            parts.append(f'<path class="ring" d="M{_n(x)} {_n(y + band)} L{_n(x + w)} {_n(y + band)}"/>')
            parts.append(_text(_wrap(name, max(w - 10, 30), 12, 2), cx, y + band / 2))
        return "".join(parts), extra
    if kind == "textAnnotation":
        bracket = f"M{_n(x + 10)} {_n(y)} L{_n(x)} {_n(y)} L{_n(x)} {_n(y + h)} L{_n(x + 10)} {_n(y + h)}"
        return (f'<path class="body annotation" d="{bracket}"/>'
                + _text(_wrap(name, max(w - 10, 30), 11, max(1, int(h // 13))), x + 5, y + 2, anchor="start", size=11,
                        middle=False)), extra
    if kind == "group":
        return (f'<rect class="body group" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" rx="10" ry="10"/>'
                + _label_in(name, shape.label or (x, y - 20, w, 18))), extra
    if kind in ("dataObjectReference", "dataObject", "dataInput", "dataOutput"):
        page = (f"M{_n(x)} {_n(y)} L{_n(x + w - 10)} {_n(y)} L{_n(x + w)} {_n(y + 10)} L{_n(x + w)} {_n(y + h)} "
                f"L{_n(x)} {_n(y + h)} Z")
        fold = f"M{_n(x + w - 10)} {_n(y)} L{_n(x + w - 10)} {_n(y + 10)} L{_n(x + w)} {_n(y + 10)}"
        return (f'<path class="body" d="{page}"/><path class="ring" d="{fold}"/>'
                + _label_in(name, shape.label or (cx - 50, y + h + 4, 100, 28))), extra
    if kind == "dataStoreReference":
        ry = min(8.0, h / 6)
        cylinder = (f"M{_n(x)} {_n(y + ry)} A{_n(w / 2)} {_n(ry)} 0 0 1 {_n(x + w)} {_n(y + ry)} L{_n(x + w)} "
                    f"{_n(y + h - ry)} A{_n(w / 2)} {_n(ry)} 0 0 1 {_n(x)} {_n(y + h - ry)} Z")
        rim = f"M{_n(x)} {_n(y + ry)} A{_n(w / 2)} {_n(ry)} 0 0 0 {_n(x + w)} {_n(y + ry)}"
        return (f'<path class="body" d="{cylinder}"/><path class="ring" d="{rim}"/>'
                + _label_in(name, shape.label or (cx - 50, y + h + 4, 100, 28))), extra
    extra.append("unknown")
    return (f'<rect class="body" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}"/>'
            + _box_text(name or shape.element_id, shape.box)), extra


def _label_in(name: str, box: Box) -> str:
    return _box_text(name, box) if name else ""


def _edge_body(edge: _Edge, kind: str, model: _Model, prefix: str, taken: bool) -> str:
    if not edge.points:
        return ""
    d = "M" + " L".join(f"{_n(px)} {_n(py)}" for px, py in edge.points)
    el = model.elements.get(edge.element_id)
    css, start, end = "line", "", ""
    if kind == "sequenceFlow":
        end = f"{prefix}-arrow{'-taken' if taken else ''}"
        source = model.elements.get(model.flows.get(edge.element_id, ("", ""))[0])
        if source is not None and _local(source) not in GATEWAYS and el is not None and \
                any(_local(c) == "conditionExpression" for c in el):
            start = f"{prefix}-diamond"
    elif kind == "messageFlow":
        css, start, end = "line message", f"{prefix}-circle", f"{prefix}-open"
    elif kind == "association":
        css = "line association"
        if el is not None and el.get("associationDirection") in ("One", "Both"):
            end = f"{prefix}-open"
        if el is not None and el.get("associationDirection") == "Both":
            start = f"{prefix}-open"
    elif kind in ("dataInputAssociation", "dataOutputAssociation"):
        css, end = "line association", f"{prefix}-open"
    markers = (f' marker-start="url(#{start})"' if start else "") + (f' marker-end="url(#{end})"' if end else "")
    parts = [f'<path class="{css}" d="{d}"{markers}/>']
    flow = model.flows.get(edge.element_id)
    source = model.elements.get(flow[0]) if flow else None
    if source is not None and source.get("default") == edge.element_id and len(edge.points) > 1:
        (x0, y0), (x1, y1) = edge.points[0], edge.points[1]
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        mx, my = x0 + ux * 12, y0 + uy * 12
        # a slash across the flow, at 45 degrees to it
        sx, sy = (ux - uy) * 5, (uy + ux) * 5
        parts.append(f'<path class="line default" d="M{_n(mx - sx)} {_n(my - sy)} L{_n(mx + sx)} {_n(my + sy)}"/>')
    name = model.name(edge.element_id)
    if name:
        if edge.label is not None:
            parts.append(_box_text(name, edge.label))
        else:
            middle = len(edge.points) // 2
            (ax, ay), (bx, by) = edge.points[max(middle - 1, 0)], edge.points[middle]
            parts.append(_text(_wrap(name, 90, 11, 3), (ax + bx) / 2 + 4, (ay + by) / 2 - 8, size=11))
    return "".join(parts)


def _markers(prefix: str) -> str:
    """Arrow heads and flow ends, in user units (a taken flow's thicker line does not blow them up); ids
    prefixed, since a page holds one SVG per task and diagram."""
    def marker(name: str, body: str, ref: tuple[int, int], size: int) -> str:
        return (f'<marker id="{prefix}-{name}" viewBox="0 0 12 12" refX="{ref[0]}" refY="{ref[1]}" '
                f'markerWidth="{size}" markerHeight="{size}" markerUnits="userSpaceOnUse" orient="auto">{body}'
                "</marker>")

    return ("<defs>"
            + marker("arrow", '<path d="M0 1 L11 6 L0 11 Z" class="arrow"/>', (11, 6), 11)
            + marker("arrow-taken", '<path d="M0 1 L11 6 L0 11 Z" class="arrow taken"/>', (11, 6), 14)
            + marker("open", '<path d="M0 1 L11 6 L0 11" class="arrow open"/>', (11, 6), 11)
            + marker("circle", '<circle cx="6" cy="6" r="4.5" class="arrow open"/>', (6, 6), 10)
            + marker("diamond", '<path d="M0.5 6 L6 2.5 L11.5 6 L6 9.5 Z" class="arrow open"/>', (0, 6), 14)
            + "</defs>")


def _extent(diagram: _Diagram) -> Box:
    xs: list[float] = []
    ys: list[float] = []
    for shape in diagram.shapes:
        for box in (shape.box, shape.label):
            if box is not None:
                xs += [box[0], box[0] + box[2]]
                ys += [box[1], box[1] + box[3]]
    for edge in diagram.edges:
        xs += [p[0] for p in edge.points]
        ys += [p[1] for p in edge.points]
        if edge.label is not None:
            xs += [edge.label[0], edge.label[0] + edge.label[2]]
            ys += [edge.label[1], edge.label[1] + edge.label[3]]
    if not xs:
        return (0, 0, 200, 100)
    margin = 20
    left, top = min(xs) - margin, min(ys) - margin
    return (left, top, max(xs) - left + margin, max(ys) - top + margin)


def _title(kind: str, name: str, element_id: str, visit: _Visit | None) -> str:
    what = f"{kind} {name!r} ({element_id})" if name else f"{kind} {element_id}"
    if visit is not None:
        steps = ", ".join(f"#{o}" for o in visit.order)
        what += f": {visit.status} (last of {visit.count} visits: {steps})" if visit.count > 1 else \
            f": {visit.status} ({steps})"
    return f"<title>{_e(what)}</title>"


def _svg(diagram: _Diagram, model: _Model, visits: Mapping[str, _Visit], taken: set[str], prefix: str) -> str:
    left, top, width, height = _extent(diagram)
    containers: list[str] = []
    shapes: list[str] = []
    for shape in diagram.shapes:
        kind = model.kind(shape.element_id)
        body, extra = _shape_body(shape, kind, model)
        visit = visits.get(shape.element_id)
        classes = ["el", kind, *extra] + (["visited"] if visit is not None else [])
        attrs = f' data-status="{_e(visit.status)}" data-visits="{visit.count}"' if visit is not None else ""
        group = (f'<g class="{" ".join(classes)}" data-element-id="{_e(shape.element_id)}"{attrs}>'
                 f"{_title(kind, model.name(shape.element_id), shape.element_id, visit)}{body}</g>")
        is_container = kind in ("participant", "lane", "group") or "expanded" in extra
        (containers if is_container else shapes).append(group)
    edges = []
    for edge in diagram.edges:
        kind = model.kind(edge.element_id)
        is_taken = edge.element_id in taken
        classes = ["el", "flow", kind] + (["taken"] if is_taken else [])
        edges.append(f'<g class="{" ".join(classes)}" data-element-id="{_e(edge.element_id)}">'
                     f"{_title(kind, model.name(edge.element_id), edge.element_id, None)}"
                     f"{_edge_body(edge, kind, model, prefix, is_taken)}</g>")
    label = f"{diagram.file}" + (f" ({diagram.name})" if diagram.name else "")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="diagram" role="img" aria-label="{_e(label)}" '
            f'width="{_n(width)}" height="{_n(height)}" viewBox="{_n(left)} {_n(top)} {_n(width)} {_n(height)}">'
            f"{_markers(prefix)}{''.join(containers)}{''.join(shapes)}{''.join(edges)}</svg>")


# --- the page -----------------------------------------------------------------------------------------


def _css() -> str:
    statuses = "".join(
        f'g.el.visited[data-status="{status}"]{{--stroke:{stroke};--fill:{fill}}}'
        f'.status[data-status="{status}"]{{background:{fill};border-color:{stroke}}}'
        for status, (stroke, fill) in STATUS_COLOURS.items())
    return (
        "*{box-sizing:border-box}"
        f"body{{margin:0;padding:16px 24px;font:14px/1.45 system-ui,'Segoe UI','DejaVu Sans','Liberation Sans',Arial,"
        "sans-serif;color:#1f2328;background:#fff}"
        "h1{font-size:22px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 6px}h3{font-size:15px;margin:18px 0 6px}"
        "h4{font-size:14px;margin:14px 0 4px}code{font:12px ui-monospace,'DejaVu Sans Mono',monospace}"
        ".meta{color:#57606a;margin:2px 0}"
        ".legend span{display:inline-block;margin-right:12px}"
        ".swatch{display:inline-block;width:14px;height:10px;border:2px solid;border-radius:3px;"
        "vertical-align:middle;margin-right:4px}"
        ".wrap{overflow:auto;border:1px solid #d0d7de;border-radius:6px;max-height:80vh;background:#fff}"
        "svg.diagram{display:block}"
        f"g.el{{--stroke:{PLAIN_STROKE};--fill:#fff}}"
        f"g.el.visited{{--stroke:{OTHER_COLOURS[0]};--fill:{OTHER_COLOURS[1]}}}"
        f"{statuses}"
        ".body{fill:var(--fill);stroke:var(--stroke);stroke-width:1.5}"
        "g.visited>.body{stroke-width:3}"
        ".ring{fill:none;stroke:var(--stroke);stroke-width:1.2}"
        "g.endEvent>.body{stroke-width:4}g.endEvent.visited>.body{stroke-width:5}"
        "g.callActivity>.body{stroke-width:4}"
        "g.participant>.body,g.lane>.body{fill:none;stroke:#8c959f}"
        "g.expanded>.body{fill:#fff}g.expanded.visited>.body{fill:#f6fff8}"
        "g.eventsub>.body,g.noninterrupting>.body,g.noninterrupting>.ring{stroke-dasharray:5 3}"
        ".body.group{fill:none;stroke-dasharray:8 4 2 4}"
        ".body.annotation{fill:none}"
        "g.unknown>.body{stroke-dasharray:3 3}"
        ".marker{fill:none;stroke:#1f2328;stroke-width:1.3}.marker.thick{stroke-width:3}"
        ".marker.filled{fill:#1f2328}.marker.light{stroke:#fff}"
        ".label{fill:#1f2328}g.el:not(.visited):not(.flow) .label{fill:#424a53}"
        f".line{{fill:none;stroke:{PLAIN_STROKE};stroke-width:1.5}}"
        f"g.taken>.line{{stroke:{TAKEN_COLOUR};stroke-width:3.5}}"
        ".line.message{stroke-dasharray:8 5}.line.association{stroke-dasharray:2 4}"
        f".arrow{{fill:{PLAIN_STROKE};stroke:{PLAIN_STROKE}}}.arrow.taken{{fill:{TAKEN_COLOUR};stroke:{TAKEN_COLOUR}}}"
        ".arrow.open{fill:#fff}"
        "table{border-collapse:collapse;margin:4px 0 10px}"
        "th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}"
        "th{background:#f6f8fa;font-weight:600}"
        "td.reason{max-width:48em;white-space:pre-wrap;overflow-wrap:anywhere}"
        "td.num{text-align:right;font-variant-numeric:tabular-nums}"
        ".status{display:inline-block;padding:0 6px;border:1px solid #8c959f;border-radius:10px;"
        f"background:{OTHER_COLOURS[1]}}}"
        "table.dmn th.in{background:#eef3fb}table.dmn th.out{background:#f4effa}"
        "table.dmn td.entry{font:12px ui-monospace,'DejaVu Sans Mono',monospace}"
        "table.dmn td.annotation{color:#424a53;max-width:36em}"
        f"table.dmn tr.matched td{{background:{STATUS_COLOURS['completed'][1]};font-weight:600}}"
        f"table.dmn tr.matched td.row{{box-shadow:inset 4px 0 {STATUS_COLOURS['completed'][0]}}}"
        ".hit-mark{font-size:11px;font-weight:600;color:#1a7f37}"
        "nav ul{margin:4px 0;padding-left:20px}"
    )


def _duration(envelope: Mapping[str, Any]) -> str:
    value = envelope.get("duration_ms")
    if not isinstance(value, int | float):
        return ""
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.3g} ms"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _status(status: Any) -> str:
    return f'<span class="status" data-status="{_e(status)}">{_e(status)}</span>' if status else ""


def _steps_table(task: TaskTrace, model: _Model, drawn: set[str], prefix: str) -> str:
    rows = []
    for order, entry in enumerate(task.steps, start=1):
        record, envelope = entry.get("record") or {}, entry.get("envelope") or {}
        step = record.get("step")
        name = record.get("step_name") or (model.name(str(step)) if step else "")
        element = (f"{_e(name)} " if name else "") + (f"<code>{_e(step)}</code>" if step else "—")
        if step and str(step) not in drawn:
            element += ' <span class="meta">(not in the diagram)</span>'
        if record.get("instance") is not None:
            element += f' <span class="meta">instance {_e(record["instance"])}</span>'
        plugin = record.get("plugin") if isinstance(record.get("plugin"), Mapping) else None
        called = ""
        if plugin:
            called = f"<code>{_e(plugin.get('id'))}@{_e(plugin.get('version'))}</code>"
            if plugin.get("operation"):
                called += f" {_e(plugin['operation'])}"
        decision = record.get("decision") if isinstance(record.get("decision"), Mapping) else None
        if decision:
            called += (f'<a href="#{prefix}-dec-{order}"><code>{_e(decision.get("id"))}</code></a> → '
                       f"<code>{_e(_json(decision.get('result')))}</code>")
        flows = record.get("flows")
        if isinstance(flows, list) and flows:
            called += " took " + ", ".join(f"<code>{_e(f)}</code>" for f in flows)
        reason = record.get("reason") or ""
        rows.append(f'<tr id="{prefix}-step-{order}" data-seq="{_e(entry.get("seq", ""))}" '
                    f'data-step="{_e(step or "")}" data-status="{_e(record.get("status", ""))}">'
                    f'<td class="num">{order}</td><td>{element}</td><td>{_e(record.get("step_type") or "")}</td>'
                    f"<td>{_status(record.get('status'))}</td><td>{called}</td>"
                    f'<td class="num">{_e(_duration(envelope))}</td><td class="reason">{_e(reason)}</td></tr>')
    if not rows:
        return '<p class="meta">The ledger records no step of this task in this run.</p>'
    return ('<table class="steps"><thead><tr><th>#</th><th>Step</th><th>Type</th><th>Status</th>'
            "<th>Plugin / decision</th><th>Duration</th><th>Reason</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _column(css: str, label: str, detail: str) -> str:
    """A table column's header as Camunda Modeler shows it: the label, and the expression (or output name)
    under it when it says something else."""
    return f'<th class="{css}">{_e(label)}' + (f"<br><code>{_e(detail)}</code>" if detail and detail != label
                                              else "") + "</th>"


def _decision_table(order: int, entry: Mapping[str, Any], decisions: Mapping[str, _Decision], prefix: str) -> str:
    record = entry.get("record") or {}
    evaluated: Mapping[str, Any] = record["decision"]
    decision_id = str(evaluated.get("id"))
    decision = decisions.get(decision_id)
    refs, rows = _matched(evaluated)
    head = (f'<section class="decision" id="{prefix}-dec-{order}" data-decision-id="{_e(decision_id)}" '
            f'data-seq="{_e(entry.get("seq", ""))}">'
            f'<h4><a href="#{prefix}-step-{order}">#{order}</a> {_e(decision.name if decision else decision_id)} '
            f"<code>{_e(decision_id)}</code> at {_e(record.get('step_name') or record.get('step') or '')}</h4>"
            f'<p class="meta">result <code>{_e(_json(evaluated.get("result")))}</code>; matched rules: '
            + (", ".join(f"<code>{_e(r)}</code>" for r in evaluated.get("matched_rules") or []) or "none")
            + (f"; hit policy {_e(evaluated['hit_policy'])}" if evaluated.get("hit_policy") else "") + "</p>")
    inputs = evaluated.get("inputs")
    if isinstance(inputs, Mapping) and inputs:
        head += ('<p class="meta">inputs: ' + "; ".join(f"{_e(k)} = <code>{_e(_json(v))}</code>"
                                                       for k, v in inputs.items()) + "</p>")
    elif isinstance(inputs, list) and inputs:
        head += '<p class="meta">inputs: ' + "; ".join(f"<code>{_e(_json(v))}</code>" for v in inputs) + "</p>"
    for warning in evaluated.get("warnings") or []:
        head += f'<p class="meta">warning: {_e(warning)}</p>'
    if decision is None:
        return head + '<p class="meta">This decision is not in the pinned decisions file.</p></section>'
    if decision.hit_policy is None:
        return head + f"<pre>{_e(decision.literal or '')}</pre></section>"
    columns = "".join(_column("in", label, expr) for label, expr in decision.inputs)
    columns += "".join(_column("out", label, name) for label, name in decision.outputs)
    body = []
    for rule in decision.rules:
        matched = rule.ref in refs or rule.row in rows
        cells = "".join(f'<td class="entry">{_e(text or "-")}</td>' for text in (*rule.inputs, *rule.outputs))
        mark = ' <span class="hit-mark">matched</span>' if matched else ""
        body.append(f'<tr class="rule{" matched" if matched else ""}" data-rule-id="{_e(rule.ref)}" '
                    f'data-row="{rule.row}"><td class="row num">{rule.row}{mark}</td>{cells}'
                    f'<td class="annotation">{_e(rule.annotation)}</td></tr>')
    return (head + f'<table class="dmn"><thead><tr><th title="hit policy">{_e(decision.hit_policy)}</th>{columns}'
            "<th>Annotations</th></tr></thead><tbody>" + "".join(body) + "</tbody></table></section>")


def _visits(task: TaskTrace) -> dict[str, _Visit]:
    visits: dict[str, _Visit] = {}
    for order, record in enumerate(_records(task), start=1):
        step = record.get("step")
        if isinstance(step, str):
            before = visits.get(step)
            visits[step] = _Visit(str(record.get("status") or "unknown"), (before.count if before else 0) + 1,
                                  (*(before.order if before else ()), order))
    return visits


def _task_section(index: int, task: TaskTrace, model: _Model, decisions: Mapping[str, _Decision]) -> str:
    prefix = f"t{index}"
    records = _records(task)
    kinds = {element_id: model.kind(element_id) for element_id in model.elements}
    taken = taken_flows(records, model.flows, model.incoming, kinds)
    visits = _visits(task)
    drawn = {s.element_id for d in model.diagrams for s in d.shapes}
    where = f"{task.task_file}" + (f":{task.line}" if task.line is not None else "")
    status = task.status or "not finished in this run"
    parts = [f'<section class="task" id="{prefix}" data-task-id="{_e(task.task_id)}" '
             f'data-task-file="{_e(task.task_file)}" data-line="{_e(task.line if task.line is not None else "")}">'
             f"<h2>Task <code>{_e(task.task_id)}</code> {_status(status)}</h2>"
             f'<p class="meta">{_e(where)}' + (f" · started {_e(task.started)}" if task.started else "")
             + f" · {len(task.steps)} step(s)</p>"]
    if task.reason:
        parts.append(f'<p class="meta">reason: {_e(task.reason)}</p>')
    for n, diagram in enumerate(model.diagrams):
        title = diagram.file + (f" — {diagram.name}" if diagram.name else "")
        parts.append(f"<h3>{_e(title)}</h3>" if len(model.diagrams) > 1 else "")
        parts.append(f'<div class="wrap">{_svg(diagram, model, visits, taken, f"{prefix}d{n}")}</div>')
    parts.append("<h3>Steps</h3>" + _steps_table(task, model, drawn, prefix))
    evaluated = [(order, entry) for order, entry in enumerate(task.steps, start=1)
                 if isinstance((entry.get("record") or {}).get("decision"), Mapping)]
    if evaluated:
        parts.append("<h3>Decisions</h3>")
        parts += [_decision_table(order, entry, decisions, prefix) for order, entry in evaluated]
    parts.append("</section>")
    return "".join(parts)


def render(run: RunTrace) -> str:
    """The HTML page of ``run``: a function of its arguments only (no clock, no files)."""
    model = _read_bpmn(run.bpmn)
    decisions = _read_dmn(run.dmn)
    files = ", ".join(f"<code>{_e(name)}</code>" for name, _ in run.bpmn)
    legend = "".join(f'<span><i class="swatch" style="background:{fill};border-color:{stroke}"></i>{_e(status)}</span>'
                     for status, (stroke, fill) in STATUS_COLOURS.items() if status not in ("failed", "done"))
    legend += (f'<span><i class="swatch" style="background:{OTHER_COLOURS[1]};border-color:{OTHER_COLOURS[0]}"></i>'
               f'other status</span><span><i class="swatch" style="background:#fff;border-color:{TAKEN_COLOUR}"></i>'
               "flow taken</span>")
    nav = ""
    if len(run.tasks) > 1:
        nav = "<nav><ul>" + "".join(
            f'<li><a href="#t{i}"><code>{_e(t.task_id)}</code></a> {_status(t.status or "not finished")} '
            f'<span class="meta">{_e(t.task_file)}:{_e(t.line)}</span></li>'
            for i, t in enumerate(run.tasks)) + "</ul></nav>"
    sections = "".join(_task_section(i, t, model, decisions) for i, t in enumerate(run.tasks)) or \
        '<p class="meta">The ledger records no task of this run.</p>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>engine run {_e(run.run_id)}</title><style>{_css()}</style></head><body>"
        f"<header><h1>Run <code>{_e(run.run_id)}</code>"
        + (f" {_status(run.state)}" if run.state else "") + "</h1>"
        f'<p class="meta">Drawn from the models this run pinned: {files} (bpmn <code>{_e(run.models.get("bpmn", ""))}'
        f'</code>), decisions (dmn <code>{_e(run.models.get("dmn", ""))}</code>).</p>'
        f'<p class="meta legend">{legend}</p>{nav}</header><main>{sections}</main></body></html>\n')

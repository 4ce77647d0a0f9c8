"""Warnings about process models that load but may not run as meant: ``engine validate`` prints them, and
``engine validate --strict`` fails on them. ``load_models`` refuses what cannot run; these rules find what
probably runs wrongly. Each warning is a ``Problem`` on one line: ``file:line <elementType> <id> '<name>':
message``.

Two rules, over the executable process, its embedded subprocesses and the processes its call activities
call:

**Unknown names.** Every FEEL text (sequence flow conditions, timer expressions that are not plain ISO 8601,
``${...}`` values of ``camunda:inputParameter``/``outputParameter``, also inside lists and maps,
multi-instance ``loopCardinality``, ``completionCondition`` and ``camunda:collection``) reads variables;
a variable that no step can set is reported, with a did-you-mean. Only the first segment of a path counts
(``retry.action`` reads ``retry``); names the expression binds itself (``for x in``, ``some x in``,
function parameters, context entries) are not read, nor anything inside a filter ``[...]``, whose names may
be fields of the items. A name is known when some step can set it:

- the kernel: ``task``, ``error``, ``failures``, ``checkpoint``;
- a business rule task: its ``camunda:resultVariable`` (its ``camunda:decisionRef`` when absent), and any
  other element's ``camunda:resultVariable``;
- every ``camunda:outputParameter`` and ``camunda:inputParameter`` name;
- an error boundary event: its ``camunda:errorCodeVariable`` and ``camunda:errorMessageVariable``;
- a call activity: the ``target`` of each ``camunda:out``;
- a multi-instance activity: ``camunda:elementVariable``, ``loopCounter``, ``nrOfInstances``,
  ``nrOfActiveInstances``, ``nrOfCompletedInstances`` and its collected outputs (``camunda:property
  name="outputCollection"``, by default ``<activity id>_outputs``); a standard loop: ``loopCounter``;
- a Python script task: every name its script assigns (or imports, or defines);
- a service task: the top-level ``properties`` of the ``output_schema`` of the plugin operation its
  ``camunda:topic`` binds (``<plugin>.<operation>``, or ``<plugin>``: its first operation); for
  ``dispatch``, whose plugin is chosen at run time, those of every operation of every installed plugin.

The rule is skipped for the whole file when some step can set any name: a ``camunda:out
variables="all"``, a script that does not parse, or a bound operation whose output schema names no
properties and allows additional ones (or has ``patternProperties``).

**Exclusive gateways that may find no way out.** An exclusive gateway with two or more outgoing flows and no
``default`` flow is reported unless its conditions are provably exhaustive: a flow without a condition
(or with ``true``) is always taken, and a complementary pair of conditions always lets one through:
``X`` and ``not(X)``, ``a = v`` and ``a != v`` (``a = null`` and ``a != null``), ``a < n`` and ``a >= n``
(and ``<=``/``>``). Conditions are compared in a normal form of their syntax trees, so spacing, JUEL
spelling (``==``, ``&&``, ``!``), ``${...}``, which side of a comparison is written first and the order of
``and``/``or`` operands do not matter; ``not`` is pushed inwards (``not(a = v)`` is ``a != v``, and De
Morgan: ``a != null and b = null`` pairs with ``a = null or b != null``). Anything else, even ``a = true``
with ``a = false`` (``a`` may be null), is not proven.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import difflib
from collections.abc import Hashable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from lxml import etree

from engine.dmn import FeelSyntaxError, compile_expression
from engine.dmn import syntax as s
from engine.dmn.compiler import free_names
from engine.dmn.parser import parse_expression
from engine.errors import Problem
from engine.plugins.loader import Registry
from engine.process.expressions import ISO_8601, from_juel, is_expression, unwrap
from engine.process.models import BPMN_NS, DISPATCH_TOPIC, Models, _describe
from engine.process.parser import CAMUNDA
from engine.process.steps import KERNEL_VARIABLES

# What the kernel itself puts into the process data (``checkpoint``: the task's first checkpoint).
KERNEL_NAMES = frozenset(KERNEL_VARIABLES | {"task", "checkpoint"})
MULTI_INSTANCE_NAMES = frozenset({"loopCounter", "nrOfInstances", "nrOfActiveInstances", "nrOfCompletedInstances"})
SHOWN_KNOWN = 8  # known names listed when an unknown one has no close match

# Elements between a FEEL text and the flow node or sequence flow that owns it.
_WRAPPERS = {"extensionElements", "multiInstanceLoopCharacteristics", "standardLoopCharacteristics"}
_COMPARISONS = {"=", "!=", "<", "<=", ">", ">="}
_MIRRORED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_OPPOSITE = {"=": "!=", "!=": "=", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}


def _q(local: str) -> str:
    return f"{{{BPMN_NS}}}{local}"


def _local(node: Any) -> str:
    return str(etree.QName(node).localname)


class _AnyName(Exception):
    """Some step can set any name: the unknown-name rule says nothing about the file."""


def lint_models(models: Models, registry: Registry) -> list[Problem]:
    """The warnings about the checked models, by file (the main one first), then line; empty when none.

    The task's process is linted with every process its call activities reach, in this file or another
    ``.bpmn`` file beside it (``Models.called_files``); the names any of them can set are known to all
    (``camunda:in`` and ``camunda:out`` pass them along)."""
    main = models.bpmn_path
    paths = [main, *models.called_files]
    by_id: dict[str, tuple[Any, Path]] = {}
    for path in reversed(paths):  # the main file's processes win an id clash
        root = etree.parse(str(path), etree.XMLParser(resolve_entities=False)).getroot()
        by_id.update({str(p.get("id")): (p, path) for p in root.iter(_q("process"))})
    linted = _linted_processes(by_id, models.process_id)
    processes = [p for p, _ in linted]
    problems: list[Problem] = []
    try:
        known: set[str] | None = _known_names(processes, registry)
    except _AnyName:
        known = None
    for path in paths:
        group = [p for p, f in linted if f == path]
        if not group:
            continue
        found = _unknown_names(group, known, str(path)) if known is not None else []
        found += _open_gateways(group, str(path))
        problems += sorted(found, key=lambda p: p.line or 0)
    return problems


def _linted_processes(by_id: dict[str, tuple[Any, Path]], process_id: str) -> list[tuple[Any, Path]]:
    """The executable process and the processes its call activities call, transitively, with their files."""
    found: list[tuple[Any, Path]] = []
    todo = [process_id]
    while todo:
        entry = by_id.get(todo.pop())
        if entry is None or any(entry[0] is p for p, _ in found):
            continue
        found.append(entry)
        todo += [c.get("calledElement") for c in entry[0].iter(_q("callActivity")) if c.get("calledElement")]
    return found


def _elements(processes: list[Any], *tags: str) -> Iterator[Any]:
    for process in processes:
        yield from process.iter(*tags)


# ---- what steps can set ------------------------------------------------------------------------------


def _known_names(processes: list[Any], registry: Registry) -> set[str]:
    """Every variable some step of the processes can set; ``_AnyName`` when a step can set any."""
    known = set(KERNEL_NAMES)
    for element in _elements(processes):
        if isinstance(element.tag, str) and element.get(CAMUNDA + "resultVariable"):
            known.add(element.get(CAMUNDA + "resultVariable"))
    for task in _elements(processes, _q("businessRuleTask")):
        if not task.get(CAMUNDA + "resultVariable") and task.get(CAMUNDA + "decisionRef"):
            known.add(task.get(CAMUNDA + "decisionRef"))
    for param in _elements(processes, CAMUNDA + "inputParameter", CAMUNDA + "outputParameter"):
        if param.get("name"):
            known.add(param.get("name"))
    for definition in _elements(processes, _q("errorEventDefinition")):
        known.update(v for v in (definition.get(CAMUNDA + "errorCodeVariable"),
                                 definition.get(CAMUNDA + "errorMessageVariable")) if v)
    for passed in _elements(processes, CAMUNDA + "in"):
        if passed.get("target"):
            known.add(passed.get("target"))
    for out in _elements(processes, CAMUNDA + "out"):
        if out.get("variables") == "all":
            raise _AnyName
        if out.get("target"):
            known.add(out.get("target"))
    for loop in _elements(processes, _q("multiInstanceLoopCharacteristics")):
        activity = loop.getparent()
        known |= MULTI_INSTANCE_NAMES
        if loop.get(CAMUNDA + "elementVariable"):
            known.add(loop.get(CAMUNDA + "elementVariable"))
        collected = f"{activity.get('id')}_outputs"
        for prop in activity.findall(f"{_q('extensionElements')}/{CAMUNDA}properties/{CAMUNDA}property"):
            if prop.get("name") == "outputCollection" and prop.get("value"):
                collected = prop.get("value")
        known.add(collected)
    if any(True for _ in _elements(processes, _q("standardLoopCharacteristics"))):
        known.add("loopCounter")
    for script in _elements(processes, _q("script")):
        known |= _script_names(script.text or "")
    for task in _elements(processes, _q("serviceTask")):
        known |= _output_names(task.get(CAMUNDA + "topic") or "", registry)
    return known


def _script_names(text: str) -> set[str]:
    """The names a Python script assigns, imports or defines: each becomes a process variable."""
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise _AnyName from e
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
    return names


def _output_names(topic: str, registry: Registry) -> set[str]:
    """The top-level output names of the operation(s) a topic binds."""
    if topic == DISPATCH_TOPIC:
        schemas = [op.output_schema for plugin in registry.plugins.values() for op in plugin.spec.operations.values()]
    else:
        resolved = registry.resolve_topic(topic)
        if resolved is None:
            return set()
        plugin, operation = resolved
        schemas = [plugin.spec.operations[operation or plugin.spec.first_operation].output_schema]
    names: set[str] = set()
    for schema in schemas:
        names |= _schema_names(schema)
    return names


def _schema_names(schema: Any) -> set[str]:
    """The property names of an object schema (with those of its allOf/anyOf/oneOf branches); ``_AnyName``
    when it names none and allows others, or allows names by pattern."""
    if not isinstance(schema, Mapping):
        raise _AnyName  # the schema ``true``
    names = set(schema.get("properties") or {})
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(key) or []:
            if isinstance(branch, Mapping):
                names |= set(branch.get("properties") or {})
    if schema.get("patternProperties") or (not names and schema.get("additionalProperties", True) is not False):
        raise _AnyName
    return names


# ---- what expressions read ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Text:
    """One FEEL text of the model: the element that owns it and the line the text is on."""

    text: str
    owner: Any
    line: int


def _owner(node: Any) -> Any:
    """The flow node or sequence flow a text belongs to (past extension elements, event definitions, loops)."""
    owner = node.getparent()
    while owner is not None and (etree.QName(owner).namespace != BPMN_NS or _local(owner) in _WRAPPERS
                                 or _local(owner).endswith("EventDefinition")):
        owner = owner.getparent()
    return owner


def _texts(processes: list[Any]) -> Iterator[_Text]:
    for node in _elements(processes, _q("conditionExpression"), _q("loopCardinality"), _q("completionCondition")):
        if (node.text or "").strip():
            yield _Text(node.text.strip(), _owner(node), node.sourceline)
    for node in _elements(processes, _q("timeDuration"), _q("timeDate"), _q("timeCycle")):
        text = (node.text or "").strip()
        if text and not ISO_8601.match(unwrap(text)):
            yield _Text(text, _owner(node), node.sourceline)
    for node in _elements(processes, CAMUNDA + "inputParameter", CAMUNDA + "outputParameter"):
        yield from _values(node, _owner(node))
    for loop in _elements(processes, _q("multiInstanceLoopCharacteristics")):
        collection = (loop.get(CAMUNDA + "collection") or "").strip()
        if collection:
            # a bare name (camunda:collection="files") is the variable itself
            yield _Text(collection if is_expression(collection) else f"${{{collection}}}", loop.getparent(),
                        loop.sourceline)


def _values(node: Any, owner: Any) -> Iterator[_Text]:
    """The ``${...}`` texts of a parameter, or of its camunda:list / camunda:map, nested."""
    children = [c for c in node if isinstance(c.tag, str)]
    if not children:
        if is_expression(node.text or ""):
            yield _Text((node.text or "").strip(), owner, node.sourceline)
        return
    for item in children[0]:
        if isinstance(item.tag, str):
            yield from _values(item, owner)


def _parse(text: str) -> s.Node | None:
    """The syntax tree of a process expression, read as ``compile_feel`` reads it; None when it is no
    expression (plain ISO 8601) or does not parse (``load_models`` reports that)."""
    body = unwrap(text)
    if ISO_8601.match(body):
        return None
    try:
        compile_expression(body)
        return parse_expression(body)
    except FeelSyntaxError:
        with contextlib.suppress(FeelSyntaxError):
            return parse_expression(from_juel(body))
    return None


def reads(node: s.Node) -> set[str]:
    """The variables an expression reads: the first segment of each path, minus the names it binds; names
    in a filter's condition may be fields of the items, so they are not counted."""
    return {path.split(".")[0] for path in free_names(node, filter_conditions=False)}


def _unknown_names(processes: list[Any], known: set[str], file: str) -> list[Problem]:
    problems: list[Problem] = []
    for text in _texts(processes):
        node = _parse(text.text)
        if node is None:
            continue
        for name in sorted(reads(node) - known):
            problems.append(Problem(f"reads '{name}', which no step sets{_hint(name, known)}", file=file,
                                    line=text.line, element=_describe(text.owner)))
    return problems


def _hint(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    if close:
        return f". Did you mean '{close[0]}'?"
    def likeness(candidate: str) -> tuple[float, str]:
        return -difflib.SequenceMatcher(None, name, candidate).ratio(), candidate

    nearest = sorted(sorted(known, key=likeness)[:SHOWN_KNOWN])
    more = ", ..." if len(known) > len(nearest) else ""
    return f" (known: {', '.join(nearest)}{more})"


# ---- exclusive gateways ------------------------------------------------------------------------------


def _open_gateways(processes: list[Any], file: str) -> list[Problem]:
    problems: list[Problem] = []
    for gateway in _elements(processes, _q("exclusiveGateway")):
        if gateway.get("default"):
            continue
        flows = [f for f in gateway.getparent().findall(_q("sequenceFlow")) if f.get("sourceRef") == gateway.get("id")]
        if len(flows) < 2 or _exhaustive(flows):
            continue
        problems.append(Problem("has no default flow and its conditions may all be false (then the task fails "
                                "at run time): add a default flow", file=file, line=gateway.sourceline,
                                element=_describe(gateway)))
    return problems


def _exhaustive(flows: list[Any]) -> bool:
    """Whether one of the flows is always taken, or two of them are complementary."""
    keys: list[Hashable] = []
    for flow in flows:
        condition = flow.find(_q("conditionExpression"))
        text = (condition.text or "").strip() if condition is not None else ""
        node = _parse(text) if text else s.Literal(True)
        if node is None:
            continue
        if isinstance(node, s.Literal) and node.value is True:
            return True
        keys.append(_key(node))
    present = set(keys)
    return any(_complement(key) in present for key in keys)


def exhaustive_pair(first: str, second: str) -> bool:
    """Whether two conditions of a gateway are complementary (one of them is always true)."""
    a, b = _parse(first), _parse(second)
    return a is not None and b is not None and _complement(_key(a)) == _key(b)


def _key(node: s.Node) -> Hashable:
    """A normal form of a condition, equal for the same condition however it is spelled: a comparison is
    written one way round (the constant on the right), ``not`` is pushed inwards (``not`` of a comparison
    is the opposite comparison; De Morgan), the operands of ``and``/``or`` are in no particular order."""
    if isinstance(node, s.Call) and node.function == "not" and len(node.args) == 1 and not node.named:
        return _complement(_key(node.args[0]))
    if isinstance(node, s.Binary) and node.op in _COMPARISONS:
        left, right = _key(node.left), _key(node.right)
        literal_left, literal_right = isinstance(node.left, s.Literal), isinstance(node.right, s.Literal)
        if (literal_left and not literal_right) or (literal_left == literal_right and repr(right) < repr(left)):
            return ("compare", _MIRRORED[node.op], right, left)
        return ("compare", node.op, left, right)
    if isinstance(node, s.And | s.Or):
        return _junction("and" if isinstance(node, s.And) else "or", [_key(node.left), _key(node.right)])
    if isinstance(node, s.Literal):
        value = node.value
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            return ("number", Decimal(value).normalize())
        return ("literal", type(value).__name__, value if isinstance(value, Hashable) else repr(value))
    parts: list[Hashable] = [type(node).__name__]
    for f in dataclasses.fields(node):  # type: ignore[arg-type]
        if f.name != "column":
            parts.append(_value_key(getattr(node, f.name)))
    return tuple(parts)


def _junction(kind: str, keys: list[Hashable]) -> Hashable:
    """``and``/``or`` of normal forms, nested ones of the same kind flattened, in a fixed order."""
    flat: set[Hashable] = set()
    for key in keys:
        if isinstance(key, tuple) and key[0] == kind:
            flat.update(key[1])
        else:
            flat.add(key)
    return (kind, tuple(sorted(flat, key=repr)))


def _value_key(value: Any) -> Hashable:
    if isinstance(value, s.Node):
        return _key(value)
    if isinstance(value, list | tuple):
        return tuple(_value_key(v) for v in value)
    return value if isinstance(value, Hashable) else repr(value)


def _complement(key: Hashable) -> Hashable:
    """The normal form of ``not(condition)``, given the condition's."""
    if isinstance(key, tuple) and key[0] == "compare":
        return ("compare", _OPPOSITE[key[1]], key[2], key[3])
    if isinstance(key, tuple) and key[0] == "not":
        return cast(Hashable, key[1])
    if isinstance(key, tuple) and key[0] in ("and", "or"):
        return _junction("or" if key[0] == "and" else "and", [_complement(k) for k in key[1]])
    return ("not", key)


__all__ = ["KERNEL_NAMES", "exhaustive_pair", "lint_models", "reads"]

"""The loaded decision model: decisions, their tables, and evaluation.

Built by :mod:`engine.dmn.loader`, which compiles every cell once. Evaluating a decision table
evaluates its input expressions once, runs each rule's compiled tests, and hands the matching rules to
:mod:`engine.dmn.hit_policy`.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
from collections import ChainMap
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from engine.dmn.compiler import Expr, Test
from engine.dmn.hit_policy import select
from engine.dmn.result import DecisionResult, RuleHit
from engine.dmn.typeref import TypeDef, TypeMismatch, conform, parse_text
from engine.dmn.values import set_path, show, to_json, to_plain
from engine.errors import DecisionError, Problem

# Where the decision being evaluated collects its warnings: values that DMN turns into null (outside
# inputValues/outputValues, not of the typeRef). A decision's own table gets the list passed; tables
# inside business knowledge models and decision services find it here, so that they report to the
# decision that called them, and so do cells that cannot work (null with a warning, see load_warnings). Set
# only for models that have such functions or such cells (it costs time).
_WARNINGS: ContextVar[list[str] | None] = ContextVar("engine_dmn_warnings", default=None)


def warn(message: str, *, once: bool = False) -> None:
    """Record ``message`` on the result of the decision being evaluated (nothing outside an evaluation);
    ``once``: not when the result has it already (an expression evaluated in a loop)."""
    sink = _WARNINGS.get()
    if sink is not None and not (once and message in sink):
        sink.append(message)


@dataclass(eq=False)
class InputClause:
    """One input column. ``name`` is what people call it: the label, else the expression text."""

    id: str | None
    label: str | None
    expression: str
    type_ref: str | None
    input_variable: str = "cellInput"
    input_values: str | None = None
    line: int | None = None
    path: tuple[str, ...] | None = None  # when the expression is a plain name or path: its parts
    reads: frozenset[str] = frozenset()  # the variables the expression reads, as dotted paths
    evaluate: Expr = field(default=lambda ctx: None, repr=False)
    allowed: list[Test] = field(default_factory=list, repr=False)

    @property
    def name(self) -> str:
        return self.label or self.expression


@dataclass(eq=False)
class OutputClause:
    """One output column. ``priority_tests`` are the compiled ``outputValues``, in priority order."""

    id: str | None
    name: str | None
    label: str | None
    type_ref: str | None
    output_values: str | None = None
    default: str | None = None
    line: int | None = None
    priority_tests: list[Test] = field(default_factory=list, repr=False)
    default_value: Expr | None = field(default=None, repr=False)

    @property
    def title(self) -> str:
        return self.name or self.label or self.id or "output"


@dataclass(eq=False)
class Rule:
    """One rule. ``checks`` are (input index, test) for every cell that is not ``-``/empty."""

    id: str | None
    index: int  # 1-based
    input_entries: list[str]
    output_entries: list[str]
    line: int | None = None
    description: str | None = None
    checks: tuple[tuple[int, Test], ...] = field(default=(), repr=False)
    outputs: tuple[Expr | None, ...] = field(default=(), repr=False)

    @property
    def ref(self) -> str:
        return self.id or f"rule-{self.index}"


@dataclass(eq=False)
class Decision:
    """A decision: a decision table (``rules``) or a FEEL literal expression (``literal``)."""

    id: str
    name: str
    hit_policy: str | None = None  # None for a literal expression
    aggregation: str | None = None
    inputs: list[InputClause] = field(default_factory=list)
    outputs: list[OutputClause] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    filename: str = ""
    line: int | None = None
    literal_text: str | None = None
    literal: Expr | None = field(default=None, repr=False)
    variable_name: str | None = None
    variable_type: str | None = None
    types: dict[str, TypeDef] = field(default_factory=dict, repr=False)
    reads: frozenset[str] = frozenset()  # variables the decision (and what it requires) reads
    own_reads: frozenset[str] = frozenset()  # variables its own logic reads (less the names it binds itself)
    all_inputs: list[InputClause] = field(default_factory=list, repr=False)  # own + required ones
    kind: str = "decision"  # "businessKnowledgeModel" for a table inside one (named in errors)

    # ---- errors -------------------------------------------------------------------------------------

    def describe(self, message: str) -> str:
        """``message`` prefixed with where this decision is: ``file:line: decision 'id' (name): ...``."""
        where = f"{self.filename}:{self.line}" if self.line else self.filename
        return f"{where}: {self.kind} '{self.id}' ({self.name}): {message}"

    def error(self, message: str, rules: list[Rule] | None = None) -> DecisionError:
        return DecisionError(self.describe(message), file=self.filename, line=self.line, decision=self.id,
                             rules=[r.ref for r in rules or []])

    def record_warning(self, message: str, warnings: list[str] | None) -> None:
        """Where DMN makes a value null (or, for an input expression's typeRef, uses it unconverted) instead of
        failing: the reason, kept on the decision's result."""
        if warnings is None:
            warn(self.describe(message))
        else:
            warnings.append(self.describe(message))

    # ---- what the decision gives to decisions that require it ----------------------------------------

    def exposed(self, value: Any) -> dict[str, Any]:
        """Names under which a requiring decision reads this one's result: the decision's name (DMN)
        and, as Camunda does, its output names (or the literal expression's variable name)."""
        out: dict[str, Any] = {}
        if self.literal is not None:
            if self.variable_name:
                out[self.variable_name] = value
        elif len(self.outputs) == 1:
            if self.outputs[0].name:
                out[self.outputs[0].name] = value
        else:
            names = [o.name for o in self.outputs if o.name]
            if isinstance(value, dict):
                out.update(value)
            elif isinstance(value, list):
                for n in names:
                    out[n] = [row.get(n) if isinstance(row, dict) else None for row in value]
        out[self.name or self.id] = value
        return out

    # ---- command-line inputs -------------------------------------------------------------------------

    def coerce_inputs(self, raw: Mapping[str, str]) -> dict[str, Any]:
        """``{"Tool": "git", "Failures": "2"}`` -> a context for :meth:`DecisionModel.evaluate`.

        A key may be an input's label, its expression text, its ``camunda:inputVariable``, or a
        variable (or dotted path) that the decision's expressions read. Values are converted by the
        input's ``typeRef`` (JSON is tried when there is none). Raises :class:`DecisionError`.
        """
        out: dict[str, Any] = {}
        for key, text in raw.items():
            clause = self._find_input(key)
            if clause is not None:
                if clause.path is None:
                    names = ", ".join(sorted(self.reads)) or "none"
                    raise self.error(f"input '{clause.name}' is computed by the expression "
                                     f"'{clause.expression}', so it cannot be given directly; give the "
                                     f"variables it reads instead ({names})")
                try:
                    value = parse_text(text, clause.type_ref, self.types)
                except TypeMismatch as e:
                    raise self.error(f"input '{clause.name}' ({clause.type_ref}): cannot use {text!r}: {e}") \
                        from e
                set_path(out, clause.path, value, merge=True)
                continue
            path = ".".join(part.strip() for part in key.split("."))
            if any(path == r or r.startswith(path + ".") or path.startswith(r + ".") for r in self.reads):
                set_path(out, tuple(path.split(".")), parse_text(text, None), merge=True)
                continue
            known = sorted({c.name for c in self.all_inputs} | set(self.reads))
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise self.error(f"no input or variable called '{key}'.{hint} Known: {', '.join(known)}")
        return out

    def _find_input(self, key: str) -> InputClause | None:
        wanted = " ".join(key.split())
        for fold in (False, True):
            for clause in self.all_inputs:
                names = [clause.label, clause.expression, clause.input_variable
                         if clause.input_variable != "cellInput" else None]
                for n in names:
                    if n is None:
                        continue
                    n = " ".join(n.split())
                    if n == wanted or (fold and n.casefold() == wanted.casefold()):
                        return clause
        return None

    # ---- what the ledger records -----------------------------------------------------------------------

    @property
    def hit_policy_name(self) -> str | None:
        """``"UNIQUE"``, ``"COLLECT SUM"``...; None for a decision that is no table."""
        if self.hit_policy is None:
            return None
        return f"{self.hit_policy} {self.aggregation}" if self.aggregation else self.hit_policy

    @functools.cached_property
    def input_names(self) -> tuple[str, ...]:
        """The name of each input column as the ledger records it: its label, else its expression text (a
        name two columns share gets the column's number: ``Tool (2)``)."""
        names = [clause.name for clause in self.inputs]
        return tuple(n if names.count(n) == 1 else f"{n} ({i})" for i, n in enumerate(names, start=1))

    # ---- evaluation -------------------------------------------------------------------------------------

    def run(self, ctx: Mapping[str, Any], warnings: list[str] | None = None) -> tuple[Any, list[Rule]]:
        """Evaluate against ``ctx``; returns (internal value, rules used). Raises DecisionError.

        Why a value became null goes to ``warnings`` (by default: to the decision being evaluated)."""
        value, rules, _ = self.traced(ctx, warnings)
        return value, rules

    def traced(self, ctx: Mapping[str, Any], warnings: list[str] | None = None) -> tuple[Any, list[Rule], Trace]:
        """:meth:`run`, with the :class:`Trace` of what the evaluation saw (a table's input values and the
        outputs of the rules used; kept as they are, turned into the ledger's form only when asked)."""
        if self.literal is not None:
            value = self.literal(ctx)
            if self.variable_type:
                try:
                    value = conform(value, self.variable_type, self.types)
                except TypeMismatch as e:
                    self.record_warning(f"the expression '{self.literal_text}' gives a value that is not "
                                      f"{self.variable_type}: {e}; the result is null", warnings)
                    value = None
            return value, [], Trace(self, [], [], {})
        values = [self._input_value(clause, ctx, warnings) for clause in self.inputs]
        matched: list[Rule] = []
        first = self.hit_policy == "FIRST"
        for rule in self.rules:
            for i, test in rule.checks:
                if test(values[i], ctx) is not True:
                    break
            else:
                matched.append(rule)
                if first:
                    break
        rows: dict[int, tuple[Any, ...]] = {}

        def outputs(rule: Rule) -> tuple[Any, ...]:
            rows[rule.index] = row = self._outputs(rule, ctx, warnings)
            return row

        value, used = select(self, matched, outputs, lambda: self._defaults(ctx, warnings))
        return value, used, Trace(self, values, used, rows)

    def _input_value(self, clause: InputClause, ctx: Mapping[str, Any], warnings: list[str] | None) -> Any:
        value = clause.evaluate(ctx)
        if clause.type_ref is not None:
            try:
                value = conform(value, clause.type_ref, self.types)
            except TypeMismatch as e:
                # DMN converts values at a decision's variable, a function's parameters and input data, not at
                # an input expression's typeRef; exporters often put a wrong one there (TCK 0004-lending).
                self.record_warning(f"input '{clause.name}' ({clause.expression}): {e}; the value is used as it is",
                                  warnings)
        if clause.allowed and value is not None and not any(t(value, ctx) is True for t in clause.allowed):
            self.record_warning(f"input '{clause.name}' ({clause.expression}) is {show(value)}, which is not "
                              f"among its allowed values {clause.input_values}; the input is null", warnings)
            return None
        return value

    def _outputs(self, rule: Rule, ctx: Mapping[str, Any], warnings: list[str] | None) -> tuple[Any, ...]:
        row = []
        for out, expr in zip(self.outputs, rule.outputs, strict=True):
            value = None if expr is None else expr(ctx)
            row.append(self._check_output(out, value, ctx, rule, warnings))
        return tuple(row)

    def _check_output(self, out: OutputClause, value: Any, ctx: Mapping[str, Any], rule: Rule | None,
                      warnings: list[str] | None) -> Any:
        whose = f"rule {rule.ref}" if rule else "the default"
        if out.type_ref is not None:
            try:
                value = conform(value, out.type_ref, self.types)
            except TypeMismatch as e:
                self.record_warning(f"output '{out.title}' of {whose}: {e}; the output is null", warnings)
                return None
        if out.priority_tests and value is not None and \
                not any(t(value, ctx) is True for t in out.priority_tests):
            self.record_warning(f"output '{out.title}' of {whose} is {show(value)}, which is not among its "
                              f"output values {out.output_values}; the output is null", warnings)
            return None
        return value

    def _defaults(self, ctx: Mapping[str, Any], warnings: list[str] | None) -> tuple[Any, ...] | None:
        if not any(o.default_value is not None for o in self.outputs):
            return None
        return tuple(None if o.default_value is None else self._check_output(o, o.default_value(ctx), ctx, None,
                                                                                       warnings)
                     for o in self.outputs)


@dataclass(eq=False)
class Trace:
    """What one evaluation of ``decision`` saw: its input columns' values in column order (for a decision
    that is no table: the values of the variables it read, ``paths``), the rules used and each one's
    outputs by rule number. Internal values; :meth:`inputs` and :meth:`rules` give them plain."""

    decision: Decision
    values: list[Any]
    used: list[Rule]
    rows: dict[int, tuple[Any, ...]]
    paths: tuple[str, ...] = ()

    def inputs(self) -> dict[str, Any]:
        names = self.paths if self.decision.literal is not None else self.decision.input_names
        return {name: to_plain(value) for name, value in zip(names, self.values, strict=False)}

    def rules(self) -> list[RuleHit]:
        outputs = self.decision.outputs
        hits = []
        for rule in self.used:
            row = self.rows.get(rule.index, ())
            annotation = (rule.description or "").strip() or None
            hits.append(RuleHit(rule.ref, rule.index, annotation,
                                {out.title: to_plain(v) for out, v in zip(outputs, row, strict=False)}))
        return hits


def _lookup(ctx: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = ctx
    for part in path:
        if type(node) is not dict and not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _same(a: Any, b: Any) -> bool:
    """Whether two values are the same JSON (``1`` is not ``true``, nor ``1.0``)."""
    if a is b:
        return True
    if type(a) is type(b) and type(a) in (str, int, float, bool):
        return bool(a == b)
    return json.dumps(to_json(a), sort_keys=True) == json.dumps(to_json(b), sort_keys=True)


class DecisionModel:
    """Every decision of one DMN file, keyed by id in file order."""

    def __init__(self, filename: str, namespace: str, decisions: dict[str, Decision], *,
                 input_types: Mapping[str, str] | None = None, types: dict[str, TypeDef] | None = None,
                 functions: Mapping[str, Any] | None = None, digest: str = "",
                 load_warnings: list[Problem] | None = None) -> None:
        self.filename = filename
        #: what the file means but cannot work, found at load (FEEL that parses but cannot be evaluated, a
        #: decision without logic, a Java function): each is null at evaluation, with a warning on the result
        self.load_warnings: list[Problem] = list(load_warnings or [])
        #: SHA-256 (hex) of the file's bytes as loaded: the model a result was evaluated with
        self.digest = digest
        self._paths: dict[str, tuple[tuple[str, ...], ...]] = {}
        self.namespace = namespace
        self.decisions: Mapping[str, Decision] = decisions
        #: ``inputData`` name -> typeRef; the caller's value of that name is checked and converted to it.
        self.input_types: Mapping[str, str] = dict(input_types or {})
        self.types: dict[str, TypeDef] = types or {}
        #: business knowledge models by name, callable from every decision's FEEL (and each other's)
        self.functions: Mapping[str, Any] = functions or {}

    def __repr__(self) -> str:
        return f"DecisionModel({self.filename!r}, decisions={list(self.decisions)})"

    def decision(self, ref: str) -> Decision:
        """The decision with id ``ref``, else the one named ``ref``. Raises DecisionError with a hint."""
        found = self.decisions.get(ref)
        if found is not None:
            return found
        wanted = " ".join(ref.split())
        for d in self.decisions.values():
            if d.name == wanted:
                return d
        for d in self.decisions.values():
            if d.name.casefold() == wanted.casefold() or d.id.casefold() == wanted.casefold():
                return d
        known = [*self.decisions, *(d.name for d in self.decisions.values() if d.name)]
        close = difflib.get_close_matches(ref, known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        ids = ", ".join(self.decisions) or "none"
        raise DecisionError(f"{self.filename}: no decision '{ref}'.{hint} Decisions: {ids}",
                            file=self.filename, decision=ref)

    def evaluate(self, ref: str, context: Mapping[str, Any]) -> DecisionResult:
        """Evaluate decision ``ref`` (id or name), its required decisions first.

        As DMN says, a value that does not fit its typeRef, ``inputValues`` or ``outputValues`` becomes
        null; the reason is in :attr:`DecisionResult.warnings` of the decision it happened in. Raises
        DecisionError for what DMN calls an error of the table (UNIQUE with two matches, ...).
        """
        decision = self.decision(ref)
        if not isinstance(context, Mapping):
            raise decision.error(f"the context must be a mapping of variable names, got {type(context).__name__}")
        warnings: list[str] = []
        if self.input_types:
            context = self._typed_inputs(decision, context, warnings)
        if self.functions:
            context = ChainMap(dict(context), self.functions)  # type: ignore[arg-type]  # read-only scopes
        return self._evaluate(decision, context, {}, warnings)[0]

    def _typed_inputs(self, decision: Decision, context: Mapping[str, Any],
                      warnings: list[str]) -> Mapping[str, Any]:
        """The caller's values of ``inputData`` elements, converted to their typeRefs (``"3"`` to a number
        for ``number``, an ISO string to a date, a context's components to their types); null when they
        do not fit, with a warning."""
        typed: dict[str, Any] | None = None
        for name, type_ref in self.input_types.items():
            value = context.get(name)
            if value is None:
                continue
            try:
                converted = conform(value, type_ref, self.types)
            except TypeMismatch as e:
                warnings.append(decision.describe(f"inputData '{name}' ({type_ref}): {e}; it is null"))
                converted = None
            if converted is not value:
                if typed is None:
                    typed = dict(context)
                typed[name] = converted
        return context if typed is None else typed

    # ---- what re-deriving a decision needs ---------------------------------------------------------------

    def read_paths(self, decision: Decision) -> tuple[tuple[str, ...], ...]:
        """The variables ``decision`` (with what it requires) reads from the caller's context, as paths: a
        path under another one read whole left out, and the names its required decisions give it."""
        found = self._paths.get(decision.id)
        if found is None:
            given: set[str] = set()
            pending, seen = list(decision.required), set()
            while pending:
                ref = pending.pop()
                if ref in seen or ref not in self.decisions:
                    continue
                seen.add(ref)
                sub = self.decisions[ref]
                given |= {sub.name or sub.id, *(o.name for o in sub.outputs if o.name)}
                given |= {sub.variable_name} if sub.variable_name else set()
                pending.extend(sub.required)
            reads = sorted(r for r in decision.reads if r.split(".")[0] not in given)
            found = tuple(tuple(r.split(".")) for r in reads
                          if not any(r.startswith(other + ".") for other in reads))
            self._paths[decision.id] = found
        return found

    def caller_reads(self, decision: Decision) -> tuple[tuple[str, InputClause | None], ...]:
        """What ``decision`` itself (not the decisions it requires) reads from the caller's context: each
        variable as a dotted path, with the input column whose expression reads it. For a table: the
        variables of its input expressions, column by column (these are read at every evaluation; rules
        and outputs read theirs only when tried). For another decision: the variables its expression
        reads, with None (for a boxed context or function, less the names it binds itself). Left out: the
        names its required decisions give it, the model's business knowledge models and decision
        services, and a path under another one read whole."""
        given = set(self.functions)
        for ref in decision.required:
            sub = self.decisions.get(ref)
            if sub is not None:
                given |= {sub.name or sub.id, *(o.name for o in sub.outputs if o.name)}
                given |= {sub.variable_name} if sub.variable_name else set()
        pairs: list[tuple[str, InputClause | None]] = []
        if decision.literal is None:
            pairs = [(r, clause) for clause in decision.inputs for r in sorted(clause.reads)]
        else:
            pairs = [(r, None) for r in sorted(decision.own_reads)]
        paths = {r for r, _ in pairs if r.split(".")[0] not in given}
        out: list[tuple[str, InputClause | None]] = []
        for r, clause in pairs:
            if r in paths and all(r != o for o, _ in out) and not any(r.startswith(p + ".") for p in paths):
                out.append((r, clause))
        return tuple(out)

    def read_values(self, result: DecisionResult, context: Mapping[str, Any]) -> dict[str, Any]:
        """The values ``result``'s decision read, as it read them (plain values): for a table, each input
        column's (:attr:`DecisionResult.inputs`); for another decision, each variable its expression reads
        (by dotted path), from the caller's ``context`` or the results of its required decisions."""
        decision = self.decision(result.decision_id)
        if decision.literal is None:
            return result.inputs
        scope = dict(context)
        for sub in result.required:
            scope.update(self.decisions[sub.decision_id].exposed(sub.value))
        reads = sorted(r for r in decision.own_reads if r.split(".")[0] not in self.functions)
        return {r: to_plain(_lookup(scope, tuple(r.split(".")))) for r in reads
                if not any(r.startswith(other + ".") for other in reads)}

    def evidence(self, result: DecisionResult, context: Mapping[str, Any]) -> dict[str, Any]:
        """What re-deriving ``result`` needs beyond its :attr:`~DecisionResult.inputs`: the values (JSON,
        by dotted path) of the variables of ``context`` (the caller's) that the decision read and that no
        input column holds as it was given (read by a rule, an output, a computed column or a required
        decision; or converted by its column's typeRef)."""
        decision = self.decision(result.decision_id)
        columns = {} if result.trace is None or decision.literal is not None else {
            clause.path: value for clause, value in zip(decision.inputs, result.trace.values, strict=False)
            if clause.path is not None}
        out: dict[str, Any] = {}
        for path in self.read_paths(decision):
            value = _lookup(context, path)
            if decision.literal is not None or (path in columns and _same(columns[path], value)):
                continue
            out[".".join(path)] = to_json(value)
        return out

    def rederivation_context(self, ref: str, inputs: Mapping[str, Any],
                             evidence: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The context that evaluates decision ``ref`` again from what the ledger recorded of an earlier
        evaluation: its ``inputs`` put back where its input columns read them (a computed column's value
        cannot be: what it read is in ``evidence``), then the ``evidence`` (see :meth:`evidence`)."""
        decision = self.decision(ref)
        ctx: dict[str, Any] = {}
        if decision.literal is not None:
            for path, value in inputs.items():
                set_path(ctx, tuple(path.split(".")), copy.deepcopy(value), merge=True)
        else:
            for name, clause in zip(decision.input_names, decision.inputs, strict=True):
                if clause.path is not None and name in inputs:
                    set_path(ctx, clause.path, copy.deepcopy(inputs[name]), merge=True)
        for path, value in (evidence or {}).items():
            set_path(ctx, tuple(path.split(".")), copy.deepcopy(value), merge=True)
        return ctx

    def run_decision(self, decision: Decision, context: Mapping[str, Any], done: dict[str, Any]) -> Any:
        """The internal value of ``decision`` (its requirements first) in ``context``: for decision services.
        Its warnings go to the decision that called the service."""
        result, internal = self._evaluate(decision, context, done)
        for warning in _all_warnings(result):
            warn(warning)
        return internal

    def _evaluate(self, decision: Decision, context: Mapping[str, Any],
                  done: dict[str, tuple[DecisionResult, Any]],
                  warnings: list[str] | None = None) -> tuple[DecisionResult, Any]:
        if decision.id in done:
            return done[decision.id]
        required: list[DecisionResult] = []
        ctx = context
        if decision.required:
            scope = dict(context)
            for ref in decision.required:
                sub = self.decisions[ref]
                result, internal = self._evaluate(sub, context, done)
                required.append(result)
                scope.update(sub.exposed(internal))
            ctx = scope
        own: list[str] = [] if warnings is None else warnings
        if self.functions or self.load_warnings:  # a BKM or decision service may evaluate a table, a cell that
            # cannot work says so when evaluated: they report to this decision
            token = _WARNINGS.set(own)
            try:
                internal, rules, trace = decision.traced(ctx, own)
            finally:
                _WARNINGS.reset(token)
        else:
            internal, rules, trace = decision.traced(ctx, own)
        if decision.literal is not None:  # no columns: its inputs are the variables it read
            paths = self.read_paths(decision)
            trace.paths = tuple(".".join(p) for p in paths)
            trace.values = [_lookup(ctx, p) for p in paths]
        result = DecisionResult(decision.id, decision.name, to_plain(internal), [r.ref for r in rules], required,
                                own, decision.hit_policy_name, trace)
        done[decision.id] = (result, internal)
        return result, internal


def _all_warnings(result: DecisionResult) -> list[str]:
    out = [w for r in result.required for w in _all_warnings(r)]
    return out + [w for w in result.warnings if w not in out]


"""What evaluating a decision gives back, and its JSON form for the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.dmn.values import to_json

if TYPE_CHECKING:
    from engine.dmn.model import Trace


@dataclass(frozen=True)
class RuleHit:
    """A rule that made up a decision table's value, as the Modeler shows it: ``row`` is its number in the
    table (1-based), ``annotation`` its ``description`` (the Annotations column), ``outputs`` its output
    entries' values by output name (plain values, before the hit policy aggregated them)."""

    id: str
    row: int
    annotation: str | None
    outputs: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "row": self.row, "annotation": self.annotation, "outputs": to_json(self.outputs)}


@dataclass
class DecisionResult:
    """The outcome of one decision.

    ``value`` is DMN-shaped: the bare value for a table with one output, a dict keyed by output name for
    several outputs, a list of those for multi-hit policies (RULE ORDER, OUTPUT ORDER, COLLECT without
    aggregation). Values are plain Python: str, int, float, bool, None, list, dict, and
    ``datetime.date``/``time``/``datetime``/``timedelta`` or
    :class:`~engine.dmn.temporal.YearMonthDuration`.

    ``matched_rules`` are the ids of the rules that make up the value, in the order used (``rule-3``
    for a rule without an id). ``required`` are the results of the decisions this one required.

    ``warnings`` say why a value became null on the way, as DMN asks instead of failing: an input or
    output outside its ``inputValues``/``outputValues``, a value that does not fit its ``typeRef``. Each
    names the file, line, decision, input or output and rule. The warnings of required decisions are
    on their own results.

    ``hit_policy`` is the table's (``"UNIQUE"``, ``"COLLECT SUM"``; None for a decision that is no table).
    ``inputs`` and ``rules`` say what the evaluation saw, built only when asked (evaluating costs no more
    for them): for a table, each input column's name (label, else expression text) and its value, and a
    :class:`RuleHit` per rule of ``matched_rules``; for other decisions, the variables it read (dotted
    paths) and no rules.
    """

    decision_id: str
    decision_name: str
    value: Any
    matched_rules: list[str] = field(default_factory=list)
    required: list[DecisionResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    hit_policy: str | None = None
    trace: Trace | None = field(default=None, repr=False, compare=False)

    @property
    def inputs(self) -> dict[str, Any]:
        return {} if self.trace is None else self.trace.inputs()

    @property
    def rules(self) -> list[RuleHit]:
        return [] if self.trace is None else self.trace.rules()

    def explanation(self) -> dict[str, Any]:
        """JSON of what the evaluation saw, for the ledger: ``hit_policy``, ``inputs``, ``rules`` and, when
        the decision required others, ``required`` (each one's id, result and matched rules with the same)."""
        out: dict[str, Any] = {"hit_policy": self.hit_policy, "inputs": to_json(self.inputs),
                               "rules": [r.as_dict() for r in self.rules]}
        if self.required:
            out["required"] = [{"id": r.decision_id, "result": to_json(r.value), "matched_rules": list(r.matched_rules),
                                **r.explanation()} for r in self.required]
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (dates, times and durations as ISO 8601 strings)."""
        out: dict[str, Any] = {
            "decision_id": self.decision_id,
            "decision_name": self.decision_name,
            "value": to_json(self.value),
            "matched_rules": list(self.matched_rules),
            "required": [r.as_dict() for r in self.required],
        }
        if self.warnings:  # only then, so that records of clean evaluations keep their shape
            out["warnings"] = list(self.warnings)
        return out

"""What evaluating a decision gives back, and its JSON form for the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.dmn.values import to_json


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
    """

    decision_id: str
    decision_name: str
    value: Any
    matched_rules: list[str] = field(default_factory=list)
    required: list[DecisionResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

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

"""DMN decisions for the engine: load a ``.dmn`` file, evaluate its decisions.

::

    from engine import dmn

    model = dmn.load("process/decisions.dmn")        # ModelError lists every problem of the file
    result = model.evaluate("retry_policy", {"task": {...}, "failures": 1, "error": {...}})
    result.value            # {"action": "retry", "backoff": 20}
    result.matched_rules    # ["Rule_retry"]
    result.as_dict()        # JSON for the ledger

Understands DMN 1.1 to 1.5 files as Camunda Modeler writes them: several decisions per file,
``requiredDecision`` chains, every hit policy and aggregation, and the FEEL that modelers type into
table cells (S-FEEL unary tests, ranges, lists, ``not(...)``, ``?``, built-in functions). Business
knowledge models, invocations, boxed contexts, function definitions, lists, relations and decision
services (called from FEEL) are evaluated too. Every cell is compiled once at load time; evaluating
does not parse. This package does not use SpiffWorkflow.

Errors: :class:`~engine.errors.ModelError` when loading (with ``problems``), and
:class:`~engine.errors.DecisionError` when evaluating a table that breaks its hit policy (UNIQUE with two
matches, ANY with disagreeing matches, ...), each naming the file, the decision and the rules involved.
As DMN says, a value outside ``inputValues``/``outputValues`` or not of its typeRef is null instead;
:attr:`DecisionResult.warnings` says where and why.
"""

from __future__ import annotations

from engine.dmn.compiler import compile_expression
from engine.dmn.lexer import FeelSyntaxError
from engine.dmn.loader import check, load
from engine.dmn.model import Decision, DecisionModel, InputClause, OutputClause, Rule
from engine.dmn.result import DecisionResult
from engine.dmn.temporal import YearMonthDuration
from engine.dmn.values import json_text, to_json

__all__ = [
    "Decision",
    "DecisionModel",
    "DecisionResult",
    "InputClause",
    "OutputClause",
    "Rule",
    "FeelSyntaxError",
    "YearMonthDuration",
    "check",
    "compile_expression",
    "json_text",
    "load",
    "to_json",
]

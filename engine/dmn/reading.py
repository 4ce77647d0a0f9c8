"""What every part of reading a DMN file shares: the problems found so far, the names the model
declares, its item definitions, and the checks of typeRefs and expression languages.

:mod:`engine.dmn.loader` reads the document with the readers built on :class:`Reader`:
:mod:`engine.dmn.table_reader` (decision tables) and :mod:`engine.dmn.boxed_reader` (business knowledge
models, decision services and the other boxed expressions).
"""

from __future__ import annotations

import difflib
from typing import Any

from lxml import etree

from engine.dmn.model import Rule
from engine.dmn.parser import KnownNames
from engine.dmn.typeref import BASE_TYPES, TypeDef, normalize_type
from engine.dmn.values import FeelFunction
from engine.errors import Problem

CAMUNDA_NS = "http://camunda.org/schema/1.0/dmn"
_FEEL_LANGUAGES = frozenset({
    "feel", "s-feel", "sfeel",
    "http://www.omg.org/spec/feel/20140401",
    "http://www.omg.org/spec/dmn/20180521/feel/",
    "https://www.omg.org/spec/dmn/20191111/feel/",
    "https://www.omg.org/spec/dmn/20211108/feel/",
    "https://www.omg.org/spec/dmn/20230324/feel/",
    "http://www.omg.org/spec/dmn/20151101/feel",
})
# boxed expressions engine.dmn evaluates (besides decision tables and literal expressions at the top)
BOXED = ("literalExpression", "decisionTable", "context", "invocation", "functionDefinition", "list",
         "relation", "conditional")
OTHER_LOGIC = ("filter", "for", "every", "some")
# Problems are labelled by their owner: a decision id, or a business knowledge model's or decision service's
# name after one of these marks.
BKM_MARK = "\x00"
SERVICE_MARK = "\x01"
OWNER_KINDS = {BKM_MARK: "businessKnowledgeModel", SERVICE_MARK: "decisionService"}


def text_of(el: etree._Element | None, ns: str) -> str | None:
    """The ``<text>`` of ``el`` ("" when empty); None when there is no element or no ``<text>``."""
    if el is None:
        return None
    t = el.find(f"{{{ns}}}text")
    if t is None:
        return None
    return t.text or ""


class Reader:
    """The state of reading one file, and the helpers every reader uses."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Problem] = []
        self.ns = ""
        self.types: dict[str, TypeDef] = {}
        self.default_language: str | None = None
        self.reads: dict[str, set[str]] = {}  # decision (or owner) -> the variables its FEEL reads
        self.bound: dict[str, set[str]] = {}  # owner -> the names its boxed expressions bind (entries, parameters)
        self.names = KnownNames()
        self.callables: frozenset[str] = frozenset()
        self.functions: dict[str, FeelFunction] = {}  # business knowledge models and decision services by name
        self.bkm_params: dict[str, list[str]] = {}
        self.bkm_ids: dict[str, etree._Element] = {}

    # ---- problems ---------------------------------------------------------------------------------

    def problem(self, message: str, el: etree._Element | None = None, *, decision: str | None = None,
                rule: Rule | None = None, column: str | None = None, text: str | None = None) -> None:
        parts = []
        extra: dict[str, Any] = {}
        if decision is not None:
            kind = OWNER_KINDS.get(decision[:1], "decision")
            shown = decision[1:] if kind != "decision" else decision
            parts.append(f"{kind} '{shown}'")
            extra[kind] = shown
        if rule is not None:
            parts.append(f"rule '{rule.id}' (#{rule.index})" if rule.id else f"rule #{rule.index}")
            extra["rule"] = rule.ref
        if column is not None:
            parts.append(column)
            extra["column"] = column
        if text is not None:
            extra["text"] = text
        line = el.sourceline if el is not None else None
        self.problems.append(Problem(message, file=self.filename, line=line,
                                     element=" ".join(parts) or None, extra=extra))

    # ---- shared checks ------------------------------------------------------------------------------

    def type_ref(self, raw: str | None, el: etree._Element, decision: str | None, column: str) -> str | None:
        type_ref = normalize_type(raw)
        if type_ref is None or type_ref in BASE_TYPES or type_ref in self.types:
            return type_ref
        known = sorted(BASE_TYPES | set(self.types))
        close = difflib.get_close_matches(type_ref, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        self.problem(f"unknown typeRef '{raw}'{hint}", el, decision=decision, column=column, text=raw)
        return None

    def language_ok(self, el: etree._Element, decision: str, column: str, rule: Rule | None = None) -> bool:
        lang = el.get("expressionLanguage") or self.default_language
        if lang is None or lang.strip().lower().rstrip("/") in {x.rstrip("/") for x in _FEEL_LANGUAGES}:
            return True
        self.problem(f"expression language '{lang}' is not supported; engine.dmn evaluates FEEL", el,
                     decision=decision, rule=rule, column=column)
        return False

    def expression_child(self, el: etree._Element) -> etree._Element | None:
        """The first boxed expression inside ``el`` (its body, a binding's value, a context entry's value)."""
        for child in el:
            if isinstance(child.tag, str) and etree.QName(child).namespace == (self.ns or None) and \
                    etree.QName(child).localname in BOXED + OTHER_LOGIC:
                return child
        return None


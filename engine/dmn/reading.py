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

from engine.dmn.compiler import Expr, FeelCompileError, Test
from engine.dmn.model import Rule, warn
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


def null_with_warning(message: str) -> Expr:
    """An expression that is null, and says why on the result of the decision being evaluated."""
    def null(ctx: Any) -> None:
        warn(message, once=True)
    return null


class Reader:
    """The state of reading one file, and the helpers every reader uses."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Problem] = []
        # what the file may mean but cannot work: FEEL that parses yet cannot be evaluated (a wrong number of
        # arguments, an invalid date), a decision without logic, a Java function. Each is null at evaluation,
        # with a warning on the result; the model loads, and ``engine validate`` prints them as warnings.
        self.warnings: list[Problem] = []
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
        self.model_namespace = ""  # the <definitions namespace="...">: hrefs may spell it before the '#'

    # ---- problems ---------------------------------------------------------------------------------

    def problem(self, message: str, el: etree._Element | None = None, *, decision: str | None = None,
                rule: Rule | None = None, column: str | None = None, text: str | None = None) -> None:
        """Something that makes the file unusable: :func:`~engine.dmn.loader.load` refuses the model."""
        self.problems.append(self._located(message, el, decision=decision, rule=rule, column=column, text=text))

    def warning(self, message: str, el: etree._Element | None = None, *, decision: str | None = None,
                rule: Rule | None = None, column: str | None = None, text: str | None = None) -> str:
        """Something that is null at evaluation instead: a load warning. Returns the warning's text, for the
        evaluations that meet it to repeat on their results."""
        found = self._located(message, el, decision=decision, rule=rule, column=column, text=text)
        if found not in self.warnings:
            self.warnings.append(found)
        return str(found)

    def null_expression(self, error: FeelCompileError, what: str, text: str, el: etree._Element | None, *,
                        decision: str, rule: Rule | None = None, column: str | None = None) -> Expr:
        """FEEL that parses but cannot work: the value is null, with a warning at load and at each evaluation."""
        message = self.warning(f"{what} '{text}' cannot be evaluated: {error}; its value is null", el,
                               decision=decision, rule=rule, column=column, text=text)
        return null_with_warning(message)

    def null_test(self, error: FeelCompileError, what: str, text: str, el: etree._Element | None, *,
                  decision: str, rule: Rule | None = None, column: str | None = None) -> Test:
        """An input entry that parses but cannot work: null (the rule does not match), with a warning."""
        message = self.warning(f"{what} '{text}' cannot be evaluated: {error}; the test is null, so the rule "
                               "does not match", el, decision=decision, rule=rule, column=column, text=text)

        def test(value: Any, ctx: Any) -> None:
            warn(message, once=True)
        return test

    def _located(self, message: str, el: etree._Element | None, *, decision: str | None, rule: Rule | None,
                 column: str | None, text: str | None) -> Problem:
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
        return Problem(message, file=self.filename, line=line, element=" ".join(parts) or None, extra=extra)

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

    def local_href(self, href: str) -> str:
        """``href`` as ``#id`` when it names an element of this file, also when spelt with the file's own
        namespace before the ``#`` (``http://example.org/model#d1``); any other href as it is."""
        base, sep, ref = href.strip().partition("#")
        if sep and base and self.model_namespace and base == self.model_namespace:
            return "#" + ref
        return href.strip()

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


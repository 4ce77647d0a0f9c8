"""Reading a DMN file (1.1 to 1.5, as Camunda Modeler and others write it) into a DecisionModel.

Decisions hold decision tables, literal expressions or boxed expressions (contexts, invocations,
function definitions, lists, relations, conditionals); business knowledge models and decision services
become FEEL functions the decisions can call.

Every cell is compiled here, once. Every problem found is collected, each located by file, line,
decision, rule and column, with the cell text in the message; :func:`load` raises them all in one
:class:`~engine.errors.ModelError`, :func:`check` returns them.
"""

from __future__ import annotations

import difflib
import os
from collections import ChainMap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lxml import etree

from engine.dmn import syntax as s
from engine.dmn.compiler import (
    Test,
    compile_expression,
    compile_test_list,
    compile_unary_tests,
    expression_free_names,
    unary_test_free_names,
)
from engine.dmn.hit_policy import AGGREGATIONS, HIT_POLICIES, NEEDS_PRIORITY, parse_hit_policy
from engine.dmn.lexer import FeelSyntaxError
from engine.dmn.model import Decision, DecisionModel, InputClause, OutputClause, Rule
from engine.dmn.parser import KnownNames, parse_expression
from engine.dmn.result import DecisionResult
from engine.dmn.typeref import BASE_TYPES, TypeDef, conform, normalize_type
from engine.dmn.values import FeelFunction, to_plain
from engine.errors import ModelError, Problem

DMN_NAMESPACES = {
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd": "1.1",
    "http://www.omg.org/spec/DMN/20180521/MODEL/": "1.2",
    "https://www.omg.org/spec/DMN/20191111/MODEL/": "1.3",
    "https://www.omg.org/spec/DMN/20211108/MODEL/": "1.4",
    "https://www.omg.org/spec/DMN/20230324/MODEL/": "1.5",
}
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
_BOXED = ("literalExpression", "decisionTable", "context", "invocation", "functionDefinition", "list",
          "relation", "conditional")
_OTHER_LOGIC = ("filter", "for", "every", "some")
_NO_RESULT = object()
# Problems are labelled by their owner: a decision id, or a business knowledge model's or decision service's
# name after one of these marks.
_BKM_MARK = "\x00"
_SERVICE_MARK = "\x01"
_OWNER_KINDS = {_BKM_MARK: "businessKnowledgeModel", _SERVICE_MARK: "decisionService"}


def load(source: str | os.PathLike[str] | bytes, *, filename: str | None = None) -> DecisionModel:
    """Load a DMN file (a path) or DMN XML (bytes). Raises ModelError listing every problem."""
    model, problems, name = _Loader.run(source, filename)
    if problems or model is None:
        count = len(problems)
        raise ModelError(f"{name}: {count} problem{'s' if count != 1 else ''} in the decision model",
                         problems=problems, file=name)
    return model


def check(source: str | os.PathLike[str] | bytes, *, filename: str | None = None) -> list[Problem]:
    """The problems :func:`load` would raise, as a list ([] when the model is fine)."""
    return _Loader.run(source, filename)[1]


def _text_of(el: etree._Element | None, ns: str) -> str | None:
    if el is None:
        return None
    t = el.find(f"{{{ns}}}text")
    if t is None:
        return None
    return t.text or ""


class _Loader:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Problem] = []
        self.ns = ""
        self.types: dict[str, TypeDef] = {}
        self.default_language: str | None = None
        self.reads: dict[str, set[str]] = {}
        self.names = KnownNames()
        self.callables: frozenset[str] = frozenset()
        self.functions: dict[str, FeelFunction] = {}  # business knowledge models by name
        self.bkm_params: dict[str, list[str]] = {}

    @classmethod
    def run(cls, source: str | os.PathLike[str] | bytes,
            filename: str | None) -> tuple[DecisionModel | None, list[Problem], str]:
        if isinstance(source, (bytes, bytearray)):
            name = filename or "<bytes>"
            data = bytes(source)
        else:
            name = filename or os.fspath(source)
            try:
                data = Path(source).read_bytes()
            except OSError as e:
                return None, [Problem(f"cannot read the file: {e.strerror or e}", file=name)], name
        loader = cls(name)
        model = loader.build(data)
        return model, loader.problems, name

    # ---- problems ---------------------------------------------------------------------------------

    def problem(self, message: str, el: etree._Element | None = None, *, decision: str | None = None,
                rule: Rule | None = None, column: str | None = None, text: str | None = None) -> None:
        parts = []
        extra: dict[str, Any] = {}
        if decision is not None:
            kind = _OWNER_KINDS.get(decision[:1], "decision")
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

    # ---- the document -----------------------------------------------------------------------------

    def build(self, data: bytes) -> DecisionModel | None:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True,
                                 huge_tree=False)
        try:
            root = etree.fromstring(data, parser)
        except etree.XMLSyntaxError as e:
            self.problems.append(Problem(f"XML syntax error: {e.msg}", file=self.filename, line=e.lineno))
            return None
        qname = etree.QName(root)
        if qname.localname != "definitions":
            self.problem(f"the root element is <{qname.localname}>, not a DMN <definitions>", root)
            return None
        if qname.namespace in DMN_NAMESPACES:
            self.ns = qname.namespace
        elif any(uri in DMN_NAMESPACES for uri in root.nsmap.values()):
            # Some exporters (and TCK files written by them) declare DMN on a prefix they never use and
            # leave <definitions> and its children in the model's own namespace, or in none. The file
            # says it is DMN; read its elements in the namespace they are in.
            self.ns = qname.namespace or ""
        else:
            known = ", ".join(f"{v}: {k}" for k, v in DMN_NAMESPACES.items())
            self.problem(f"unknown namespace '{qname.namespace}' for <definitions>; a DMN file uses one of "
                         f"({known})", root)
            return None
        self.default_language = root.get("expressionLanguage")
        self.declared_names(root)
        for item in root.findall(f"{{{self.ns}}}itemDefinition"):
            self.item_definition(item)
        bkm_ids: dict[str, etree._Element] = {}
        for el in root.findall(f"{{{self.ns}}}businessKnowledgeModel"):
            self.business_knowledge_model(el)
            if el.get("id"):
                bkm_ids[el.get("id") or ""] = el
        services = root.findall(f"{{{self.ns}}}decisionService")
        for el in services:
            if el.get("id"):
                bkm_ids[el.get("id") or ""] = el  # a decision service may be required knowledge too
        self.bkm_ids = bkm_ids
        input_types: dict[str, str] = {}
        input_names: dict[str, str] = {}
        for el in root.findall(f"{{{self.ns}}}inputData"):
            variable = el.find(f"{{{self.ns}}}variable")
            name = (variable.get("name") if variable is not None else None) or el.get("name")
            raw = variable.get("typeRef") if variable is not None else None
            type_ref = self.type_ref(raw, el, None, f"inputData '{name}'")
            if name and el.get("id"):
                input_names[el.get("id") or ""] = name
            if name and type_ref is not None:
                input_types[name] = type_ref
        decisions: dict[str, Decision] = {}
        elements: dict[str, etree._Element] = {}
        for index, el in enumerate(root.findall(f"{{{self.ns}}}decision"), start=1):
            decision = self.decision(el, index)
            if decision is None:
                continue
            if decision.id in decisions:
                self.problem(f"duplicate decision id '{decision.id}' (also on line {elements[decision.id].sourceline})",
                             el, decision=decision.id)
                continue
            decisions[decision.id] = decision
            elements[decision.id] = el
        self.check_requirements(decisions, elements)
        holder: list[DecisionModel] = []
        for el in services:
            self.decision_service(el, decisions, input_names, input_types, holder)
        if self.problems:
            return None
        self.link(decisions)
        model = DecisionModel(self.filename, self.ns, decisions, input_types=input_types, types=self.types,
                              functions=self.functions)
        holder.append(model)
        return model

    def decision_service(self, el: etree._Element, decisions: dict[str, Decision], input_names: dict[str, str],
                         input_types: dict[str, str], holder: list[DecisionModel]) -> None:
        """A decision service, callable from FEEL like a BKM: its parameters are its input data and input
        decisions; it returns a context of its output decisions' results."""
        name = el.get("name") or el.get("id") or ""
        owner = _SERVICE_MARK + name

        def refs(tag: str, known: Mapping[str, Any], what: str) -> list[str]:
            out = []
            for ref_el in el.findall(f"{{{self.ns}}}{tag}"):
                href = ref_el.get("href") or ""
                ref = href.split("#", 1)[1] if "#" in href else href
                if ref not in known:
                    close = difflib.get_close_matches(ref, list(known), n=1)
                    hint = f"; did you mean '#{close[0]}'?" if close else ""
                    self.problem(f"decision service '{name}': {tag} '{href}' names no {what} in this file{hint}",
                                 ref_el, decision=owner)
                    continue
                out.append(ref)
            return out

        outputs = refs("outputDecision", decisions, "decision")
        given_decisions = refs("inputDecision", decisions, "decision")
        inputs = [input_names[i] for i in refs("inputData", input_names, "inputData")]
        params = inputs + [decisions[d].name for d in given_decisions]
        types = [input_types.get(i) for i in inputs] + [None] * len(given_decisions)

        def body(scope: Mapping[str, Any]) -> Any:
            model = holder[0]
            ctx: Mapping[str, Any] = ChainMap({p: scope.get(p) for p in params}, model.functions)
            done: dict[str, Any] = {}
            for did in given_decisions:
                d = decisions[did]
                value = scope.get(d.name)
                done[did] = (DecisionResult(d.id, d.name, to_plain(value), [], []), value)
            return {decisions[o].name: model.run_decision(decisions[o], ctx, done) for o in outputs}

        self.functions[name] = FeelFunction(name, params, body, {}, types=types, conform=self._conform)

    def declared_names(self, root: etree._Element) -> None:
        """Every name the model declares, so that FEEL text can use names with digits, hyphens or
        keywords in them, and calls of the model's own functions are known at load."""
        ns = self.ns
        names: set[str] = set()
        callables: set[str] = set()
        for el in root.iter(f"{{{ns}}}inputData", f"{{{ns}}}decision", f"{{{ns}}}businessKnowledgeModel",
                            f"{{{ns}}}decisionService", f"{{{ns}}}variable", f"{{{ns}}}formalParameter",
                            f"{{{ns}}}itemComponent", f"{{{ns}}}column", f"{{{ns}}}parameter"):
            name = el.get("name")
            if not name:
                continue
            names.add(name)
            tag = etree.QName(el).localname
            parent = el.getparent()
            in_context = tag == "variable" and parent is not None and etree.QName(parent).localname == "contextEntry"
            if in_context or tag in ("businessKnowledgeModel", "decisionService", "formalParameter", "parameter",
                                     "decision"):
                callables.add(name)
        self.names = KnownNames(names)
        self.callables = frozenset(callables)

    # ---- business knowledge models and boxed expressions -------------------------------------------------

    def business_knowledge_model(self, el: etree._Element) -> None:
        variable = el.find(f"{{{self.ns}}}variable")
        name = el.get("name") or (variable.get("name") if variable is not None else None)
        if not name:
            self.problem("a businessKnowledgeModel has no name", el)
            return
        owner = _BKM_MARK + name
        logic = el.find(f"{{{self.ns}}}encapsulatedLogic")
        if logic is None:
            self.problem("the business knowledge model has no encapsulatedLogic", el, decision=owner)
            return
        # known before the body compiles, so that invocations are checked even when the body is broken
        self.bkm_params[name] = [p.get("name") or "" for p in logic.findall(f"{{{self.ns}}}formalParameter")]
        function = self.function_definition(logic, owner, name)
        if function is not None:
            params, types, body = function
            # the scope of a BKM's body is the model's BKMs (they may call each other)
            self.functions[name] = FeelFunction(name, params, body, self.functions, types=types,
                                                conform=self._conform)

    def _conform(self, value: Any, type_ref: str) -> Any:
        return conform(value, type_ref, self.types)

    def function_definition(self, el: etree._Element, owner: str,
                            label: str) -> tuple[list[str], list[str | None], Any] | None:
        kind = (el.get("kind") or "FEEL").upper()
        if kind != "FEEL":
            self.problem(f"function kind '{el.get('kind')}' is not supported; engine.dmn evaluates FEEL "
                         "functions (no Java or PMML)", el, decision=owner)
            return None
        params: list[str] = []
        types: list[str | None] = []
        for p in el.findall(f"{{{self.ns}}}formalParameter"):
            pname = p.get("name")
            if not pname:
                self.problem("a formalParameter has no name", p, decision=owner)
                continue
            params.append(pname)
            types.append(self.type_ref(p.get("typeRef"), p, owner, f"parameter '{pname}'"))
        body_el = self._expression_child(el)
        if body_el is None:
            self.problem(f"the function '{label}' has no body", el, decision=owner)
            return None
        body = self.boxed(body_el, owner, label)
        return (params, types, body) if body is not None else None

    def _expression_child(self, el: etree._Element) -> etree._Element | None:
        for child in el:
            if isinstance(child.tag, str) and etree.QName(child).namespace == (self.ns or None) and \
                    etree.QName(child).localname in _BOXED + _OTHER_LOGIC:
                return child
        return None

    def boxed(self, el: etree._Element, owner: str, label: str) -> Any:
        """A boxed expression element, compiled to ``f(ctx) -> value``; None after reporting a problem."""
        kind = etree.QName(el).localname
        if kind == "literalExpression":
            text = _text_of(el, self.ns)
            if not self.language_ok(el, owner, label):
                return None
            if text is None or not text.strip():
                self.problem(f"the literal expression of {label} is empty", el, decision=owner, column=label)
                return None
            try:
                compiled = compile_expression(text, names=self.names, callables=self.callables)
                self.reads.setdefault(owner, set()).update(expression_free_names(text, self.names))
                return compiled
            except FeelSyntaxError as e:
                self.problem(f"literal expression '{text}' does not parse: {e}", el, decision=owner,
                             column=label, text=text)
                return None
        if kind == "decisionTable":
            table = Decision(id=owner, name=label, filename=self.filename, line=el.sourceline, types=self.types)
            self.decision_table(table, el)
            if owner[:1] in _OWNER_KINDS:
                table.kind = _OWNER_KINDS[owner[:1]]
                table.id = owner[1:]  # problems above are labelled by owner; errors by name
            return lambda ctx: table.run(ctx)[0]
        if kind == "context":
            return self.boxed_context(el, owner, label)
        if kind == "invocation":
            return self.invocation(el, owner, label)
        if kind == "functionDefinition":
            function = self.function_definition(el, owner, label)
            if function is None:
                return None
            params, types, body = function
            to_type = self._conform
            return lambda ctx: FeelFunction(label, params, body, ctx, types=types, conform=to_type)
        if kind == "list":
            items = [self.boxed(c, owner, f"{label}[{i}]") for i, c in enumerate(self._children(el), 1)]
            if any(i is None for i in items):
                return None
            return lambda ctx: [i(ctx) for i in items]
        if kind == "relation":
            return self.relation(el, owner, label)
        if kind == "conditional":
            parts = []
            for part in ("if", "then", "else"):
                holder = el.find(f"{{{self.ns}}}{part}")
                child = self._expression_child(holder) if holder is not None else None
                if child is None:
                    self.problem(f"the conditional of {label} has no <{part}> expression", el, decision=owner)
                    return None
                parts.append(self.boxed(child, owner, f"{label} {part}"))
            if any(p is None for p in parts):
                return None
            cond, then, otherwise = parts
            return lambda ctx: then(ctx) if cond(ctx) is True else otherwise(ctx)
        self.problem(f"boxed expression <{kind}> is not supported; engine.dmn evaluates decision tables, "
                     "literal expressions, contexts, invocations, function definitions, lists, relations "
                     "and conditionals", el, decision=owner)
        return None

    def _children(self, el: etree._Element) -> list[etree._Element]:
        return [c for c in el if isinstance(c.tag, str) and etree.QName(c).localname in _BOXED + _OTHER_LOGIC]

    def boxed_context(self, el: etree._Element, owner: str, label: str) -> Any:
        entries: list[tuple[str | None, Any]] = []
        entry_els = el.findall(f"{{{self.ns}}}contextEntry")
        ok = True
        for i, entry in enumerate(entry_els, start=1):
            variable = entry.find(f"{{{self.ns}}}variable")
            name = variable.get("name") if variable is not None else None
            if name is None and i != len(entry_els):
                self.problem(f"context entry {i} of {label} has no variable; only the last entry (the result) "
                             "may go without", entry, decision=owner)
                ok = False
                continue
            child = self._expression_child(entry)
            if child is None:
                self.problem(f"context entry '{name or 'result'}' of {label} has no expression", entry,
                             decision=owner)
                ok = False
                continue
            compiled = self.boxed(child, owner, f"{label}.{name}" if name else label)
            ok = ok and compiled is not None
            entries.append((name, compiled))
        if not ok:
            return None

        def run(ctx: Any) -> Any:
            out: dict[str, Any] = {}
            scope = ChainMap(out, ctx)
            result: Any = _NO_RESULT
            for name, expr in entries:
                value = expr(scope)
                if name is None:
                    result = value
                else:
                    out[name] = value
            return out if result is _NO_RESULT else result
        return run

    def invocation(self, el: etree._Element, owner: str, label: str) -> Any:
        target_el = self._expression_child(el)
        if target_el is None:
            self.problem(f"the invocation of {label} does not name the function to call", el, decision=owner)
            return None
        target = self.boxed(target_el, owner, label)
        called = (_text_of(target_el, self.ns) or "").strip()
        params = self.bkm_params.get(" ".join(called.split()))
        bindings: list[tuple[str, Any]] = []
        ok = target is not None
        for b in el.findall(f"{{{self.ns}}}binding"):
            p = b.find(f"{{{self.ns}}}parameter")
            pname = p.get("name") if p is not None else None
            if not pname:
                self.problem(f"a binding of the invocation in {label} has no parameter name", b, decision=owner)
                ok = False
                continue
            if params is not None and pname not in params:
                close = difflib.get_close_matches(pname, params, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self.problem(f"the invocation binds '{pname}', which is not a parameter of '{called}' "
                             f"({', '.join(params) or 'none'}){hint}", b, decision=owner)
                ok = False
                continue
            child = self._expression_child(b)
            value = self.boxed(child, owner, f"{label} ({pname})") if child is not None else (lambda ctx: None)
            ok = ok and value is not None
            bindings.append((pname, value))
        if not ok:
            return None

        def run(ctx: Any) -> Any:
            f = target(ctx)
            if type(f) is not FeelFunction:
                return None
            return f(**{name: value(ctx) for name, value in bindings})
        return run

    def relation(self, el: etree._Element, owner: str, label: str) -> Any:
        columns = [c.get("name") or "" for c in el.findall(f"{{{self.ns}}}column")]
        rows = []
        for i, row in enumerate(el.findall(f"{{{self.ns}}}row"), start=1):
            cells = [self.boxed(c, owner, f"{label} row {i}") for c in self._children(row)]
            if len(cells) != len(columns):
                self.problem(f"row {i} of the relation in {label} has {len(cells)} cells for {len(columns)} "
                             "columns", row, decision=owner)
                return None
            if any(c is None for c in cells):
                return None
            rows.append(cells)
        return lambda ctx: [{k: c(ctx) for k, c in zip(columns, cells, strict=True)} for cells in rows]

    def item_definition(self, el: etree._Element) -> None:
        name = el.get("name")
        if not name:
            return
        type_ref_el = el.find(f"{{{self.ns}}}typeRef")
        type_ref = normalize_type(type_ref_el.text if type_ref_el is not None else el.get("typeRef"))
        components = {}
        for comp in el.findall(f"{{{self.ns}}}itemComponent"):
            comp_type = comp.find(f"{{{self.ns}}}typeRef")
            components[comp.get("name") or ""] = normalize_type(
                comp_type.text if comp_type is not None else comp.get("typeRef")) or "Any"
        allowed_el = el.find(f"{{{self.ns}}}allowedValues")
        allowed_text = _text_of(allowed_el, self.ns) or ""
        allowed: list[Test] = []
        if allowed_text.strip():
            try:
                allowed = compile_test_list(allowed_text, names=self.names, callables=self.callables)
            except FeelSyntaxError as e:
                self.problem(f"allowedValues '{allowed_text}' do not parse: {e}", allowed_el,
                             column=f"itemDefinition '{name}'", text=allowed_text)
        self.types[name] = TypeDef(name, type_ref if not components else None,
                                   el.get("isCollection") == "true", allowed, allowed_text, components)

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

    # ---- decisions ---------------------------------------------------------------------------------

    def decision(self, el: etree._Element, index: int) -> Decision | None:
        did = el.get("id")
        if not did:
            self.problem(f"decision #{index} ({el.get('name') or 'unnamed'}) has no id", el)
            return None
        decision = Decision(id=did, name=el.get("name") or did, filename=self.filename, line=el.sourceline,
                            types=self.types)
        for req in el.findall(f"{{{self.ns}}}informationRequirement"):
            for rd in req.findall(f"{{{self.ns}}}requiredDecision"):
                href = rd.get("href") or ""
                if "#" not in href or href.split("#", 1)[0]:
                    self.problem(f"requiredDecision href '{href}' must be '#<decision id>' (imported models are "
                                 "not supported)", rd, decision=did)
                    continue
                decision.required.append(href.split("#", 1)[1])
        for req in el.findall(f"{{{self.ns}}}knowledgeRequirement"):
            for rk in req.findall(f"{{{self.ns}}}requiredKnowledge"):
                href = rk.get("href") or ""
                ref = href.split("#", 1)[1] if "#" in href else href
                if "#" not in href or href.split("#", 1)[0]:
                    self.problem(f"requiredKnowledge href '{href}' must be '#<businessKnowledgeModel id>' "
                                 "(imported models are not supported)", rk, decision=did)
                elif ref not in self.bkm_ids:
                    close = difflib.get_close_matches(ref, list(self.bkm_ids), n=1)
                    hint = f"; did you mean '#{close[0]}'?" if close else ""
                    self.problem(f"requiredKnowledge '#{ref}' names no businessKnowledgeModel in this file{hint}",
                                 rk, decision=did)
        self.reads[did] = set()
        table = el.find(f"{{{self.ns}}}decisionTable")
        literal = el.find(f"{{{self.ns}}}literalExpression")
        if table is not None:
            self.decision_table(decision, table)
        elif literal is not None:
            self.literal_expression(decision, el, literal)
        else:
            logic = self._expression_child(el)
            if logic is None:
                self.problem("the decision has no decision logic (decision table, literal expression, context, "
                             "invocation, ...)", el, decision=did)
            else:
                self.boxed_decision(decision, el, logic)
        return decision

    def boxed_decision(self, decision: Decision, el: etree._Element, logic: etree._Element) -> None:
        """A decision whose logic is a context, an invocation, a list, ...: evaluated like a literal
        expression (one value, checked against the decision's variable typeRef)."""
        variable = el.find(f"{{{self.ns}}}variable")
        decision.variable_name = (variable.get("name") if variable is not None else None) or decision.name
        raw_type = variable.get("typeRef") if variable is not None else None
        decision.variable_type = self.type_ref(raw_type, variable if variable is not None else el, decision.id,
                                               "variable")
        kind = etree.QName(logic).localname
        decision.literal_text = f"<{kind}>"
        compiled = self.boxed(logic, decision.id, f"the {kind}")
        if compiled is not None:
            decision.literal = compiled

    def literal_expression(self, decision: Decision, el: etree._Element, literal: etree._Element) -> None:
        did = decision.id
        variable = el.find(f"{{{self.ns}}}variable")
        decision.variable_name = (variable.get("name") if variable is not None else None) or decision.name
        raw_type = (variable.get("typeRef") if variable is not None else None) or literal.get("typeRef")
        decision.variable_type = self.type_ref(raw_type, literal, did, "literal expression")
        text = _text_of(literal, self.ns)
        decision.literal_text = text
        if not self.language_ok(literal, did, "literal expression"):
            return
        if text is None or not text.strip():
            self.problem("the literal expression is empty", literal, decision=did, column="literal expression")
            return
        try:
            decision.literal = compile_expression(text, names=self.names, callables=self.callables)
            self.reads.setdefault(did, set()).update(expression_free_names(text, self.names))
        except FeelSyntaxError as e:
            self.problem(f"literal expression '{text}' does not parse: {e}", literal, decision=did,
                         column="literal expression", text=text)

    def decision_table(self, decision: Decision, table: etree._Element) -> None:
        did = decision.id
        policy, aggregation = parse_hit_policy(table.get("hitPolicy"), table.get("aggregation"))
        if policy is None:
            known = ", ".join(k for k in HIT_POLICIES if len(k) > 1)
            self.problem(f"unknown hitPolicy '{table.get('hitPolicy')}'; use one of {known}", table, decision=did,
                         text=table.get("hitPolicy"))
        if table.get("aggregation") and aggregation is None:
            known = ", ".join(k for k in AGGREGATIONS if len(k) > 1)
            self.problem(f"unknown aggregation '{table.get('aggregation')}'; use one of {known}", table,
                         decision=did, text=table.get("aggregation"))
        if aggregation is not None and policy not in (None, "COLLECT"):
            self.problem(f"aggregation {aggregation} is only allowed with hit policy COLLECT, not {policy}",
                         table, decision=did)
        decision.hit_policy, decision.aggregation = policy, aggregation

        for i, el in enumerate(table.findall(f"{{{self.ns}}}input"), start=1):
            decision.inputs.append(self.input_clause(did, i, el))
        for i, el in enumerate(table.findall(f"{{{self.ns}}}output"), start=1):
            decision.outputs.append(self.output_clause(did, i, el))
        if not decision.outputs:
            self.problem("the decision table has no output column", table, decision=did)
        if len(decision.outputs) > 1:
            seen: set[str] = set()
            for i, out in enumerate(decision.outputs, start=1):
                if not out.name:
                    self.problem(f"output {i} has no name; a table with several outputs needs a name on each",
                                 table, decision=did, column=f"output {i}")
                elif out.name in seen:
                    self.problem(f"two outputs are named '{out.name}'", table, decision=did,
                                 column=f"output {i}")
                else:
                    seen.add(out.name)
        if policy in NEEDS_PRIORITY and not any(o.priority_tests for o in decision.outputs):
            self.problem(f"hit policy {policy} orders results by the outputs' outputValues, but no output has "
                         "any", table, decision=did)
        for index, el in enumerate(table.findall(f"{{{self.ns}}}rule"), start=1):
            decision.rules.append(self.rule(decision, index, el))

    def input_clause(self, did: str, i: int, el: etree._Element) -> InputClause:
        label = el.get("label")
        column = f"input {i}" + (f" '{label}'" if label else "")
        expr_el = el.find(f"{{{self.ns}}}inputExpression")
        text = _text_of(expr_el, self.ns)
        variable = el.get(f"{{{CAMUNDA_NS}}}inputVariable") or "cellInput"
        type_ref = None
        if expr_el is not None:
            type_ref = self.type_ref(expr_el.get("typeRef"), expr_el, did, column)
        clause = InputClause(id=el.get("id"), label=label, expression=(text or "").strip(), type_ref=type_ref,
                             input_variable=variable, line=el.sourceline)
        if expr_el is None or not (text or "").strip():
            self.problem("the input has no input expression", el, decision=did, column=column)
        elif self.language_ok(expr_el, did, column):
            try:
                clause.evaluate = compile_expression(clause.expression, names=self.names, callables=self.callables)
                node = parse_expression(clause.expression, self.names)
                clause.path = _path_of(node)
                self.reads.setdefault(did, set()).update(expression_free_names(clause.expression, self.names))
            except FeelSyntaxError as e:
                self.problem(f"input expression '{text}' does not parse: {e}", expr_el, decision=did,
                             column=column, text=text)
        values_el = el.find(f"{{{self.ns}}}inputValues")
        values = _text_of(values_el, self.ns)
        if values is not None and values.strip():
            clause.input_values = values.strip()
            try:
                clause.allowed = compile_test_list(values, names=self.names, callables=self.callables)
            except FeelSyntaxError as e:
                self.problem(f"inputValues '{values}' do not parse: {e}", values_el, decision=did, column=column,
                             text=values)
        return clause

    def output_clause(self, did: str, i: int, el: etree._Element) -> OutputClause:
        name = el.get("name")
        column = f"output {i}" + (f" '{name or el.get('label')}'" if name or el.get("label") else "")
        out = OutputClause(id=el.get("id"), name=name, label=el.get("label"),
                           type_ref=self.type_ref(el.get("typeRef"), el, did, column), line=el.sourceline)
        values_el = el.find(f"{{{self.ns}}}outputValues")
        values = _text_of(values_el, self.ns)
        if values is not None and values.strip():
            out.output_values = values.strip()
            try:
                out.priority_tests = compile_test_list(values, names=self.names, callables=self.callables)
            except FeelSyntaxError as e:
                self.problem(f"outputValues '{values}' do not parse: {e}", values_el, decision=did, column=column,
                             text=values)
        default_el = el.find(f"{{{self.ns}}}defaultOutputEntry")
        default = _text_of(default_el, self.ns)
        if default is not None and default.strip():
            out.default = default.strip()
            try:
                out.default_value = compile_expression(default, names=self.names, callables=self.callables)
                self.reads.setdefault(did, set()).update(expression_free_names(default, self.names))
            except FeelSyntaxError as e:
                self.problem(f"defaultOutputEntry '{default}' does not parse: {e}", default_el, decision=did,
                             column=column, text=default)
        return out

    def rule(self, decision: Decision, index: int, el: etree._Element) -> Rule:
        did = decision.id
        input_els = el.findall(f"{{{self.ns}}}inputEntry")
        output_els = el.findall(f"{{{self.ns}}}outputEntry")
        rule = Rule(id=el.get("id"), index=index,
                    input_entries=[_text_of(e, self.ns) or "" for e in input_els],
                    output_entries=[_text_of(e, self.ns) or "" for e in output_els],
                    line=el.sourceline)
        desc = el.find(f"{{{self.ns}}}description")
        rule.description = desc.text if desc is not None else None
        counts_ok = True
        if len(input_els) != len(decision.inputs):
            self.problem(f"the rule has {len(input_els)} input entries, but the table has {len(decision.inputs)} "
                         "inputs", el, decision=did, rule=rule)
            counts_ok = False
        if len(output_els) != len(decision.outputs):
            self.problem(f"the rule has {len(output_els)} output entries, but the table has "
                         f"{len(decision.outputs)} outputs", el, decision=did, rule=rule)
            counts_ok = False
        checks: list[tuple[int, Test]] = []
        for i, (entry, text) in enumerate(zip(input_els, rule.input_entries, strict=True)):
            clause = decision.inputs[i] if i < len(decision.inputs) else None
            column = f"input {i + 1}" + (f" '{clause.name}'" if clause else "")
            if not self.language_ok(entry, did, column, rule):
                continue
            variable = clause.input_variable if clause else "cellInput"
            try:
                test = compile_unary_tests(text, input_variable=variable, names=self.names, callables=self.callables)
                self.reads.setdefault(did, set()).update(unary_test_free_names(text, variable, self.names))
            except FeelSyntaxError as e:
                self.problem(f"input entry '{text}' does not parse: {e}", entry, decision=did, rule=rule,
                             column=column, text=text)
                continue
            if test is not None:
                checks.append((i, test))
        outputs: list[Callable[[Any], Any] | None] = []
        for i, (entry, text) in enumerate(zip(output_els, rule.output_entries, strict=True)):
            out = decision.outputs[i] if i < len(decision.outputs) else None
            column = f"output {i + 1}" + (f" '{out.title}'" if out else "")
            if not self.language_ok(entry, did, column, rule):
                outputs.append(None)
                continue
            if not text.strip():
                outputs.append(None)
                continue
            try:
                outputs.append(compile_expression(text, names=self.names, callables=self.callables))
                self.reads.setdefault(did, set()).update(expression_free_names(text, self.names))
            except FeelSyntaxError as e:
                self.problem(f"output entry '{text}' does not parse: {e}", entry, decision=did, rule=rule,
                             column=column, text=text)
                outputs.append(None)
        if counts_ok:
            rule.checks = tuple(checks)
            rule.outputs = tuple(outputs)
        return rule

    # ---- the requirement graph ----------------------------------------------------------------------

    def check_requirements(self, decisions: dict[str, Decision], elements: dict[str, etree._Element]) -> None:
        for d in decisions.values():
            for ref in d.required:
                if ref not in decisions:
                    close = difflib.get_close_matches(ref, list(decisions), n=1)
                    hint = f"; did you mean '#{close[0]}'?" if close else ""
                    self.problem(f"requiredDecision '#{ref}' names no decision in this file{hint}", elements[d.id],
                                 decision=d.id)
        reported: set[frozenset[str]] = set()
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done

        def visit(did: str, path: list[str]) -> None:
            state[did] = 1
            path.append(did)
            for ref in decisions[did].required:
                if ref not in decisions:
                    continue
                if state.get(ref) == 1:
                    cycle = path[path.index(ref):] + [ref]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        self.problem("requiredDecision cycle: " + " -> ".join(cycle), elements[ref], decision=ref)
                elif state.get(ref) is None:
                    visit(ref, path)
            path.pop()
            state[did] = 2

        for did in decisions:
            if did not in state:
                visit(did, [])

    def link(self, decisions: dict[str, Decision]) -> None:
        """Give each decision the variables and inputs of everything it requires (for coerce_inputs)."""
        def closure(did: str, seen: set[str]) -> list[str]:
            out = [did]
            for ref in decisions[did].required:
                if ref not in seen:
                    seen.add(ref)
                    out.extend(closure(ref, seen))
            return out

        for d in decisions.values():
            ids = closure(d.id, {d.id})
            reads: set[str] = set()
            for did in ids:
                reads |= self.reads.get(did, set())
            d.reads = frozenset(reads)
            d.all_inputs = [clause for did in ids for clause in decisions[did].inputs]


def _path_of(node: s.Node) -> tuple[str, ...] | None:
    if isinstance(node, s.Name):
        return (node.name,)
    if isinstance(node, s.Path):
        base = _path_of(node.base)
        return None if base is None else (*base, node.key)
    return None

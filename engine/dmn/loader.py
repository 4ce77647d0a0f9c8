"""Reading a DMN file (1.1 to 1.5, as Camunda Modeler and others write it) into a DecisionModel.

Every cell is compiled here, once. Every problem found is collected, each located by file, line,
decision, rule and column, with the cell text in the message; :func:`load` raises them all in one
:class:`~engine.errors.ModelError`, :func:`check` returns them.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
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
from engine.dmn.parser import parse_expression
from engine.dmn.typeref import BASE_TYPES, TypeDef, normalize_type
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
_OTHER_LOGIC = ("context", "invocation", "relation", "list", "functionDefinition", "conditional", "filter",
                "for", "every", "some")


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
            parts.append(f"decision '{decision}'")
            extra["decision"] = decision
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
        for item in root.findall(f"{{{self.ns}}}itemDefinition"):
            self.item_definition(item)
        input_types: dict[str, str] = {}
        for el in root.findall(f"{{{self.ns}}}inputData"):
            variable = el.find(f"{{{self.ns}}}variable")
            name = (variable.get("name") if variable is not None else None) or el.get("name")
            raw = variable.get("typeRef") if variable is not None else None
            type_ref = self.type_ref(raw, el, None, f"inputData '{name}'")
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
        if self.problems:
            return None
        self.link(decisions)
        return DecisionModel(self.filename, self.ns, decisions, input_types=input_types, types=self.types)

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
                allowed = compile_test_list(allowed_text)
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
        self.reads[did] = set()
        table = el.find(f"{{{self.ns}}}decisionTable")
        literal = el.find(f"{{{self.ns}}}literalExpression")
        if table is not None:
            self.decision_table(decision, table)
        elif literal is not None:
            self.literal_expression(decision, el, literal)
        else:
            other = [c for c in el if isinstance(c.tag, str) and etree.QName(c).localname in _OTHER_LOGIC]
            if other:
                kind = etree.QName(other[0]).localname
                self.problem(f"decision logic <{kind}> is not supported; engine.dmn evaluates decision tables "
                             "and literal expressions", other[0], decision=did)
            else:
                self.problem("the decision has no decision table and no literal expression", el, decision=did)
        return decision

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
            decision.literal = compile_expression(text)
            self.reads[did] |= expression_free_names(text)
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
                clause.evaluate = compile_expression(clause.expression)
                node = parse_expression(clause.expression)
                clause.path = _path_of(node)
                self.reads[did] |= expression_free_names(clause.expression)
            except FeelSyntaxError as e:
                self.problem(f"input expression '{text}' does not parse: {e}", expr_el, decision=did,
                             column=column, text=text)
        values_el = el.find(f"{{{self.ns}}}inputValues")
        values = _text_of(values_el, self.ns)
        if values is not None and values.strip():
            clause.input_values = values.strip()
            try:
                clause.allowed = compile_test_list(values)
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
                out.priority_tests = compile_test_list(values)
            except FeelSyntaxError as e:
                self.problem(f"outputValues '{values}' do not parse: {e}", values_el, decision=did, column=column,
                             text=values)
        default_el = el.find(f"{{{self.ns}}}defaultOutputEntry")
        default = _text_of(default_el, self.ns)
        if default is not None and default.strip():
            out.default = default.strip()
            try:
                out.default_value = compile_expression(default)
                self.reads[did] |= expression_free_names(default)
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
                test = compile_unary_tests(text, input_variable=variable)
                self.reads[did] |= unary_test_free_names(text, variable)
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
                outputs.append(compile_expression(text))
                self.reads[did] |= expression_free_names(text)
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

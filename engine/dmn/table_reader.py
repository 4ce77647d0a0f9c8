"""Reading a ``<decisionTable>``: its hit policy, input and output clauses and rules, every cell compiled
once into a closure. Problems are reported through :class:`~engine.dmn.reading.Reader`, each with its
decision, rule, column and cell text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree

from engine.dmn import syntax as s
from engine.dmn.compiler import (
    FeelCompileError,
    Test,
    compile_expression,
    compile_test_list,
    compile_unary_tests,
    expression_free_names,
    unary_test_free_names,
)
from engine.dmn.hit_policy import AGGREGATIONS, HIT_POLICIES, NEEDS_PRIORITY, parse_hit_policy
from engine.dmn.lexer import FeelSyntaxError
from engine.dmn.model import Decision, InputClause, OutputClause, Rule
from engine.dmn.parser import parse_expression
from engine.dmn.reading import CAMUNDA_NS, Reader, text_of


class TableReader(Reader):
    """Reads decision tables (of decisions, and inside business knowledge models and contexts)."""

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
        text = text_of(expr_el, self.ns)
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
                clause.evaluate = compile_expression(clause.expression, names=self.names, callables=self.callables,
                                                     types=self.types)
                node = parse_expression(clause.expression, self.names)
                clause.path = _path_of(node)
                clause.reads = frozenset(expression_free_names(clause.expression, self.names))
                self.reads.setdefault(did, set()).update(clause.reads)
            except FeelCompileError as e:
                clause.evaluate = self.null_expression(e, "input expression", clause.expression, expr_el,
                                                       decision=did, column=column)
                clause.reads = frozenset(expression_free_names(clause.expression, self.names))
                self.reads.setdefault(did, set()).update(clause.reads)
            except FeelSyntaxError as e:
                self.problem(f"input expression '{text}' does not parse: {e}", expr_el, decision=did,
                             column=column, text=text)
        listed = self.value_list(el, "inputValues", did, column)
        if listed is not None:
            clause.input_values, clause.allowed = listed
        return clause

    def value_list(self, el: etree._Element, tag: str, did: str, column: str) -> tuple[str, list[Test]] | None:
        """``inputValues``/``outputValues`` of a clause: its text and one compiled test per item."""
        values_el = el.find(f"{{{self.ns}}}{tag}")
        values = text_of(values_el, self.ns)
        if values is None or not values.strip():
            return None
        try:
            return values.strip(), compile_test_list(values, names=self.names, callables=self.callables,
                                                     types=self.types)
        except FeelSyntaxError as e:
            self.problem(f"{tag} '{values}' do not parse: {e}", values_el, decision=did, column=column, text=values)
            return values.strip(), []

    def output_clause(self, did: str, i: int, el: etree._Element) -> OutputClause:
        name = el.get("name")
        column = f"output {i}" + (f" '{name or el.get('label')}'" if name or el.get("label") else "")
        out = OutputClause(id=el.get("id"), name=name, label=el.get("label"),
                           type_ref=self.type_ref(el.get("typeRef"), el, did, column), line=el.sourceline)
        listed = self.value_list(el, "outputValues", did, column)
        if listed is not None:
            out.output_values, out.priority_tests = listed
        default_el = el.find(f"{{{self.ns}}}defaultOutputEntry")
        default = text_of(default_el, self.ns)
        if default is not None and default.strip():
            out.default = default.strip()
            try:
                out.default_value = compile_expression(default, names=self.names, callables=self.callables,
                                                       types=self.types)
                self.reads.setdefault(did, set()).update(expression_free_names(default, self.names))
            except FeelCompileError as e:
                out.default_value = self.null_expression(e, "defaultOutputEntry", out.default, default_el,
                                                         decision=did, column=column)
            except FeelSyntaxError as e:
                self.problem(f"defaultOutputEntry '{default}' does not parse: {e}", default_el, decision=did,
                             column=column, text=default)
        return out

    def rule(self, decision: Decision, index: int, el: etree._Element) -> Rule:
        did = decision.id
        input_els = el.findall(f"{{{self.ns}}}inputEntry")
        output_els = el.findall(f"{{{self.ns}}}outputEntry")
        rule = Rule(id=el.get("id"), index=index,
                    input_entries=[text_of(e, self.ns) or "" for e in input_els],
                    output_entries=[text_of(e, self.ns) or "" for e in output_els],
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
                test = compile_unary_tests(text, input_variable=variable, names=self.names, callables=self.callables,
                                           types=self.types)
                self.reads.setdefault(did, set()).update(unary_test_free_names(text, variable, self.names))
            except FeelCompileError as e:
                test = self.null_test(e, "input entry", text, entry, decision=did, rule=rule, column=column)
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
                outputs.append(compile_expression(text, names=self.names, callables=self.callables,
                                                  types=self.types))
                self.reads.setdefault(did, set()).update(expression_free_names(text, self.names))
            except FeelCompileError as e:
                outputs.append(self.null_expression(e, "output entry", text, entry, decision=did, rule=rule,
                                                    column=column))
                self.reads.setdefault(did, set()).update(expression_free_names(text, self.names))
            except FeelSyntaxError as e:
                self.problem(f"output entry '{text}' does not parse: {e}", entry, decision=did, rule=rule,
                             column=column, text=text)
                outputs.append(None)
        if counts_ok:
            rule.checks = tuple(checks)
            rule.outputs = tuple(outputs)
        return rule


def _path_of(node: s.Node) -> tuple[str, ...] | None:
    if isinstance(node, s.Name):
        return (node.name,)
    if isinstance(node, s.Path):
        base = _path_of(node.base)
        return None if base is None else (*base, node.key)
    return None

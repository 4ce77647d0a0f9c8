"""Reading a DMN file (1.1 to 1.5, as Camunda Modeler and others write it) into a DecisionModel.

Decisions hold decision tables, literal expressions or boxed expressions (contexts, invocations,
function definitions, lists, relations, conditionals); business knowledge models and decision services
become FEEL functions the decisions can call.

This module reads the document and its decisions and checks the requirement graph;
:mod:`engine.dmn.table_reader` reads decision tables and :mod:`engine.dmn.boxed_reader` business
knowledge models, decision services and boxed expressions, on the shared state of
:class:`engine.dmn.reading.Reader`.

Every cell is compiled at load, once. Every problem found is collected, each located by file, line,
decision, rule and column, with the cell text in the message; :func:`load` raises them all in one
:class:`~engine.errors.ModelError`, :func:`check` returns them.

Problems are what makes the file unusable: XML that does not parse, a missing or misplaced structure
(no output column, a rule with the wrong number of entries, duplicate ids, a requirement naming
nothing, a cycle), an unknown typeRef, hit policy or expression language, and FEEL text that does not
parse. What the file says but cannot work is no problem: FEEL that parses yet cannot be evaluated (a
built-in called with the wrong number of arguments or with names it does not take, an unknown function,
an invalid date or time literal, an unknown type after ``instance of``: the compiler's
:class:`~engine.dmn.compiler.FeelCompileError`), a decision without logic, a Java or PMML function, an
invocation binding a name that is no parameter. Each of those is null when evaluated, as DMN says, with
a warning on the result; the model loads, and its :attr:`~engine.dmn.model.DecisionModel.load_warnings`
list them (``engine validate`` prints them as warnings).
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lxml import etree

from engine.dmn.boxed_reader import BoxedReader
from engine.dmn.compiler import FeelCompileError, Test, compile_expression, compile_test_list, expression_free_names
from engine.dmn.juel import JUEL_LANGUAGES, juel_cell_as_feel
from engine.dmn.lexer import FeelSyntaxError
from engine.dmn.model import Decision, DecisionModel, warn
from engine.dmn.parser import KnownNames
from engine.dmn.reading import text_of
from engine.dmn.typeref import TypeDef, normalize_type
from engine.errors import ModelError, Problem

DMN_NAMESPACES = {
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd": "1.1",
    "http://www.omg.org/spec/DMN/20180521/MODEL/": "1.2",
    "https://www.omg.org/spec/DMN/20191111/MODEL/": "1.3",
    "https://www.omg.org/spec/DMN/20211108/MODEL/": "1.4",
    "https://www.omg.org/spec/DMN/20230324/MODEL/": "1.5",
}


_CELLS = frozenset({"inputExpression", "inputEntry", "outputEntry", "literalExpression"})

def load(source: str | os.PathLike[str] | bytes, *, filename: str | None = None) -> DecisionModel:
    """Load a DMN file (a path) or DMN XML (bytes). Raises ModelError listing every problem; what cannot
    work but is no problem is in the model's ``load_warnings``."""
    model, problems, name = _Loader.run(source, filename)
    if problems or model is None:
        count = len(problems)
        raise ModelError(f"{name}: {count} problem{'s' if count != 1 else ''} in the decision model",
                         problems=problems, file=name)
    return model


def check(source: str | os.PathLike[str] | bytes, *, filename: str | None = None) -> list[Problem]:
    """The problems :func:`load` would raise, as a list ([] when the model is fine)."""
    return _Loader.run(source, filename)[1]


class _Loader(BoxedReader):
    """Reads one DMN document: namespaces, declared names, item definitions, input data, decisions, and
    the requirement graph between them. Tables and boxed expressions are read by the readers it builds on."""

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
        if model is not None:
            model.digest = hashlib.sha256(data).hexdigest()
        return model, loader.problems, name

    # ---- the document -----------------------------------------------------------------------------

    def juel_to_feel(self, root: etree._Element) -> None:
        """Cells in JUEL (Camunda 7: ``expressionLanguage="juel"``, on the cell or the whole file) are
        rewritten, in memory, to the FEEL they spell, so that they compile like any other cell."""
        file_juel = (root.get("expressionLanguage") or "").strip().lower() in JUEL_LANGUAGES
        for el in root.iter():
            if not isinstance(el.tag, str) or etree.QName(el).localname not in _CELLS:
                continue
            lang = el.get("expressionLanguage")
            if not ((lang or "").strip().lower() in JUEL_LANGUAGES or (lang is None and file_juel)):
                continue
            text = el.find(f"{{{self.ns}}}text")
            if text is not None and text.text:
                text.text = juel_cell_as_feel(text.text)
            el.attrib.pop("expressionLanguage", None)
        if file_juel:
            root.attrib.pop("expressionLanguage", None)

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
        self.juel_to_feel(root)
        self.default_language = root.get("expressionLanguage")
        self.model_namespace = (root.get("namespace") or "").strip()
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
                              functions=self.functions, load_warnings=self.warnings)
        holder.append(model)
        return model

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
            tag = etree.QName(el).localname
            if "." in name and tag in ("formalParameter", "parameter"):
                # Trisotech's implicit parameters (``Person.Gender``): the function binds the path too, and
                # the caller's ``Person.Gender`` must stay a path into ``Person``
                continue
            names.add(name)
            parent = el.getparent()
            in_context = tag == "variable" and parent is not None and etree.QName(parent).localname == "contextEntry"
            if in_context or tag in ("businessKnowledgeModel", "decisionService", "formalParameter", "parameter",
                                     "decision"):
                callables.add(name)
        self.names = KnownNames(names)
        self.callables = frozenset(callables)

    def item_definition(self, el: etree._Element) -> None:
        name = el.get("name")
        if not name:
            return
        type_ref_el = el.find(f"{{{self.ns}}}typeRef")
        type_ref = normalize_type(type_ref_el.text if type_ref_el is not None else el.get("typeRef"))
        if el.find(f"{{{self.ns}}}functionItem") is not None:
            type_ref = "function"  # a function type: any function fits (its signature is not checked)
        components = {}
        for comp in el.findall(f"{{{self.ns}}}itemComponent"):
            comp_type = comp.find(f"{{{self.ns}}}typeRef")
            components[comp.get("name") or ""] = normalize_type(
                comp_type.text if comp_type is not None else comp.get("typeRef")) or "Any"
        allowed_el = el.find(f"{{{self.ns}}}allowedValues")
        allowed_text = text_of(allowed_el, self.ns) or ""
        allowed: list[Test] = []
        if allowed_text.strip():
            try:
                allowed = compile_test_list(allowed_text, names=self.names, callables=self.callables,
                                            types=self.types)
            except FeelSyntaxError as e:
                self.problem(f"allowedValues '{allowed_text}' do not parse: {e}", allowed_el,
                             column=f"itemDefinition '{name}'", text=allowed_text)
        self.types[name] = TypeDef(name, type_ref if not components else None,
                                   el.get("isCollection") == "true", allowed, allowed_text, components)

    # ---- decisions ---------------------------------------------------------------------------------

    def decision(self, el: etree._Element, index: int) -> Decision | None:
        # DMN makes the id optional: a decision without one is known by its name (nothing can require it)
        did = el.get("id") or el.get("name")
        if not did:
            self.problem(f"decision #{index} has neither an id nor a name", el)
            return None
        decision = Decision(id=did, name=el.get("name") or did, filename=self.filename, line=el.sourceline,
                            types=self.types)
        for req in el.findall(f"{{{self.ns}}}informationRequirement"):
            for rd in req.findall(f"{{{self.ns}}}requiredDecision"):
                href = self.local_href(rd.get("href") or "")
                if "#" not in href or href.split("#", 1)[0]:
                    self.problem(f"requiredDecision href '{href}' must be '#<decision id>' (imported models are "
                                 "not supported)", rd, decision=did)
                    continue
                decision.required.append(href.split("#", 1)[1])
        for req in el.findall(f"{{{self.ns}}}knowledgeRequirement"):
            for rk in req.findall(f"{{{self.ns}}}requiredKnowledge"):
                href = self.local_href(rk.get("href") or "")
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
            logic = self.expression_child(el)
            if logic is None:
                self.no_logic(decision, el)
            else:
                self.boxed_decision(decision, el, logic)
        return decision

    def no_logic(self, decision: Decision, el: etree._Element) -> None:
        """A decision drawn in the requirements diagram but not yet given logic: its value is the one the
        caller gives under its name (as for an input decision of a decision service), else null with a
        warning."""
        variable = el.find(f"{{{self.ns}}}variable")
        name = decision.variable_name = (variable.get("name") if variable is not None else None) or decision.name
        raw_type = variable.get("typeRef") if variable is not None else None
        decision.variable_type = self.type_ref(raw_type, variable if variable is not None else el, decision.id,
                                               "variable")
        decision.literal_text = "<no decision logic>"
        message = self.warning("the decision has no decision logic (decision table, literal expression, context, "
                               "invocation, ...); its value is null unless the caller gives it", el,
                               decision=decision.id)

        def given(ctx: Mapping[str, Any]) -> Any:
            if name in ctx:
                return ctx[name]
            warn(message, once=True)
            return None
        decision.literal = given
        self.reads.setdefault(decision.id, set()).add(name)

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
        text = text_of(literal, self.ns)
        decision.literal_text = text
        if not self.language_ok(literal, did, "literal expression"):
            return
        if text is None or not text.strip():
            self.problem("the literal expression is empty", literal, decision=did, column="literal expression")
            return
        try:
            decision.literal = compile_expression(text, names=self.names, callables=self.callables,
                                                  types=self.types)
            self.reads.setdefault(did, set()).update(expression_free_names(text, self.names))
        except FeelCompileError as e:
            decision.literal = self.null_expression(e, "literal expression", text, literal, decision=did,
                                                    column="literal expression")
            self.reads.setdefault(did, set()).update(expression_free_names(text, self.names))
        except FeelSyntaxError as e:
            self.problem(f"literal expression '{text}' does not parse: {e}", literal, decision=did,
                         column="literal expression", text=text)

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
            bound = self.bound.get(d.id, set())
            d.own_reads = frozenset(r for r in self.reads.get(d.id, set()) if r.split(".")[0] not in bound)
            d.all_inputs = [clause for did in ids for clause in decisions[did].inputs]



"""Reading business knowledge models, decision services and boxed expressions (literal expressions,
contexts, invocations, function definitions, lists, relations, conditionals, iterations, filters and
decision tables inside them), each compiled to a closure ``f(ctx) -> value``.

A business knowledge model or decision service becomes a :class:`~engine.dmn.values.FeelFunction` that
FEEL calls by name.
"""

from __future__ import annotations

import difflib
from collections import ChainMap
from collections.abc import Mapping
from typing import Any

from lxml import etree

from engine.dmn.compiler import FeelCompileError, compile_expression, expression_free_names, quantified
from engine.dmn.lexer import FeelSyntaxError
from engine.dmn.model import Decision, DecisionModel, warn
from engine.dmn.reading import BKM_MARK, BOXED, OTHER_LOGIC, OWNER_KINDS, SERVICE_MARK, null_with_warning, text_of
from engine.dmn.result import DecisionResult
from engine.dmn.table_reader import TableReader
from engine.dmn.typeref import TypeMismatch, conform
from engine.dmn.values import FeelFunction, to_plain

_NO_RESULT = object()


class BoxedReader(TableReader):
    """Reads business knowledge models, decision services and boxed expressions."""

    def business_knowledge_model(self, el: etree._Element) -> None:
        variable = el.find(f"{{{self.ns}}}variable")
        name = el.get("name") or (variable.get("name") if variable is not None else None)
        if not name:
            self.problem("a businessKnowledgeModel has no name", el)
            return
        owner = BKM_MARK + name
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
        params: list[str] = []
        types: list[str | None] = []
        for p in el.findall(f"{{{self.ns}}}formalParameter"):
            pname = p.get("name")
            if not pname:
                self.problem("a formalParameter has no name", p, decision=owner)
                continue
            params.append(pname)
            self.bound.setdefault(owner, set()).add(pname)
            types.append(self.type_ref(p.get("typeRef"), p, owner, f"parameter '{pname}'"))
        if kind != "FEEL":  # its body says what to call in Java or PMML: nothing engine.dmn can run
            message = self.warning(f"function kind '{el.get('kind')}' is not supported; engine.dmn evaluates FEEL "
                                   f"functions (no Java or PMML): calling '{label}' gives null", el,
                                   decision=owner)
            return params, types, null_with_warning(message)
        body_el = self.expression_child(el)
        if body_el is None:
            self.problem(f"the function '{label}' has no body", el, decision=owner)
            return None
        body = self.boxed(body_el, owner, label)
        return (params, types, body) if body is not None else None

    def boxed(self, el: etree._Element, owner: str, label: str) -> Any:
        """A boxed expression element, compiled to ``f(ctx) -> value``; None after reporting a problem."""
        kind = etree.QName(el).localname
        if kind == "literalExpression":
            text = text_of(el, self.ns)
            if not self.language_ok(el, owner, label):
                return None
            if text is None or not text.strip():
                self.problem(f"the literal expression of {label} is empty", el, decision=owner, column=label)
                return None
            try:
                compiled = compile_expression(text, names=self.names, callables=self.callables,
                                              types=self.types)
                self.reads.setdefault(owner, set()).update(expression_free_names(text, self.names))
                return compiled
            except FeelCompileError as e:
                self.reads.setdefault(owner, set()).update(expression_free_names(text, self.names))
                return self.null_expression(e, "literal expression", text, el, decision=owner, column=label)
            except FeelSyntaxError as e:
                self.problem(f"literal expression '{text}' does not parse: {e}", el, decision=owner,
                             column=label, text=text)
                return None
        if kind == "decisionTable":
            table = Decision(id=owner, name=label, filename=self.filename, line=el.sourceline, types=self.types)
            self.decision_table(table, el)
            if owner[:1] in OWNER_KINDS:
                table.kind = OWNER_KINDS[owner[:1]]
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
            parts = self.parts(el, ("if", "then", "else"), owner, label, f"the conditional of {label}")
            if parts is None:
                return None
            cond, then, otherwise = parts

            def conditional(ctx: Any) -> Any:
                test = cond(ctx)
                if test is True:
                    return then(ctx)
                if test is False or test is None:
                    return otherwise(ctx)
                return None  # a condition that is no boolean
            return conditional
        if kind in OTHER_LOGIC:
            return self.iteration(el, kind, owner, label)
        self.problem(f"boxed expression <{kind}> is not supported; engine.dmn evaluates decision tables, "
                     "literal expressions, contexts, invocations, function definitions, lists, relations, "
                     "conditionals, iterations (for, some, every) and filters", el, decision=owner)
        return None

    def parts(self, el: etree._Element, names: tuple[str, ...], owner: str, label: str,
              what: str) -> list[Any] | None:
        """The compiled expressions of ``el``'s child elements ``names`` (``<if>``, ``<then>`` ...), in that
        order; None, with a problem for a missing one, when one is missing or does not compile."""
        compiled = []
        for part in names:
            holder = el.find(f"{{{self.ns}}}{part}")
            child = self.expression_child(holder) if holder is not None else None
            if child is None:
                self.problem(f"{what} has no <{part}> expression", el, decision=owner)
                return None
            compiled.append(self.boxed(child, owner, f"{label} {part}"))
        return None if any(c is None for c in compiled) else compiled

    def iteration(self, el: etree._Element, kind: str, owner: str, label: str) -> Any:
        """DMN 1.5's boxed ``<for>``, ``<some>``, ``<every>`` (an ``iteratorVariable`` over the list ``<in>``,
        with ``<return>`` or ``<satisfies>``) and ``<filter>`` (the items of ``<in>`` for which ``<match>`` is
        true; the item is ``item``, and a context item's entries are names too). As in FEEL, except that
        ``<in>`` must give a list (no singleton is made a list), and a ``<satisfies>`` or ``<match>`` must
        give a boolean (or null): anything else makes the whole expression null."""
        body_tag = {"for": "return", "some": "satisfies", "every": "satisfies", "filter": "match"}[kind]
        variable = "item" if kind == "filter" else el.get("iteratorVariable")
        if not variable:
            self.problem(f"the boxed <{kind}> of {label} has no iteratorVariable", el, decision=owner)
            return None
        self.bound.setdefault(owner, set()).add(variable)
        parts = self.parts(el, ("in", body_tag), owner, label, f"the boxed <{kind}> of {label}")
        if parts is None:
            return None
        source, body = parts

        def run(ctx: Any) -> Any:
            items = source(ctx)
            if type(items) is not list:
                return None
            if kind == "filter":
                kept = []
                for item in items:
                    scope = {**item, "item": item} if isinstance(item, dict) else {"item": item}
                    match = body(ChainMap(scope, ctx))
                    if match is True:
                        kept.append(item)
                    elif match is not None and match is not False:
                        return None  # a match that is no boolean
                return kept
            results = [body(ChainMap({variable: item}, ctx)) for item in items]
            if kind == "for":
                return results
            if any(r is not None and type(r) is not bool for r in results):
                return None  # a 'satisfies' that is no boolean
            return quantified(kind, results)
        return run

    def _children(self, el: etree._Element) -> list[etree._Element]:
        return [c for c in el if isinstance(c.tag, str) and etree.QName(c).localname in BOXED + OTHER_LOGIC]

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
            child = self.expression_child(entry)
            if child is None:
                self.problem(f"context entry '{name or 'result'}' of {label} has no expression", entry,
                             decision=owner)
                ok = False
                continue
            if name is not None:
                self.bound.setdefault(owner, set()).add(name)
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
        target_el = self.expression_child(el)
        if target_el is None:
            self.problem(f"the invocation of {label} does not name the function to call", el, decision=owner)
            return None
        target = self.boxed(target_el, owner, label)
        called = (text_of(target_el, self.ns) or "").strip()
        params = self.bkm_params.get(" ".join(called.split()))
        bindings: list[tuple[str, Any]] = []
        ok = target is not None
        unknown: str | None = None  # the warning about a binding that names no parameter
        for b in el.findall(f"{{{self.ns}}}binding"):
            p = b.find(f"{{{self.ns}}}parameter")
            pname = p.get("name") if p is not None else None
            if not pname:
                self.problem(f"a binding of the invocation in {label} has no parameter name", b, decision=owner)
                ok = False
                continue
            if params is not None and pname not in params:
                # as a FEEL call by a name that is no parameter: null (the function is not invoked)
                close = difflib.get_close_matches(pname, params, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                unknown = unknown or self.warning(
                    f"the invocation binds '{pname}', which is not a parameter of '{called}' "
                    f"({', '.join(params) or 'none'}){hint}; the invocation is null", b, decision=owner)
                continue
            child = self.expression_child(b)
            value = self.boxed(child, owner, f"{label} ({pname})") if child is not None else (lambda ctx: None)
            ok = ok and value is not None
            bindings.append((pname, value))
        if not ok:
            return None
        if unknown is not None:
            return null_with_warning(unknown)

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

    def decision_service(self, el: etree._Element, decisions: dict[str, Decision], input_names: dict[str, str],
                         input_types: dict[str, str], holder: list[DecisionModel]) -> None:
        """A decision service, callable from FEEL like a BKM: its parameters are its input data and input
        decisions; it returns a context of its output decisions' results (with one output decision: that
        decision's result itself)."""
        name = el.get("name") or el.get("id") or ""
        owner = SERVICE_MARK + name

        def refs(tag: str, known: Mapping[str, Any], what: str) -> list[str]:
            out = []
            for ref_el in el.findall(f"{{{self.ns}}}{tag}"):
                href = self.local_href(ref_el.get("href") or "")
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
        where = f"{self.filename}:{el.sourceline}"

        def body(scope: Mapping[str, Any]) -> Any:
            model = holder[0]
            ctx: Mapping[str, Any] = ChainMap({p: scope.get(p) for p in params}, model.functions)  # type: ignore[arg-type]  # read-only scopes
            done: dict[str, Any] = {}
            for did in given_decisions:
                d = decisions[did]
                value = scope.get(d.name)
                if value is not None and d.variable_type:
                    try:
                        value = conform(value, d.variable_type, self.types)
                    except TypeMismatch as e:  # as a function called with an argument of the wrong type
                        warn(f"{where}: decisionService '{name}': input decision '{d.name}' ({d.variable_type}): "
                             f"{e}; the service is not invoked, its value is null", once=True)
                        return None
                done[did] = (DecisionResult(d.id, d.name, to_plain(value), [], []), value)
            if len(outputs) == 1:  # one output decision: its value, not a context of one entry
                return model.run_decision(decisions[outputs[0]], ctx, done)
            return {decisions[o].name: model.run_decision(decisions[o], ctx, done) for o in outputs}

        self.functions[name] = FeelFunction(name, params, body, {}, types=types, conform=self._conform)

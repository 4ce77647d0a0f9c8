"""A recursive-descent parser for the FEEL that decision tables hold.

Two entry points: :func:`parse_expression` (input expressions, output entries, literal expressions)
and :func:`parse_unary_tests` (input entries, ``inputValues``, ``outputValues``). Both raise
:class:`~engine.dmn.lexer.FeelSyntaxError` with a 1-based column.

Precedence, loosest first: ``if``/``for``/``some``/``every``; ``or``; ``and``; comparison, ``between``,
``in``, ``instance of``; ``+ -``; ``* /``; ``**``; unary ``-``; postfix (``.name``, ``[filter]``, call).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

from engine.dmn import syntax as s
from engine.dmn.lexer import KEYWORDS, FeelSyntaxError, Token, tokenize
from engine.dmn.values import DEC

_COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
_FIRST_WORD = re.compile(r"[^\W\d]\w*")
_PLAIN_NAME = re.compile(r"[^\W\d]\w*(?:\s+[^\W\d]\w*)*")
# type names with the keyword ``and`` in them: the first word, and the word after ``and``
_TYPES_WITH_AND = {"date": "time", "days": "time", "years": "months"}


class KnownNames:
    """Names declared in a model that FEEL's word-joining cannot read on its own: ``Extra days case 1``,
    ``Pre-bureauRiskCategory``, ``Person's description``, ``Age in years``. At a name, the parser takes
    the longest of these that the text spells (whitespace inside a name may vary)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.by_first: dict[str, list[tuple[re.Pattern[str], str]]] = {}
        for name in set(names):
            name = " ".join(name.split())
            words = name.split()
            if not name or (_PLAIN_NAME.fullmatch(name) and not KEYWORDS.intersection(words)):
                continue
            first = _FIRST_WORD.match(name)
            if first is None:
                continue
            pattern = re.compile(r"\s+".join(re.escape(w) for w in words) + r"(?!\w)")
            self.by_first.setdefault(first.group(), []).append((pattern, name))
        for candidates in self.by_first.values():
            candidates.sort(key=lambda c: -len(c[1]))

    def __bool__(self) -> bool:
        return bool(self.by_first)


_NO_NAMES = KnownNames()


class _Parser:
    def __init__(self, text: str, names: KnownNames | None = None) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.range_end = False  # while reading the end of ``]a..b[``, a ``[`` closes the range
        self.names = names or _NO_NAMES

    # ---- token helpers ----------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def at(self, text: str) -> bool:
        t = self.tok
        return t.kind in ("op", "keyword") and t.text == text

    def take(self) -> Token:
        t = self.tok
        self.i += 1
        return t

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.i += 1
            return True
        return False

    def expect(self, text: str, what: str | None = None) -> Token:
        if not self.at(text):
            raise self.error(f"expected {what or repr(text)}")
        return self.take()

    def error(self, message: str, tok: Token | None = None) -> FeelSyntaxError:
        t = tok or self.tok
        found = "the end of the text" if t.kind == "eof" else repr(t.text)
        return FeelSyntaxError(f"{message}, found {found}", t.pos + 1)

    def expect_end(self) -> None:
        if self.tok.kind != "eof":
            raise self.error("unexpected text after the end of the expression")

    # ---- expressions ------------------------------------------------------------------------------

    def expression(self) -> s.Node:
        t = self.tok
        if t.kind == "keyword":
            if t.text == "if":
                self.take()
                cond = self.expression()
                self.expect("then", "'then'")
                then = self.expression()
                self.expect("else", "'else'")
                return s.If(cond, then, self.expression())
            if t.text in ("for", "some", "every"):
                return self.iteration()
        return self.disjunction()

    def iteration(self) -> s.Node:
        kind = self.take().text
        sources: list[tuple[str, s.Node, s.Node | None]] = []
        while True:
            name = self.name_text("a variable name")
            self.expect("in", "'in'")
            start = self.disjunction()
            end = self.disjunction() if self.accept("..") else None
            sources.append((name, start, end))
            if not self.accept(","):
                break
        if kind == "for":
            self.expect("return", "'return'")
        else:
            self.expect("satisfies", "'satisfies'")
        return s.Iteration(kind, sources, self.expression())

    def disjunction(self) -> s.Node:
        node = self.conjunction()
        while self.accept("or"):
            node = s.Or(node, self.conjunction())
        return node

    def conjunction(self) -> s.Node:
        node = self.comparison()
        while self.accept("and"):
            node = s.And(node, self.comparison())
        return node

    def comparison(self) -> s.Node:
        node = self.additive()
        t = self.tok
        if t.kind == "op" and t.text in _COMPARISONS:
            self.take()
            return s.Binary(t.text, node, self.additive())
        if self.accept("between"):
            low = self.additive()
            self.expect("and", "'and'")
            return s.Between(node, low, self.additive())
        if self.accept("in"):
            if self.at("(") and not self._looks_like_range():
                self.take()
                tests = self.positive_unary_tests(")")
                self.expect(")", "')'")
                return s.In(node, tests)
            return s.In(node, [self.positive_unary_test()])
        if self.accept("instance"):
            self.expect("of", "'of'")
            return s.InstanceOf(node, self.type_spec())
        return node

    def type_spec(self) -> s.TypeSpec:
        """A FEEL type: ``number``, ``date and time``, ``list<T>``, ``range<T>``, ``context<a: T>``,
        ``function<T, U> -> R``, or a type the model declares (``tPerson``, ``ns.tPerson``)."""
        if self.accept("function"):
            self.expect("<", "'<'")
            params: list[s.TypeSpec] = []
            if not self.at(">"):
                params.append(self.type_spec())
                while self.accept(","):
                    params.append(self.type_spec())
            self.expect(">", "',' or '>'")
            self.expect("-", "'->'")
            self.expect(">", "'->'")
            return s.TypeSpec("function", params, result=self.type_spec())
        name = self.type_name()
        if name in ("list", "range") and self.accept("<"):
            inner = self.type_spec()
            self.expect(">", "'>'")
            return s.TypeSpec(name, [inner])
        if name == "context" and self.accept("<"):
            fields: list[tuple[str, s.TypeSpec]] = []
            while True:
                key = str(self.take().value) if self.tok.kind == "string" else self.name_text("a key")
                self.expect(":", "':'")
                fields.append((key, self.type_spec()))
                if not self.accept(","):
                    break
            self.expect(">", "',' or '>'")
            return s.TypeSpec(name, fields=fields)
        return s.TypeSpec(name)

    def type_name(self) -> str:
        name = self.name_text("a type name")
        rest = _TYPES_WITH_AND.get(name)
        if rest is not None and self.at("and") and self.peek().kind == "name" and self.peek().text == rest:
            self.take()
            name = f"{name} and {self.name_text('a type name')}"
        while self.at(".") and self.peek().kind == "name":
            self.take()
            name = f"{name}.{self.name_text('a type name')}"
        return name

    def additive(self) -> s.Node:
        node = self.multiplicative()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.take().text
            node = s.Binary(op, node, self.multiplicative())
        return node

    def multiplicative(self) -> s.Node:
        node = self.exponent()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            op = self.take().text
            node = s.Binary(op, node, self.exponent())
        return node

    def exponent(self) -> s.Node:
        node = self.unary()
        while self.accept("**"):
            node = s.Binary("**", node, self.unary())
        return node

    def unary(self) -> s.Node:
        if self.accept("-"):
            operand = self.unary()
            if isinstance(operand, s.Literal) and isinstance(operand.value, (int, Decimal)) \
                    and not isinstance(operand.value, bool):
                return s.Literal(-operand.value)
            return s.Negate(operand)
        return self.postfix()

    def postfix(self) -> s.Node:
        node = self.primary()
        while True:
            if self.accept("."):
                node = s.Path(node, self.name_text("a name after '.'"))
            elif self.at("[") and not self.range_end:
                self.take()
                cond = self.expression()
                self.expect("]", "']'")
                node = s.Filter(node, cond)
            elif self.at("(") and not isinstance(node, s.Name):
                start = self.tok
                args, named = self.arguments()
                node = s.Invoke(node, args, start.pos + 1, named)
            else:
                return node

    def known_name(self) -> str | None:
        """At a name token: the longest declared name the text spells from here, consumed."""
        t = self.tok
        candidates = self.names.by_first.get(t.text) if self.names else None
        if not candidates or t.value is not None:
            return None
        for pattern, name in candidates:
            m = pattern.match(self.text, t.pos)
            if m is None:
                continue
            j = self.i
            while self.tokens[j].kind != "eof" and self.tokens[j].end <= m.end():
                j += 1
            if self.tokens[j - 1].end == m.end():
                self.i = j
                return name
        return None

    def name_text(self, what: str) -> str:
        t = self.tok
        if t.kind != "name" or t.text == "?":
            raise self.error(f"expected {what}")
        known = self.known_name()
        if known is not None:
            return known
        self.take()
        words = [t.text]
        if t.value is None:
            # adjacent name words form one name: ``Applicant Age``, ``list contains``, ``Date of Birth``
            while True:
                if self._is_name_word(self.tok):
                    words.append(self.take().text)
                elif self.at("of") and self._is_name_word(self.peek()):
                    words.append(self.take().text)  # ``of`` is a keyword only after ``instance``
                else:
                    return " ".join(words)
        return " ".join(words)

    @staticmethod
    def _is_name_word(t: Token) -> bool:
        return t.kind == "name" and t.value is None and t.text != "?"

    def primary(self) -> s.Node:
        t = self.tok
        if t.kind == "keyword" and self.names:
            known = self.known_name()  # a declared name that starts with a keyword: ``in list values``
            if known is not None:
                return self.call(known, t) if self.at("(") else s.Name(known)
        if t.kind == "number":
            self.take()
            text = t.text if not t.text.startswith(".") else "0" + t.text
            if text.isdigit() and len(text) <= 34:
                return s.Literal(int(text))
            try:  # FEEL's numbers are decimal128: a literal of more digits is rounded to 34 (a Python int of
                number = DEC.create_decimal(text)  # thousands of digits could not even be written as text)
            except ArithmeticError as e:
                raise FeelSyntaxError(f"number {text[:20]}{'...' if len(text) > 20 else ''} is out of FEEL's "
                                      "range", t.pos + 1) from e
            whole = number.adjusted() < 34 and number == number.to_integral_value()
            return s.Literal(int(number) if whole else number)
        if t.kind == "string":
            self.take()
            return s.Literal(t.value)
        if t.kind == "keyword":
            if t.text in ("true", "false"):
                self.take()
                return s.Literal(t.text == "true")
            if t.text == "null":
                self.take()
                return s.Literal(None)
            if t.text == "function":
                return self.function_definition()
            raise self.error("expected a value")
        if t.kind == "name":
            if t.text == "?":
                self.take()
                return s.InputRef()
            name = self.name_text("a name")
            if self.at("("):
                return self.call(name, t)
            return s.Name(name)
        if t.kind == "op":
            if t.text == "(":
                if self._looks_like_range():
                    return self.range_literal()
                self.take()
                node = self.expression()
                self.expect(")", "')'")
                return node
            if t.text == "[":
                if self._looks_like_range():
                    return self.range_literal()
                return self.list_literal()
            if t.text == "]":
                return self.range_literal()
            if t.text == "{":
                return self.context_literal()
            if t.text in _COMPARISONS and (self.i == 0 or self.peek(-1).text == "("):
                # a unary comparison as a value, ``(< 10)``: the range it stands for (not ``>> 5``)
                self.take()
                return s.UnaryRange(t.text, self.additive())
            if t.text == "@":
                self.take()
                lit = self.tok
                if lit.kind != "string":
                    raise self.error("expected a string after '@'")
                self.take()
                return s.Call("@", [s.Literal(lit.value)], t.pos + 1)
        raise self.error("expected a value")

    def call(self, name: str, start: Token) -> s.Node:
        args, named = self.arguments()
        return s.Call(name, args, start.pos + 1, named)

    def arguments(self) -> tuple[list[s.Node], list[tuple[str, s.Node]] | None]:
        """``(1, 2)`` or ``(a: 1, b: 2)``: positional or named arguments, not both."""
        self.expect("(")
        args: list[s.Node] = []
        named: list[tuple[str, s.Node]] = []
        if not self.at(")"):
            while True:
                if self._at_named_argument():
                    name = self.name_text("a parameter name")
                    self.expect(":", "':'")
                    named.append((name, self.expression()))
                else:
                    if named:
                        raise self.error("a positional argument cannot follow named ones")
                    args.append(self.expression())
                if not self.accept(","):
                    break
        self.expect(")", "',' or ')'")
        if named and args:
            raise FeelSyntaxError("pass the arguments either all by position or all by name", self.tok.pos + 1)
        return args, (named or None)

    def _at_named_argument(self) -> bool:
        j = self.i
        while self.tokens[j].kind == "name" and self.tokens[j].text != "?":
            j += 1
        return j > self.i and self.tokens[j].kind == "op" and self.tokens[j].text == ":"

    def function_definition(self) -> s.Node:
        self.expect("function")
        self.expect("(")
        params: list[str] = []
        types: list[s.TypeSpec | None] = []
        if not self.at(")"):
            while True:
                params.append(self.name_text("a parameter name"))
                types.append(self.type_spec() if self.accept(":") else None)
                if not self.accept(","):
                    break
        self.expect(")", "',' or ')'")
        if self.tok.kind == "name" and self.tok.text == "external" and self.peek().text == "{":
            self.take()  # ``function(n) external {java: {class: "...", method signature: "..."}}``
            return s.ExternalFunction(params, self.context_literal())
        return s.FunctionDef(params, self.expression(), types if any(types) else None)

    def list_literal(self) -> s.Node:
        self.expect("[")
        items: list[s.Node] = []
        if not self.at("]"):
            while True:
                items.append(self.expression())
                if not self.accept(","):
                    break
        self.expect("]", "',' or ']'")
        return s.ListExpr(items)

    def context_literal(self) -> s.Node:
        self.expect("{")
        entries: list[tuple[str, s.Node]] = []
        if not self.at("}"):
            while True:
                key = str(self.take().value) if self.tok.kind == "string" else self.context_key()
                self.expect(":", "':'")
                entries.append((key, self.expression()))
                if not self.accept(","):
                    break
        self.expect("}", "',' or '}'")
        return s.ContextExpr(entries)

    def context_key(self) -> str:
        """A context key: a name, which may hold characters that are operators elsewhere (``foo+bar``)."""
        t = self.tok
        if t.kind not in ("name", "keyword"):
            raise self.error("expected a key")
        j = self.i
        while self.tokens[j].kind != "eof" and not (self.tokens[j].kind == "op" and self.tokens[j].text in
                                                    (":", ",", "}", "{", "(", ")", "[", "]")):
            j += 1
        if not (self.tokens[j].kind == "op" and self.tokens[j].text == ":"):
            raise self.error("expected ':' after the key")
        key = " ".join(self.text[t.pos:self.tokens[j - 1].end].split())
        self.i = j
        return key

    def _looks_like_range(self) -> bool:
        """At ``[``/``(``/``]``: is this an interval ``a..b`` rather than a list or parentheses?"""
        saved = self.i
        try:
            self.take()
            self.additive()
            return self.at("..")
        except FeelSyntaxError:
            return False
        finally:
            self.i = saved

    def range_literal(self) -> s.RangeExpr:
        opener = self.take()
        start_closed = opener.text == "["
        start = self.additive()
        self.expect("..", "'..'")
        self.range_end = True
        try:
            end = self.additive()
        finally:
            self.range_end = False
        closer = self.tok
        if closer.kind != "op" or closer.text not in ("]", ")", "["):
            raise self.error("expected ']', ')' or '[' to close the range")
        self.take()
        return s.RangeExpr(start, end, start_closed, closer.text == "]")

    # ---- unary tests ------------------------------------------------------------------------------

    def unary_tests(self) -> s.Node:
        if self.tok.kind == "eof":
            return s.AnyTest()
        if self.at("-") and self.peek().kind == "eof":
            return s.AnyTest()
        t = self.tok
        if t.kind == "name" and t.text == "not" and self.peek().text == "(":
            saved = self.i
            self.take()
            self.take()
            tests = self.positive_unary_tests(")")
            self.expect(")", "',' or ')'")
            if self.tok.kind == "eof":
                return s.NotTest(tests)
            self.i = saved  # ``not(x) = y`` and the like: an ordinary expression
        tests = self.positive_unary_tests(None)
        self.expect_end()
        return tests[0] if len(tests) == 1 else s.In(s.InputRef(), tests)

    def positive_unary_tests(self, closer: str | None) -> list[s.Node]:
        tests = [self.positive_unary_test()]
        while self.accept(","):
            tests.append(self.positive_unary_test())
        if closer is None and self.tok.kind != "eof":
            raise self.error("expected ',' between tests")
        return tests

    def positive_unary_test(self) -> s.Node:
        t = self.tok
        if t.kind == "op" and t.text in _COMPARISONS:
            self.take()
            if self.tok.kind == "eof" or self.at(","):
                raise self.error(f"expected a value after {t.text!r}")
            return s.CompareTest(t.text, self.additive())
        if t.kind == "op" and t.text in ("[", "(", "]") and self._looks_like_range():
            return s.RangeTest(self.range_literal())
        return s.ExprTest(self.expression())


def parse_expression(text: str, names: KnownNames | None = None) -> s.Node:
    """Parse a FEEL expression (input expression, output entry, literal expression)."""
    p = _Parser(text, names)
    if p.tok.kind == "eof":
        raise FeelSyntaxError("the expression is empty", 1)
    node = p.expression()
    p.expect_end()
    return node


def parse_unary_tests(text: str, names: KnownNames | None = None) -> s.Node:
    """Parse FEEL unary tests (an input entry). Empty text and ``-`` give :class:`~syntax.AnyTest`."""
    return _Parser(text, names).unary_tests()

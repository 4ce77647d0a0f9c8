"""Built-in functions called with named arguments, by the spec's parameter names
(``substring(string: "abc", start position: 2)``)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest

from engine import dmn
from engine.dmn import compile_expression
from engine.dmn.compiler import FeelCompileError
from engine.dmn.functions import BUILTINS, PARAMETERS, signatures


def feel(text: str, **ctx: object) -> object:
    return compile_expression(text)(ctx)


@pytest.mark.parametrize(("text", "expected"), [
    ('substring(string: "foobar", start position: 3)', "obar"),
    ('substring(start position: 3, length: 2, string: "foobar")', "ob"),  # in any order
    ('string length(string: "abc")', 3),
    ('upper case(string: "abc")', "ABC"),
    ('substring before(string: "foobar", match: "bar")', "foo"),
    ('contains(string: "foobar", match: "b")', True),
    ('starts with(string: "foobar", match: "f")', True),
    ('matches(input: "abc", pattern: "B", flags: "i")', True),
    ('replace(input: "abc", pattern: "[a-z]", replacement: "#")', "###"),
    ('split(delimiter: ",", string: "a,b")', ["a", "b"]),
    ('string join(list: ["a", "c"])', "ac"),
    ('string join(delimiter: "X", list: ["a", "c"])', "aXc"),
    ('number(from: "1.000,5", decimal separator: ",", grouping separator: ".")', Decimal("1000.5")),
    ('number(from: "1000,5", decimal separator: ",")', Decimal("1000.5")),  # a parameter between left out
    ("string(from: 1.5)", "1.5"),
    ("not(negand: true)", False),
    ("abs(n: -1)", 1),
    ("floor(n: 1.56, scale: 1)", Decimal("1.5")),
    ("floor(n: 1.5)", 1),  # an optional parameter at the end is left out
    ("decimal(n: 15/7, scale: 3)", Decimal("2.143")),
    ("round half up(n: 5.5, scale: 0)", 6),
    ("modulo(dividend: 10, divisor: 4)", 2),
    ("sqrt(number: 4)", 2),
    ("odd(number: 5)", True),
    ("min(list: [3, 1])", 1),
    ("sum(list: [1, 2])", 3),
    ("all(list: [true, false])", False),
    ("any(list: null)", None),
    ("count(list: [1, 2])", 2),
    ("sublist(list: [1, 2, 3], start position: 2)", [2, 3]),
    ("insert before(list: [1, 3], position: 2, newItem: 2)", [1, 2, 3]),
    ("list contains(list: [1, 2], element: 2)", True),
    ("index of(list: [1, 2, 1], match: 1)", [1, 3]),
    ("sort(list: [3, 1, 2], precedes: function(x, y) x > y)", [3, 2, 1]),
    ("list replace(position: 2, newItem: 4, list: [1, 2, 3])", [1, 4, 3]),
    ("list replace(match: function(item, newItem) item = 2, newItem: 4, list: [1, 2, 3])", [1, 4, 3]),
    ('get value(key: "a", m: {a: "foo"})', "foo"),
    ('get entries(m: {a: "foo"})', [{"key": "a", "value": "foo"}]),
    ('context(entries: [{key: "a", value: 1}])', {"a": 1}),
    ('context put(context: {}, key: "a", value: 1)', {"a": 1}),
    ('context put(context: {x: 1, y: {a: 0}}, keys: ["y", "a"], value: 2)', {"x": 1, "y": {"a": 2}}),
    ('context put(context: {x: 1, y: {a: 0}}, key: ["y", "a"], value: 2)', None),  # key is one key
    ('context merge(contexts: [{a: 1}, {b: 2}])', {"a": 1, "b": 2}),
    ('is(value1: 1, value2: 1)', True),
    ('is(value1: @"2021-02-13")', False),  # a parameter left out is null
    ("round up(scale: 0)", None),
    ('range(from: "[1..3]")', dmn.compile_expression("[1..3]")({})),
    ('date(from: "2012-12-25")', date(2012, 12, 25)),
    ("date(year: 2017, month: 8, day: 30)", date(2017, 8, 30)),
    ('date and time(date: date("2017-01-01"), time: time("23:59:01"))', datetime(2017, 1, 1, 23, 59, 1)),
    ('date and time(from: "2012-12-24T23:59:00")', datetime(2012, 12, 24, 23, 59)),
    ('time(from: "12:45:00")', time(12, 45)),
    ('duration(from: "PT24H")', timedelta(days=1)),
    ('day of week(date: @"2019-09-17")', "Tuesday"),
    ("before(point1: 1, point2: 10)", True),
    ("during(point: 5, range: [1..10])", True),
    ("overlaps(range1: [1..5], range2: [3..8])", True),
])
def test_builtins_take_their_spec_parameter_names(text, expected):
    assert feel(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("abs(number: -1)", "function 'abs' has no parameter 'number'; it takes (n)"),
    ("sqrt(n: 4)", "function 'sqrt' has no parameter 'n'; it takes (number)"),
    ("modulo(dividend: 10, foo: 4)", "function 'modulo' has no parameter 'foo'; it takes (dividend, divisor)"),
    ("round up(n: 5.5, scale: 0, foo: 1)", "function 'round up' has no parameter 'foo'"),
    ('range(fron: "[1..3]")', "function 'range' has no parameter 'fron'; it takes (from)"),
    ('date(from: "2012-12-25", year: 2012)', "function 'date' cannot take the arguments 'from', 'year'; "
                                              "it takes (from) or (year, month, day)"),
    ("abs(n: 1, n: 2)", "an argument of 'abs' is given twice"),
    ("abss(n: 1)", "unknown function 'abss'; did you mean 'abs'?"),
])
def test_a_name_that_is_no_parameter_does_not_compile(text, message):
    with pytest.raises(FeelCompileError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        compile_expression(text)


def test_an_unknown_parameter_name_is_null_with_a_load_warning(make_dmn):
    body = ('<decision id="e" name="e"><literalExpression><text>abs(number: -1)</text>'
            "</literalExpression></decision>")
    model = dmn.load(make_dmn(body), filename="named.dmn")
    (warning,) = model.load_warnings
    assert "function 'abs' has no parameter 'number'" in warning.message
    assert model.evaluate("e", {}).value is None


def test_a_model_function_with_a_builtins_name_binds_its_own_parameters():
    assert feel('{abs: function(number) number * 2, r: abs(number: 3)}.r') == 6
    assert feel('{r: abs(n: -3)}.r') == 3


def test_every_builtin_has_its_parameter_names():
    assert set(BUILTINS) - set(PARAMETERS) == {"@"}
    assert not set(PARAMETERS) - set(BUILTINS)
    for name in PARAMETERS:
        _, lo, hi = BUILTINS[name]
        for form, params, required in signatures(name):
            assert lo <= required and (hi is None or len(params) <= hi), (name, form)

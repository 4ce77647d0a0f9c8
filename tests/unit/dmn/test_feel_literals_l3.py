"""FEEL syntax of the TCK's level 3: numbers with exponents, unicode names and escapes, unary comparisons
as range values, ranges with null endpoints, iteration over ranges and dates, ``in`` over lists."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from engine import dmn
from engine.dmn import FeelSyntaxError, compile_expression
from engine.dmn.compiler import FeelCompileError, compile_unary_tests
from engine.dmn.values import Range


def feel(text: str, **ctx: object) -> object:
    return compile_expression(text)(ctx)


@pytest.mark.parametrize(("text", "expected"), [
    ("12300 = 1.23e4", True),
    ("12300 = 1.23e+4", True),
    ("0.000123 = 1.23e-4", True),
    ("1E2", 100),
    ("2.5e-1", Decimal("0.25")),
    ("-1.5e1", -15),
    ("1e400 > 1", True),
])
def test_numbers_with_an_exponent(text, expected):
    assert feel(text) == expected


def test_a_name_after_a_number_is_still_a_name():
    assert feel("{e: 2, r: 3 * e}.r") == 6
    with pytest.raises(FeelSyntaxError):
        compile_expression("2e")


@pytest.mark.parametrize(("text", "expected"), [
    ('{🐎: "bar"}.🐎', "bar"),
    ('{🐎: "😀"}', {"🐎": "😀"}),
    ('string length("\\uD83D\\uDCA9")', 1),  # a surrogate pair is one character
    ('string length("\\ud83d\\udc0e\\uD83D\\uDE00")', 2),
    ('"\\U01F40E" = "🐎"', True),
    ('contains("\\ud83d\\udc0e\\uD83D\\uDE00", "😀")', True),
    ('string length("\\\\u0009")', 6),
])
def test_unicode_names_and_escapes(text, expected):
    assert feel(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("(< 10)", Range(None, 10, False, False)),
    ("(<= 10)", Range(None, 10, False, True)),
    ("(> 10)", Range(10, None, False, False)),
    ("(>= 10)", Range(10, None, True, False)),
    ("(= 10)", Range(10, 10, True, True)),
    ("(< 10).end", 10),
    ("(< 10).start", None),
    ("(<= 10).end included", True),
    ("(>= 10).start included", True),
    ("(= 10).start included", True),
    ("[1..10).end included", False),
    ("(< 10) = (< 10)", True),
    ("(!= 10) = (!= 10)", True),
    ("(< 10) = (null..10)", False),  # a range with a null endpoint is null
    ("5 in (< 10)", True),
    ("5 in (!= 5)", False),
    ("6 in (!= 5)", True),
    ("(< x)", Range(None, 3, False, False)),
])
def test_unary_comparisons_are_range_values(text, expected):
    assert feel(text, x=3) == expected


def test_a_doubled_comparison_is_still_an_error():
    with pytest.raises(FeelSyntaxError):
        compile_unary_tests(">> 5")
    with pytest.raises(FeelSyntaxError):
        compile_expression("1 < < 5")


@pytest.mark.parametrize(("text", "expected"), [
    ("[1..null]", None),
    ("5 in (null..10]", None),
    ("5 in [1..null)", None),
    ("5 in [x..10]", None),  # x is not given
    ("null in [1..10]", None),
    ("5 in [1..10]", True),
])
def test_a_range_with_a_null_endpoint_is_null(text, expected):
    assert feel(text) == expected


def test_a_cell_with_a_null_endpoint_does_not_match():
    test = compile_unary_tests("[1..limit]")
    assert test is not None
    assert test(5, {"limit": 10}) is True
    assert test(5, {}) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("for i in [1..3] return i", [1, 2, 3]),
    ("for i in (1..3] return i", [2, 3]),
    ("for i in [1..3) return i", [1, 2]),
    ("for i in [2..1] return i", None),  # a range goes up
    ("for i in 3..1 return i", [3, 2, 1]),
    ('for i in @"1980-01-01"..@"1980-01-03" return i', [date(1980, 1, 1), date(1980, 1, 2), date(1980, 1, 3)]),
    ('for i in @"1980-01-02"..@"1980-01-01" return i', [date(1980, 1, 2), date(1980, 1, 1)]),
    ('for i in [@"1980-01-01"..@"1980-01-02"] return i', [date(1980, 1, 1), date(1980, 1, 2)]),
    ('for i in "a".."z" return i', None),
    ('for i in ["a".."z"] return i', None),
    ('for i in @"P1D"..@"P2D" return i', None),
    ("for i in 0..4 return if i = 0 then 1 else i * partial[-1]", [1, 1, 2, 6, 24]),
    ("for i in [1, 2, 3] return count(partial)", [0, 1, 2]),
])
def test_iteration_over_ranges_dates_and_partial_results(text, expected):
    assert feel(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("true in [false, 2, 3]", False),  # an item of another type is not it
    ("true in [true, false]", True),
    ("[1,2,3] in [[1,2,3,4], [1,2,3]]", True),
    ("[1,2,3,5] in [[1,2,3,4], [1,2,3]]", False),
    ("[1,2,3] in ([[1,2,3,4]], [[1,2,3,5]])", False),
    ("[1,2,3] in [1,2,3]", True),
    ("[1,2,3] in (=[1,2,3])", True),
    ("[1,2,3] in (!=[1,2,3])", False),
])
def test_in_a_list(text, expected):
    assert feel(text) is expected


def test_a_filter_reads_an_entry_named_item_first():
    assert feel("[{item: 1}, {item: 2}, {item: 3}][item >= 2]") == [{"item": 2}, {"item": 3}]
    assert feel("[1, 2, 3][item >= 2]") == [2, 3]


def test_an_external_function_parses_and_is_null_with_a_load_warning(make_dmn):
    text = 'function(n) external {java: {class: "java.lang.Math", method signature: "cos(double)"}}'
    with pytest.raises(FeelCompileError, match=r"external functions \(java\) are not supported"):
        compile_expression(text)
    body = f'<decision id="e" name="e"><literalExpression><text>{text}</text></literalExpression></decision>'
    model = dmn.load(make_dmn(body), filename="external.dmn")
    (warning,) = model.load_warnings
    assert "external functions (java) are not supported" in warning.message
    assert model.evaluate("e", {}).value is None

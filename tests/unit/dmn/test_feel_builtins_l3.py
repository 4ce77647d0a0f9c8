"""The FEEL built-ins of DMN 1.4/1.5 (``is``, ``range``, the context functions, ``list replace``, ``now``,
``today``, the interval functions) and the string/number details the TCK's level 3 checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest

from engine.clock import FixedClock
from engine.dmn import compile_expression
from engine.dmn.compiler import CLOCK
from engine.dmn.values import Range


def feel(text: str, **ctx: object) -> object:
    return compile_expression(text)(ctx)


@pytest.mark.parametrize(("text", "expected"), [
    ("is(1, 1)", True),
    ("is(1, 1.0)", True),
    ('is("foo", "bar")', False),
    ('is(@"2012-12-25", @"2012-12-25")', True),
    ('is(@"2012-12-25", @"2012-12-25T00:00:00Z")', False),  # a date is not its midnight
    ('is(@"23:00:50Z", @"23:00:50+00:00")', True),
    ('is(@"23:00:50", @"23:00:50Z")', False),
    ('is(@"23:00:50@Australia/Melbourne", @"23:00:50+10:00")', False),  # a zone is not its offset
    ('is(@"2002-04-02T12:00:00-01:00", @"2002-04-02T17:00:00+04:00")', False),  # = would say true
    ('is(@"P1D", @"PT24H")', True),
    ('is(@"P0Y", @"P0D")', False),
    ("is(null, null)", True),
    ("is(1, null)", False),
])
def test_is(text, expected):
    assert feel(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ('range("[1..3]")', Range(1, 3, True, True)),
    ('range(" ( 1 .. 3 [ ")', Range(1, 3, False, False)),
    ('range("[\\"a\\"..\\"c\\"]")', Range("a", "c")),
    ('range("[@\\"1970-01-01\\"..date(\\"1970-01-02\\")]")', Range(date(1970, 1, 1), date(1970, 1, 2))),
    ('range("[-2..-1]")', Range(-2, -1)),
    ('range("[3..1]")', None),  # descending
    ('range("[1..\\"b\\"]")', None),  # endpoints of two types
    ('range("[null..null]")', None),
    ('range("[..2]")', None),
    ('range(">=10")', None),  # a unary test is no range literal
    ('range("[date(string(\\"1970-01-01\\"))..date(\\"1970-01-02\\")]")', None),  # endpoints are literals
    ('range("")', None),
    ("range(1)", None),
])
def test_range_reads_a_range_literal(text, expected):
    assert feel(text) == expected


def test_range_values_compare_and_contain():
    assert feel('2 in range("[1..3]")') is True
    assert feel('range("(18..21]") = ]18..21]') is True
    assert feel('range(from: "[1..3]") = [1..3]') is True


@pytest.mark.parametrize(("text", "expected"), [
    ('context([{key: "a", value: 1}, {key: "b", value: 2}])', {"a": 1, "b": 2}),
    ('context({key: "a", value: 1})', {"a": 1}),  # one entry is a list of one
    ('context([{key: "a", value: 1, ignored: "x"}])', {"a": 1}),
    ('context({key: "a", value: null})', {"a": None}),
    ('context({key: "", value: 1})', {"": 1}),
    ("context([])", {}),
    ('context([{key: "a", value: 1}, {key: "a", value: 2}])', None),  # a key twice
    ('context({key: "a"})', None),  # no value
    ("context({key: null, value: 1})", None),
    ('context("foo")', None),
    ("context(null)", None),
])
def test_context_from_entries(text, expected):
    assert feel(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('context put({}, "a", 1)', {"a": 1}),
    ('context put({a: 1, b: 2, c: 3}, "b", 9)', {"a": 1, "b": 9, "c": 3}),
    ('context put({}, "a", null)', {"a": None}),
    ('context put({x: 1, y: {a: 0}}, ["y", "a"], 2)', {"x": 1, "y": {"a": 2}}),
    ('context put({x: 1, y: {a: 0}}, ["y", "b"], 2)', {"x": 1, "y": {"a": 0, "b": 2}}),
    ('context put({x: {y: {z: 1}}}, ["x", "y", "z"], 2)', {"x": {"y": {"z": 2}}}),
    ('context put({x: 1, y: {a: 0}}, ["y", "a", "b"], 2)', None),  # y.a is no context
    ('context put({x: 1}, [], 2)', None),
    ('context put({x: 1}, ["x", null], 2)', None),
    ("context put({}, null, 1)", None),
    ("context put({}, 1, 1)", None),
    ('context put(null, "a", 1)', None),
    ('context put([], "a", 1)', None),
])
def test_context_put(text, expected):
    assert feel(text) == expected


def test_context_put_leaves_its_argument_alone():
    assert feel('{c: {a: 1}, d: context put(c, "a", 2), e: c}') == {"c": {"a": 1}, "d": {"a": 2}, "e": {"a": 1}}


@pytest.mark.parametrize(("text", "expected"), [
    ('context merge([{a: 1}, {b: 2}])', {"a": 1, "b": 2}),
    ('context merge([{a: 1}, {a: 2}])', {"a": 2}),
    ('context merge([{a: {aa: 1}}, {a: {bb: 2}}])', {"a": {"bb": 2}}),  # not deep
    ("context merge({a: 1})", {"a": 1}),
    ("context merge([])", {}),
    ("context merge([{a: 1}, 2])", None),
    ("context merge(null)", None),
    ('get entries({a: "foo", b: "bar"})', [{"key": "a", "value": "foo"}, {"key": "b", "value": "bar"}]),
    ("get entries({})", []),
    ("get entries([1, 2])", None),
    ("get entries(null)", None),
])
def test_context_merge_and_get_entries(text, expected):
    assert feel(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("list replace([1, 2, 3], 2, 4)", [1, 4, 3]),
    ("list replace([1, 2, 3], -1, 4)", [1, 2, 4]),
    ("list replace([1, 2, 3], 2.5, 4)", [1, 4, 3]),
    ("list replace([1, 2, 3], 3, null)", [1, 2, None]),
    ("list replace(1, 1, 5)", [5]),
    ("list replace([1, 2, 3], 0, 4)", None),
    ("list replace([1, 2, 3], 4, 4)", None),
    ("list replace([1, 2, 3], -4, 4)", None),
    ('list replace([1, 2, 3], "2", 4)', None),
    ("list replace(null, 1, 4)", None),
    ("list replace([2, 4, 7, 8], function(item, newItem) item < newItem, 5)", [5, 5, 7, 8]),
    ("list replace([1, 2], function(item, newItem) true, 5)", [5, 5]),
    ("list replace([2, 4], function(item) item = 2, 5)", None),  # the match takes two parameters
    ("list replace([2, 4], function(item, newItem) item, 5)", None),  # and says true or false
])
def test_list_replace(text, expected):
    assert feel(text) == expected


def test_now_and_today_read_the_clock_in_the_scope():
    at = datetime(2030, 5, 17, 10, 30, tzinfo=UTC)
    assert feel("now()", **{CLOCK: at}) == at
    assert feel("today()", **{CLOCK: at}) == date(2030, 5, 17)
    assert feel("now()", **{CLOCK: lambda: at}) == at
    clock = FixedClock(at)
    assert feel("[now(), now()]", **{CLOCK: clock}) == [at, datetime(2030, 5, 17, 10, 30, 1, tzinfo=UTC)]
    assert feel("now()", **{CLOCK: "not a clock"}) is None


def test_now_and_today_without_a_clock_read_the_wall_clock():
    before = datetime.now(UTC)
    now = feel("now()")
    assert isinstance(now, datetime) and before <= now <= datetime.now(UTC)
    assert feel("today() instance of date") is True
    assert feel("now() instance of date and time") is True


def test_now_is_not_folded_at_load():
    compiled = compile_expression("now()")
    first = compiled({CLOCK: datetime(2030, 1, 1, tzinfo=UTC)})
    assert compiled({CLOCK: datetime(2031, 1, 1, tzinfo=UTC)}) != first


# the spec's table of range functions, one line per case (the TCK's 1130-feel-interval)
@pytest.mark.parametrize(("text", "expected"), [
    ("before(1, 10)", True), ("before(10, 1)", False),
    ("before(1, [1..10])", False), ("before(1, (1..10])", True), ("before([1..10], 10)", False),
    ("before([1..10), 10)", True), ("before([1..10], [10..20])", False), ("before([1..10), [10..20])", True),
    ("before([1..10], (10..20])", True), ("before([1..10], [15..20])", True),
    ("after(10, 5)", True), ("after(10, [1..10])", False), ("after(10, [1..10))", True),
    ("after([11..20], 11)", False), ("after((11..20], 11)", True), ("after([11..20], [1..11))", True),
    ("after((11..20], [1..11])", True), ("after([1..10], [11..20])", False),
    ("meets([1..5], [5..10])", True), ("meets([1..5), [5..10])", False), ("meets([1..5], [6..10])", False),
    ("met by([5..10], [1..5])", True), ("met by((5..10], [1..5])", False),
    ("overlaps([1..5], [3..8])", True), ("overlaps([3..5], [1..8])", True), ("overlaps([1..5], [5..8])", True),
    ("overlaps([1..5), [5..8])", False), ("overlaps([1..5], [6..8])", False), ("overlaps((5..8], [1..5])", False),
    ("overlaps before([1..5], [3..8])", True), ("overlaps before([1..5), (1..5])", True),
    ("overlaps before([1..5), [1..5])", False), ("overlaps before([1..5], [1..5])", False),
    ("overlaps after([3..8], [1..5])", True), ("overlaps after((1..5], [1..5))", True),
    ("overlaps after([1..5], [1..5))", False),
    ("finishes(10, [1..10])", True), ("finishes(10, [1..10))", False), ("finishes([5..10], [1..10])", True),
    ("finishes([5..10), [1..10])", False), ("finishes((1..10], [1..10])", True),
    ("finished by([1..10], 10)", True), ("finished by([1..10), 10)", False),
    ("finished by([1..10], [5..10))", False), ("finished by([1..10], (1..10])", True),
    ("includes([1..10], 5)", True), ("includes((1..10], 1)", False), ("includes([1..10), 10)", False),
    ("includes([1..10], (1..10))", True), ("includes([1..10), [5..10))", True), ("includes([1..10], 12)", False),
    ("during(5, [1..10])", True), ("during(1, (1..10])", False), ("during((1..10), [1..10])", True),
    ("during([1..10], [1..10))", False),
    ("starts(1, [1..10])", True), ("starts(1, (1..10])", False), ("starts([1..5], [1..10])", True),
    ("starts((1..5], [1..10])", False), ("starts([1..10), [1..10])", True),
    ("started by([1..10], 1)", True), ("started by([1..10], 2)", False), ("started by([1..10], [1..5])", True),
    ("started by([1..10], (1..5])", False), ("started by((1..10), (1..10))", True),
    ("coincides(5, 5)", True), ("coincides(3, 4)", False), ("coincides([1..5], [1..5])", True),
    ("coincides((1..5), [1..5])", False),
    ('before(date("2024-01-01"), [date("2024-01-02")..date("2024-02-01")])', True),
    ("before(null, 1)", None), ("meets(1, 2)", None), ('before(1, "a")', None),
    ("before(point: 1, range: [2..3])", True),
    ("includes(range: [1..10], point: 5)", True),
])
def test_interval_functions(text, expected):
    assert feel(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ('matches("abracadabra", "bra", "p")', None),  # no such flag
    ('matches("input", "pattern", [])', None),
    ('matches("Mary\\u000DJones", "Mary.Jones")', False),  # "." is no line end
    ('matches("Mary\\u000DJones", "Mary.Jones", "s")', True),
    ('matches("x", "[A-Z-[OI]]", "i")', True),  # class subtraction
    ('matches("O", "[A-Z-[OI]]")', False),
    ('matches("hello world", "hello\\ sworld", "x")', True),  # x drops whitespace, even after a backslash
    ('matches("hello world", "\\p{IsBasicLatin}+")', True),
    ('matches("abc\n", "abc$")', False),  # $ is the very end
    ('matches("a.b", ".", "q")', True),
    ('matches("abcd", "(asd)[\\1]")', None),  # XPath forbids a back-reference in a class
    ('matches("abcd", "1[asd\\0]")', None),
    ('replace("facetiously", "[iouy]", "[$0]")', "facet[i][o][u]sl[y]"),
    ('replace("abcd", "(ab)|(a)", "[1=$1][2=$2]")', "[1=ab][2=]cd"),
    ('replace("a$b", "\\$", "\\$\\$")', "a$$b"),
    ('replace("abc", "", "x")', None),  # a pattern that matches nothing cannot replace
    ('replace("abc", "b", "$")', None),
    ('split("a1b22c", "\\d+")', ["a", "b", "c"]),
    ('substring before("abc", "")', ""),
    ('substring after("abc", "")', "abc"),
    ('substring after("", "")', ""),
    ("string join(null)", None),
    ('string join(null, "X")', None),
    ('string join("a", "X")', "a"),
    ('number("1.000.000,01", ".", ",")', Decimal("1000000.01")),
    ('number("1,000,000.01", ",", ":")', None),  # not a decimal separator
    ('number("1,000,000.00", ",", ",")', None),  # the same separator twice
    ("round up(5.5, 6176)", Decimal("5.5")),
    ("round up(5.5, 6177)", None),  # past decimal128's scales
    ("round up(5.5, -6112)", None),
])
def test_string_and_number_details(text, expected):
    assert feel(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('upper case(["bob"])', "BOB"),
    ('substring(["foobar"], 4)', "bar"),
    ("abs([-3])", 3),
    ('upper case(["a", "b"])', None),  # only a list of one is its item
    ("count([5])", 1),  # a function of lists keeps the list
])
def test_a_list_of_one_is_its_item_for_a_builtin(text, expected):
    assert feel(text) == expected


def test_a_model_function_of_a_builtins_name_is_called_first():
    assert feel("{before: function(a, b) \"mine\", r: before(1, 2)}.r") == "mine"
    assert feel("{r: before(1, 2)}.r") is True
    assert feel("{t: time(\"10:00:00\"), r: t}.r") == time(10, 0)

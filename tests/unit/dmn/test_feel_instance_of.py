"""``instance of`` with FEEL's type syntax (``list<T>``, ``context<a: T>``, ``function<T> -> R``,
``range<T>``, a model's item definitions) and typed function parameters."""

from __future__ import annotations

import pytest

from engine.dmn import FeelSyntaxError, compile_expression
from engine.dmn.compiler import FeelCompileError
from engine.dmn.parser import parse_expression
from engine.dmn.typeref import TypeDef


def feel(text: str, **ctx: object) -> object:
    return compile_expression(text)(ctx)


@pytest.mark.parametrize(("text", "expected"), [
    ("123.01 instance of number", True),
    ('"foo" instance of string', True),
    ("true instance of boolean", True),
    ('date("2018-12-08") instance of date', True),
    ('date("2018-12-08") instance of date and time', False),
    ('date and time("2018-12-08T10:00:00") instance of date and time', True),
    ('date and time("2018-12-08T10:00:00") instance of date', False),
    ('time("10:30:00") instance of time', True),
    ('duration("P1D") instance of days and time duration', True),
    ('duration("P1Y") instance of years and months duration', True),
    ('duration("P1Y") instance of days and time duration', False),
    ("null instance of Any", False),
    ("null instance of number", False),
    ("null instance of Null", True),
    ("1 instance of Any", True),
    ("[1, 2, 3] instance of list<Any>", True),
    ("[1, 2, 3] instance of list<number>", True),
    ('[1, "2"] instance of list<number>', False),
    ("[1, null] instance of list<number>", True),  # null is of every type
    ("[1] instance of number", False),  # no singleton conversion here
    ("1 instance of list<Any>", False),
    ("[[1], [2]] instance of list<list<number>>", True),
    ('{a: "foo"} instance of context<a: string>', True),
    ('{a: null} instance of context<a: string>', True),
    ('{a: "123", b: 123} instance of context<a: string>', True),  # more entries are fine
    ('{b: 123} instance of context<a: string>', False),  # a missing one is not
    ('{a: "123"} instance of context<a: number>', False),
    ("{a: {b: 123}} instance of context<a: context<b: number>>", True),
    ("{a: {b: 123}} instance of context<a: context<b: string>>", False),
    ('[{a: "a", b: "b"}] instance of list<context<a: string, b: string>>', True),
    ("{a: 1} instance of context", True),
    ('(function() "foo") instance of function<>->Any', True),
    ('(function(a) "foo") instance of function<>->Any', False),  # another number of parameters
    ("(function(a, b) a + b) instance of function<number, number> -> number", True),
    ('(function() "foo") instance of Any', True),
    ("{a: 1} instance of function<> -> Any", False),
    ("[1..3] instance of range<number>", True),
    ('["a".."c"] instance of range<number>', False),
    ("(< 10) instance of range<number>", True),
    ('range("[@\\"P1D\\"..@\\"P2D\\"]") instance of range<days and time duration>', True),
    ("5 instance of number and true", True),  # ``and`` after a type is the operator
])
def test_instance_of(text, expected):
    assert feel(text) is expected


_TYPES = {
    "t255": TypeDef("t255", "number"),  # its allowed values [0..255] are no part of the type
    "tNumberList": TypeDef("tNumberList", "number", is_collection=True),
    "tAnyList": TypeDef("tAnyList", "Any", is_collection=True),
    "tPerson": TypeDef("tPerson", None, components={"name": "string", "age": "number"}),
    "tPeople": TypeDef("tPeople", "tPerson", is_collection=True),
}


@pytest.mark.parametrize(("text", "expected"), [
    ("256 instance of t255", True),
    ('"256" instance of t255', False),
    ("[1, 2, 3] instance of tNumberList", True),
    ('[1, "2"] instance of tNumberList', False),
    ("1 instance of tNumberList", False),
    ('[1, "2", date("2018-12-08")] instance of tAnyList', True),
    ("[] instance of tAnyList", True),
    ('{name: "Ada", age: 36, extra: true} instance of tPerson', True),
    ('{name: "Ada"} instance of tPerson', False),
    ('{name: "Ada", age: "36"} instance of tPerson', False),
    ('[{name: "Ada", age: 36}] instance of tPeople', True),
    ('[{name: "Ada", age: 36}] instance of list<tPerson>', True),
    ('{p: {name: "Ada", age: 36}} instance of context<p: tPerson>', True),
    ('{name: "Ada", age: 36} instance of ns.tPerson', True),  # a type of an import, by its own name
])
def test_instance_of_an_item_definition(text, expected):
    assert compile_expression(text, types=_TYPES)({}) is expected


def test_an_unknown_type_does_not_compile():
    with pytest.raises(FeelCompileError, match="unknown type 'tNope' after 'instance of'"):
        compile_expression("1 instance of tNope")
    with pytest.raises(FeelCompileError, match=r"unknown type 'list<tNope>'"):
        compile_expression("[1] instance of list<tNope>")


@pytest.mark.parametrize("text", ["1 instance of list<number", "1 instance of function<number>", "1 instance of"])
def test_a_type_that_does_not_parse(text):
    with pytest.raises(FeelSyntaxError):
        parse_expression(text)


def test_typed_parameters_check_their_arguments():
    assert feel("{f: function(arg: number) arg, r: f(10)}.r") == 10
    assert feel('{f: function(arg: number) arg, r: f("foo")}.r') is None  # a misfit is null
    assert feel("{f: function(arg: number) arg, r: f([10])}.r") == 10  # a list of one is its item
    assert feel("{f: function(arg: list<number>) arg, r: f(10)}.r") == [10]  # an item, a list of one
    assert feel("{f: function(a: string, b) b, r: f(1, 2)}.r") == 2  # an untyped parameter takes anything
    assert feel("{f: function(p: tPerson) p, r: f(1)}.r") == 1  # a type it does not know is not checked

"""FEEL expressions: what input expressions, output entries and literal-expression decisions compute."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest

from engine import dmn
from engine.dmn import YearMonthDuration


@pytest.mark.parametrize(("text", "expected"), [
    # arithmetic and precedence
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("10 - 4 - 3", 3),
    ("2 ** 3", 8),
    ("2 * 3 ** 2", 18),
    ("10 / 4", 2.5),
    ("7 / 7", 1),
    ("-5 + 2", -3),
    ("-(2 + 3)", -5),
    ("0.1 + 0.2", Decimal("0.3")),  # decimal arithmetic, as FEEL asks
    ("1.5 * 2", 3),
    ("1 / 0", None),  # division by zero is null, not an exception
    ("1 + null", None),
    ('"a" + 1', None),
    # strings
    ('"git" + "-" + "inspector"', "git-inspector"),
    ('"say \\"hi\\""', 'say "hi"'),
    # comparisons and logic (three-valued)
    ("3 > 2", True),
    ("3 <= 2", False),
    ('"a" = "a"', True),
    ("1 != 2", True),
    ("null = null", True),
    ("1 = null", False),
    ("1 < null", None),
    ('1 = "1"', None),
    ("true and false", False),
    ("true or false", True),
    ("true and null", None),
    ("false and null", False),
    ("true or null", True),
    ("not(true)", False),
    ("not(null)", None),
    # if, in, between
    ("if 5 > 3 then \"big\" else \"small\"", "big"),
    ("if null then 1 else 2", 2),
    ("3 in [1, 2, 3]", True),
    ("4 in [1, 2, 3]", False),
    ("3 in [1..5]", True),
    ("5 in (1..5)", False),
    ("5 in (1..5]", True),
    ('"b" in ("a", "b")', True),
    ("7 in (< 5, > 6)", True),
    ("5 between 1 and 10", True),
    ("11 between 1 and 10", False),
    # lists and contexts
    ("[1, 2, 3]", [1, 2, 3]),
    ("[]", []),
    ("[1, 2, 3][2]", 2),
    ("[1, 2, 3][-1]", 3),
    ("[1, 2, 3, 4][item > 2]", [3, 4]),
    ("{a: 1, b: a + 1}.b", 2),
    ('{"first name": "Ada"}.first name', "Ada"),
    ("for i in [1, 2, 3] return i * i", [1, 4, 9]),
    ("for i in 1..3 return i", [1, 2, 3]),
    ("some x in [1, 5] satisfies x > 4", True),
    ("every x in [1, 5] satisfies x > 4", False),
    ("5 instance of number", True),
    ('"5" instance of number', False),
])
def test_expression(feel, text, expected):
    assert feel(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('list contains(["a", "b"], "b")', True),
    ('list contains(["a", "b"], "c")', False),
    ("count([1, 2, 3])", 3),
    ("sum([1, 2, 3.5])", 6.5),
    ("sum(1, 2)", 3),
    ("sum([])", None),
    ("min([3, 1, 2])", 1),
    ("max(3, 1, 2)", 3),
    ('max(["b", "a"])', "b"),
    ("mean([1, 2, 3, 4])", 2.5),
    ("median([3, 1, 2])", 2),
    ("mode([1, 2, 2, 3, 3])", [2, 3]),
    ("stddev([2, 4, 7, 5])", Decimal("2.081665999466132735282297706979931")),
    ("product(2, 3, 4)", 24),
    ('contains("git-inspector", "insp")', True),
    ('starts with("feature/x", "feature")', True),
    ('ends with("a.py", ".py")', True),
    ('string length("hello")', 5),
    ('upper case("abc")', "ABC"),
    ('lower case("ABC")', "abc"),
    ('substring("foobar", 3)', "obar"),
    ('substring("foobar", 3, 2)', "ob"),
    ("abs(-4)", 4),
    ("abs(4.5)", 4.5),
    ("floor(1.7)", 1),
    ("floor(-1.2)", -2),
    ("ceiling(1.2)", 2),
    ("decimal(1.005, 2)", 1),
    ("modulo(10, 3)", 1),
    ("string(1.50)", "1.5"),
    ("string(42)", "42"),
    ("string(true)", "true"),
    ('string(date("2024-01-31"))', "2024-01-31"),
    ('number("12.5")', 12.5),
    ('number("abc")', None),
    ('date("2024-01-31")', date(2024, 1, 31)),
    ("date(2024, 1, 31)", date(2024, 1, 31)),
    ('time("10:30:00")', time(10, 30)),
    ('date and time("2024-01-31T10:30:00")', datetime(2024, 1, 31, 10, 30)),
    ('date and time(date("2024-01-31"), time("10:30:00"))', datetime(2024, 1, 31, 10, 30)),
    ('duration("P1DT2H")', timedelta(days=1, hours=2)),
    ('duration("P1Y2M")', YearMonthDuration(14)),
    ('date("2024-01-31") + duration("P1D")', date(2024, 2, 1)),
    ('date("2024-01-31") + duration("P1M")', date(2024, 2, 29)),
    ('date("2024-03-01") - date("2024-02-01")', timedelta(days=29)),
    ('date and time("2024-01-02T00:00:00") - date and time("2024-01-01T12:00:00")', timedelta(hours=12)),
    ('duration("PT1H") * 2', timedelta(hours=2)),
    ('date("2024-05-17").year', 2024),
    ('date("2024-05-17").month', 5),
    ('years and months duration(date("2020-01-15"), date("2021-03-14"))', YearMonthDuration(13)),
    ('distinct values([1, 2, 1])', [1, 2]),
    ("flatten([1, [2, [3]]])", [1, 2, 3]),
    ("reverse([1, 2, 3])", [3, 2, 1]),
    ("append([1], 2)", [1, 2]),
    ("concatenate([1], [2, 3])", [1, 2, 3]),
    ("index of([1, 2, 1], 1)", [1, 3]),
    ("sort([3, 1, 2])", [1, 2, 3]),
    ("all([true, true])", True),
    ("any([false, true])", True),
    ('split("a,b", ",")', ["a", "b"]),
    ('string join(["a", "b"], "-")', "a-b"),
    ('replace("abc", "b", "x")', "axc"),
    ('matches("abc", "^a")', True),
])
def test_builtin_function(feel, text, expected):
    assert feel(text) == expected


def test_functions_on_wrong_types_give_null(feel):
    assert feel('upper case(5)') is None
    assert feel('string length(null)') is None
    assert feel('count(null)') == 1  # count of a single (null) item: FEEL treats a non-list as a singleton
    assert feel('date("not a date" + x)', {"x": "!"}) is None


@pytest.mark.parametrize(("text", "context", "expected"), [
    ("applicant.age + 1", {"applicant": {"age": 41}}, 42),
    ("Applicant Age * 2", {"Applicant Age": 21}, 42),
    ("task.retry.backoff_sec * (failures + 1)", {"task": {"retry": {"backoff_sec": 10}}, "failures": 2}, 30),
    ("task.missing.deeper", {"task": {}}, None),
    ("orders.amount", {"orders": [{"amount": 1}, {"amount": 2}]}, [1, 2]),
    ("sum(orders.amount)", {"orders": [{"amount": 1.25}, {"amount": 2}]}, 3.25),
    ("price * quantity", {"price": 0.1, "quantity": 3}, Decimal("0.3")),
    ("unknown_variable", {}, None),
    ("if count(tags) > 0 then tags[1] else \"none\"", {"tags": ["x", "y"]}, "x"),
])
def test_expression_reads_the_context(feel, text, context, expected):
    assert feel(text, context) == expected


def test_results_are_plain_python_with_every_digit(feel):
    value = feel("1.5 * 3")
    assert value == Decimal("4.5") and type(value) is Decimal
    value = feel("1.5 * 2")
    assert value == 3 and type(value) is int
    assert type(feel("[0.5, 1]")[0]) is Decimal
    assert feel("1/3") == Decimal("0.3333333333333333333333333333333333")  # 34 digits, not a float's 17


@pytest.mark.parametrize(("text", "context", "expected"), [
    ("Date of Birth.year", {"Date of Birth": date(1990, 5, 1)}, 1990),
    ("Number of Items + 1", {"Number of Items": 2}, 3),
    ("`Age in years` * 2", {"Age in years": 21}, 42),  # a name with another keyword: quote it
    ("x instance of number", {"x": 1}, True),
])
def test_names_with_spaces_and_keywords(feel, text, context, expected):
    assert feel(text, context) == expected


# ---- function definitions, calls of function values, context keys ------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("(function(a, b) a + b)(1, 2)", 3),
    ("{add: function(a, b) a + b, r: add(2, 3)}.r", 5),
    ("{sub: function(a, b) a - b, r: sub(b: 1, a: 10)}.r", 9),
    ("{lib: {twice: function(x) x * 2}, r: lib.twice(21)}.r", 42),
    ("{f: function(x: number) x + 1, r: f(1)}.r", 2),
    ("{k: 10, f: function(x) x + k, r: f(1)}.r", 11),  # the function sees where it was defined
    ("{f: function(a, b) a, r: f(1)}.r", None),  # too few arguments: null
    ("{f: function(a) a, r: f(b: 1)}.r", None),  # not a parameter: null
    ("{count: function(l) 99, r: count([1])}.r", 99),  # a context entry shadows a built-in
    ("{r: count([1, 2])}.r", 2),
    ("sort([3, 1, 2], function(x, y) x > y)", [3, 2, 1]),
    ("sort([{r: 2}, {r: 1}], function(a, b) a.r < b.r)[1].r", 1),
])
def test_function_definitions_and_calls(feel, text, expected):
    assert feel(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('{foo bar: 1}', {"foo bar": 1}),
    ('{foo+bar: 1}', {"foo+bar": 1}),
    ('{"a b((!": 1}', {"a b((!": 1}),
    ('{"": 1}', {"": 1}),
    ('{a: 1, a: 2}', None),  # a key twice is an error in FEEL: null
    ('{a: 1}.b', None),
])
def test_context_keys(feel, text, expected):
    assert feel(text) == expected


def test_an_unknown_parameter_name_of_a_builtin_is_reported_at_load(make_dmn):
    body = ('<decision id="e" name="e"><literalExpression><text>substring(string: "abc", start: 2)'
            "</text></literalExpression></decision>")
    (warning,) = dmn.load(make_dmn(body), filename="named.dmn").load_warnings  # null at evaluation
    assert "function 'substring' has no parameter 'start'; it takes (string, start position, length)" \
        in warning.message


def test_declared_names_with_digits_hyphens_apostrophes_and_keywords(make_dmn):
    body = """
<inputData id="i1" name="Extra days case 1"><variable name="Extra days case 1" typeRef="number"/></inputData>
<inputData id="i2" name="Pre-bureau score"><variable name="Pre-bureau score" typeRef="number"/></inputData>
<inputData id="i3" name="Person's age"><variable name="Person's age" typeRef="number"/></inputData>
<inputData id="i4" name="Age in years"><variable name="Age in years" typeRef="number"/></inputData>
<inputData id="i5" name="in list values"><variable name="in list values"/></inputData>
<decision id="e" name="e"><literalExpression>
  <text>Extra days case 1 + Pre-bureau score + Person's age + Age  in years + max(Extra days case 1, 0)</text>
</literalExpression></decision>
<decision id="k" name="k"><literalExpression><text>some i in in list values satisfies i > 2</text></literalExpression>
</decision>"""
    model = dmn.load(make_dmn(body), filename="names.dmn")
    ctx = {"Extra days case 1": 1, "Pre-bureau score": 10, "Person's age": 100, "Age in years": 1000}
    assert model.evaluate("e", ctx).value == 1112
    assert model.evaluate("k", {"in list values": [1, 3]}).value is True

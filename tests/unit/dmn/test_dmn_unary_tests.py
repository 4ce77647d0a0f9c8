"""Input entries: every form of FEEL unary test a modeler types into a Camunda decision table cell."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest


@pytest.mark.parametrize(("cell", "value", "matches"), [
    # literals
    ('"git"', "git", True),
    ('"git"', "gitx", False),
    ('"git"', None, False),
    ("5", 5, True),
    ("5", 5.0, True),
    ("5", 6, False),
    ("-3", -3, True),
    ("-3", 3, False),
    ("0.1", 0.1, True),  # 0.1 from JSON is the decimal 0.1, not the binary float
    ("-2.5", -2.5, True),
    ("true", True, True),
    ("true", False, False),
    ("false", False, True),
    ("true", 1, False),  # a boolean cell does not match the number 1
    ("1", True, False),  # ... nor a number cell the boolean true
    # comparisons
    ("< 5", 4, True),
    ("< 5", 5, False),
    ("<= 5", 5, True),
    ("> 5", 5, False),
    (">= 5", 5, True),
    ("> 5", 5.5, True),
    ("<5", 4, True),
    ("= 5", 5, True),
    ("!= 5", 5, False),
    ("!= 5", 6, True),
    ('< "m"', "a", True),
    ('< "m"', "z", False),
    ("< -1.5", -2, True),
    # ranges, all four bracket styles
    ("[1..5]", 1, True),
    ("[1..5]", 5, True),
    ("[1..5]", 5.01, False),
    ("]1..5[", 1, False),
    ("]1..5[", 3, True),
    ("]1..5[", 5, False),
    ("(1..5)", 1, False),
    ("(1..5)", 4.99, True),
    ("[1..5)", 5, False),
    ("[1..5)", 1, True),
    ("(1..5]", 5, True),
    ("]1..5]", 1, False),
    ("[-5..-1]", -3, True),
    ("[0.5..1.5]", 1, True),
    ('["a".."m"]', "k", True),
    # comma lists
    ('"parse","normalize"', "normalize", True),
    ('"parse","normalize"', "git", False),
    ('"parse", "normalize"', "parse", True),
    ("1, 3, [5..7]", 6, True),
    ("1, 3, [5..7]", 4, False),
    ("< 0, > 100", 101, True),
    ("< 0, > 100", 50, False),
    # not(...)
    ("not(0)", 0, False),
    ("not(0)", 2, True),
    ('not("a", "b")', "b", False),
    ('not("a", "b")', "c", True),
    ("not([1..5])", 6, True),
    ("not(< 3)", 2, False),
    # any
    ("-", "anything", True),
    ("-", None, True),
    ("", 42, True),
    ("   ", 42, True),
    # null
    ("null", None, True),
    ("null", 0, False),
    ("< 5", None, False),  # null compared with a number is null: no match, no error
    ("[1..5]", None, False),
    ("< 5", "four", False),  # a string compared with a number: no match, no error
    # lists in a cell
    ("[1, 2, 3]", 2, True),
    ("[1, 2, 3]", 4, False),
])
def test_cell(cell_matches, cell, value, matches):
    assert cell_matches(cell, value) is matches


@pytest.mark.parametrize(("cell", "value", "context", "matches"), [
    ("< max_retries", 2, {"max_retries": 3}, True),
    ("< max_retries", 3, {"max_retries": 3}, False),
    ("< task.retry.max_retries", 1, {"task": {"retry": {"max_retries": 2}}}, True),
    ("< task.retry.max_retries", 1, {"task": {}}, False),  # the limit is null: no match
    ("= limit", 7, {"limit": 7}, True),
    ("limit", 7, {"limit": 7}, True),
    ("[low..high]", 5, {"low": 1, "high": 9}, True),
    ("[low..high]", 10, {"low": 1, "high": 9}, False),
    ("allowed", "b", {"allowed": ["a", "b"]}, True),
    ("Applicant Age", 41, {"Applicant Age": 41}, True),
    ("> Minimum Age", 41, {"Minimum Age": 18}, True),
    ("not(blocked)", "x", {"blocked": "y"}, True),
])
def test_cell_reads_other_variables(cell_matches, cell, value, context, matches):
    assert cell_matches(cell, value, context=context) is matches


@pytest.mark.parametrize(("cell", "value", "matches"), [
    ("? > 3", 4, True),
    ("? > 3", 3, False),
    ("? > 3", None, False),
    ('list contains(?, "no-retry")', ["flaky", "no-retry"], True),
    ('list contains(?, "no-retry")', ["flaky"], False),
    ('list contains(?, "no-retry")', None, False),
    ("count(?) > 1", ["a", "b"], True),
    ('starts with(?, "feat")', "feature/x", True),
    ("? in [1..3]", 2, True),
    ("? >= 1 and ? <= 3", 3, True),
    ("? >= 1 and ? <= 3", 4, False),
    ("string length(?) < 4", "abc", True),
])
def test_question_mark_is_the_input_value(cell_matches, cell, value, matches):
    assert cell_matches(cell, value) is matches


@pytest.mark.parametrize(("cell", "value", "type_ref", "matches"), [
    ('date("2024-01-01")', "2024-01-01", "date", True),
    ('> date("2024-01-01")', "2024-01-02", "date", True),
    ('> date("2024-01-01")', date(2023, 12, 31), "date", False),
    ('[date("2024-01-01")..date("2024-12-31")]', date(2024, 6, 1), "date", True),
    ('time("10:00:00")', "10:00:00", "time", True),
    ('< time("12:00:00")', time(9, 30), "time", True),
    ('date and time("2024-01-01T10:00:00")', datetime(2024, 1, 1, 10), "dateTime", True),
    ('> date and time("2024-01-01T10:00:00")', "2024-01-01T09:00:00", "dateTime", False),
    ('duration("P1D")', timedelta(days=1), "dayTimeDuration", True),
    ('> duration("PT1H")', "PT90M", "dayTimeDuration", True),
    ('< duration("P1Y")', "P11M", "yearMonthDuration", True),
    ('@"2024-01-01"', "2024-01-01", "date", True),
])
def test_temporal_cells(cell_matches, cell, value, type_ref, matches):
    assert cell_matches(cell, value, type_ref=type_ref) is matches


def test_cell_with_comma_inside_a_function_call_is_one_test(cell_matches):
    # the comma inside list contains(...) must not split the cell into two tests
    assert cell_matches('list contains(?, "x")', ["x"]) is True
    assert cell_matches('list contains(?, "x")', "x") is False


def test_input_expression_with_a_path_and_spaces(cell_matches):
    ctx = {"applicant": {"age": 30}}
    assert cell_matches(">= 18", None, context=ctx, expr="applicant.age") is True
    assert cell_matches("< 18", None, context=ctx, expr="applicant.age") is False
    assert cell_matches("[25..35]", None, context={"Applicant Age": 30}, expr="Applicant Age") is True

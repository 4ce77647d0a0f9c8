import pytest

from engine.dmn import FeelSyntaxError
from engine.process.expressions import compile_feel, from_juel, is_expression, result_for_spiff, unwrap


@pytest.mark.parametrize(("text", "scope", "expected"), [
    ("error != null", {"error": {"message": "x"}}, True),
    ("error != null", {"error": None}, False),
    ('retry.action = "retry"', {"retry": {"action": "retry"}}, True),
    ("${plugin = null}", {"plugin": None}, True),
    ("=count > 2", {"count": 3}, True),
    # Camunda 7 (JUEL) and SpiffWorkflow (Python) spellings
    ("${status == 'ok'}", {"status": "ok"}, True),
    ("${approved && amount > 1000}", {"approved": True, "amount": 5000}, True),
    ("${!approved || amount <= 10}", {"approved": True, "amount": 50}, False),
    ("${!(a == 1)}", {"a": 2}, True),
    ("name != 'a&&b'", {"name": "a&&b"}, False),
])
def test_conditions(text, scope, expected):
    assert compile_feel(text)(scope) is expected


def test_translation_leaves_strings_alone():
    assert from_juel("a == 'x && y' && !done") == 'a = "x && y"  and  not(done)'


def test_not_feel_and_not_juel_is_an_error():
    with pytest.raises(FeelSyntaxError):
        compile_feel("plugin = = null")


def test_durations_for_timers():
    value = compile_feel('duration("PT" + string(retry.backoff) + "S")')({"retry": {"backoff": 1.5}})
    assert result_for_spiff(value) == "PT1.5S"


def test_parameters_are_expressions_only_when_wrapped():
    assert is_expression("${diff.changed_files}") and not is_expression("plain text")
    assert unwrap("${ a }") == "a" and unwrap("=a") == "a" and unwrap("a == b") == "a == b"

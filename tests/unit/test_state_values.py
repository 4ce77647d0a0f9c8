"""Process data holding FEEL's values beyond Python's types survives the state journal's round trip
(a resumed task sees the very values its decisions gave)."""

import pytest

from engine.dmn import temporal
from engine.process.state import _REGISTRY


@pytest.mark.parametrize(("text", "parse"), [
    ("-2021-01-01", temporal.parse_date),
    ("12021-06-30", temporal.parse_date),
    ("-2021-01-01T10:10:10+11:00", temporal.parse_datetime),
    ("2021-01-01T10:10:10.123456789Z", temporal.parse_datetime),
    ("10:00:00.123456789", temporal.parse_time),
    ("PT0.000000001S", temporal.parse_duration),
])
def test_feel_values_beyond_pythons_types_restore_exactly(text, parse):
    value = parse(text)
    assert type(value).__module__ == "engine.dmn.temporal"  # not a Python date/time: the engine's own type
    stored = _REGISTRY.convert({"when": value, "list": [value]})
    restored = _REGISTRY.restore(stored)
    assert restored == {"when": value, "list": [value]}
    assert temporal.format_temporal(restored["when"]) == temporal.format_temporal(value)

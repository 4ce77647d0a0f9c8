"""Numbers at FEEL's limits: decimal128 (34 digits) for literals and results, never an int too large to
write as text (Python refuses to print ints of more than 4,300 digits)."""

from decimal import Decimal

import pytest

from engine.dmn import compile_expression, json_text, to_json
from engine.dmn.lexer import FeelSyntaxError


def feel(text):
    return compile_expression(text)({})


def test_a_literal_of_more_than_34_digits_is_rounded_as_decimal128():
    assert feel("1" * 40) == Decimal("1.111111111111111111111111111111111E+39")
    assert feel("0." + "9" * 5000) == 1  # rounded to 34 digits: 1.000...
    huge = feel("9" * 5000)
    assert huge == Decimal("1.000000000000000000000000000000000E+5000")
    assert json_text(to_json(huge, exact=True)) == "1.000000000000000000000000000000000E+5000"


def test_results_beyond_34_digits_stay_decimals_that_can_be_written():
    assert feel("2 ** 10") == 1024 and type(feel("2 ** 10")) is int  # exact while small
    big = feel("10 ** 5000")
    assert type(big) is Decimal and big.adjusted() == 5000
    assert feel("string(10 ** 5000)") == "1" + "0" * 5000
    assert to_json(big) == "1.000000000000000000000000000000000E+5000"  # beyond a float: its digits as text
    assert to_json(10 ** 5000, exact=True) == Decimal("1.000000000000000000000000000000000E+5000")  # a huge int


def test_a_literal_beyond_feels_range_does_not_parse():
    with pytest.raises(FeelSyntaxError, match="out of FEEL's range"):
        compile_expression("1e999999999999")

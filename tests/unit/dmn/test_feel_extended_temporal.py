"""FEEL dates and times past what Python's types hold: years before 1 and after 9999, nanoseconds,
durations finer than a microsecond; ``T24:00:00``; zone ids kept through ``string()`` and arithmetic.

Ordinary values still reach callers as ``datetime.date``/``datetime``/``time``/``timedelta``; a value
Python cannot hold reaches them as the engine's own type (``FeelDate``, ...), and JSON as its ISO text.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.dmn.temporal import (
    DayTimeDuration,
    FeelDate,
    FeelDateTime,
    FeelTime,
    YearMonthDuration,
    parse_date,
    parse_datetime,
    parse_duration,
    parse_time,
    same,
)
from engine.dmn.typeref import TypeMismatch, conform
from engine.dmn.values import to_json

# ---- years outside 1..9999 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ('string(date("-2018-12-06"))', "-2018-12-06"),
    ('string(@"-2021-01-01")', "-2021-01-01"),
    ("string(date(-2017, 12, 31))", "-2017-12-31"),
    ('string(date("999999999-12-31"))', "999999999-12-31"),
    ("string(date(-999999999, 12, 31))", "-999999999-12-31"),
    ('string(date and time("99999-12-31T11:22:33"))', "99999-12-31T11:22:33"),
    ('string(date and time("-99999-12-31T11:22:33"))', "-99999-12-31T11:22:33"),
    ('string(date("0005-03-01"))', "0005-03-01"),
])
def test_dates_of_any_year_print_back(feel, text, expected):
    assert feel(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    # years and months duration: the day clamped at the month's end, leap years of the proleptic calendar
    ('string(@"-2021-01-01T10:10:10+11:00" + @"P1M")', "-2021-02-01T10:10:10+11:00"),
    ('string(@"-2021-01-01T10:10:10+11:00" - @"P1Y")', "-2022-01-01T10:10:10+11:00"),
    ('string(@"P1Y" + @"-2021-01-01T10:10:10+11:00")', "-2020-01-01T10:10:10+11:00"),
    ('string(date("-0004-01-31") + duration("P1M"))', "-0004-02-29"),  # -4 is a leap year
    ('string(date("-0003-01-31") + duration("P1M"))', "-0003-02-28"),
    ('string(date("9999-12-31") + duration("P1D"))', "10000-01-01"),
    # days and time duration, across midnight and the year
    ('string(@"-2021-01-01T10:10:10+11:00" + @"PT1H")', "-2021-01-01T11:10:10+11:00"),
    ('string(@"-2021-01-01T10:10:10+11:00" - @"P1D")', "-2022-12-31T10:10:10+11:00"),
    ('string(date("-2018-12-31") + duration("PT25H"))', "-2017-01-01"),
    ('string(date("0001-01-01") - duration("P1D"))', "0000-12-31"),
    # between two such dates: a duration
    ('string(date("-2018-12-06") - date("-2018-12-01"))', "P5D"),
    ('string(date("2018-12-06") - date("-2018-12-06"))', "P1474119D"),  # 6 Gregorian cycles and 382 years
    ('string(years and months duration(date("2014-12-31"), date("-2019-10-01")))', "-P4033Y2M"),
    ('string(years and months duration(date and time("-2016-01-30T09:05:00"), '
     'date and time("-2017-02-28T02:02:02")))', "-P11M"),
])
def test_arithmetic_past_python_years(feel, text, expected):
    assert feel(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('date("-2018-12-06") < date("2018-12-06")', True),
    ('date("-2018-12-06") > date("-2019-12-06")', True),
    ('date("-2018-12-06") = date(-2018, 12, 6)', True),
    ('date("-2018-12-06") = date("2018-12-06")', False),
    ('date("10000-01-01") > date("9999-12-31")', True),
    ('date("0001-01-01") between date("-0001-01-01") and date("9999-12-31")', True),
    ('date("-0001-06-01") in [date("-0001-01-01")..date("0001-01-01")]', True),
    ('max([date("2020-01-01"), date("-2020-01-01"), date("12020-01-01")]) = date("12020-01-01")', True),
    ('string(sort([date("2020-01-01"), date("-2020-01-01"), date("0999-01-01")]))',
     "[date(\"-2020-01-01\"), date(\"0999-01-01\"), date(\"2020-01-01\")]"),
])
def test_comparisons_past_python_years(feel, text, expected):
    assert feel(text) == expected


def test_properties_and_calendar_functions_of_any_year(feel):
    assert feel('date("-0001-01-01").year') == -1
    assert feel('date and time("-2021-03-04T05:06:07").month') == 3
    assert feel('date and time("-2021-03-04T05:06:07").second') == 7
    # 1970-01-01 was a Thursday; the proleptic calendar goes on backwards and forwards
    assert feel('day of week(date("-0001-01-01"))') == "Friday"
    assert feel('date("-0001-01-01").weekday') == 5
    assert feel('day of year(date("-0004-12-31"))') == 366
    assert feel('month of year(date("12345-07-01"))') == "July"
    assert feel('week of year(date("10000-01-01"))') == 52


def test_a_date_python_cannot_hold_reaches_the_caller_as_the_engines_own_type(feel):
    assert feel('date("-2018-12-06")') == FeelDate(-2018, 12, 6)
    assert feel('date and time("12021-01-01T00:00:00Z")') == FeelDateTime(12021, 1, 1, 0, 0, 0, 0, UTC)
    assert to_json({"d": FeelDate(-2018, 12, 6)}) == {"d": "-2018-12-06"}
    assert to_json(FeelDateTime(-1, 1, 2, 3, 4, 5, 6, ZoneInfo("Europe/Paris"))) == \
        "-0001-01-02T03:04:05.000000006@Europe/Paris"


# ---- T24:00:00 ------------------------------------------------------------------------------------------------


def test_24_00_00_is_the_next_days_midnight(feel):
    # XML Schema, which FEEL's literals follow: 24:00:00 is the first instant of the next day
    assert feel('date and time("2021-12-31T24:00:00")') == datetime(2022, 1, 1)
    assert feel('@"2021-01-01T24:00:00" + @"PT1S"') == datetime(2021, 1, 2, 0, 0, 1)
    assert feel('@"2021-01-01T24:00:00" - @"PT1S"') == datetime(2021, 1, 1, 23, 59, 59)
    assert feel('time("24:00:00")') == time(0)
    assert feel('date and time(x)', {"x": "2017-12-31T24:00:01"}) is None
    assert feel('time(x)', {"x": "24:01:00"}) is None


# ---- nanoseconds -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ('string(time("11:22:33.123456789"))', "11:22:33.123456789"),
    ('string(date and time("2017-12-31T11:22:33.123456789"))', "2017-12-31T11:22:33.123456789"),
    ('string(date and time(date("2017-01-01"), time("23:59:01.123456789@Europe/Paris")))',
     "2017-01-01T23:59:01.123456789@Europe/Paris"),
    ('string(duration("P1DT2H3M4.123456789S"))', "P1DT2H3M4.123456789S"),
    ('string(duration("PT1000M0.999999999S"))', "PT16H40M0.999999999S"),
    ('string(time("11:22:33.444"))', "11:22:33.444"),  # no trailing zeros
    ('string(@"2021-01-01T00:00:00.000000001" + @"PT0.000000001S")', "2021-01-01T00:00:00.000000002"),
    ('string(@"2021-01-01T00:00:00.5" - @"2020-12-31T23:59:59.000000001")', "PT1.499999999S"),
    ('string(time("23:59:59.999999999") + duration("PT0.000000001S"))', "00:00:00"),
    ('string(duration("PT0.000000001S") * 3)', "PT0.000000003S"),
    ('duration("PT0.000000003S") / duration("PT0.000000001S")', 3),
    ('duration("PT0.000000001S") < duration("PT0.000000002S")', True),
    ('time(date and time(date and time("2017-08-10T10:20:00"), time("23:59:01.987654321"))) = '
     'time("23:59:01.987654321")', True),
])
def test_nanoseconds_are_kept_and_printed(feel, text, expected):
    assert feel(text) == expected


def test_date_times_and_times_compare_in_whole_seconds(feel):
    # DMN's value of a time or date and time is a number of seconds (TCK 0068-feel-equality)
    assert feel('time("10:30:00.0001") = time("10:30:00.0002")') is True
    assert feel('date and time("2018-12-08T00:00:00.0001") = date and time("2018-12-08T00:00:00")') is True
    assert feel('time("10:30:00.9") < time("10:30:01")') is True
    # subtraction is exact
    assert feel('time("10:30:00.0002") - time("10:30:00.0001")') == timedelta(microseconds=100)


def test_nanoseconds_reach_the_caller_as_the_engines_own_types(feel):
    assert feel('time("11:22:33.123456789")') == FeelTime(11, 22, 33, 123456789)
    assert feel('duration("PT0.000000001S")') == DayTimeDuration(1)
    # microseconds still fit Python's types
    assert feel('time("11:22:33.123456")') == time(11, 22, 33, 123456)
    assert feel('duration("PT0.5S")') == timedelta(seconds=0.5)


# ---- zone ids ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ('string(@"2021-01-01T10:10:10@Australia/Melbourne")', "2021-01-01T10:10:10@Australia/Melbourne"),
    ('string(@"10:30:11@Australia/Melbourne")', "10:30:11@Australia/Melbourne"),
    ('string(@"23:00:50@Etc/GMT")', "23:00:50@Etc/GMT"),  # a T in the zone id is no date-time
    ('string(time(date and time("2017-08-10T10:20:00@Europe/Paris")))', "10:20:00@Europe/Paris"),
    ('string(@"2021-01-12T10:10:10@Australia/Melbourne" + @"P1DT1H")', "2021-01-13T11:10:10@Australia/Melbourne"),
    ('string(@"2021-01-01T10:10:10@Australia/Melbourne" + @"P1M")', "2021-02-01T10:10:10@Australia/Melbourne"),
    ('string(@"-2021-01-01T10:10:10@Australia/Melbourne" - @"P1D")', "-2022-12-31T10:10:10@Australia/Melbourne"),
    ('string(@"10:15:00@Australia/Melbourne" - @"PT1H")', "09:15:00@Australia/Melbourne"),
    # adding a day-time duration moves the instant: across Paris's spring change, 24 hours are 25 on the clock
    ('string(@"2021-03-27T12:00:00@Europe/Paris" + @"PT24H")', "2021-03-28T13:00:00@Europe/Paris"),
    # ... while a month keeps the wall clock
    ('string(@"2021-03-27T12:00:00@Europe/Paris" + @"P1M")', "2021-04-27T12:00:00@Europe/Paris"),
    ('string(@"2021-01-02T10:10:10@Europe/Paris" - @"2021-01-01T10:10:10@Asia/Dhaka")', "P1DT5H"),
    ('string(@"2021-01-02" - @"2021-01-01T10:10:10@Australia/Melbourne")', "P1DT49M50S"),
    ('@"2002-04-02T12:00:00@Australia/Melbourne" = @"2002-04-02T12:00:00@Australia/Sydney"', True),
    ('date and time("2018-10-08T00:00:00+02:00") = date and time("2018-10-08T00:00:00@Europe/Paris")', True),
    ('date and time("2018-12-10T10:30:00@Etc/UTC").timezone', "Etc/UTC"),
    ('string(date and time("2018-07-10T10:30:00@Europe/Paris").time offset)', "PT2H"),
    ('date and time("2018-12-10T10:30:00+05:00").timezone', None),
    ('string(time("11:22:33+00:00"))', "11:22:33Z"),
])
def test_zone_ids_are_kept(feel, text, expected):
    assert feel(text) == expected


def test_a_value_with_a_zone_and_one_without_do_not_mix(feel):
    assert feel('@"2021-01-02T10:10:10+02:00" - @"2021-01-01T10:10:10"') is None
    assert feel('@"2021-01-01T00:00:00" - @"2021-01-02"') is None  # a date is its midnight UTC
    assert feel('@"2021-01-01T00:00:00" < @"2021-01-02T00:00:00Z"') is None
    assert feel('time("10:00:00") = time("10:00:00Z")') is None


def test_zone_ids_reach_the_caller_in_pythons_types(feel):
    value = feel('@"2021-01-01T10:10:10@Australia/Melbourne"')
    assert type(value) is datetime and value.tzinfo == ZoneInfo("Australia/Melbourne")
    assert to_json(value) == "2021-01-01T10:10:10@Australia/Melbourne"


# ---- what callers get for ordinary values ------------------------------------------------------------------


def test_ordinary_values_stay_pythons(feel):
    assert type(feel('date("2024-01-31") + duration("P1M")')) is date
    assert feel('date("2024-01-31") + duration("P1M")') == date(2024, 2, 29)
    assert type(feel('date and time("2024-01-31T10:00:00Z") + duration("PT1H")')) is datetime
    assert feel('date and time("2024-01-31T10:00:00Z") + duration("PT1H")') == datetime(2024, 1, 31, 11, tzinfo=UTC)
    assert type(feel('time("10:00:00") + duration("PT1H")')) is time
    assert type(feel('date("2024-01-02") - date("2024-01-01")')) is timedelta
    assert feel('date("2024-03-01") - date("2024-02-01")') == timedelta(days=29)
    assert feel('date and time("2024-01-01T00:00:00") + duration("-P1Y")') == datetime(2023, 1, 1)
    assert feel("x + duration(\"P1D\")", {"x": date(9999, 12, 30)}) == date(9999, 12, 31)
    # past 9999 only when the value is
    assert feel("x + duration(\"P2D\")", {"x": date(9999, 12, 30)}) == FeelDate(10000, 1, 1)


# ---- what must be null -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "context"), [
    ("date(x)", {"x": "9999999999-12-25"}),  # ten digits: past FEEL's years
    ("date(x)", {"x": "01211-12-31"}),  # a leading zero in more than four digits
    ("date(x)", {"x": "998-12-31"}),
    ("date(x)", {"x": "+2012-12-02"}),
    ("date(x)", {"x": "2017-02-29"}),
    ("date(x, 12, 1)", {"x": -1000999999}),
    ("date(2017, x, 1)", {"x": None}),
    ("date(2017, x, 1)", {"x": 1.5}),
    ("time(x)", {"x": "13:20:00+19:00"}),  # offsets stop at 18 hours
    ("time(x)", {"x": "13:20:00+02:00@Europe/Paris"}),
    ("time(x)", {"x": "13:20:00@xyz/abc"}),
    ("time(x)", {"x": "23:59:60"}),
    ("time(12, 0, x, null)", {"x": 60}),
    ("date and time(x)", {"x": "2011-12-03T10:15:30+01:00@Europe/Paris"}),
    ("duration(x)", {"x": "P1H"}),
    ("duration(x)", {"x": "PT"}),
    ("years and months duration(x, date(\"2017-01-01\"))", {"x": None}),
    ("day of week(x)", {"x": "2019-09-17"}),
    ('x + duration("P1M")', {"x": time(10)}),
    ('x - duration("P1D")', {"x": YearMonthDuration(1)}),  # durations of two kinds
])
def test_invalid_values_give_null(feel, text, context):
    assert feel(text, context) is None


def test_the_largest_and_smallest_years(feel):
    assert feel('string(date("999999999-12-31") + duration("P1D"))') is None  # past FEEL's years
    assert feel('string(date("-999999999-01-01") - duration("P1Y"))') is None
    span = feel('date and time("999999999-12-31T00:00:00Z") - date and time("-999999999-01-01T00:00:00Z")')
    assert type(span) is DayTimeDuration  # more days than timedelta holds
    assert to_json(span) == "P730484999633D"


# ---- parsing, typeRefs and is() ------------------------------------------------------------------------------


def test_parsers_choose_pythons_type_when_it_fits():
    assert parse_date("2024-01-01") == date(2024, 1, 1)
    assert parse_date("-2024-01-01") == FeelDate(-2024, 1, 1)
    assert parse_datetime("2024-01-01T10:00:00.123456Z") == datetime(2024, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert type(parse_datetime("2024-01-01T10:00:00.1234567Z")) is FeelDateTime
    assert parse_time("10:00:00@Europe/Paris") == time(10, tzinfo=ZoneInfo("Europe/Paris"))
    assert parse_duration("PT0.S") == timedelta(0)
    assert parse_duration("P999999999M") == YearMonthDuration(999999999)
    with pytest.raises(ValueError, match="is not a valid date"):
        parse_date("2017-13-10")


def test_type_refs_take_values_of_any_year():
    assert conform("-2017-01-01", "date") == FeelDate(-2017, 1, 1)
    assert conform(FeelDateTime(-2017, 1, 1, 10, 0, 0, 0), "date") == FeelDate(-2017, 1, 1)
    assert conform(FeelDate(12017, 1, 1), "dateTime") == FeelDateTime(12017, 1, 1, 0, 0, 0, 0)
    assert conform("10:00:00.000000001", "time") == FeelTime(10, 0, 0, 1)
    assert conform("PT0.000000001S", "dayTimeDuration") == DayTimeDuration(1)
    with pytest.raises(TypeMismatch):
        conform(FeelDate(-1, 1, 1), "time")


def test_same_tells_zone_ids_offsets_and_instants_apart():
    assert same(parse_time("23:00:50Z"), parse_time("23:00:50+00:00"))
    assert not same(parse_time("23:00:50@Etc/GMT"), parse_time("23:00:50Z"))
    assert not same(parse_datetime("2002-04-02T12:00:00-01:00"), parse_datetime("2002-04-02T17:00:00+04:00"))
    assert same(parse_duration("P1D"), parse_duration("PT24H"))
    assert not same(parse_duration("P0Y"), parse_duration("P0D"))
    assert same(parse_date("-2012-12-25"), FeelDate(-2012, 12, 25))

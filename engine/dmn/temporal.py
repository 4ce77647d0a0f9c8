"""FEEL's temporal values: parsing, ISO formatting, comparison and arithmetic of dates, times,
date-times and durations.

A value Python's types can hold is held in them, so callers get what they expect: ``datetime.date``,
``datetime.datetime``, ``datetime.time`` (with a ``timezone`` for an offset, a ``ZoneInfo`` for a zone
id such as ``@Europe/Paris``), ``datetime.timedelta`` for a ``days and time duration``. FEEL reaches
further than they do: years from -999,999,999 to 999,999,999 (Python: 1 to 9999), nanoseconds
(Python: microseconds), durations past 999,999,999 days. Such a value, and only such a value, is one
of the engine's own: :class:`FeelDate`, :class:`FeelDateTime`, :class:`FeelTime`,
:class:`DayTimeDuration`. The ``make_*`` functions choose. ``years and months duration`` has no
Python counterpart at all, so it is always :class:`YearMonthDuration`.

Comparison and arithmetic (:func:`compare`, :func:`add`, :func:`subtract`) read both kinds alike, as
day numbers and nanosecond counts on the proleptic Gregorian calendar. Their FEEL semantics:

- a date-time or time with an offset or zone and one without are not comparable (null);
- date-times and times compare by their value in whole seconds (DMN's ``valuedt``/``valuet``), so
  ``time("10:30:00.0001") = time("10:30:00.0002")``; subtraction is exact;
- a date in arithmetic with a date-time is that date's midnight UTC;
- ``T24:00:00`` in a date-time is the next day's midnight (XML Schema); ``time("24:00:00")`` is midnight;
- adding a days-and-time duration to a date-time with a zone id moves the instant, then reads it in
  that zone; adding years and months keeps the local time and clamps the day (Jan 31 + P1M = Feb 28/29);
- a zone id's offset in a year Python cannot hold is the offset in a year of the same place in the
  400-year Gregorian cycle (before year 1: the zone's local mean time, as its database says); a time
  with a zone id takes the zone's offset on XML Schema's reference date, 1972-12-31.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True, order=True)
class YearMonthDuration:
    """A FEEL ``years and months duration``, held as a signed number of months."""

    months: int

    @property
    def years(self) -> int:
        return int(self.months / 12)

    def isoformat(self) -> str:
        sign = "-" if self.months < 0 else ""
        years, months = divmod(abs(self.months), 12)
        if years and months:
            return f"{sign}P{years}Y{months}M"
        if years:
            return f"{sign}P{years}Y"
        return f"{sign}P{months}M"

    def __str__(self) -> str:
        return self.isoformat()


MIN_YEAR = -999_999_999
MAX_YEAR = 999_999_999
NANOS = 1_000_000_000
DAY_SECONDS = 86_400
DAY_NANOS = DAY_SECONDS * NANOS
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ONE_DAY = timedelta(days=1)
_MAX_OFFSET = 18 * 3600  # FEEL (as Java and XML Schema) allows offsets up to +-18:00
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
               "October", "November", "December")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# ---- the proleptic Gregorian calendar, any year ---------------------------------------------------------


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year: int, month: int) -> int:
    return 29 if month == 2 and is_leap(year) else _MONTH_DAYS[month]


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date (negative before it), counted in 400-year cycles of 146,097 days."""
    y = year - 1 if month <= 2 else year
    era = y // 400
    year_of_era = y - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1  # from March 1st
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """The (year, month, day) that is ``days`` after 1970-01-01: the inverse of :func:`days_from_civil`."""
    days += 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153  # March is 0
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + 3 if shifted_month < 10 else shifted_month - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


# ---- the engine's own temporal types (only for values Python's types cannot hold) ------------------------


def _year_text(year: int) -> str:
    return f"-{-year:04d}" if year < 0 else f"{year:04d}"


def _fraction_text(nanosecond: int) -> str:
    return f".{nanosecond:09d}".rstrip("0") if nanosecond else ""


def _clock_text(hour: int, minute: int, second: int, nanosecond: int) -> str:
    return f"{hour:02d}:{minute:02d}:{second:02d}{_fraction_text(nanosecond)}"


def _zone_text(value: Any) -> str:
    """``@Europe/Paris`` for a zone id, ``Z`` for UTC, ``+02:00`` for another offset, "" without a zone."""
    tz = value.tzinfo
    if tz is None:
        return ""
    if isinstance(tz, ZoneInfo):
        return f"@{tz.key}"
    seconds = offset_of(value)
    if seconds is None:
        return ""
    if seconds == 0:
        return "Z"
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


class _Ordered:
    """Python's ordering operators for the engine's own types, by FEEL's order (:func:`compare`), also
    against Python's types of the same FEEL type, so ``sorted()`` and ``min()`` work on a mix."""

    __slots__ = ()

    def _order(self, other: Any) -> Any:
        if KINDS.get(type(other)) != KINDS.get(type(self)):
            return NotImplemented
        c = compare(self, other)
        if c is None:
            raise TypeError("a value with a time zone and one without have no order")
        return c

    def __lt__(self, other: Any) -> bool:
        c = self._order(other)
        return c if c is NotImplemented else c < 0

    def __le__(self, other: Any) -> bool:
        c = self._order(other)
        return c if c is NotImplemented else c <= 0

    def __gt__(self, other: Any) -> bool:
        c = self._order(other)
        return c if c is NotImplemented else c > 0

    def __ge__(self, other: Any) -> bool:
        c = self._order(other)
        return c if c is NotImplemented else c >= 0


class _Dated(_Ordered):
    """What the engine's own dates and date-times share: ISO text as their string, and their weekday."""

    __slots__ = ()

    def isoformat(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.isoformat()

    def weekday(self) -> int:
        return weekday(self)

    def isoweekday(self) -> int:
        return weekday(self) + 1


@dataclass(frozen=True, slots=True)
class FeelDate(_Dated):
    """A FEEL date in a year Python's ``date`` cannot hold (before 1 or after 9999)."""

    year: int
    month: int
    day: int

    def isoformat(self) -> str:
        return f"{_year_text(self.year)}-{self.month:02d}-{self.day:02d}"


@dataclass(frozen=True, slots=True)
class FeelDateTime(_Dated):
    """A FEEL date and time Python's ``datetime`` cannot hold: a year before 1 or after 9999, or a
    fraction of a second finer than a microsecond. ``tzinfo`` as in ``datetime``: None, a ``timezone``
    (an offset) or a ``ZoneInfo`` (a zone id)."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    nanosecond: int
    tzinfo: tzinfo | None = None

    def date(self) -> date | FeelDate:
        return make_date(self.year, self.month, self.day)

    def utcoffset(self) -> timedelta | None:
        return time_offset(self)

    def isoformat(self) -> str:
        return (f"{_year_text(self.year)}-{self.month:02d}-{self.day:02d}T"
                f"{_clock_text(self.hour, self.minute, self.second, self.nanosecond)}{_zone_text(self)}")


@dataclass(frozen=True, slots=True)
class FeelTime(_Ordered):
    """A FEEL time with a fraction of a second finer than a microsecond (``datetime.time`` holds the rest)."""

    hour: int
    minute: int
    second: int
    nanosecond: int
    tzinfo: tzinfo | None = None

    def isoformat(self) -> str:
        return _clock_text(self.hour, self.minute, self.second, self.nanosecond) + _zone_text(self)

    def utcoffset(self) -> timedelta | None:
        return time_offset(self)

    def __str__(self) -> str:
        return self.isoformat()


@dataclass(frozen=True, slots=True)
class DayTimeDuration(_Ordered):
    """A FEEL ``days and time duration`` ``datetime.timedelta`` cannot hold (nanoseconds, or more than
    999,999,999 days), as a signed number of nanoseconds."""

    nanoseconds: int

    def isoformat(self) -> str:
        return format_day_time(self.nanoseconds)

    def __str__(self) -> str:
        return self.isoformat()

    def __neg__(self) -> timedelta | DayTimeDuration:
        return make_day_time(-self.nanoseconds)

    def __abs__(self) -> timedelta | DayTimeDuration:
        return make_day_time(abs(self.nanoseconds))


DATE, DATE_TIME, TIME = "date", "date and time", "time"
DAY_TIME, YEAR_MONTH = "days and time duration", "years and months duration"
# FEEL's type of each temporal Python type
KINDS: dict[type, str] = {date: DATE, FeelDate: DATE, datetime: DATE_TIME, FeelDateTime: DATE_TIME,
                          time: TIME, FeelTime: TIME, timedelta: DAY_TIME, DayTimeDuration: DAY_TIME,
                          YearMonthDuration: YEAR_MONTH}
OWN_TYPES = (FeelDate, FeelDateTime, FeelTime, DayTimeDuration)
_DURATIONS = (DAY_TIME, YEAR_MONTH)


def kind(value: Any) -> str | None:
    """FEEL's name for the type of a temporal value (``"date and time"``), None for anything else."""
    return KINDS.get(type(value))


# ---- building values: Python's type when it can hold the value, else the engine's own ----------------------


def make_date(year: int, month: int, day: int) -> date | FeelDate:
    """A date; ValueError when there is no such day (or the year is past FEEL's +-999,999,999)."""
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"year {year} is out of range ({MIN_YEAR}..{MAX_YEAR})")
    if not 1 <= month <= 12:
        raise ValueError(f"month {month} is out of range (1..12)")
    if not 1 <= day <= days_in_month(year, month):
        raise ValueError(f"day {day} is out of range for {_year_text(year)}-{month:02d}")
    if 1 <= year <= 9999:
        return date(year, month, day)
    return FeelDate(year, month, day)


def _check_clock(hour: int, minute: int, second: int, nanosecond: int) -> None:
    if not 0 <= hour <= 23:
        raise ValueError(f"hour {hour} is out of range (0..23)")
    if not 0 <= minute <= 59:
        raise ValueError(f"minute {minute} is out of range (0..59)")
    if not 0 <= second <= 59:
        raise ValueError(f"second {second} is out of range (0..59)")
    if not 0 <= nanosecond < NANOS:
        raise ValueError("the fraction of a second is out of range")


def make_time(hour: int, minute: int, second: int, nanosecond: int = 0,
              tz: tzinfo | None = None) -> time | FeelTime:
    _check_clock(hour, minute, second, nanosecond)
    if nanosecond % 1000 == 0:
        return time(hour, minute, second, nanosecond // 1000, tzinfo=tz)
    return FeelTime(hour, minute, second, nanosecond, tz)


def make_datetime(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
                  nanosecond: int = 0, tz: tzinfo | None = None) -> datetime | FeelDateTime:
    make_date(year, month, day)
    _check_clock(hour, minute, second, nanosecond)
    if 1 <= year <= 9999 and nanosecond % 1000 == 0:
        return datetime(year, month, day, hour, minute, second, nanosecond // 1000, tzinfo=tz)
    return FeelDateTime(year, month, day, hour, minute, second, nanosecond, tz)


def make_day_time(nanoseconds: int) -> timedelta | DayTimeDuration:
    """A days-and-time duration of so many nanoseconds: a ``timedelta`` when it can hold it."""
    if nanoseconds % 1000 == 0:
        try:
            return timedelta(microseconds=nanoseconds // 1000)
        except OverflowError:
            pass
    return DayTimeDuration(nanoseconds)


def fixed_zone(seconds: int) -> tzinfo:
    """The time zone of a fixed offset from UTC (``UTC`` itself for 0); ValueError past +-18:00."""
    if abs(seconds) > _MAX_OFFSET:
        raise ValueError("a time offset must be within -18:00..+18:00")
    return UTC if seconds == 0 else timezone(timedelta(seconds=seconds))


# ---- reading values of either kind -------------------------------------------------------------------------


def nanosecond_of(value: Any) -> int:
    """The fraction of the second of a time or date-time, in nanoseconds."""
    t = type(value)
    return value.nanosecond if t is FeelTime or t is FeelDateTime else value.microsecond * 1000  # type: ignore[no-any-return]


def day_number(value: Any) -> int:
    """Days from 1970-01-01 to a date (or to the date of a date-time)."""
    t = type(value)
    if t is date or t is datetime:
        return value.toordinal() - _EPOCH_ORDINAL  # type: ignore[no-any-return]
    return days_from_civil(value.year, value.month, value.day)


def weekday(value: Any) -> int:
    """0 for Monday .. 6 for Sunday (1970-01-01 was a Thursday)."""
    return (day_number(value) + 3) % 7


def day_of_year(value: Any) -> int:
    return day_number(value) - days_from_civil(value.year, 1, 1) + 1


def week_of_year(value: Any) -> int:
    """The ISO 8601 week number: week 1 holds the year's first Thursday."""
    days = day_number(value)
    thursday = days - weekday(value) + 3
    year = civil_from_days(thursday)[0]
    return (thursday - days_from_civil(year, 1, 1)) // 7 + 1


def date_of(value: Any) -> date | FeelDate:
    """The date of a date or date-time."""
    t = type(value)
    if t is date or t is FeelDate:
        return value  # type: ignore[no-any-return]
    if t is datetime:
        return value.date()  # type: ignore[no-any-return]
    return make_date(value.year, value.month, value.day)


def zone_offset(tz: tzinfo | None, year: int = 1972, month: int = 12, day: int = 31, hour: int = 0,
                minute: int = 0, second: int = 0) -> int | None:
    """Seconds east of UTC that ``tz`` is at that local date-time (None without a zone). A zone id's
    offset depends on the date: one Python cannot hold is read in the year of the same place in the
    400-year cycle of the calendar, a time (no date) on 1972-12-31."""
    if tz is None:
        return None
    offset: timedelta | None
    if type(tz) is timezone:
        offset = tz.utcoffset(None)
    else:  # a zone id (or another tzinfo a caller gave): its offset on that day
        if not 1 <= year <= 9999:
            year = year % 400 + (400 if year < 1 else 9600)
        offset = tz.utcoffset(datetime(year, month, day, hour, minute, second))
    return None if offset is None else int(offset.total_seconds())


def offset_of(value: Any) -> int | None:
    """The offset from UTC, in seconds, of a time or date-time (None when it has no zone)."""
    tz = value.tzinfo
    if tz is None:
        return None
    if type(value) is datetime or type(value) is FeelDateTime:
        return zone_offset(tz, value.year, value.month, value.day, value.hour, value.minute, value.second)
    return zone_offset(tz, hour=value.hour, minute=value.minute, second=value.second)


def duration_nanos(value: timedelta | DayTimeDuration) -> int:
    if type(value) is timedelta:
        return ((value.days * DAY_SECONDS + value.seconds) * 1_000_000 + value.microseconds) * 1000
    return value.nanoseconds  # type: ignore[union-attr]


def local_nanos(value: Any) -> int:
    """A date-time's wall-clock reading, as nanoseconds from 1970-01-01T00:00:00 (its zone ignored)."""
    seconds = day_number(value) * DAY_SECONDS + value.hour * 3600 + value.minute * 60 + value.second
    return seconds * NANOS + nanosecond_of(value)  # type: ignore[no-any-return]


def instant_nanos(value: Any) -> int:
    """A date-time as nanoseconds from 1970-01-01T00:00:00Z (the wall clock, without a zone); a date is
    its midnight UTC."""
    t = type(value)
    if t is date or t is FeelDate:
        return day_number(value) * DAY_NANOS
    offset = offset_of(value)
    return local_nanos(value) - (offset or 0) * NANOS


def clock_nanos(value: Any) -> int:
    """A time as nanoseconds from midnight UTC (from midnight without a zone); may pass either midnight."""
    offset = offset_of(value) or 0
    seconds = value.hour * 3600 + value.minute * 60 + value.second - offset
    return seconds * NANOS + nanosecond_of(value)  # type: ignore[no-any-return]


def _zoned(value: Any) -> bool:
    t = type(value)
    return t is date or t is FeelDate or value.tzinfo is not None


def datetime_from_local(nanoseconds: int, tz: tzinfo | None) -> datetime | FeelDateTime:
    """The date-time whose wall clock reads ``nanoseconds`` from 1970-01-01T00:00:00, in zone ``tz``."""
    days, rest = divmod(nanoseconds, DAY_NANOS)
    seconds, fraction = divmod(rest, NANOS)
    hour, rest_seconds = divmod(seconds, 3600)
    minute, second = divmod(rest_seconds, 60)
    return make_datetime(*civil_from_days(days), hour, minute, second, fraction, tz)


def datetime_from_instant(nanoseconds: int, tz: ZoneInfo) -> datetime | FeelDateTime:
    """The date-time of an instant (nanoseconds from 1970-01-01T00:00:00Z) read in zone ``tz``."""
    seconds, fraction = divmod(nanoseconds, NANOS)
    try:
        local = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)).astimezone(tz)
    except (OverflowError, ValueError):  # outside Python's years: the zone's offset in a year like it
        year, month, day = civil_from_days(seconds // DAY_SECONDS)
        rest = seconds % DAY_SECONDS
        offset = zone_offset(tz, year, month, day, rest // 3600, rest % 3600 // 60, rest % 60) or 0
        return datetime_from_local(nanoseconds + offset * NANOS, tz)
    return make_datetime(local.year, local.month, local.day, local.hour, local.minute, local.second,
                         fraction, tz)


# ---- FEEL semantics: comparison and arithmetic ---------------------------------------------------------------


def compare(a: Any, b: Any) -> int | None:
    """-1, 0 or 1 for two temporal values of the same FEEL type; None when they are not comparable
    (different types, or one with a zone and one without). Date-times and times compare in whole seconds."""
    t = type(a)
    if (t is datetime or t is time) and type(b) is t and not a.microsecond and not b.microsecond:
        za, zb = a.tzinfo, b.tzinfo  # the common case, where Python's order is FEEL's: no fraction, no zone id
        if (za is None and zb is None) or (za is not None and zb is not None and type(za) is not ZoneInfo
                                           and type(zb) is not ZoneInfo):
            return -1 if a < b else (1 if a > b else 0)
    k = KINDS.get(t)
    if k is None or k != KINDS.get(type(b)):
        return None
    if k == DATE:
        x, y = day_number(a), day_number(b)
    elif k == DATE_TIME:
        if (a.tzinfo is None) != (b.tzinfo is None):
            return None
        x, y = instant_nanos(a) // NANOS, instant_nanos(b) // NANOS
    elif k == TIME:
        if (a.tzinfo is None) != (b.tzinfo is None):
            return None
        x, y = clock_nanos(a) // NANOS, clock_nanos(b) // NANOS
    elif k == DAY_TIME:
        x, y = duration_nanos(a), duration_nanos(b)
    else:
        x, y = a.months, b.months
    return (x > y) - (x < y)


def equal(a: Any, b: Any) -> bool | None:
    c = compare(a, b)
    return None if c is None else c == 0


def negate(value: Any) -> Any:
    k = KINDS.get(type(value))
    if k == DAY_TIME:
        return make_day_time(-duration_nanos(value))
    if k == YEAR_MONTH:
        return YearMonthDuration(-value.months)
    return None


def add_months(value: Any, months: int) -> Any:
    """A date or date-time moved by whole months, keeping the time and zone; the day is clamped to the
    length of the month reached (Jan 31 + 1 month = Feb 28 or 29)."""
    year, month0 = divmod(value.year * 12 + value.month - 1 + months, 12)
    month = month0 + 1
    day = min(value.day, days_in_month(year, month))
    if KINDS.get(type(value)) == DATE:
        return make_date(year, month, day)
    return make_datetime(year, month, day, value.hour, value.minute, value.second, nanosecond_of(value),
                         value.tzinfo)


def _plus_day_time(value: Any, k: str, nanoseconds: int) -> Any:
    if k == DATE:  # a date plus a duration stays a date: the day the sum falls on, from its midnight
        year, month, day = civil_from_days(day_number(value) + nanoseconds // DAY_NANOS)
        return make_date(year, month, day)
    if k == DATE_TIME:
        if isinstance(value.tzinfo, ZoneInfo):
            return datetime_from_instant(instant_nanos(value) + nanoseconds, value.tzinfo)
        return datetime_from_local(local_nanos(value) + nanoseconds, value.tzinfo)
    if k == TIME:  # round the clock
        clock = (value.hour * 3600 + value.minute * 60 + value.second) * NANOS + nanosecond_of(value)
        seconds, fraction = divmod((clock + nanoseconds) % DAY_NANOS, NANOS)
        return make_time(seconds // 3600, seconds % 3600 // 60, seconds % 60, fraction, value.tzinfo)
    if k == DAY_TIME:
        return make_day_time(duration_nanos(value) + nanoseconds)
    return None


def add(a: Any, b: Any) -> Any:
    """``a + b`` for temporal values (None when FEEL does not define it). Raises ValueError when the
    result is past FEEL's years."""
    if type(b) is timedelta:  # the common cases, in Python's own arithmetic while it holds the result
        ta = type(a)
        try:
            if ta is datetime and type(a.tzinfo) is not ZoneInfo:
                return a + b
            if ta is date:
                return a + timedelta(days=b // _ONE_DAY)
        except OverflowError:
            pass
    ka, kb = KINDS.get(type(a)), KINDS.get(type(b))
    if ka is None or kb is None:
        return None
    if ka in _DURATIONS and kb not in _DURATIONS:
        a, b, ka, kb = b, a, kb, ka
    if kb == DAY_TIME:
        return _plus_day_time(a, ka, duration_nanos(b))
    if kb == YEAR_MONTH:
        if ka == YEAR_MONTH:
            return YearMonthDuration(a.months + b.months)
        if ka in (DATE, DATE_TIME):
            return add_months(a, b.months)
    return None


def subtract(a: Any, b: Any) -> Any:
    """``a - b`` for temporal values: a duration between two dates, date-times or times, or a value moved
    back by a duration (None when FEEL does not define it)."""
    ka, kb = KINDS.get(type(a)), KINDS.get(type(b))
    if ka is None or kb is None:
        return None
    if kb in _DURATIONS:
        if ka in _DURATIONS and ka != kb:
            return None
        return add(a, negate(b)) if ka not in _DURATIONS or ka == kb else None
    if ka == DATE and kb == DATE:
        return make_day_time((day_number(a) - day_number(b)) * DAY_NANOS)
    if ka in (DATE, DATE_TIME) and kb in (DATE, DATE_TIME):
        if _zoned(a) != _zoned(b):
            return None
        if ka == DATE_TIME and kb == DATE_TIME and a.tzinfo is None:
            return make_day_time(local_nanos(a) - local_nanos(b))
        return make_day_time(instant_nanos(a) - instant_nanos(b))
    if ka == TIME and kb == TIME:
        if (a.tzinfo is None) != (b.tzinfo is None):
            return None
        return make_day_time(clock_nanos(a) - clock_nanos(b))
    return None


def _zone_identity(tz: tzinfo | None) -> tuple[str, Any] | None:
    if tz is None:
        return None
    if isinstance(tz, ZoneInfo):
        return ("zone", tz.key)
    return ("offset", zone_offset(tz))


def same(a: Any, b: Any) -> bool:
    """Whether two temporal values are the same value of the same type, as FEEL's ``is()`` asks: unlike
    ``=``, ``12:00:00-01:00`` is not ``17:00:00+04:00``, and a zone id is not its offset (``@Etc/GMT``
    is not ``Z``); every digit of the second counts."""
    k = KINDS.get(type(a))
    if k is None or k != KINDS.get(type(b)):
        return False
    if k in (DATE_TIME, TIME):
        if _zone_identity(a.tzinfo) != _zone_identity(b.tzinfo):
            return False
        if k == DATE_TIME:
            return local_nanos(a) == local_nanos(b)
        return (a.hour, a.minute, a.second, nanosecond_of(a)) == (b.hour, b.minute, b.second, nanosecond_of(b))
    return compare(a, b) == 0


def years_and_months_between(start: Any, end: Any) -> YearMonthDuration:
    """Whole years and months from one date (or date-time) to another; only the dates count, and a
    month is whole when the end's day of the month is reached."""
    months = (end.year * 12 + end.month) - (start.year * 12 + start.month)
    if months > 0 and end.day < start.day:
        months -= 1
    elif months < 0 and end.day > start.day:
        months += 1
    return YearMonthDuration(months)


def time_offset(value: Any) -> timedelta | None:
    """The ``time offset`` property: the offset from UTC as a duration, null without a zone."""
    offset = offset_of(value)
    return None if offset is None else timedelta(seconds=offset)


def timezone_name(value: Any) -> str | None:
    """The ``timezone`` property: the zone id (``Europe/Paris``), null for an offset or no zone."""
    tz = value.tzinfo
    return tz.key if isinstance(tz, ZoneInfo) else None


def duration_part(value: Any, unit: str) -> int:
    """``days``, ``hours``, ``minutes``, ``seconds`` of a days-and-time duration, signed as it is."""
    nanoseconds = duration_nanos(value)
    sign = -1 if nanoseconds < 0 else 1
    seconds = abs(nanoseconds) // NANOS
    part = {"days": seconds // DAY_SECONDS, "hours": seconds % DAY_SECONDS // 3600,
            "minutes": seconds % 3600 // 60, "seconds": seconds % 60}[unit]
    return sign * part


# ---- parsing ---------------------------------------------------------------------------------------------------


_DATE = re.compile(r"(-?)(\d{4,9})-(\d\d)-(\d\d)")
_TIME = re.compile(r"(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d(?::\d\d)?|@[A-Za-z][A-Za-z0-9_+\-/]*)?")
_DURATION = re.compile(
    r"(-)?P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d*))?S)?)?"
)


def _zone(text: str | None) -> tzinfo | None:
    if not text:
        return None
    if text == "Z":
        return UTC
    if text.startswith("@"):
        try:
            return ZoneInfo(text[1:])
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {text[1:]!r}") from e
    sign = -1 if text[0] == "-" else 1
    parts = [int(p) for p in text[1:].split(":")]
    if parts[1] > 59 or (len(parts) > 2 and parts[2] > 59):
        raise ValueError(f"{text!r} is not a time offset")
    return fixed_zone(sign * (parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) > 2 else 0)))


def _nanos(digits: str | None) -> int:
    """``"5"`` (from ``.5``) -> 500,000,000; digits past nanoseconds are dropped."""
    return int(digits[:9].ljust(9, "0")) if digits else 0


def _date_parts(text: str) -> tuple[int, int, int]:
    m = _DATE.fullmatch(text)
    # XML Schema: four digits at least, no leading zero in more, no "-0000"
    if not m or (len(m[2]) > 4 and m[2][0] == "0") or (m[1] and int(m[2]) == 0):
        raise ValueError(f"{text!r} is not a date (expected YYYY-MM-DD)")
    year = -int(m[2]) if m[1] else int(m[2])
    return year, int(m[3]), int(m[4])


def _clock_parts(text: str) -> tuple[int, int, int, int, tzinfo | None, bool]:
    """(hour, minute, second, nanosecond, zone, whether it was 24:00:00) of ``hh:mm:ss[.f][zone]``."""
    m = _TIME.fullmatch(text)
    if not m:
        raise ValueError(f"{text!r} is not a time (expected hh:mm:ss)")
    hour, minute, second, nanosecond = int(m[1]), int(m[2]), int(m[3]), _nanos(m[4])
    end_of_day = hour == 24 and minute == 0 and second == 0 and nanosecond == 0
    if end_of_day:
        hour = 0
    _check_clock(hour, minute, second, nanosecond)
    return hour, minute, second, nanosecond, _zone(m[5]), end_of_day


def _invalid(text: str, what: str, error: ValueError) -> ValueError:
    return ValueError(f"{text!r} is not a valid {what}: {error}")


def parse_date(text: str) -> date | FeelDate:
    """``"2024-01-01"`` -> ``date(2024, 1, 1)``; ``"-2024-01-01"`` -> ``FeelDate(-2024, 1, 1)``.
    ValueError when it is not a date."""
    text = text.strip()
    parts = _date_parts(text)
    try:
        return make_date(*parts)
    except ValueError as e:
        raise _invalid(text, "date", e) from e


def parse_time(text: str) -> time | FeelTime:
    """``"10:00:00"``, ``"10:00:00.5+02:00"``, ``"10:00:00@Europe/Paris"`` -> a ``datetime.time`` (a
    :class:`FeelTime` for nanoseconds). ``24:00:00`` is midnight."""
    text = text.strip()
    try:
        hour, minute, second, nanosecond, tz, _ = _clock_parts(text)
    except ValueError as e:
        if not _TIME.fullmatch(text):
            raise
        raise _invalid(text, "time", e) from e
    return make_time(hour, minute, second, nanosecond, tz)


def parse_datetime(text: str) -> datetime | FeelDateTime:
    """``"2024-01-01T10:00:00"`` (or a bare date, meaning midnight) -> a ``datetime.datetime`` (a
    :class:`FeelDateTime` when Python's cannot hold it). ``T24:00:00`` is the next day's midnight."""
    text = text.strip()
    day, separator, clock = text.partition("T")
    year, month, dom = _date_parts(day)
    try:
        make_date(year, month, dom)
        if not separator:
            return make_datetime(year, month, dom)
        hour, minute, second, nanosecond, tz, end_of_day = _clock_parts(clock)
        if end_of_day:
            year, month, dom = civil_from_days(days_from_civil(year, month, dom) + 1)
        return make_datetime(year, month, dom, hour, minute, second, nanosecond, tz)
    except ValueError as e:
        raise _invalid(text, "date and time", e) from e


def parse_duration(text: str) -> timedelta | DayTimeDuration | YearMonthDuration:
    """ISO 8601 duration -> ``timedelta`` (days/time; a :class:`DayTimeDuration` when finer than
    microseconds) or :class:`YearMonthDuration` (years/months)."""
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration (expected ISO 8601, e.g. P1D, PT2H30M, P1Y2M)")
    sign = -1 if m[1] else 1
    day_time = any(g is not None for g in (m[4], m[5], m[6], m[7], m[8]))
    if (m[2] or m[3]) and day_time:
        raise ValueError(f"{text!r} mixes years/months with days/time; FEEL keeps those apart")
    if m[2] or m[3]:
        return YearMonthDuration(sign * (int(m[2] or 0) * 12 + int(m[3] or 0)))
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in (m[4], m[5], m[6], m[7], m[8]))
    total = (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + seconds
    return make_day_time(sign * (total * NANOS + _nanos(m[9])))


# ---- formatting --------------------------------------------------------------------------------------------------


def format_day_time(nanoseconds: int) -> str:
    """Nanoseconds as FEEL's days-and-time duration text: ``P1DT2H``, ``-PT0.5S``, ``PT0S``."""
    sign = "-" if nanoseconds < 0 else ""
    seconds, fraction = divmod(abs(nanoseconds), NANOS)
    days, rest = divmod(seconds, DAY_SECONDS)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if secs or fraction:
        clock += f"{secs}{_fraction_text(fraction)}S"
    out = f"{sign}P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "")
    return "PT0S" if out.endswith("P") else out


def format_timedelta(value: timedelta) -> str:
    """``timedelta(days=1, hours=2)`` -> ``"P1DT2H"`` (FEEL's days-and-time duration form)."""
    return format_day_time(duration_nanos(value))


def format_temporal(value: Any) -> str:
    """ISO text for any temporal value, as FEEL's ``string()`` writes it (and the ledger and JSON output
    show it): a year of more than four digits or a negative one as it is, a fraction of a second without
    trailing zeros, ``Z`` for UTC, ``@Europe/Paris`` for a zone id."""
    t = type(value)
    if t is timedelta or t is DayTimeDuration:
        return format_day_time(duration_nanos(value))
    if t is date or t is FeelDate:
        return f"{_year_text(value.year)}-{value.month:02d}-{value.day:02d}"
    if t is datetime or t is FeelDateTime:
        return (f"{_year_text(value.year)}-{value.month:02d}-{value.day:02d}T"
                f"{_clock_text(value.hour, value.minute, value.second, nanosecond_of(value))}"
                f"{_zone_text(value)}")
    if t is time or t is FeelTime:
        return _clock_text(value.hour, value.minute, value.second, nanosecond_of(value)) + _zone_text(value)
    return str(value.isoformat())

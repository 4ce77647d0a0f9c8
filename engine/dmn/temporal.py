"""FEEL's temporal values: parsing and ISO formatting of dates, times, date-times and durations.

FEEL has two duration types. ``days and time duration`` is a :class:`datetime.timedelta`;
``years and months duration`` has no Python counterpart, so it is :class:`YearMonthDuration`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
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


_DATE = re.compile(r"(-?\d{4,9})-(\d\d)-(\d\d)")
_TIME = re.compile(r"(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d(?::\d\d)?|@[A-Za-z_+\-/0-9]+)?")
_DURATION = re.compile(
    r"(-)?P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?"
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
    offset = timedelta(hours=parts[0], minutes=parts[1], seconds=parts[2] if len(parts) > 2 else 0)
    return timezone(sign * offset)


def parse_date(text: str) -> date:
    """``"2024-01-01"`` -> ``date(2024, 1, 1)``; ValueError when it is not a date."""
    m = _DATE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a date (expected YYYY-MM-DD)")
    return date(int(m[1]), int(m[2]), int(m[3]))


def parse_time(text: str) -> time:
    """``"10:00:00"``, ``"10:00:00.5+02:00"``, ``"10:00:00@Europe/Paris"`` -> a :class:`datetime.time`."""
    m = _TIME.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a time (expected hh:mm:ss)")
    micro = int((m[4] or ".0")[1:].ljust(6, "0")[:6])
    hour = int(m[1])
    if hour == 24 and int(m[2]) == 0 and int(m[3]) == 0:
        hour = 0
    return time(hour, int(m[2]), int(m[3]), micro, tzinfo=_zone(m[5]))


def parse_datetime(text: str) -> datetime:
    """``"2024-01-01T10:00:00"`` (or a bare date, meaning midnight) -> a :class:`datetime.datetime`."""
    text = text.strip()
    if "T" not in text:
        return datetime.combine(parse_date(text), time())
    day, _, clock = text.partition("T")
    return datetime.combine(parse_date(day), parse_time(clock))


def parse_duration(text: str) -> timedelta | YearMonthDuration:
    """ISO 8601 duration -> ``timedelta`` (days/time) or :class:`YearMonthDuration` (years/months)."""
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration (expected ISO 8601, e.g. P1D, PT2H30M, P1Y2M)")
    sign = -1 if m[1] else 1
    years, months = int(m[2] or 0), int(m[3] or 0)
    weeks, days, hours, minutes = (int(g or 0) for g in (m[4], m[5], m[6], m[7]))
    seconds = Decimal(m[8] or 0)
    day_time = any(g is not None for g in (m[4], m[5], m[6], m[7], m[8]))
    if (m[2] or m[3]) and day_time:
        raise ValueError(f"{text!r} mixes years/months with days/time; FEEL keeps those apart")
    if m[2] or m[3]:
        return YearMonthDuration(sign * (years * 12 + months))
    return sign * timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=float(seconds))


def format_timedelta(value: timedelta) -> str:
    """``timedelta(days=1, hours=2)`` -> ``"P1DT2H"`` (FEEL's days-and-time duration form)."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    days = value.days
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    out = f"{sign}P"
    if days:
        out += f"{days}D"
    clock = ""
    if hours:
        clock += f"{hours}H"
    if minutes:
        clock += f"{minutes}M"
    if seconds or value.microseconds:
        frac = f".{value.microseconds:06d}".rstrip("0") if value.microseconds else ""
        clock += f"{seconds}{frac}S"
    if clock:
        out += "T" + clock
    if out.endswith("P"):
        out += "T0S"
    return out


def format_temporal(value: date | time | timedelta | YearMonthDuration) -> str:
    """ISO text for any temporal value (what the ledger and JSON output show)."""
    if isinstance(value, timedelta):
        return format_timedelta(value)
    return value.isoformat()

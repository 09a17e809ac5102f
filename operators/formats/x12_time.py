"""X12 dates, times and time codes (E623, used by AT707 and G6205) -> aware UTC datetimes.

domain-notes 3.5: fixed-offset codes (`ES` = -05:00 even in July: the code says standard time),
generic zone codes (`ET`, `CT`, ...) resolved with the IANA rules for that date, `UT`/`GM`,
ISO-style `01`..`24`, and `LT` / absent = local time of the event location, which the caller
supplies (a site's timezone) or which falls back to UTC. Local readings are reported as such so
the adapter can flag `tz_assumed`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from operators.model import TimePrecision

_DATE = re.compile(r"[0-9]{8}")
_TIME = re.compile(r"([0-9]{2})([0-9]{2})(?:([0-9]{2})([0-9]{1,2})?)?")
_MIN_YEAR, _MAX_YEAR = 1900, 2999


class X12TimeError(ValueError):
    """A date, time or time code that cannot be read; the message names the element."""


def _hours(value: float) -> timezone:
    return timezone(timedelta(hours=value))


# E623 codes with a fixed UTC offset. `NS`/`ND` are Newfoundland (-03:30 / -02:30).
FIXED_OFFSETS: dict[str, timezone] = {
    "UT": UTC,
    "GM": UTC,
    "ES": _hours(-5),
    "ED": _hours(-4),
    "CS": _hours(-6),
    "CD": _hours(-5),
    "MS": _hours(-7),
    "MD": _hours(-6),
    "PS": _hours(-8),
    "PD": _hours(-7),
    "AS": _hours(-9),
    "AD": _hours(-8),
    "HS": _hours(-10),
    "HD": _hours(-9),
    "TS": _hours(-4),
    "TD": _hours(-3),
    "NS": _hours(-3.5),
    "ND": _hours(-2.5),
}
# `01`..`12` = ISO P01..P12 (east of UTC), `13`..`24` = M12..M01 (west of UTC).
FIXED_OFFSETS.update({f"{n:02d}": _hours(n) for n in range(1, 13)})
FIXED_OFFSETS.update({f"{n:02d}": _hours(n - 25) for n in range(13, 25)})

# Generic codes say the zone but not whether DST applies: the IANA rules for the date decide.
GENERIC_ZONES: dict[str, str] = {
    "ET": "America/New_York",
    "CT": "America/Chicago",
    "MT": "America/Denver",
    "PT": "America/Los_Angeles",
    "AT": "America/Anchorage",
    "HT": "Pacific/Honolulu",
    "TT": "America/Halifax",
    "NT": "America/St_Johns",
}
LOCAL_CODES = frozenset({"", "LT"})


class ResolvedTime(msgspec.Struct, frozen=True, gc=False):  # one per X12 time: a cheap Struct
    instant: datetime  # aware, UTC
    precision: TimePrecision
    zone: str  # the zone used: an E623 code's offset / IANA name, or the local fallback
    local: bool  # read as local time (code absent, `LT` or unknown): the zone is an assumption
    known_code: bool  # False when the time code is not in E623 (read as local time)
    wall: datetime  # the date and time as written, naive


def is_known_time_code(code: str) -> bool:
    return code in FIXED_OFFSETS or code in GENERIC_ZONES or code in LOCAL_CODES


def names_a_zone(code: str) -> bool:
    """True when an E623 code (stripped, upper case) says the zone itself: not local time."""
    return code in FIXED_OFFSETS or code in GENERIC_ZONES


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_x12_date(value: str, element: str) -> date:
    """CCYYMMDD (E373) -> date."""
    parsed = _valid_date(value.strip())
    return parsed if parsed is not None else _read_date(value, element)


# Dates and times repeat across messages (a day's worth of AT7s, one GS04 per batch) and their
# parse is pure: remember the valid ones. An invalid one is read again for its error message.
@lru_cache(maxsize=4096)
def _valid_date(text: str) -> date | None:
    try:
        return _read_date(text, "")
    except X12TimeError:
        return None


def _read_date(value: str, element: str) -> date:
    text = value.strip()
    if not _DATE.fullmatch(text):
        raise X12TimeError(f"{element}: date {value!r} is not CCYYMMDD")
    try:
        parsed = date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as exc:
        raise X12TimeError(f"{element}: {value!r} is not a calendar date") from exc
    if not _MIN_YEAR <= parsed.year <= _MAX_YEAR:
        raise X12TimeError(f"{element}: implausible year in {value!r}")
    return parsed


def parse_x12_time(value: str, element: str) -> tuple[time, TimePrecision]:
    """HHMM, HHMMSS, HHMMSSD or HHMMSSDD (E337) -> (time, precision)."""
    parsed = _valid_time(value.strip())
    return parsed if parsed is not None else _read_time(value, element)


@lru_cache(maxsize=4096)
def _valid_time(text: str) -> tuple[time, TimePrecision] | None:
    try:
        return _read_time(text, "")
    except X12TimeError:
        return None


def _read_time(value: str, element: str) -> tuple[time, TimePrecision]:
    text = value.strip()
    match = _TIME.fullmatch(text)
    if not match:
        raise X12TimeError(f"{element}: time {value!r} is not HHMM[SS[D[D]]]")
    hour, minute, second, decimals = match.groups()
    try:
        clock = time(
            int(hour),
            int(minute),
            int(second or 0),
            int((decimals or "0").ljust(2, "0")) * 10_000,
        )
    except ValueError as exc:
        raise X12TimeError(f"{element}: {value!r} is not a valid time of day") from exc
    if decimals:
        return clock, TimePrecision.MS
    return clock, TimePrecision.S if second else TimePrecision.MIN


def to_utc(
    date_text: str,
    time_text: str,
    time_code: str,
    *,
    local_zone: str | None,
    date_element: str,
    time_element: str,
) -> ResolvedTime:
    """Date + optional time + E623 time code -> UTC.

    An empty time means the date alone (midnight, precision `day`). A local reading (code
    absent, `LT`, or not in E623) uses `local_zone` (an IANA name, e.g. the site's timezone)
    or UTC when there is none or it is not a valid zone name.
    """
    return _to_utc(date_text, time_text, time_code, local_zone, date_element, time_element)


# Carriers resend the statuses they sent before (a cumulative 214 repeats every AT7 of the
# shipment), and the reading is pure: remember recent ones. Errors raise and are not cached.
@lru_cache(maxsize=8192)
def _to_utc(
    date_text: str, time_text: str, time_code: str, local_zone: str | None, date_element: str, time_element: str
) -> ResolvedTime:
    day = parse_x12_date(date_text, date_element)
    if time_text.strip():
        clock, precision = parse_x12_time(time_text, time_element)
    else:
        clock, precision = time(0, 0), TimePrecision.DAY
    code = time_code.strip().upper()
    zone: tzinfo | None
    if code in FIXED_OFFSETS:
        zone, zone_name, local = FIXED_OFFSETS[code], code, False
    elif code in GENERIC_ZONES:
        zone, zone_name, local = _zone(GENERIC_ZONES[code]), GENERIC_ZONES[code], False
    else:
        zone = _zone(local_zone) if local_zone else None
        zone_name, local = (local_zone or "UTC") if zone is not None else "UTC", True
    if zone is None:
        zone = UTC
    # fold=0: an ambiguous wall time in the autumn DST overlap is read as the first one.
    wall = datetime.combine(day, clock)  # the wall time as written (naive), kept for the record
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    return ResolvedTime(instant, precision, zone_name, local, is_known_time_code(code), wall)


def group_timestamp(group_date: str | None, group_time: str | None) -> datetime | None:
    """GS04 (CCYYMMDD) + GS05 (HHMM[SS[D[D]]]) read as UTC -> `recorded_at`; None if absent.

    Raises X12TimeError when present but unreadable.
    """
    if not group_date:
        return None
    return _group_timestamp(group_date, group_time)


@lru_cache(maxsize=1024)  # every set of a group asks; an error is not cached (it raises)
def _group_timestamp(group_date: str, group_time: str | None) -> datetime:
    day = parse_x12_date(group_date, "GS04")
    clock = parse_x12_time(group_time, "GS05")[0] if group_time else time(0, 0)
    return datetime.combine(day, clock, tzinfo=UTC)

"""Timestamp parsing shared by the adapters. Everything comes out timezone-aware UTC."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta

from operators.model import TimePrecision

_ODATA_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_CLOCK = re.compile(r"[^+-]*")  # the time of day before its UTC offset


class TimeParseError(ValueError):
    """A timestamp that cannot be read; the message names the value."""


def parse_iso(value: object, *, field_name: str = "time") -> tuple[datetime, TimePrecision]:
    """An ISO 8601 timestamp with an offset or `Z` -> (aware UTC datetime, precision).

    A timestamp without an offset is refused: silently reading it as UTC would invent a
    time (domain-notes 9.2). A date alone (`2024-08-05`) is midnight UTC with precision `day`.
    """
    if not isinstance(value, str) or not value:
        raise TimeParseError(f"{field_name}: expected an ISO 8601 string, got {value!r}")
    try:
        return _parse_iso_text(value)
    except TimeParseError as exc:
        raise TimeParseError(f"{field_name}: {exc}") from None


def iso_instant(text: str) -> datetime:
    """`parse_iso`'s instant of a string, without its precision and without naming a field in
    errors (for readers that fall back to a precise reader on any error).

    Not cached: a feed with many distinct timestamps (a long replay) misses any cache, and the
    usual shape (`2024-08-01T10:00:00Z`) is read by `datetime.fromisoformat` alone (it takes `Z`
    since Python 3.11); anything else goes the way `parse_iso` goes.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return _parse_iso_text(text)[0]
    if parsed.tzinfo is None or parsed.year < 1900:
        return _parse_iso_text(text)[0]  # a date alone, or an error
    return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)


# Not cached: on a long replay nearly every timestamp is new (a 65,536-entry cache missed 94 % of
# SAP and EPCIS times and held 10 MB); the readers of repeated ones (EasyPost resends, X12) keep
# their own caches of what repeats.
def _parse_iso_text(value: str) -> tuple[datetime, TimePrecision]:
    text = value.strip()
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        try:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError as exc:
            raise TimeParseError(f"bad date {value!r}") from exc
        return day, TimePrecision.DAY
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise TimeParseError(f"bad ISO 8601 timestamp {value!r}") from exc
    if parsed.utcoffset() is None:
        raise TimeParseError(f"timestamp {value!r} has no UTC offset")
    if parsed.year < 1900:
        raise TimeParseError(f"implausible year in {value!r}")
    try:
        instant = parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)  # `Z` / +00:00: already UTC
        return instant, _precision_of(text)
    except OverflowError as exc:
        raise TimeParseError(f"out-of-range timestamp {value!r}") from exc


def _precision_of(text: str) -> TimePrecision:
    # The precision depends only on where the separators are and on whether fraction digits are
    # zero: read it once per such shape (digits 1-9 -> "1"), as timestamps differ but shapes don't.
    # (bytes.translate is much cheaper than str.translate; UTF-8 keeps ASCII bytes for ASCII only.)
    return _precision_of_shape(text.encode("utf-8", "surrogatepass").translate(_NONZERO_DIGITS))


_NONZERO_DIGITS = bytes.maketrans(b"23456789", b"11111111")


@functools.lru_cache(maxsize=1024)
def _precision_of_shape(shape: bytes) -> TimePrecision:
    text = shape.decode("utf-8", "surrogatepass")
    time_part = text.partition("T")[2] or text.partition(" ")[2]
    match = _CLOCK.match(time_part)  # `[^+-]*` always matches, possibly empty
    clock = match.group() if match else time_part
    if "." in clock and clock.rpartition(".")[2].strip("0"):
        return TimePrecision.MS
    if clock.count(":") >= 2:
        return TimePrecision.S
    return TimePrecision.MIN


def parse_sap_datetime(value: object, *, field_name: str) -> tuple[datetime, TimePrecision]:
    """SAP OData v2 `/Date(1700000000000)/` (optionally `+0060` minutes) or ISO 8601."""
    if isinstance(value, str) and "/Date(" in value:
        match = _ODATA_DATE.match(value.strip())
        if match:
            millis = int(match.group(1))
            # OData v2 literals are UTC milliseconds; the optional offset only says which
            # zone the value was displayed in, it does not shift the instant.
            try:
                instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
            except OverflowError as exc:
                raise TimeParseError(f"{field_name}: out-of-range OData date {value!r}") from exc
            precision = TimePrecision.MS if millis % 1000 else TimePrecision.S
            return instant, precision
    return parse_iso(value, field_name=field_name)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def to_epoch_ms(value: datetime) -> int:
    """Milliseconds since the epoch, exact (no float rounding)."""
    return (value - _EPOCH) // _ONE_MS

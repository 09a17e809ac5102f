"""Move a simulated raw message in time: every business time in its payload, by one offset.

A live benchmark produces a scenario with current Kafka timestamps; for its SLA deadlines to fall
while it runs, the times inside each message must move with its Kafka timestamp. `shift` moves
every time the simulator writes, in every raw format, by `delta_ms`, and keeps the format of each
(the same precision, the same offset or time code), so the adapters read the message as they read
the original, with each event's times moved by `delta_ms`:

- JSON (SAP CloudEvents, EPCIS, EasyPost, snapshots): ISO 8601 times (`...Z`, `...-06:00`, naive),
  SAP OData `/Date(ms)/`, and dates alone (`PostingDate`, at their midnight);
- X12: ISA09/ISA10, GS04/GS05, W0603, G6202/G6204, AT705/AT706, W1501 (date-only elements at
  their midnight; HHMM times keep minute precision: the shifted time is truncated to the minute).

A local time is moved on its own clock (its offset or time code is kept), so a shift across a
daylight-saving change is an hour off there; the simulator's scenarios do not need better.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_ISO = re.compile(
    rb"(?P<date>\d{4}-\d{2}-\d{2})(?:T(?P<time>\d{2}:\d{2}:\d{2})(?P<fraction>\.\d{1,6})?)?"
    rb"(?P<zone>Z|[+-]\d{2}:\d{2})?(?=\")"
)
_ODATA = re.compile(rb"/Date\((?P<ms>-?\d+)\)/")
# X12 elements holding a date (CCYYMMDD, or YYMMDD in ISA09) and the element of its time (HHMM).
_X12_DATES: dict[str, tuple[tuple[int, int | None], ...]] = {
    "ISA": ((9, 10),),
    "GS": ((4, 5),),
    "W06": ((3, None),),
    "G62": ((2, 4),),
    "AT7": ((5, 6),),
    "W15": ((1, None),),
}


def shift(value: bytes, delta_ms: int) -> bytes:
    """The raw message with every business time moved by `delta_ms` (X12 or JSON, by its start)."""
    if value.startswith(b"ISA"):
        return _shift_x12(value, delta_ms)
    delta = timedelta(milliseconds=delta_ms)
    shifted = _ISO.sub(lambda match: _shift_iso(match, delta), value)
    return _ODATA.sub(lambda match: b"/Date(%d)/" % (int(match["ms"]) + delta_ms), shifted)


def _shift_iso(match: re.Match[bytes], delta: timedelta) -> bytes:
    date, clock, fraction, zone = match["date"], match["time"], match["fraction"], match["zone"]
    try:
        moment = datetime.fromisoformat((date + b"T" + (clock or b"00:00:00") + (fraction or b"")).decode())
    except ValueError:
        return match[0]  # not a time after all (a corrupted copy): left as it is
    moved = moment + delta
    if clock is None:
        return f"{moved:%Y-%m-%d}".encode() + (zone or b"")
    text = f"{moved:%Y-%m-%dT%H:%M:%S}"
    if fraction is not None:
        digits = len(fraction) - 1
        text += "." + f"{moved.microsecond:06d}"[:digits]
    return text.encode() + (zone or b"")


def _shift_x12(value: bytes, delta_ms: int) -> bytes:
    if len(value) < 106:
        return value  # no whole ISA: a fragment, left as it is
    separator = value[3:4]
    terminator = value[105:106]
    # The simulator ends segments with "~", "~\n" or "\n": split on the first character and keep
    # whatever follows it (a newline after "~") with the next segment's leading whitespace.
    segments = value.split(terminator)
    delta = timedelta(milliseconds=delta_ms)
    for index, segment in enumerate(segments):
        stripped = segment.lstrip()
        tag = stripped.split(separator, 1)[0].decode("ascii", "replace")
        positions = _X12_DATES.get(tag)
        if positions is None:
            continue
        elements = stripped.split(separator)
        for date_at, time_at in positions:
            if date_at >= len(elements) or not elements[date_at]:
                continue
            clock = elements[time_at] if time_at is not None and time_at < len(elements) else b""
            moved = _shift_x12_time(elements[date_at], clock, delta)
            if moved is None:
                continue
            elements[date_at] = moved[0]
            if time_at is not None and clock:
                elements[time_at] = moved[1]
        segments[index] = segment[: len(segment) - len(stripped)] + separator.join(elements)
    return terminator.join(segments)


def _shift_x12_time(date: bytes, clock: bytes, delta: timedelta) -> tuple[bytes, bytes] | None:
    text = date.decode("ascii", "replace")
    short = len(text) == 6  # ISA09 is YYMMDD
    time_text = clock.decode("ascii", "replace")
    try:
        day = datetime.strptime(text, "%y%m%d" if short else "%Y%m%d").replace(tzinfo=UTC)
        hours, minutes = (int(time_text[:2]), int(time_text[2:4])) if len(time_text) >= 4 else (0, 0)
        seconds = int(time_text[4:6]) if len(time_text) >= 6 else 0
    except ValueError:
        return None
    moved = day + timedelta(hours=hours, minutes=minutes, seconds=seconds) + delta
    moved_date = f"{moved:%y%m%d}" if short else f"{moved:%Y%m%d}"
    moved_clock = f"{moved:%H%M%S}" if len(time_text) >= 6 else f"{moved:%H%M}"
    return moved_date.encode(), moved_clock.encode()

"""Request parameters -> query parameters: validated, typed, never spliced into SQL.

The time range is a preset relative to the data's clock (`24h`, `7d`, `30d`, `all`) or explicit
ISO 8601 `start` / `end`. The clock is the store's own (its watermark, else the newest
received_at), not the wall clock, so a replayed store reads the same as a live one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from web import queries
from web.querylib import ParamError, QueryResult, clean_text, parse_time, run_query

PRESETS: Mapping[str, timedelta | None] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
DEFAULT_RANGE = "all"
# "all": the whole store (DateTime64(3) starts in 1900; these bound any real data).
ALL_START = datetime(1970, 1, 1, tzinfo=UTC)
ALL_END = datetime(2200, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TEXT_FILTERS = ("site", "handoff", "partner", "delivery", "q")
KNOWN = frozenset({"range", "start", "end", *TEXT_FILTERS, "refresh"})


@dataclass(frozen=True)
class DataClock:
    """How far the data goes: the clock ages are measured to, and when the pipeline last wrote."""

    as_of: datetime
    watermark: datetime | None
    last_received_at: datetime | None
    last_flush_at: datetime | None

    def as_json(self) -> dict[str, str | None]:
        return {
            "as_of": iso(self.as_of),
            "watermark": iso(self.watermark),
            "last_received_at": iso(self.last_received_at),
            "last_flush_at": iso(self.last_flush_at),
        }


def _aware(value: Any) -> datetime | None:
    """A stored time as aware UTC, None for the epoch (max() of no rows)."""
    if not isinstance(value, datetime):
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return None if aware <= _EPOCH else aware.astimezone(UTC)


def read_clock(client: Any, database: str, now: datetime) -> DataClock:
    """The data's clock; `now` (wall clock) only when the store has no events yet."""
    row = run_query(client, queries.get("data_as_of"), database, {}).records()[0]
    watermark = _aware(row["watermark"])
    last_received = _aware(row["last_received_at"])
    as_of = watermark or last_received or now
    return DataClock(as_of, watermark, last_received, _aware(row["last_flush_at"]))


def query_values(args: Mapping[str, str], clock: DataClock) -> dict[str, Any]:
    """All parameters a query may take, from the request's query string. Raises ParamError."""
    unknown = sorted(set(args) - KNOWN)
    if unknown:
        raise ParamError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN))}")
    preset = args.get("range", DEFAULT_RANGE) or DEFAULT_RANGE
    if preset not in PRESETS:
        raise ParamError(f"parameter range: {preset!r} is not one of {', '.join(PRESETS)}")
    span = PRESETS[preset]
    # the preset's end includes the clock's own instant ([start, end) is half-open)
    end = ALL_END if span is None else clock.as_of + timedelta(milliseconds=1)
    start = ALL_START if span is None else end - span
    if args.get("start"):
        start = parse_time("start", args["start"])
    if args.get("end"):
        end = parse_time("end", args["end"])
    if start >= end:
        raise ParamError(f"parameter start ({iso(start)}) must be before end ({iso(end)})")
    values: dict[str, Any] = {"start": start, "end": end, "as_of": clock.as_of}
    for name in TEXT_FILTERS:
        values[name] = clean_text(name, args.get(name, ""))
    return values


def refresh_seconds(args: Mapping[str, str], default: int) -> int:
    text = args.get("refresh", "")
    if not text:
        return default
    if not text.isdigit() or not 0 <= int(text) <= 3600:
        raise ParamError(f"parameter refresh: {text!r} is not a number of seconds from 0 (off) to 3600")
    return int(text)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jsonable(value: Any) -> Any:
    """A ClickHouse value as JSON: times as ISO 8601 UTC, numbers as numbers, the rest as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return str(value)


def result_json(result: QueryResult) -> dict[str, Any]:
    return {"columns": result.columns, "rows": [[jsonable(value) for value in row] for row in result.rows]}

"""Which zone an X12 local time is in (design.md 2.3; README "Time zones of local times").

A time whose code names a zone (`AT707` / `G6205` = `ET`, `CS`, `UT`, `05`, ...) is read in it
(`tz_rule` = `at707` / `g6205`). A local time (code `LT`, absent, or unknown; a date alone) is
read in the first zone found by these rules, and always flagged `tz_assumed`:
- `event_location`: where the event happened, `MS1` city / state / country of a 214 status;
  the warehouse's `N4` address for a 945 / 947 (after its site-master zone: see below);
- `ship_from_site`: our own site named by the set's `N1` (ship from, shipper, warehouse), by id
  (`N104`) or by name (`N102`), with its zone in `sites.csv`;
- `unresolved`: the adapter cannot know. The wall time is read as UTC for now and kept as
  `local_time` (ISO 8601, no offset): the domain re-reads it in the delivery's site zone once
  the event is correlated (design.md 3.1).
A 945 / 947 event happens at the warehouse itself: its zone in our own site master is more exact
than an address looked up in tables, so there `ship_from_site` is tried before `event_location`.
`tz_majority` = "true" marks a multi-zone state's majority zone (the city did not decide).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from operators.adapters.x12_support import SetContext
from operators.formats.places import zone_of_place
from operators.formats.x12 import Segment
from operators.formats.x12_time import ResolvedTime, X12TimeError, names_a_zone, to_utc
from operators.model import WarningKind

EVENT_LOCATION = "event_location"
SHIP_FROM_SITE = "ship_from_site"
UNRESOLVED = "unresolved"


class LocalZone(msgspec.Struct, frozen=True, gc=False):
    """The zone for local times and the rule that chose it; `zone` None = unresolved."""

    zone: str | None
    rule: str
    majority: bool = False


UNRESOLVED_ZONE = LocalZone(None, UNRESOLVED)


def site_zone(ctx: SetContext, parties: Sequence[tuple[str, str]]) -> LocalZone | None:
    """The site-master zone of the first of our sites named by (N104 id, N102 name), or None."""
    master = ctx.mapping.master
    if master.empty:
        return None
    for raw_id, name in parties:
        site = (master.site_for(raw_id) if raw_id else None) or (master.site_named(name) if name else None)
        zone = master.timezone_of(site)
        if zone:
            return LocalZone(zone, SHIP_FROM_SITE)
    return None


def location_zone(ctx: SetContext, segment: Segment, place: tuple[str, str, str]) -> LocalZone | None:
    """The zone of (city, state or province, country) as a segment gives it, or None (with a
    `time_zone` warning when the place is given but names no zone we know)."""
    if not any(place):
        return None
    found = zone_of_place(*place)
    if isinstance(found, str):
        written = ", ".join(part for part in place if part)
        ctx.warn(WarningKind.TIME_ZONE, f"{segment.describe()} location {written!r}: {found}")
        return None
    return LocalZone(found.zone, EVENT_LOCATION, found.majority)


def read_time(
    ctx: SetContext,
    segment: Segment,
    texts: tuple[str, str, str],
    elements: tuple[str, str, str],
    local: Callable[[], LocalZone],
) -> tuple[ResolvedTime, dict[str, str]]:
    """(date, time, time code) -> (the resolved time, its `tz_*` / `local_time` attributes).

    `elements` name the three elements (`AT705`, `AT706`, `AT707`) for errors and `tz_rule`;
    `local()` gives the zone for a local time (called only for one).
    """
    date_text, time_text, time_code = texts
    code = time_code.strip().upper()
    zone = None if names_a_zone(code) else local()
    try:
        resolved = to_utc(
            date_text,
            time_text,
            time_code,
            local_zone=zone.zone if zone is not None else None,
            date_element=elements[0],
            time_element=elements[1],
        )
    except X12TimeError as exc:
        raise ctx.fail(segment, str(exc)) from exc
    if zone is None:
        return resolved, {"tz_rule": elements[2].lower()}
    attributes = {"tz_rule": zone.rule, "assumed_timezone": resolved.zone}
    if zone.majority:
        attributes["tz_majority"] = "true"
    if zone.zone is None:
        attributes["local_time"] = resolved.wall.isoformat()
    if not resolved.known_code:
        unknown = f"unknown {elements[2]} time code {time_code!r}"
        ctx.warn(WarningKind.TIME_ZONE, f"{segment.describe()} {unknown}, read as local time")
    return resolved, attributes

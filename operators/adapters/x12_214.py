"""X12 214 Transportation Carrier Shipment Status -> CARRIER_STATUS / APPOINTMENT events.

design.md 2.3 "X12 214", domain-notes 3. Every AT7 with a status code (AT701) is one
CARRIER_STATUS event; an AT7 with only an appointment code (AT703) is an APPOINTMENT.
References come from B10 and L11, at set level and per LX loop (a stop's L11 may follow its
AT7s, as in the 1 EDI Source sample, so a stop is read whole before its events are made).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operators.adapters.x12_support import SetContext
from operators.adapters.x12_zones import UNRESOLVED_ZONE, LocalZone, location_zone, read_time, site_zone
from operators.formats.x12 import Segment
from operators.model import CanonicalEvent, EventTemplate, EventType, Milestone, SourceKind, WarningKind, content_id

SOURCE_FORMAT = "x12-214"

# AT701 (E1650) -> canonical milestone (design.md 2.3). Anything else is UNKNOWN, not an error.
_MILESTONES: dict[str, Milestone] = {
    **dict.fromkeys(("X3", "AF", "CP"), Milestone.PICKED_UP),
    **dict.fromkeys(("X4", "P1", "I1", "OA", "X6", "R1"), Milestone.IN_TRANSIT),
    "AJ": Milestone.OUT_FOR_DELIVERY,
    **dict.fromkeys(("X1", "X5"), Milestone.ARRIVED),
    "D1": Milestone.DELIVERED,
    **dict.fromkeys(("AH", "AP"), Milestone.DELIVERY_FAILED),
    **dict.fromkeys(("A9", "SD", "A7", "PR"), Milestone.EXCEPTION),
    "A3": Milestone.RETURNED,
    **dict.fromkeys(("AG", "X2", "AA", "B6"), Milestone.ETA),
    "CA": Milestone.CANCELLED,
    "XB": Milestone.ACKNOWLEDGED,
}
# L11 qualifiers (E128) that fill canonical reference fields.
_DELIVERY_QUALIFIERS = ("DO", "SI", "CR")  # delivery order, shipper's id (SID), customer ref
_SHIPMENT_QUALIFIERS = ("BM",)  # bill of lading
_TRACKING_QUALIFIERS = ("2I", "CN")  # tracking number, carrier's reference (PRO)
# AT703 (E1652) appointment kinds.
_APPOINTMENTS = {"AA": "pickup", "AB": "delivery"}
# E1651 has no "out for delivery" reason: carriers say it in the stop's K1 remarks instead.
_OUT_FOR_DELIVERY_PHRASES = ("OUT FOR DELIVERY", "ON VEHICLE FOR DELIVERY", "WITH DELIVERY COURIER")
# N1 entity codes (E98) that may name our own site (ship from, shipper, warehouse), by
# preference: the fallback zone of local times.
_SITE_ENTITIES = ("SF", "SH", "WH")


@dataclass
class _Status:
    at7: Segment
    ms1: Segment | None = None


@dataclass
class _Stop:
    """One LX loop (or the set header when AT7s appear before any LX)."""

    number: str
    statuses: list[_Status] = field(default_factory=list)
    refs: list[tuple[str, str]] = field(default_factory=list)  # L11 (qualifier, id)
    exceptions: list[str] = field(default_factory=list)  # Q7
    remarks: list[str] = field(default_factory=list)  # K1


@dataclass
class _Header:
    b10: Segment | None = None
    refs: list[tuple[str, str]] = field(default_factory=list)
    sites: list[tuple[int, str, str]] = field(default_factory=list)  # (preference, N104 id, N102 name)
    _ship_from: list[LocalZone | None] = field(default_factory=list)  # computed once, when needed

    def ship_from(self, ctx: SetContext) -> LocalZone | None:
        """The zone of our ship-from site (N1*SF/SH/WH by id or name), for local times."""
        if not self._ship_from:
            self._ship_from.append(site_zone(ctx, [(raw_id, name) for _, raw_id, name in sorted(self.sites)]))
        return self._ship_from[0]


def events_214(ctx: SetContext) -> list[CanonicalEvent]:
    """The events of one 214 set. Raises X12SchemaError for a set that cannot be read."""
    header, stops = _read(ctx)
    if header.b10 is None:
        raise ctx.fail(None, "B10 segment missing")
    pro, bol, scac = header.b10.els(3)
    template = EventTemplate(
        source_kind=SourceKind.CARRIER,
        source_format=SOURCE_FORMAT,
        source_system=scac or ctx.sender or "unknown",
        recorded_at=ctx.recorded_at,
        received_at=ctx.raw.received_at,
        carrier=scac or None,
        raw_ref=ctx.raw.raw_ref,
    )
    events: list[CanonicalEvent] = []
    for stop in stops:
        refs = _references(pro, bol, header.refs, stop.refs)
        # Every L11 stays visible as `ref_<qualifier>` (first value; the stop's before the set's).
        ref_attributes: dict[str, str] = {}
        for qualifier, value in stop.refs + header.refs:
            ref_attributes.setdefault(f"ref_{qualifier}", value)
        # The stop's own references are part of an AT7's identity: two identical AT7s in
        # different stops stay two events.
        stop_key = "|".join(f"{q}={v}" for q, v in sorted(stop.refs))
        for status in stop.statuses:
            event = _event(
                ctx,
                status,
                stop,
                refs=refs,
                ref_attributes=ref_attributes,
                identity=(pro, bol, scac, stop_key),
                header=header,
                template=template,
            )
            if event is not None:
                events.append(event)
    return events


def _read(ctx: SetContext) -> tuple[_Header, list[_Stop]]:
    header = _Header()
    stops: list[_Stop] = []
    for segment in ctx.tset.body:
        tag = segment.tag
        if tag == "LX":
            stops.append(_Stop(number=segment.el(1)))
            continue
        if tag == "AT7" and not stops:
            stops.append(_Stop(number=""))  # AT7 outside an LX loop: read it anyway
        stop = stops[-1] if stops else None
        if tag == "B10" and header.b10 is None:
            header.b10 = segment
        elif tag == "N1":
            entity = segment.el(1)
            if entity in _SITE_ENTITIES:
                header.sites.append((_SITE_ENTITIES.index(entity), segment.el(4), segment.el(2)))
        elif tag == "L11" and segment.el(1):
            (stop.refs if stop is not None else header.refs).append((segment.el(2), segment.el(1)))
        elif stop is None:
            continue
        elif tag == "AT7":
            stop.statuses.append(_Status(at7=segment))
        elif tag == "MS1" and stop.statuses and stop.statuses[-1].ms1 is None:
            # MS1 belongs to the AT7 of its own 0205 loop: the one just before it.
            stop.statuses[-1].ms1 = segment
        elif tag == "Q7":
            stop.exceptions.append(" ".join(e.strip() for e in segment.elements if e.strip()))
        elif tag == "K1":
            stop.remarks.append(" ".join(e.strip() for e in segment.elements if e.strip()))
    return header, stops


def _first(refs: list[tuple[str, str]], qualifiers: tuple[str, ...]) -> str | None:
    for qualifier in qualifiers:
        for ref_qualifier, value in refs:
            if ref_qualifier == qualifier:
                return value
    return None


def _references(
    pro: str, bol: str, set_refs: list[tuple[str, str]], stop_refs: list[tuple[str, str]]
) -> dict[str, str | None]:
    """delivery_id from the stop's L11 first (it is the more specific), then the set's;
    B10-01 (PRO) and B10-02 (BOL) win over L11 for tracking_number and shipment_ref.
    """
    both = stop_refs + set_refs
    return {
        "delivery_id": _first(both, _DELIVERY_QUALIFIERS),
        "shipment_ref": bol or _first(both, _SHIPMENT_QUALIFIERS),
        "tracking_number": pro or _first(both, _TRACKING_QUALIFIERS),
    }


def _event(
    ctx: SetContext,
    status: _Status,
    stop: _Stop,
    *,
    refs: dict[str, str | None],
    ref_attributes: dict[str, str],
    identity: tuple[str, str, str, str],
    header: _Header,
    template: EventTemplate,
) -> CanonicalEvent | None:
    at7 = status.at7
    # AT701..AT707, read once (missing trailing elements are "").
    status_code, status_reason, appointment_code, appointment_reason, date_text, time_text, time_code = at7.els(7)
    if status_code:
        event_type, code, reason = EventType.CARRIER_STATUS, status_code, status_reason or None
    elif appointment_code:
        event_type, code, reason = EventType.APPOINTMENT, appointment_code, appointment_reason or status_reason or None
    else:
        ctx.warn(WarningKind.SKIPPED, f"{ctx.tset.describe()} {at7.describe()} has neither AT701 nor AT703")
        return None
    if not date_text:
        raise ctx.fail(at7, "AT705 date missing")
    ms1 = status.ms1
    place = (city, region, country) = ms1.els(3) if ms1 is not None else ("", "", "")

    def local_zone() -> LocalZone:
        # AT707 LT or absent: where the status happened (MS1), else our ship-from site, else unresolved.
        at_location = location_zone(ctx, ms1, (city, region, country)) if ms1 is not None else None
        return at_location or header.ship_from(ctx) or UNRESOLVED_ZONE

    resolved, time_attributes = read_time(
        ctx, at7, (date_text, time_text, time_code), ("AT705", "AT706", "AT707"), local_zone
    )
    location = ", ".join([part for part in place if part]) or None  # MS101 city, MS102 state, MS103 country
    attributes = dict(ref_attributes)
    if stop.number:
        attributes["stop"] = stop.number
    if time_code:
        attributes["time_code"] = time_code
    attributes.update(time_attributes)
    if stop.exceptions:
        attributes["lading_exception"] = "; ".join(stop.exceptions)  # Q7
    if stop.remarks:
        attributes["remarks"] = "; ".join(stop.remarks)  # K1
    if event_type is EventType.APPOINTMENT:
        attributes["appointment"] = _APPOINTMENTS.get(code, code)
        milestone = None
    else:
        milestone = _milestone(code, stop.remarks)
    pro, bol, scac, stop_key = identity
    event_id = content_id(
        SOURCE_FORMAT,
        "214",
        pro,
        bol,
        scac,
        event_type.value,
        code,
        reason,
        date_text,
        time_text,
        time_code,
        location,
        refs["delivery_id"],
        stop_key,
    )
    return template.event(
        event_id=event_id,
        event_type=event_type,
        occurred_at=resolved.instant,
        time_precision=resolved.precision,
        tz_assumed=resolved.local,
        delivery_id=refs["delivery_id"],
        shipment_ref=refs["shipment_ref"] or None,
        tracking_number=refs["tracking_number"] or None,
        milestone=milestone,
        status_code=code,
        reason_code=reason,
        location=location,
        attributes=attributes,
    )


def _milestone(code: str, remarks: list[str]) -> Milestone:
    if code == "X6" and any(p in r.upper() for r in remarks for p in _OUT_FOR_DELIVERY_PHRASES):
        return Milestone.OUT_FOR_DELIVERY
    return _MILESTONES.get(code, Milestone.UNKNOWN)

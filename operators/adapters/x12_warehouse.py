"""X12 945 Warehouse Shipping Advice -> SHIPMENT_DISPATCHED, and X12 947 Warehouse Inventory
Adjustment Advice -> INVENTORY_ADJUSTED (design.md 2.3 "X12 945 / 947", domain-notes 4.2, 4.3).

Event ids hash the raw content (W06 / W15 references, dates, raw product ids and quantities),
never the mapped skus or the control numbers: a master-data reload or a retransmission with new
ISA13/GS06/ST02 gives the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operators.adapters.x12_support import SetContext, map_product, parse_quantity, product_ids
from operators.adapters.x12_zones import UNRESOLVED_ZONE, LocalZone, location_zone, read_time, site_zone
from operators.formats.x12 import Segment
from operators.model import CanonicalEvent, EventType, Line, SourceKind, content_id

FORMAT_945 = "x12-945"
FORMAT_947 = "x12-947"


@dataclass
class _Warehouse:
    """The N1 loop facts both sets need."""

    site_ids: dict[str, str] = field(default_factory=dict)  # N101 entity -> N104 id (first)
    parties: dict[str, str] = field(default_factory=dict)  # N101 entity -> N102 name (first)
    addresses: dict[str, Segment] = field(default_factory=dict)  # N101 entity -> its N4 (first)
    _entity: str = ""  # the N1 loop being read

    def take(self, segment: Segment) -> None:
        """An N1 (starts a party) or an N4 (the address of the party being read)."""
        if segment.tag == "N4":
            if self._entity:
                self.addresses.setdefault(self._entity, segment)
            return
        self._entity = entity = segment.el(1)
        if segment.el(4):
            self.site_ids.setdefault(entity, segment.el(4))
        if segment.el(2):
            self.parties.setdefault(entity, segment.el(2))

    def site(self, ctx: SetContext, entities: tuple[str, ...]) -> str | None:
        """The site of the first entity in `entities` that carries an N104 id, via the master."""
        for entity in entities:
            raw_id = self.site_ids.get(entity)
            if raw_id:
                return ctx.mapping.site(raw_id, f"N1*{entity} N104")
        return None

    def local_zone(self, ctx: SetContext, entities: tuple[str, ...]) -> LocalZone:
        """The zone of the warehouse's local times: its site-master zone (by N104 id or N102
        name), else its N4 address, else unresolved (x12_zones)."""
        parties = [(self.site_ids.get(entity, ""), self.parties.get(entity, "")) for entity in entities]
        found = site_zone(ctx, parties)
        if found is not None:
            return found
        for entity in entities:
            n4 = self.addresses.get(entity)
            if n4 is not None:
                city, region, _, country = n4.els(4)  # N401 city, N402 state, N403 postal code, N404 country
                at_address = location_zone(ctx, n4, (city, region, country))
                if at_address is not None:
                    return at_address
        return UNRESOLVED_ZONE


def events_945(ctx: SetContext) -> list[CanonicalEvent]:
    """One SHIPMENT_DISPATCHED per 945 set. Raises X12SchemaError for a set that cannot be read."""
    w06: Segment | None = None
    g62: Segment | None = None
    scac = ""
    header_refs: list[tuple[str, str]] = []
    plates: list[str] = []
    w12s: list[Segment] = []
    w03: Segment | None = None
    warehouse = _Warehouse()
    in_detail = False
    for segment in ctx.tset.body:
        tag = segment.tag
        if tag in ("LX", "W12"):
            in_detail = True
        if tag == "W06" and w06 is None:
            w06 = segment
        elif tag in ("N1", "N4") and not in_detail:
            warehouse.take(segment)
        elif tag == "N9" and segment.el(2):
            if not in_detail:
                header_refs.append((segment.el(1), segment.el(2)))
            elif segment.el(1) == "LV":
                plates.append(segment.el(2))  # license plate (pallet SSCC) of a line
        elif tag == "G62" and segment.el(1) == "11" and g62 is None:
            g62 = segment  # 11 = shipped on this date
        elif tag == "W27" and not scac:
            scac = segment.el(2)
        elif tag == "W12":
            w12s.append(segment)
        elif tag == "W03":
            w03 = segment
    if w06 is None:
        raise ctx.fail(None, "W06 segment missing")
    site = warehouse.site(ctx, ("WH", "SF"))

    def local_zone() -> LocalZone:
        return warehouse.local_zone(ctx, ("WH", "SF"))

    if g62 is not None and g62.el(2):
        # G62*11: G6202 date, G6204 time, G6205 time code (E623).
        when = (g62.el(2), g62.el(4), g62.el(5))
        resolved, time_attributes = read_time(ctx, g62, when, ("G6202", "G6204", "G6205"), local_zone)
    elif w06.el(3):
        # W0603 is the actual ship date, date only: midnight local time, precision day.
        when = (w06.el(3), "", "")
        resolved, time_attributes = read_time(ctx, w06, when, ("W0603", "", ""), local_zone)
    else:
        raise ctx.fail(w06, "no ship date: W0603 empty and no G62*11")
    lines, line_keys = [], []
    for w12 in w12s:
        quantity = parse_quantity(ctx, w12, 3, "W1203")  # units shipped, not W1202 ordered
        uom = w12.el(5)
        if not uom:
            raise ctx.fail(w12, "W1205 unit of measure missing")
        # Qualifier/id pairs at W1207/08 (W1208/09 in the shifted J.R. Simplot layout), W1217/18, W1221/22.
        pairs = product_ids(w12, (7, 8, 17, 21), case_code=(6, 7))
        lines.append(Line(sku=map_product(ctx, w12, pairs, "W1207/W1208"), quantity=quantity, uom=uom))
        line_keys.append(f"{pairs}|{w12.el(3)}|{uom}")
    shipment_ref = w06.el(4) or _ref(header_refs, "BM")
    attributes = {"reporting_code": w06.el(1)} if w06.el(1) else {}
    if w06.el(7):
        attributes["master_reference"] = w06.el(7)
    if plates:
        attributes["license_plates"] = ",".join(plates)
    if w03 is not None and w03.el(1):
        attributes["total_units"] = w03.el(1)
    attributes.update(time_attributes)
    event_id = content_id(FORMAT_945, "945", w06.el(2), w06.el(3), w06.el(4), w06.el(6), *when, *line_keys)
    event = CanonicalEvent(
        event_id=event_id,
        event_type=EventType.SHIPMENT_DISPATCHED,
        source_kind=SourceKind.WMS,
        source_format=FORMAT_945,
        source_system=ctx.sender or "unknown",
        occurred_at=resolved.instant,
        recorded_at=ctx.recorded_at,
        received_at=ctx.raw.received_at,
        time_precision=resolved.precision,
        tz_assumed=resolved.local,
        delivery_id=w06.el(2) or None,
        order_id=w06.el(6) or None,
        shipment_ref=shipment_ref or None,
        tracking_number=_ref(header_refs, "CN") or None,
        carrier=scac or None,
        site=site,
        lines=tuple(lines),
        raw_ref=ctx.raw.raw_ref,
        attributes=attributes,
    )
    return [event]


def _ref(refs: list[tuple[str, str]], qualifier: str) -> str:
    return next((value for ref_qualifier, value in refs if ref_qualifier == qualifier), "")


def events_947(ctx: SetContext) -> list[CanonicalEvent]:
    """INVENTORY_ADJUSTED events of a 947 set, one per adjustment reason (W1901) in order of
    first appearance, each with its W19 lines. Raises X12SchemaError for an unreadable set.
    """
    w15: Segment | None = None
    warehouse = _Warehouse()
    w19s: list[Segment] = []
    for segment in ctx.tset.body:
        if segment.tag == "W15" and w15 is None:
            w15 = segment
        elif segment.tag in ("N1", "N4"):
            warehouse.take(segment)
        elif segment.tag == "W19":
            w19s.append(segment)
    if w15 is None:
        raise ctx.fail(None, "W15 segment missing")
    if not w15.el(1):
        raise ctx.fail(w15, "W1501 adjustment date missing")
    site = warehouse.site(ctx, ("WH",))
    # W1501 is a date only: midnight local time at the warehouse, precision day.
    resolved, time_attributes = read_time(
        ctx, w15, (w15.el(1), "", ""), ("W1501", "", ""), lambda: warehouse.local_zone(ctx, ("WH",))
    )
    by_reason: dict[str, tuple[list[Line], list[str]]] = {}
    for w19 in w19s:
        reason = w19.el(1)
        quantity = parse_quantity(ctx, w19, 2, "W1902")  # signed: negative = debit
        uom = w19.el(3)
        if not uom:
            raise ctx.fail(w19, "W1903 unit of measure missing")
        pairs = product_ids(w19, (5, 7, 17), case_code=(4,))
        lines, keys = by_reason.setdefault(reason, ([], []))
        lines.append(Line(sku=map_product(ctx, w19, pairs, "W1905/W1906"), quantity=quantity, uom=uom))
        keys.append(f"{pairs}|{w19.el(2)}|{uom}")
    attributes = {"adjustment_number": w15.el(2)} if w15.el(2) else {}
    if w15.el(3):
        attributes["depositor_adjustment_number"] = w15.el(3)
    if "DE" in warehouse.parties:
        attributes["depositor"] = warehouse.parties["DE"]
    attributes.update(time_attributes)
    events = []
    for reason, (lines, keys) in by_reason.items():
        events.append(
            CanonicalEvent(
                event_id=content_id(FORMAT_947, "947", w15.el(1), w15.el(2), w15.el(3), reason, *keys),
                event_type=EventType.INVENTORY_ADJUSTED,
                source_kind=SourceKind.WMS,
                source_format=FORMAT_947,
                source_system=ctx.sender or "unknown",
                occurred_at=resolved.instant,
                recorded_at=ctx.recorded_at,
                received_at=ctx.raw.received_at,
                time_precision=resolved.precision,
                tz_assumed=resolved.local,
                site=site,
                reason_code=reason or None,
                lines=tuple(lines),
                raw_ref=ctx.raw.raw_ref,
                attributes=dict(attributes),
            )
        )
    return events

"""SAP S/4HANA business events (CloudEvents 1.0 JSON) -> canonical events (design.md 2.3).

The envelope (`specversion`, `type`, `source`, `id`, `time`) is validated first; `data` is read
as a full-after-image with OData field names (domain-notes 5). Five event types carry logistics
meaning; every other type is a valid message without it and is ignored (counted), like the
BusinessPartner events of the public samples.

| `type` (suffix match, a customer namespace prefix is tolerated) | canonical |
|---|---|
| `...SalesOrder.Created.v1` | ORDER_CREATED |
| `...OutboundDelivery.Created.v1` | ORDER_RELEASED (with lines) |
| `...OutboundDelivery.Changed.v1`, `OverallGoodsMovementStatus` = `C` | GOODS_ISSUE_POSTED |
| `...BillingDocument.Created.v1` | INVOICE_POSTED |
| `...MaterialDocument.Created.v1` | GOODS_RECEIVED (101), INVENTORY_ADJUSTED (701 +, 702 / 551 -) |
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import NamedTuple

from operators.adapters.common import decode_json, describe, opt_str, schema_error
from operators.adapters.mapping import MasterMapping
from operators.formats.timeparse import parse_iso, parse_sap_datetime
from operators.master import MasterData
from operators.model import (
    AdapterResult,
    CanonicalEvent,
    DeadLetterReason,
    EventType,
    Line,
    RawMessage,
    SourceKind,
    TimePrecision,
    WarningKind,
    dead,
    ignored,
    ok,
)

ADAPTER = "sap_ce"
SOURCE_FORMAT = "sap-ce"

SALES_ORDER_CREATED = "sap.s4.beh.salesorder.v1.SalesOrder.Created.v1"
DELIVERY_CREATED = "sap.s4.beh.outbounddelivery.v1.OutboundDelivery.Created.v1"
DELIVERY_CHANGED = "sap.s4.beh.outbounddelivery.v1.OutboundDelivery.Changed.v1"
BILLING_CREATED = "sap.s4.beh.billingdocument.v1.BillingDocument.Created.v1"
MATERIAL_DOCUMENT_CREATED = "sap.s4.beh.materialdocument.v1.MaterialDocument.Created.v1"

# Movement type (GoodsMovementType) -> (event type, sign). 601 (GI for delivery) and 602 (its
# reversal) are deliberately absent: the delivery's GOODS_ISSUE_POSTED already counts them.
MOVEMENT_TYPES: Mapping[str, tuple[EventType, int]] = {
    "101": (EventType.GOODS_RECEIVED, 1),
    "701": (EventType.INVENTORY_ADJUSTED, 1),
    "702": (EventType.INVENTORY_ADJUSTED, -1),
    "551": (EventType.INVENTORY_ADJUSTED, -1),
}

# Goods issue for a delivery (601) and its reversal (602): counted by GOODS_ISSUE_POSTED.
_COUNTED_BY_GOODS_ISSUE = frozenset({"601", "602"})

# Item fields read as a line: (material, quantity, unit).
_DELIVERY_LINE = ("Material", "ActualDeliveryQuantity", "DeliveryQuantityUnit")
_MOVEMENT_LINE = ("Material", "QuantityInEntryUnit", "EntryUnit")

# Goods-movement status of the delivery header: A not started, B partial, C complete.
_GOODS_ISSUE_COMPLETE = "C"

_Json = Mapping[str, object]
_Timed = tuple[datetime, TimePrecision]


class _Invalid(Exception):
    """A required field is missing or has the wrong type; the message names the field."""


class _Envelope(NamedTuple):  # a tuple: cheaper to make than a frozen dataclass, one per message
    ce_id: str
    type: str
    source: str
    time: _Timed
    data: object


def adapt_sap(raw: RawMessage, master: MasterData) -> AdapterResult:
    """One CloudEvent -> events of its type, an ignore (other types) or a dead letter."""
    doc, failure = decode_json(raw, ADAPTER)
    if failure is not None:
        return failure
    if not isinstance(doc, dict):
        return schema_error(raw, ADAPTER, f"CloudEvent: expected a JSON object, got {type(doc).__name__}")
    version = doc.get("specversion")
    if isinstance(version, str) and version.strip() and version != "1.0":
        # A well-formed envelope of another CloudEvents version: we only map 1.0.
        return dead(raw, DeadLetterReason.UNSUPPORTED, ADAPTER, f"specversion {version!r}: only '1.0'")
    try:
        envelope = _read_envelope(doc)
    except _Invalid as exc:
        return schema_error(raw, ADAPTER, f"CloudEvent: {exc}")
    handler = _handler_for(envelope.type)
    if handler is None:
        return ignored(f"unsupported event type {envelope.type}")
    try:
        if not isinstance(envelope.data, dict):
            raise _Invalid(f"data: expected an object, got {describe(envelope.data)}")
        return handler(_Context(envelope, envelope.data, raw, master))
    except _Invalid as exc:
        return schema_error(raw, ADAPTER, f"{_short_type(envelope.type)} {envelope.ce_id}: {exc}")


def _read_envelope(doc: _Json) -> _Envelope:
    if doc.get("specversion") != "1.0":
        raise _Invalid(f"specversion: expected '1.0', got {doc.get('specversion')!r}")
    fields: dict[str, str] = {}
    for name in ("type", "source", "id", "time"):
        value = doc.get(name)
        if not isinstance(value, str) or not value.strip():
            raise _Invalid(f"{name}: expected a non-empty string, got {describe(value)}")
        fields[name] = value.strip()
    try:
        time = parse_iso(fields["time"], field_name="time")
    except (ValueError, OverflowError) as exc:  # TimeParseError is a ValueError
        raise _Invalid(str(exc)) from exc
    return _Envelope(fields["id"], fields["type"], fields["source"], time, doc.get("data"))


class _Context:
    """One event being mapped: the envelope, its `data`, and the master-data mapping (with the
    warnings collected so far)."""

    def __init__(self, envelope: _Envelope, data: _Json, raw: RawMessage, master: MasterData) -> None:
        self.envelope = envelope
        self.data = data
        self.raw = raw
        self.mapping = MasterMapping(master)

    def event(
        self,
        event_type: EventType,
        occurred: _Timed,
        *,
        discriminator: str | None = None,
        delivery_id: str | None = None,
        order_id: str | None = None,
        site: str | None = None,
        reason_code: str | None = None,
        lines: tuple[Line, ...] = (),
        attributes: dict[str, str] | None = None,
    ) -> CanonicalEvent:
        event_id = f"sap:{self.envelope.ce_id}"
        if discriminator is not None:
            event_id = f"{event_id}#{discriminator}"
        return CanonicalEvent(
            event_id=event_id,
            event_type=event_type,
            source_kind=SourceKind.ERP,
            source_format=SOURCE_FORMAT,
            source_system=self.envelope.source,
            occurred_at=occurred[0],
            recorded_at=self.envelope.time[0],  # CloudEvent `time`: when S/4 raised the event
            received_at=self.raw.received_at,
            time_precision=occurred[1],
            delivery_id=delivery_id,
            order_id=order_id,
            site=site,
            reason_code=reason_code,
            lines=lines,
            raw_ref=self.raw.raw_ref,
            attributes=attributes or {},
        )

    def required(self, name: str, data: _Json | None = None, where: str = "data") -> str:
        found = (self.data if data is None else data).get(name)
        value = opt_str(found)
        if value is None:
            raise _Invalid(f"{where}.{name}: required, got {describe(found)}")
        return value

    def occurred(self, name: str) -> _Timed:
        """`data.<name>` (ISO 8601 or `/Date(ms)/`), else the CloudEvent `time`."""
        value = self.data.get(name)
        if value is None or value == "":
            return self.envelope.time
        try:
            return parse_sap_datetime(value, field_name=f"data.{name}")
        except (ValueError, OverflowError) as exc:  # TimeParseError is a ValueError
            raise _Invalid(str(exc)) from exc

    def line(self, item: _Json, where: str, names: tuple[str, str, str], sign: int | None = None) -> Line:
        """A line from an item; with `sign`, the quantity is a movement signed by its movement type
        (OData quantities are unsigned, the direction is the movement type's)."""
        material, quantity, unit = names
        sku = self.mapping.sku(self.required(material, item, where), lambda: f"{where}.{material}")
        amount = _quantity(item.get(quantity), f"{where}.{quantity}")
        uom = self.required(unit, item, where)
        return Line(sku=sku, quantity=amount if sign is None else sign * abs(amount), uom=uom)


def _sales_order_created(ctx: _Context) -> AdapterResult:
    order_id = ctx.required("SalesOrder")
    return ok([ctx.event(EventType.ORDER_CREATED, ctx.occurred("CreationDateTime"), order_id=order_id)])


def _delivery_event(ctx: _Context, event_type: EventType, occurred: _Timed) -> AdapterResult:
    # OData's own key is DeliveryDocument; the business event names it OutboundDelivery.
    delivery_id = opt_str(ctx.data.get("OutboundDelivery")) or opt_str(ctx.data.get("DeliveryDocument"))
    if delivery_id is None:
        raise _Invalid(f"data.OutboundDelivery: required, got {describe(ctx.data.get('OutboundDelivery'))}")
    items = _items(ctx.data.get("to_DeliveryDocumentItem"), "data.to_DeliveryDocumentItem")
    lines = tuple(
        ctx.line(item, f"data.to_DeliveryDocumentItem[{index}]", _DELIVERY_LINE) for index, item in enumerate(items)
    )
    # The header has no SalesOrder in API_OUTBOUND_DELIVERY_SRV; items reference it instead.
    order_id = opt_str(ctx.data.get("SalesOrder"))
    if order_id is None:
        references = {opt_str(item.get("ReferenceSDDocument")) for item in items} - {None}
        order_id = references.pop() if len(references) == 1 else None
    shipping_point = opt_str(ctx.data.get("ShippingPoint"))
    site = ctx.mapping.site(shipping_point, "data.ShippingPoint") if shipping_point else None
    event = ctx.event(event_type, occurred, delivery_id=delivery_id, order_id=order_id, site=site, lines=lines)
    return ok([event], ctx.mapping.warnings)


def _delivery_created(ctx: _Context) -> AdapterResult:
    return _delivery_event(ctx, EventType.ORDER_RELEASED, ctx.occurred("CreationDateTime"))


def _delivery_changed(ctx: _Context) -> AdapterResult:
    status = opt_str(ctx.data.get("OverallGoodsMovementStatus"))
    if status != _GOODS_ISSUE_COMPLETE:
        # A (not started) / B (partial) or another change: no completed goods issue yet.
        return ignored(f"OutboundDelivery.Changed with OverallGoodsMovementStatus {status!r}: no goods issue")
    return _delivery_event(ctx, EventType.GOODS_ISSUE_POSTED, ctx.occurred("ActualGoodsMovementDateTime"))


def _billing_created(ctx: _Context) -> AdapterResult:
    billing_document = ctx.required("BillingDocument")
    attributes = {"billing_document": billing_document}
    billing_type = opt_str(ctx.data.get("BillingDocumentType"))
    if billing_type:
        attributes["billing_document_type"] = billing_type
    event = ctx.event(
        EventType.INVOICE_POSTED,
        ctx.occurred("CreationDateTime"),
        delivery_id=opt_str(ctx.data.get("ReferenceSDDocument")),
        order_id=opt_str(ctx.data.get("SalesOrder")),
        attributes=attributes,
    )
    return ok([event])


def _material_document_created(ctx: _Context) -> AdapterResult:
    document = ctx.required("MaterialDocument")
    raw_items = ctx.data.get("items")
    where = "data.items"
    if raw_items is None and "to_MaterialDocumentItem" in ctx.data:
        raw_items, where = ctx.data.get("to_MaterialDocumentItem"), "data.to_MaterialDocumentItem"
    items = _items(raw_items, where)
    if not items:
        return ignored(f"material document {document} carries no items (thin notification)")
    # (movement type, raw plant) -> (event type, plant, {(sku, uom): quantity}); one event per
    # group so that reason_code is exactly one movement type and site exactly one plant.
    groups: dict[tuple[str, str], tuple[EventType, str, dict[tuple[str, str], float]]] = {}
    skipped: set[str] = set()
    for index, item in enumerate(items):
        item_where = f"{where}[{index}]"
        movement_type = ctx.required("GoodsMovementType", item, item_where)
        mapping = MOVEMENT_TYPES.get(movement_type)
        if mapping is None:
            skipped.add(movement_type)
            continue
        event_type, sign = mapping
        plant = ctx.required("Plant", item, item_where)
        line = ctx.line(item, item_where, _MOVEMENT_LINE, sign)
        if (movement_type, plant) not in groups:
            groups[(movement_type, plant)] = (event_type, ctx.mapping.site(plant, f"{item_where}.Plant"), {})
        quantities = groups[(movement_type, plant)][2]
        quantities[(line.sku, line.uom)] = quantities.get((line.sku, line.uom), 0.0) + line.quantity
    if not groups:
        return ignored(f"material document {document} has no inventory movements (types {', '.join(sorted(skipped))})")
    unknown = sorted(skipped - _COUNTED_BY_GOODS_ISSUE)
    if unknown:
        # Not a mapping warning (nothing to map): a movement we may be missing, made visible.
        ctx.mapping.warn(
            WarningKind.SKIPPED, f"material document {document}: movement types {', '.join(unknown)} skipped"
        )
    attributes = {"material_document": document}
    year = opt_str(ctx.data.get("MaterialDocumentYear"))
    if year:
        attributes["material_document_year"] = year
    # CreationDateTime, not PostingDate: a stock snapshot reflects documents by when they were
    # entered, and PostingDate is only a day (it may even be back-dated).
    occurred = ctx.occurred("CreationDateTime")
    several = len(groups) > 1
    events = [
        ctx.event(
            event_type,
            occurred,
            discriminator=f"{movement_type}/{plant}" if several else None,
            site=site,
            reason_code=movement_type,
            lines=tuple(Line(sku=sku, quantity=qty, uom=uom) for (sku, uom), qty in quantities.items()),
            attributes=dict(attributes),
        )
        for (movement_type, plant), (event_type, site, quantities) in groups.items()
    ]
    return ok(events, ctx.mapping.warnings)


_HANDLERS: Mapping[str, Callable[[_Context], AdapterResult]] = {
    SALES_ORDER_CREATED: _sales_order_created,
    DELIVERY_CREATED: _delivery_created,
    DELIVERY_CHANGED: _delivery_changed,
    BILLING_CREATED: _billing_created,
    MATERIAL_DOCUMENT_CREATED: _material_document_created,
}


def _handler_for(event_type: str) -> Callable[[_Context], AdapterResult] | None:
    # Exact type, or the type behind a customer namespace (`<ns>.sap.s4.beh...`, domain-notes 5.1).
    # (No known type ends with ".<another known type>", so an exact match is the loop's answer too.)
    exact = _HANDLERS.get(event_type)
    if exact is not None:
        return exact
    for known, handler in _HANDLERS.items():
        if event_type == known or event_type.endswith("." + known):
            return handler
    return None


def _items(value: object, where: str) -> list[_Json]:
    """A navigation property: a list, or the OData v2 `{"results": [...]}` wrapper; absent = []."""
    if value is None:
        return []
    if isinstance(value, dict) and "results" in value:
        value = value["results"]
    if not isinstance(value, list):
        raise _Invalid(f"{where}: expected a list, got {describe(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise _Invalid(f"{where}[{index}]: expected an object, got {describe(item)}")
    return value


def _quantity(value: object, where: str) -> float:
    """OData v2 serializes Edm.Decimal as a string ("10.000"); numbers are accepted too."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Invalid(f"{where}: expected a number, got {describe(value)}")
    try:
        amount = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError) as exc:
        raise _Invalid(f"{where}: not a number: {value!r}") from exc
    if not math.isfinite(amount):
        raise _Invalid(f"{where}: not a finite number: {value!r}")
    return amount


def _short_type(event_type: str) -> str:
    """`sap.s4.beh.salesorder.v1.SalesOrder.Created.v1` -> `SalesOrder.Created`."""
    parts = event_type.split(".")
    return ".".join(parts[-3:-1]) if len(parts) >= 3 else event_type

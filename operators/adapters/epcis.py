"""GS1 EPCIS 2.0 JSON / JSON-LD -> canonical events (design.md 2.3; domain-notes section 1).

Input: an EPCISDocument (`epcisBody.eventList`), an EPCISQueryDocument
(`epcisBody.queryResults.resultsBody.eventList`) or one bare event object. Each ObjectEvent /
AggregationEvent whose bizStep we map becomes one canonical event; Transaction-, Transformation-
and AssociationEvents, other bizSteps and `action: DELETE` are skipped (not errors). A document
with nothing mapped is ignored, with the skips counted in the reason.

An event carrying `errorDeclaration` retracts the earlier event with the same identity: it
becomes one EVENT_RETRACTED event (`<event_id>#retracted`) instead of the event itself.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from operators.adapters.common import decode_json, schema_error
from operators.adapters.mapping import MasterMapping
from operators.formats.gs1 import cbv_term, gln_from_location, instance_gtin, parse_product_id, sscc_from_id
from operators.formats.timeparse import TimeParseError, parse_iso
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
    content_id,
    dead,
    ignored,
    ok,
)

ADAPTER = "epcis"

# Event type -> (instance list, quantity list) that carry its objects (EPCIS 2.0 section 7.4).
_OBJECT_LISTS = {
    "ObjectEvent": ("epcList", "quantityList"),
    "AggregationEvent": ("childEPCs", "childQuantityList"),
}
_BIZ_STEP_EVENT = {
    "picking": EventType.PICK_CONFIRMED,
    "packing": EventType.PACK_CONFIRMED,
    # CBV: `shipping` is the coarse step, `departing` its last granular part; either is the dispatch.
    "shipping": EventType.SHIPMENT_DISPATCHED,
    "departing": EventType.SHIPMENT_DISPATCHED,
    "receiving": EventType.GOODS_RECEIVED,
}
_BTT_FIELD = {"desadv": "delivery_id", "po": "order_id", "bol": "shipment_ref"}
# eventTimeZoneOffset pattern from the EPCIS 2.0 JSON Schema.
_TZ_OFFSET = re.compile(r"^[+-]((0\d|1[0-3]):[0-5]\d|14:00)$")


class _SchemaError(Exception):
    """A well-formed document with a missing or mistyped field; the message names the field."""


class _Unsupported(Exception):
    """JSON that is not an EPCIS document or event."""


@dataclass
class _Context:
    mapping: MasterMapping
    raw: RawMessage
    source_system: str
    creation_date: datetime | None


def adapt_epcis(raw: RawMessage, master: MasterData) -> AdapterResult:
    """One raw EPCIS message -> its canonical events, an ignore with a reason, or a dead letter."""
    document, failure = decode_json(raw, ADAPTER)
    if failure is not None:
        return failure
    try:
        located = _locate_events(document)
        if isinstance(located, str):
            return ignored(located)
        ctx = _Context(
            mapping=MasterMapping(master),
            raw=raw,
            source_system=_sender(document),
            creation_date=_opt_time(document, "creationDate", "document")[0],
        )
        events: list[CanonicalEvent] = []
        skipped: Counter[str] = Counter()
        for path, epcis_event in located:
            made = _adapt_event(epcis_event, path, ctx)
            if isinstance(made, str):
                skipped[made] += 1
            else:
                events.append(made)
    except _SchemaError as exc:
        return schema_error(raw, ADAPTER, str(exc))
    except _Unsupported as exc:
        return dead(raw, DeadLetterReason.UNSUPPORTED, ADAPTER, str(exc))
    if not events:
        counted = ", ".join(f"{count} {what}" for what, count in skipped.items()) or "empty eventList"
        return ignored(f"no mapped EPCIS events ({counted})", ctx.mapping.warnings)
    return ok(events, ctx.mapping.warnings)


def _locate_events(document: Any) -> list[tuple[str, Any]] | str:
    """[(JSON path, event)], or an ignore reason for a document that carries no events."""
    if not isinstance(document, dict):
        raise _SchemaError(f"document: expected a JSON object, got {_kind(document)}")
    doc_type = document.get("type")
    if doc_type is not None and not isinstance(doc_type, str):
        raise _SchemaError(f"type: expected a string, got {_kind(doc_type)}")
    if doc_type in ("EPCISDocument", "EPCISQueryDocument") or (doc_type is None and "epcisBody" in document):
        holder = _required_obj(document, "epcisBody", "")
        path = "epcisBody"
        if doc_type == "EPCISQueryDocument" or "queryResults" in holder:
            results = _required_obj(holder, "queryResults", path)
            holder = _required_obj(results, "resultsBody", "epcisBody.queryResults")
            path = "epcisBody.queryResults.resultsBody"
        event_list = holder.get("eventList")
        if not isinstance(event_list, list):
            raise _SchemaError(f"{path}.eventList: expected an array, got {_kind(event_list)}")
        return [(f"{path}.eventList[{index}]", item) for index, item in enumerate(event_list)]
    if doc_type is None:
        raise _SchemaError("type: missing (expected EPCISDocument, EPCISQueryDocument or an event)")
    if doc_type == "EPCISMasterDataDocument":
        return "EPCIS master data document (no events)"
    # A bare event; extension event types are URIs (EPCIS 2.0 7.4.1) and are skipped later.
    if doc_type.endswith("Event") or "eventTime" in document:
        return [("event", document)]
    raise _Unsupported(f"type {doc_type[:100]!r} is not an EPCIS document or event type")


def _adapt_event(epcis_event: Any, path: str, ctx: _Context) -> CanonicalEvent | str:
    """One EPCIS event -> a canonical event, or the reason it is skipped."""
    if not isinstance(epcis_event, dict):
        raise _SchemaError(f"{path}: expected an event object, got {_kind(epcis_event)}")
    epcis_type = epcis_event.get("type")
    if not isinstance(epcis_type, str) or not epcis_type:
        raise _SchemaError(f"{path}.type: expected an event type string, got {_kind(epcis_type)}")
    if epcis_type not in _OBJECT_LISTS:
        return epcis_type[:100]
    tz_offset = _tz_offset(epcis_event, path, ctx)
    occurred_at, precision, tz_assumed = _event_time(epcis_event, path, tz_offset)
    action = (_opt_str(epcis_event, "action", path) or "OBSERVE").upper()
    # DELETE ends the objects' life (ObjectEvent) or unpacks them (AggregationEvent): no
    # goods move in or out, so it is not a pick / pack / dispatch / receipt fact.
    if action == "DELETE":
        return f"{epcis_type} action DELETE"
    biz_step_raw = _opt_str(epcis_event, "bizStep", path)
    biz_step = cbv_term(biz_step_raw) if biz_step_raw else None
    event_type = _BIZ_STEP_EVENT.get(biz_step or "")
    if event_type is None:
        return f"{epcis_type} bizStep {(biz_step or 'absent')[:100]}"

    recorded_at = _opt_time(epcis_event, "recordTime", path)[0] or ctx.creation_date
    refs, transactions = _biz_transactions(epcis_event, path)
    disposition = _opt_str(epcis_event, "disposition", path)
    optional = {
        "event_tz_offset": tz_offset,
        "disposition": cbv_term(disposition) if disposition else None,
        "parent_id": _opt_str(epcis_event, "parentID", path),  # an SSCC pallet / case: not a line
        "biz_transactions": ",".join(transactions),
    }
    attributes = {"epcis_type": epcis_type, "action": action, "biz_step": biz_step or ""}
    attributes.update({key: value for key, value in optional.items() if value})
    site = _site(epcis_event, path, ctx, attributes)
    lines = _lines(epcis_event, path, *_OBJECT_LISTS[epcis_type], ctx)
    event_id = _event_id(epcis_event, path)
    reason_code = None
    declaration = epcis_event.get("errorDeclaration")
    if declaration is not None:
        declared_at, declared_precision, reason, corrective = _error_declaration(declaration, path)
        # The erroneous event is resent with its original eventID plus errorDeclaration (EPCIS 2.0
        # 7.4.1.2): emit a retraction naming that original so downstream can undo its effects.
        attributes.update(
            retracts=event_id,
            reason=reason,
            corrective_event_ids=",".join(corrective),
            retracted_event_type=event_type.value,
            retracted_occurred_at=occurred_at.isoformat(),
        )
        event_id, event_type = f"{event_id}#retracted", EventType.EVENT_RETRACTED
        occurred_at, precision, reason_code = declared_at, declared_precision, reason or None
    return CanonicalEvent(
        event_id=event_id,
        event_type=event_type,
        source_kind=SourceKind.WMS,
        source_format=ADAPTER,
        source_system=ctx.source_system,
        occurred_at=occurred_at,
        recorded_at=recorded_at,
        received_at=ctx.raw.received_at,
        time_precision=precision,
        tz_assumed=tz_assumed,
        site=site,
        reason_code=reason_code,
        lines=lines,
        raw_ref=ctx.raw.raw_ref,
        attributes=attributes,
        delivery_id=refs.get("delivery_id"),
        order_id=refs.get("order_id"),
        shipment_ref=refs.get("shipment_ref"),
    )


def _event_id(epcis_event: dict[str, Any], path: str) -> str:
    """`epcis:<eventID>`, else a hash of the event's content (design.md 2.5).

    recordTime is repository bookkeeping (it differs between two queries of one event) and
    errorDeclaration is added to the original later; neither is part of the event's identity.
    """
    event_id = _opt_str(epcis_event, "eventID", path)
    if event_id:
        return f"{ADAPTER}:{event_id}"
    content = {key: value for key, value in epcis_event.items() if key not in ("recordTime", "errorDeclaration")}
    try:
        canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # nesting deeper than orjson serializes
        raise _SchemaError(f"{path}: event without eventID cannot be hashed: {exc}") from None
    return content_id(ADAPTER, canonical.decode("utf-8"))


def _tz_offset(epcis_event: dict[str, Any], path: str, ctx: _Context) -> str | None:
    offset = _opt_str(epcis_event, "eventTimeZoneOffset", path)
    if offset is None or _TZ_OFFSET.match(offset):
        return offset
    # Informational only (occurred_at comes from eventTime): a bad value is not worth a dead letter.
    ctx.mapping.warn(WarningKind.BAD_VALUE, f"{path}.eventTimeZoneOffset {offset[:40]!r} is not +hh:mm; dropped")
    return None


def _event_time(epcis_event: dict[str, Any], path: str, tz_offset: str | None) -> tuple[datetime, TimePrecision, bool]:
    """eventTime -> (UTC instant, precision, tz_assumed).

    eventTime must carry its own offset; when a producer omits it, the event's own
    eventTimeZoneOffset is applied and the event is flagged tz_assumed.
    """
    value = epcis_event.get("eventTime")
    if value is None:
        raise _SchemaError(f"{path}.eventTime: missing")
    if not isinstance(value, str):
        raise _SchemaError(f"{path}.eventTime: expected a string, got {_kind(value)}")
    try:
        occurred_at, precision = parse_iso(value, field_name=f"{path}.eventTime")
    except TimeParseError as exc:
        if tz_offset is None:
            raise _SchemaError(str(exc)) from None
        try:
            occurred_at, precision = parse_iso(value + tz_offset, field_name=f"{path}.eventTime")
        except TimeParseError:
            raise _SchemaError(str(exc)) from None
        return occurred_at, precision, True
    return occurred_at, precision, False


def _error_declaration(declaration: Any, path: str) -> tuple[datetime, TimePrecision, str, list[str]]:
    """errorDeclaration -> (declarationTime, its precision, reason, correctiveEventIDs)."""
    where = f"{path}.errorDeclaration"
    if not isinstance(declaration, dict):
        raise _SchemaError(f"{where}: expected an object, got {_kind(declaration)}")
    declared = _opt_str(declaration, "declarationTime", where)
    if declared is None:
        raise _SchemaError(f"{where}.declarationTime: missing")
    try:
        declared_at, precision = parse_iso(declared, field_name=f"{where}.declarationTime")
    except TimeParseError as exc:
        raise _SchemaError(str(exc)) from None
    reason = _opt_str(declaration, "reason", where)
    corrective = declaration.get("correctiveEventIDs", [])
    if not isinstance(corrective, list) or not all(isinstance(item, str) for item in corrective):
        raise _SchemaError(f"{where}.correctiveEventIDs: expected an array of strings")
    return declared_at, precision, cbv_term(reason) if reason else "", [f"{ADAPTER}:{c}" for c in corrective]


def _biz_transactions(epcis_event: dict[str, Any], path: str) -> tuple[dict[str, str], list[str]]:
    """bizTransactionList -> canonical reference fields and all `type=id` pairs.

    The business id is the last `:`- or `/`-separated token of the value: CBV URNs
    (`urn:epcglobal:cbv:bt:<gln>:<id>`), HTTP URIs and plain ids all reduce to it.
    The first value of a type wins; all of them stay in the `biz_transactions` attribute.
    """
    entries = epcis_event.get("bizTransactionList", [])
    where = f"{path}.bizTransactionList"
    if not isinstance(entries, list):
        raise _SchemaError(f"{where}: expected an array, got {_kind(entries)}")
    refs: dict[str, str] = {}
    pairs: list[str] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _SchemaError(f"{where}[{index}]: expected an object, got {_kind(entry)}")
        value, type_raw = entry.get("bizTransaction"), entry.get("type")
        if type(value) is str and (type_raw is None or type(type_raw) is str):  # the usual case
            value, type_raw = value.strip() or None, type_raw.strip() or None if type_raw is not None else None
        else:
            value = _opt_str(entry, "bizTransaction", f"{where}[{index}]")
            type_raw = _opt_str(entry, "type", f"{where}[{index}]")
        if not value:
            raise _SchemaError(f"{where}[{index}].bizTransaction: missing")
        btt = cbv_term(type_raw) if type_raw else ""
        business_id = _business_id(value)
        pairs.append(f"{btt}={business_id}" if btt else business_id)
        canonical_field = _BTT_FIELD.get(btt)
        if canonical_field and canonical_field not in refs:
            refs[canonical_field] = business_id
    return refs, pairs


def _business_id(value: str) -> str:
    """The last `:`- or `/`-separated token that is not empty; the value itself if none is."""
    trimmed = value.rstrip(":/")
    return trimmed[max(trimmed.rfind(":"), trimmed.rfind("/")) + 1 :] if trimmed else value


def _site(epcis_event: dict[str, Any], path: str, ctx: _Context, attributes: dict[str, str]) -> str | None:
    """bizLocation.id (else readPoint.id) -> site via the site master; the SGLN's GLN as fallback."""
    location_ids: dict[str, str] = {}
    for key, attribute in (("bizLocation", "biz_location"), ("readPoint", "read_point")):
        holder = epcis_event.get(key)
        if holder is None:
            continue
        if not isinstance(holder, dict):
            raise _SchemaError(f"{path}.{key}: expected an object with an id, got {_kind(holder)}")
        location_id = _opt_str(holder, "id", f"{path}.{key}")
        if not location_id:
            raise _SchemaError(f"{path}.{key}.id: missing")
        location_ids[key] = attributes[attribute] = location_id
    key = "bizLocation" if "bizLocation" in location_ids else "readPoint"
    raw_id = location_ids.get(key)
    if raw_id is None:
        return None
    return ctx.mapping.site(raw_id, f"{path}.{key}.id", alias=gln_from_location)


def _lines(
    epcis_event: dict[str, Any], path: str, instance_key: str, quantity_key: str, ctx: _Context
) -> tuple[Line, ...]:
    """Instance EPCs and quantity elements -> lines summed per (sku, uom).

    An instance EPC is one trade item of its GTIN, and a quantity without `uom` is a count of
    them (EPCIS 2.0 7.3.3.3): their unit is the product's unit in the master (a case-level GTIN
    counts cases), `EA` when the product is unknown. SSCCs (pallets / cases by logistic unit)
    are containers, not products: they are not lines.
    """
    totals: dict[tuple[str, str], float] = {}
    trade_items: dict[str, tuple[str, str]] = {}  # GTIN -> (sku, unit): EPCs repeat a few GTINs

    def trade_item(gtin: str, key: str) -> tuple[str, str]:
        found = trade_items.get(gtin)
        if found is None:
            found = trade_items[gtin] = _trade_item(gtin, f"{path}.{key}", ctx)
        return found

    instances = epcis_event.get(instance_key, [])
    if not isinstance(instances, list):
        raise _SchemaError(f"{path}.{instance_key}: expected an array, got {_kind(instances)}")
    for index, epc in enumerate(instances):
        if not isinstance(epc, str):
            raise _SchemaError(f"{path}.{instance_key}[{index}]: expected a string, got {_kind(epc)}")
        gtin = instance_gtin(epc)
        if gtin is not None:
            key = trade_item(gtin, instance_key)
            totals[key] = totals.get(key, 0.0) + 1.0
        elif sscc_from_id(epc) is None:
            where = f"{path}.{instance_key}[{index}]"
            ctx.mapping.warn(WarningKind.SKIPPED, f"{where} {epc[:100]!r} is not a serialized GTIN; not counted")
    quantities = epcis_event.get(quantity_key, [])
    if not isinstance(quantities, list):
        raise _SchemaError(f"{path}.{quantity_key}: expected an array, got {_kind(quantities)}")
    for index, element in enumerate(quantities):
        if not isinstance(element, dict):
            raise _SchemaError(f"{path}.{quantity_key}[{index}]: expected an object, got {_kind(element)}")
        epc_class, uom = element.get("epcClass"), element.get("uom")
        if type(epc_class) is str and (uom is None or type(uom) is str):  # the usual case, no path built
            epc_class, uom = epc_class.strip() or None, uom.strip() or None if uom is not None else None
        else:
            where = f"{path}.{quantity_key}[{index}]"
            epc_class, uom = _opt_str(element, "epcClass", where), _opt_str(element, "uom", where)
        if not epc_class:
            raise _SchemaError(f"{path}.{quantity_key}[{index}].epcClass: missing")
        quantity = element.get("quantity")
        if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, int | float)):
            raise _SchemaError(f"{path}.{quantity_key}[{index}].quantity: expected a number, got {_kind(quantity)}")
        ref = parse_product_id(epc_class)
        if ref is None:
            what = f"{path}.{quantity_key}[{index}].epcClass {epc_class[:100]!r}"
            ctx.mapping.warn(WarningKind.SKIPPED, f"{what} names no single GTIN; not counted")
        elif quantity is None:
            ctx.mapping.warn(WarningKind.SKIPPED, f"{path}.{quantity_key}[{index}] has no quantity; not counted")
        else:
            sku, count_unit = trade_item(ref.gtin, quantity_key)
            key = (sku, uom or count_unit)  # no uom: a count of trade items
            totals[key] = totals.get(key, 0.0) + float(quantity)
    return tuple(Line(sku=sku, quantity=quantity, uom=uom) for (sku, uom), quantity in totals.items())


def _trade_item(gtin: str, where: str, ctx: _Context) -> tuple[str, str]:
    """(sku, unit of one trade item of this GTIN): the product's unit, else `EA`."""
    sku, product = ctx.mapping.product_for_gtin(gtin, where)
    return sku, product.uom if product is not None else "EA"


def _sender(document: dict[str, Any]) -> str:
    """The document's `sender` (EPCIS 2.0 JSON header field) names the source system."""
    sender = document.get("sender")
    return sender.strip() if isinstance(sender, str) and sender.strip() else ADAPTER


def _opt_str(holder: dict[str, Any], key: str, path: str) -> str | None:
    value = holder.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _SchemaError(f"{path}.{key}: expected a string, got {_kind(value)}")
    return value.strip() or None


def _opt_time(holder: dict[str, Any], key: str, path: str) -> tuple[datetime | None, TimePrecision | None]:
    value = _opt_str(holder, key, path)
    if value is None:
        return None, None
    try:
        return parse_iso(value, field_name=f"{path}.{key}")
    except TimeParseError as exc:
        raise _SchemaError(str(exc)) from None


def _required_obj(holder: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = holder.get(key)
    if not isinstance(value, dict):
        where = f"{path}.{key}" if path else key
        raise _SchemaError(f"{where}: expected an object, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__

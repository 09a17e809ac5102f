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
from datetime import datetime
from typing import Any

import orjson

from operators.adapters.common import decode_json, schema_error
from operators.adapters.epcis_fields import (
    EpcisContext,
    EpcisSchemaError,
    event_lines,
    event_site,
    field_str,
    field_time,
    kind_of,
    read_biz_transactions,
    required_object,
)
from operators.adapters.mapping import MasterMapping
from operators.formats.gs1 import cbv_term
from operators.formats.timeparse import TimeParseError, parse_iso
from operators.master import MasterData
from operators.model import (
    AdapterResult,
    CanonicalEvent,
    DeadLetterReason,
    EventType,
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
# eventTimeZoneOffset pattern from the EPCIS 2.0 JSON Schema.
_TZ_OFFSET = re.compile(r"^[+-]((0\d|1[0-3]):[0-5]\d|14:00)$")


class _Unsupported(Exception):
    """JSON that is not an EPCIS document or event."""


def adapt_epcis(raw: RawMessage, master: MasterData) -> AdapterResult:
    """One raw EPCIS message -> its canonical events, an ignore with a reason, or a dead letter."""
    document, failure = decode_json(raw, ADAPTER)
    if failure is not None:
        return failure
    try:
        located = _locate_events(document)
        if isinstance(located, str):
            return ignored(located)
        ctx = EpcisContext(
            mapping=MasterMapping(master),
            raw=raw,
            source_system=_sender(document),
            creation_date=field_time(document, "creationDate", "document")[0],
        )
        events: list[CanonicalEvent] = []
        skipped: Counter[str] = Counter()
        for path, epcis_event in located:
            made = _adapt_event(epcis_event, path, ctx)
            if isinstance(made, str):
                skipped[made] += 1
            else:
                events.append(made)
    except EpcisSchemaError as exc:
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
        raise EpcisSchemaError(f"document: expected a JSON object, got {kind_of(document)}")
    doc_type = document.get("type")
    if doc_type is not None and not isinstance(doc_type, str):
        raise EpcisSchemaError(f"type: expected a string, got {kind_of(doc_type)}")
    if doc_type in ("EPCISDocument", "EPCISQueryDocument") or (doc_type is None and "epcisBody" in document):
        holder = required_object(document, "epcisBody", "")
        path = "epcisBody"
        if doc_type == "EPCISQueryDocument" or "queryResults" in holder:
            results = required_object(holder, "queryResults", path)
            holder = required_object(results, "resultsBody", "epcisBody.queryResults")
            path = "epcisBody.queryResults.resultsBody"
        event_list = holder.get("eventList")
        if not isinstance(event_list, list):
            raise EpcisSchemaError(f"{path}.eventList: expected an array, got {kind_of(event_list)}")
        return [(f"{path}.eventList[{index}]", item) for index, item in enumerate(event_list)]
    if doc_type is None:
        raise EpcisSchemaError("type: missing (expected EPCISDocument, EPCISQueryDocument or an event)")
    if doc_type == "EPCISMasterDataDocument":
        return "EPCIS master data document (no events)"
    # A bare event; extension event types are URIs (EPCIS 2.0 7.4.1) and are skipped later.
    if doc_type.endswith("Event") or "eventTime" in document:
        return [("event", document)]
    raise _Unsupported(f"type {doc_type[:100]!r} is not an EPCIS document or event type")


def _adapt_event(epcis_event: Any, path: str, ctx: EpcisContext) -> CanonicalEvent | str:
    """One EPCIS event -> a canonical event, or the reason it is skipped."""
    if not isinstance(epcis_event, dict):
        raise EpcisSchemaError(f"{path}: expected an event object, got {kind_of(epcis_event)}")
    epcis_type = epcis_event.get("type")
    if not isinstance(epcis_type, str) or not epcis_type:
        raise EpcisSchemaError(f"{path}.type: expected an event type string, got {kind_of(epcis_type)}")
    if epcis_type not in _OBJECT_LISTS:
        return epcis_type[:100]
    tz_offset = _tz_offset(epcis_event, path, ctx)
    occurred_at, precision, tz_assumed = _event_time(epcis_event, path, tz_offset)
    action = (field_str(epcis_event, "action", path) or "OBSERVE").upper()
    # DELETE ends the objects' life (ObjectEvent) or unpacks them (AggregationEvent): no
    # goods move in or out, so it is not a pick / pack / dispatch / receipt fact.
    if action == "DELETE":
        return f"{epcis_type} action DELETE"
    biz_step_raw = field_str(epcis_event, "bizStep", path)
    biz_step = cbv_term(biz_step_raw) if biz_step_raw else None
    event_type = _BIZ_STEP_EVENT.get(biz_step or "")
    if event_type is None:
        return f"{epcis_type} bizStep {(biz_step or 'absent')[:100]}"

    recorded_at = field_time(epcis_event, "recordTime", path)[0] or ctx.creation_date
    refs, transactions = read_biz_transactions(epcis_event, path)
    disposition = field_str(epcis_event, "disposition", path)
    optional = {
        "event_tz_offset": tz_offset,
        "disposition": cbv_term(disposition) if disposition else None,
        "parent_id": field_str(epcis_event, "parentID", path),  # an SSCC pallet / case: not a line
        "biz_transactions": ",".join(transactions),
    }
    attributes = {"epcis_type": epcis_type, "action": action, "biz_step": biz_step or ""}
    attributes.update({key: value for key, value in optional.items() if value})
    site = event_site(epcis_event, path, ctx, attributes)
    lines = event_lines(epcis_event, path, *_OBJECT_LISTS[epcis_type], ctx)
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
    event_id = field_str(epcis_event, "eventID", path)
    if event_id:
        return f"{ADAPTER}:{event_id}"
    content = {key: value for key, value in epcis_event.items() if key not in ("recordTime", "errorDeclaration")}
    try:
        canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # nesting deeper than orjson serializes
        raise EpcisSchemaError(f"{path}: event without eventID cannot be hashed: {exc}") from None
    return content_id(ADAPTER, canonical.decode("utf-8"))


def _tz_offset(epcis_event: dict[str, Any], path: str, ctx: EpcisContext) -> str | None:
    offset = field_str(epcis_event, "eventTimeZoneOffset", path)
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
        raise EpcisSchemaError(f"{path}.eventTime: missing")
    if not isinstance(value, str):
        raise EpcisSchemaError(f"{path}.eventTime: expected a string, got {kind_of(value)}")
    try:
        occurred_at, precision = parse_iso(value, field_name=f"{path}.eventTime")
    except TimeParseError as exc:
        if tz_offset is None:
            raise EpcisSchemaError(str(exc)) from None
        try:
            occurred_at, precision = parse_iso(value + tz_offset, field_name=f"{path}.eventTime")
        except TimeParseError:
            raise EpcisSchemaError(str(exc)) from None
        return occurred_at, precision, True
    return occurred_at, precision, False


def _error_declaration(declaration: Any, path: str) -> tuple[datetime, TimePrecision, str, list[str]]:
    """errorDeclaration -> (declarationTime, its precision, reason, correctiveEventIDs)."""
    where = f"{path}.errorDeclaration"
    if not isinstance(declaration, dict):
        raise EpcisSchemaError(f"{where}: expected an object, got {kind_of(declaration)}")
    declared = field_str(declaration, "declarationTime", where)
    if declared is None:
        raise EpcisSchemaError(f"{where}.declarationTime: missing")
    try:
        declared_at, precision = parse_iso(declared, field_name=f"{where}.declarationTime")
    except TimeParseError as exc:
        raise EpcisSchemaError(str(exc)) from None
    reason = field_str(declaration, "reason", where)
    corrective = declaration.get("correctiveEventIDs", [])
    if not isinstance(corrective, list) or not all(isinstance(item, str) for item in corrective):
        raise EpcisSchemaError(f"{where}.correctiveEventIDs: expected an array of strings")
    return declared_at, precision, cbv_term(reason) if reason else "", [f"{ADAPTER}:{c}" for c in corrective]


def _sender(document: dict[str, Any]) -> str:
    """The document's `sender` (EPCIS 2.0 JSON header field) names the source system."""
    sender = document.get("sender")
    return sender.strip() if isinstance(sender, str) and sender.strip() else ADAPTER

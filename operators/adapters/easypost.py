"""EasyPost tracker webhooks -> CARRIER_STATUS events (design.md 2.3, domain-notes 6.1).

Input is a webhook `Event` (`"object": "Event"`, description `tracker.created` /
`tracker.updated`) whose `result` is a Tracker, or a bare Tracker (`"object": "Tracker"`, as the
API returns it). Every `tracking_details[]` entry is one CARRIER_STATUS event. EasyPost resends
the whole history on every update, so the event id is a hash of the detail's content (design.md
2.5), never the webhook id: a resent history collapses in dedup.

Milestones from `status` / `status_detail` and the history before the detail (first matching
row wins). "Picked up" = an earlier detail of the history (by `datetime`) was a pickup or any
later movement; "out for delivery" = an earlier detail was OUT_FOR_DELIVERY.

| status | condition | milestone |
|---|---|---|
| pre_transit, in_transit | a pickup scan (below), not yet out for delivery | PICKED_UP |
| pre_transit, in_transit | status_detail `received_at_origin_facility`, not yet picked up | PICKED_UP |
| pre_transit | status_detail `received_at_origin_facility` (after pickup: an arrival scan) | IN_TRANSIT |
| pre_transit | | ACKNOWLEDGED |
| in_transit | status_detail `arrived_at_destination` | ARRIVED |
| in_transit | status_detail `out_for_delivery` | OUT_FOR_DELIVERY |
| in_transit | (incl. `received_at_origin_facility` after pickup) | IN_TRANSIT |
| out_for_delivery | | OUT_FOR_DELIVERY |
| delivered | | DELIVERED |
| available_for_pickup | | ARRIVED |
| return_to_sender | | RETURNED |
| failure | status_detail `delivery_exception` | DELIVERY_FAILED |
| failure | a failed attempt (below) | DELIVERY_FAILED |
| failure | | EXCEPTION |
| cancelled | | CANCELLED |
| unknown, error, anything else | | UNKNOWN |

A pickup scan: carrier_code `PU` (FedEx, e.g. with status_detail `arrived_at_facility`) or a
message saying "picked up" (not "to be picked up"). Why the history: real carriers bend
EasyPost's statuses. FedEx labels every "Arrived at FedEx location" scan
`received_at_origin_facility`, even at the destination station after out-for-delivery, and
reports a failed delivery attempt ("Customer not available or business closed") as `failure` /
`delayed`. A failed attempt: a message with "attempt", "not available", "business closed", "no
access", "unable to deliver" or "no one home"; or, once out for delivery, a `failure` whose
status_detail says nothing more (`delayed`, `failure`, `unknown`, none), not `damaged`, `lost`...
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from operators.adapters.common import decode_json, describe, opt_str, schema_error
from operators.formats.timeparse import parse_iso
from operators.master import MasterData
from operators.model import (
    AdapterResult,
    CanonicalEvent,
    DeadLetterReason,
    EventTemplate,
    EventType,
    Milestone,
    RawMessage,
    SourceKind,
    TimePrecision,
    content_id,
    dead,
    ignored,
    ok,
)

ADAPTER = "easypost"
SOURCE_FORMAT = "easypost"
SOURCE_SYSTEM = "easypost"

_Json = Mapping[str, object]

_STATUS_MILESTONES: Mapping[str, Milestone] = {
    "pre_transit": Milestone.ACKNOWLEDGED,
    "in_transit": Milestone.IN_TRANSIT,
    "out_for_delivery": Milestone.OUT_FOR_DELIVERY,
    "delivered": Milestone.DELIVERED,
    "available_for_pickup": Milestone.ARRIVED,
    "return_to_sender": Milestone.RETURNED,
    "failure": Milestone.EXCEPTION,
    "cancelled": Milestone.CANCELLED,
}

# Raw carrier event codes that are a pickup scan (FedEx and DHL both use `PU`).
_PICKUP_CARRIER_CODES = frozenset({"PU"})
# "Picked up", "USPS picked up item", but not "will be picked up" / "ready to be picked up".
_PICKED_UP = re.compile(r"(?<!be )\bpicked up\b", re.IGNORECASE)
# A failed delivery attempt in the carrier's words (FedEx: "Customer not available or business closed").
_FAILED_ATTEMPT = re.compile(
    r"attempt|not available|business (?:was )?closed|no access|unable to deliver|no one (?:was )?(?:home|available)",
    re.IGNORECASE,
)
# `failure` details that say nothing more: on a delivery run they are the failed attempt (FedEx
# `delayed`); `damaged`, `lost`, `refused`, `held` ... stay exceptions.
_VAGUE_FAILURES = frozenset({"delayed", "failure", "unknown", ""})
# Milestones after which the parcel has been picked up (an arrival scan is no pickup any more).
_MOVING = frozenset(
    {
        Milestone.PICKED_UP,
        Milestone.IN_TRANSIT,
        Milestone.ARRIVED,
        Milestone.OUT_FOR_DELIVERY,
        Milestone.DELIVERY_FAILED,
        Milestone.DELIVERED,
    }
)


class _Invalid(Exception):
    """A required field is missing or has the wrong type; the message names the field."""


@dataclass(frozen=True, slots=True)
class _Tracker:
    """What every detail of one tracker shares."""

    tracking_code: str
    carrier: str | None
    attributes: dict[str, str]
    template: EventTemplate  # the CARRIER_STATUS fields every detail's event shares


def milestone_for(
    status: str,
    status_detail: str,
    carrier_code: str,
    message: str,
    *,
    picked_up: bool = False,
    out_for_delivery: bool = False,
) -> Milestone:
    """The canonical milestone of one tracking detail (table in the module docstring), given
    whether an earlier detail of the history had the parcel picked up / out for delivery."""
    return _milestone(status.lower(), status_detail.lower(), carrier_code.upper(), message, picked_up, out_for_delivery)


@functools.lru_cache(maxsize=4096)  # a few hundred distinct combinations; every detail asks
def _milestone(
    status: str, status_detail: str, carrier_code: str, message: str, picked_up: bool, out_for_delivery: bool
) -> Milestone:
    if status in {"pre_transit", "in_transit"}:
        pickup_scan = carrier_code in _PICKUP_CARRIER_CODES or _PICKED_UP.search(message) is not None
        if pickup_scan and not out_for_delivery:
            return Milestone.PICKED_UP
        if status_detail == "received_at_origin_facility":
            # An arrival scan: the pickup only when nothing moved before it.
            return Milestone.IN_TRANSIT if picked_up or out_for_delivery else Milestone.PICKED_UP
    if status == "in_transit" and status_detail == "arrived_at_destination":
        return Milestone.ARRIVED
    if status == "in_transit" and status_detail == "out_for_delivery":
        return Milestone.OUT_FOR_DELIVERY
    if status == "failure" and (
        status_detail == "delivery_exception"
        or (out_for_delivery and status_detail in _VAGUE_FAILURES)
        or _FAILED_ATTEMPT.search(message) is not None
    ):
        return Milestone.DELIVERY_FAILED
    return _STATUS_MILESTONES.get(status, Milestone.UNKNOWN)


def adapt_easypost(raw: RawMessage, master: MasterData) -> AdapterResult:
    """One webhook Event (or bare Tracker) -> one CARRIER_STATUS per tracking detail."""
    del master  # parcel tracking carries no sku or site to map
    doc, failure = decode_json(raw, ADAPTER)
    if failure is not None:
        return failure
    if not isinstance(doc, dict):
        return schema_error(raw, ADAPTER, f"EasyPost: expected a JSON object, got {type(doc).__name__}")
    kind = doc.get("object")
    try:
        if kind == "Event":
            description = doc.get("description")
            if not isinstance(description, str):
                raise _Invalid(f"Event.description: expected a string, got {describe(description)}")
            if not description.startswith("tracker."):
                return ignored(f"EasyPost event {description!r} is not a tracker event")
            tracker = doc.get("result")
            if not isinstance(tracker, dict) or tracker.get("object", "Tracker") != "Tracker":
                raise _Invalid(f"Event.result: expected a Tracker object, got {describe(tracker)}")
            recorded_at = _time(doc.get("created_at"), "Event.created_at")
            return _tracker_events(raw, tracker, recorded_at, webhook=doc)
        if kind == "Tracker":
            return _tracker_events(raw, doc, _time(doc.get("updated_at"), "Tracker.updated_at"), webhook=None)
    except _Invalid as exc:
        return schema_error(raw, ADAPTER, f"EasyPost: {exc}")
    if isinstance(kind, str) and kind:
        return dead(raw, DeadLetterReason.UNSUPPORTED, ADAPTER, f"EasyPost object {kind!r} is not an Event")
    return schema_error(raw, ADAPTER, f"EasyPost: object: expected 'Event' or 'Tracker', got {describe(kind)}")


def _tracker_events(raw: RawMessage, tracker: _Json, recorded_at: datetime, webhook: _Json | None) -> AdapterResult:
    tracking_code = opt_str(tracker.get("tracking_code"))
    if tracking_code is None:
        raise _Invalid(f"Tracker.tracking_code: required, got {describe(tracker.get('tracking_code'))}")
    details = tracker.get("tracking_details")
    if not isinstance(details, list):
        raise _Invalid(f"Tracker.tracking_details: expected a list, got {describe(details)}")
    if not details:
        return ignored(f"tracker {tracking_code} has no tracking details yet")
    carrier = opt_str(tracker.get("carrier"))
    attributes: dict[str, str] = {}
    for name, value in (
        ("easypost_event_id", webhook.get("id") if webhook else None),
        ("tracker_id", tracker.get("id")),
        ("mode", (webhook.get("mode") if webhook else None) or tracker.get("mode")),
    ):
        text = opt_str(value)
        if text is not None:
            attributes[name] = text
    template = EventTemplate(
        event_type=EventType.CARRIER_STATUS,
        source_kind=SourceKind.CARRIER,
        source_format=SOURCE_FORMAT,
        source_system=SOURCE_SYSTEM,
        recorded_at=recorded_at,
        received_at=raw.received_at,
        time_precision=TimePrecision.S,  # EasyPost datetimes are whole seconds, `Z`
        tracking_number=tracking_code,
        carrier=carrier,
        raw_ref=raw.raw_ref,
    )
    shared = _Tracker(tracking_code, carrier, attributes, template)
    read: list[_Detail] = []
    for index, detail in enumerate(details):
        if not isinstance(detail, dict):
            raise _Invalid(f"Tracker.tracking_details[{index}]: expected an object, got {describe(detail)}")
        read.append(_read_detail(shared, detail, index))
    # A detail's milestone depends on the history before it: walk it in time order (EasyPost
    # lists it oldest first, but nothing guarantees that), then keep the webhook's order.
    milestones: list[Milestone] = [Milestone.UNKNOWN] * len(read)
    picked_up = out_for_delivery = False
    for index in sorted(range(len(read)), key=lambda i: read[i].occurred_at):
        item = read[index]
        milestone = milestone_for(
            item.status,
            item.status_detail,
            item.carrier_code,
            item.message,
            picked_up=picked_up,
            out_for_delivery=out_for_delivery,
        )
        milestones[index] = milestone
        picked_up = picked_up or milestone in _MOVING
        out_for_delivery = out_for_delivery or milestone is Milestone.OUT_FOR_DELIVERY
    events: dict[str, CanonicalEvent] = {}
    for item, milestone in zip(read, milestones, strict=True):
        # Two identical details in one history are one fact.
        if item.event_id not in events:
            events[item.event_id] = _detail_event(shared, item, milestone)
    return ok(list(events.values()))


@dataclass(frozen=True, slots=True)
class _Detail:
    """One tracking detail, read and checked."""

    event_id: str
    occurred_at: datetime
    status: str
    status_detail: str
    carrier_code: str
    message: str
    location: object


def _read_detail(tracker: _Tracker, detail: _Json, index: int) -> _Detail:
    when = detail.get("datetime")
    occurred_at = _time(when, f"{_where(index)}.datetime")  # raises unless `when` is valid ISO 8601 text
    status = _text(detail, "status", index)
    status_detail = _text(detail, "status_detail", index)
    message = _text(detail, "message", index)
    event_id = _identity(tracker.carrier, tracker.tracking_code, str(when), status, status_detail, message)
    return _Detail(
        event_id,
        occurred_at,
        status,
        status_detail,
        _text(detail, "carrier_code", index),
        message,
        detail.get("tracking_location"),
    )


def _detail_event(tracker: _Tracker, detail: _Detail, milestone: Milestone) -> CanonicalEvent:
    attributes = tracker.attributes.copy()
    if detail.message:
        attributes["message"] = detail.message
    if detail.status:
        attributes["easypost_status"] = detail.status  # the raw status behind the milestone
    return tracker.template.event(
        event_id=detail.event_id,
        occurred_at=detail.occurred_at,
        milestone=milestone,
        # Test-mode and some carriers send an empty carrier_code: fall back to the detail.
        status_code=detail.carrier_code or detail.status_detail or detail.status or None,
        reason_code=detail.status_detail or None,
        location=_location(detail.location),
        attributes=attributes,
    )


# EasyPost resends a tracker's whole history on every update: the same detail comes back many
# times, and its id is a pure function of these strings, so remember recent ones
# (resends come soon after: on the benchmark 4096 entries already catch every repeat).
@functools.lru_cache(maxsize=8192)
def _identity(
    carrier: str | None,
    tracking_code: str,
    when: str,
    status: str,
    status_detail: str,
    message: str,
) -> str:
    """The event id of a detail whose `datetime` is the valid ISO 8601 string `when`."""
    occurred_at = parse_iso(when)[0]
    # Content identity (design.md 2.5): the same scan resent in a later webhook gets the same id.
    return content_id("easypost", carrier, tracking_code, occurred_at.isoformat(), status, status_detail, message)


def _location(value: object) -> str | None:
    """`city, state, country` of the parts present (zip left out), or None."""
    if not isinstance(value, dict):
        return None
    city, state, country = value.get("city"), value.get("state"), value.get("country")
    if type(city) is str and type(state) is str and type(country) is str:
        return _joined_location(city, state, country)  # the usual case: three strings
    parts = (opt_str(city), opt_str(state), opt_str(country))
    return ", ".join([part for part in parts if part]) or None


@functools.lru_cache(maxsize=4096)
def _joined_location(city: str, state: str, country: str) -> str | None:
    parts = (city.strip(), state.strip(), country.strip())
    return ", ".join([part for part in parts if part]) or None


def _where(index: int) -> str:
    return f"Tracker.tracking_details[{index}]"


def _text(detail: _Json, name: str, index: int) -> str:
    value = detail.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Invalid(f"{_where(index)}.{name}: expected a string, got {describe(value)}")
    return value.strip()


def _time(value: object, field_name: str) -> datetime:
    try:
        return parse_iso(value, field_name=field_name)[0]
    except (ValueError, OverflowError) as exc:  # TimeParseError is a ValueError
        raise _Invalid(str(exc)) from exc

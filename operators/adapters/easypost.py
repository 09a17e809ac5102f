"""EasyPost tracker webhooks -> CARRIER_STATUS events (design.md 2.3, domain-notes 6.1).

Input is a webhook `Event` (`"object": "Event"`, description `tracker.created` /
`tracker.updated`) whose `result` is a Tracker, or a bare Tracker (`"object": "Tracker"`, as the
API returns it). Every `tracking_details[]` entry is one CARRIER_STATUS event. EasyPost resends
the whole history on every update, so the event id is a hash of the detail's content (design.md
2.5), never the webhook id: a resent history collapses in dedup.

Milestones from `status` / `status_detail` (first matching row wins):

| status | condition | milestone |
|---|---|---|
| pre_transit, in_transit | a pickup scan (below) | PICKED_UP |
| pre_transit | | ACKNOWLEDGED |
| in_transit | status_detail `arrived_at_destination` | ARRIVED |
| in_transit | status_detail `out_for_delivery` | OUT_FOR_DELIVERY |
| in_transit | | IN_TRANSIT |
| out_for_delivery | | OUT_FOR_DELIVERY |
| delivered | | DELIVERED |
| available_for_pickup | | ARRIVED |
| return_to_sender | | RETURNED |
| failure | status_detail `delivery_exception` | DELIVERY_FAILED |
| failure | | EXCEPTION |
| cancelled | | CANCELLED |
| unknown, error, anything else | | UNKNOWN |

A pickup scan: carrier_code `PU` (FedEx, e.g. with status_detail `arrived_at_facility`),
status_detail `received_at_origin_facility`, or a message saying "picked up" (not "to be picked up").
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


class _Invalid(Exception):
    """A required field is missing or has the wrong type; the message names the field."""


@dataclass(frozen=True, slots=True)
class _Tracker:
    """What every detail of one tracker shares."""

    tracking_code: str
    carrier: str | None
    attributes: dict[str, str]
    template: EventTemplate  # the CARRIER_STATUS fields every detail's event shares


def milestone_for(status: str, status_detail: str, carrier_code: str, message: str) -> Milestone:
    """The canonical milestone of one tracking detail (table in the module docstring)."""
    status, status_detail = status.lower(), status_detail.lower()
    if status in {"pre_transit", "in_transit"} and (
        carrier_code.upper() in _PICKUP_CARRIER_CODES
        or status_detail == "received_at_origin_facility"
        or _PICKED_UP.search(message)
    ):
        return Milestone.PICKED_UP
    if status == "in_transit" and status_detail == "arrived_at_destination":
        return Milestone.ARRIVED
    if status == "in_transit" and status_detail == "out_for_delivery":
        return Milestone.OUT_FOR_DELIVERY
    if status == "failure" and status_detail == "delivery_exception":
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
    events: dict[str, CanonicalEvent] = {}
    for index, detail in enumerate(details):
        if not isinstance(detail, dict):
            raise _Invalid(f"Tracker.tracking_details[{index}]: expected an object, got {describe(detail)}")
        event = _detail_event(shared, detail, index)
        # Two identical details in one history are one fact.
        events.setdefault(event.event_id, event)
    return ok(list(events.values()))


def _detail_event(tracker: _Tracker, detail: _Json, index: int) -> CanonicalEvent:
    when = detail.get("datetime")
    occurred_at = _time(when, f"{_where(index)}.datetime")  # raises unless `when` is valid ISO 8601 text
    status = _text(detail, "status", index)
    status_detail = _text(detail, "status_detail", index)
    carrier_code = _text(detail, "carrier_code", index)
    message = _text(detail, "message", index)
    event_id, milestone = _identity(
        tracker.carrier, tracker.tracking_code, str(when), status, status_detail, carrier_code, message
    )
    attributes = tracker.attributes.copy()
    if message:
        attributes["message"] = message
    if status:
        attributes["easypost_status"] = status  # the raw status behind the milestone
    return tracker.template.event(
        event_id=event_id,
        occurred_at=occurred_at,
        milestone=milestone,
        # Test-mode and some carriers send an empty carrier_code: fall back to the detail.
        status_code=carrier_code or status_detail or status or None,
        reason_code=status_detail or None,
        location=_location(detail.get("tracking_location")),
        attributes=attributes,
    )


# EasyPost resends a tracker's whole history on every update: the same detail comes back many
# times, and its id and milestone are pure functions of these strings, so remember recent ones
# (resends come soon after: on the benchmark 4096 entries already catch every repeat).
@functools.lru_cache(maxsize=8192)
def _identity(
    carrier: str | None,
    tracking_code: str,
    when: str,
    status: str,
    status_detail: str,
    carrier_code: str,
    message: str,
) -> tuple[str, Milestone]:
    """(event id, milestone) of a detail whose `datetime` is the valid ISO 8601 string `when`."""
    occurred_at = parse_iso(when)[0]
    # Content identity (design.md 2.5): the same scan resent in a later webhook gets the same id.
    event_id = content_id("easypost", carrier, tracking_code, occurred_at.isoformat(), status, status_detail, message)
    return event_id, milestone_for(status, status_detail, carrier_code, message)


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

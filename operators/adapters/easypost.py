"""EasyPost tracker webhooks -> CARRIER_STATUS events (design.md 2.3, domain-notes 6.1).

Input is a webhook `Event` (`"object": "Event"`, description `tracker.created` /
`tracker.updated`) whose `result` is a Tracker, or a bare Tracker (`"object": "Tracker"`, as the
API returns it). Every `tracking_details[]` entry is one CARRIER_STATUS event, its milestone
from `easypost_milestones`. EasyPost resends the whole history on every update, so the event id
is a hash of the detail's content (design.md 2.5), never the webhook id: a resent history
collapses in dedup.

Two readers, one result: a well-formed tracker webhook (nearly every message) is decoded by
msgspec straight into typed Structs of the few fields we read; anything else (another event,
a bare Tracker, a missing or mistyped field, invalid JSON) is read from the generic JSON by the
reader that names exactly what is wrong. The typed reader accepts only what the generic one
accepts, and gives up (returns None) wherever the generic one would ignore or reject.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime

import msgspec

from operators.adapters.common import decode_json, describe, opt_str, schema_error
from operators.adapters.easypost_milestones import Detail, history_milestones, milestone_for
from operators.formats.timeparse import TimeParseError, iso_instant, parse_iso
from operators.master import MasterData
from operators.model import (
    AdapterResult,
    CanonicalEvent,
    DeadLetterReason,
    EventType,
    RawMessage,
    SourceKind,
    TimePrecision,
    content_id,
    dead,
    ignored,
    ok,
)

__all__ = ["adapt_easypost", "milestone_for"]

ADAPTER = "easypost"
SOURCE_FORMAT = "easypost"
SOURCE_SYSTEM = "easypost"

_Json = Mapping[str, object]


class _Invalid(Exception):
    """A required field is missing or has the wrong type; the message names the field."""


def adapt_easypost(raw: RawMessage, master: MasterData) -> AdapterResult:
    """One webhook Event (or bare Tracker) -> one CARRIER_STATUS per tracking detail."""
    del master  # parcel tracking carries no sku or site to map
    typed = _typed_webhook(raw)
    if typed is not None:
        return typed
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


# --- the typed reader: a well-formed tracker webhook --------------------------------------------


class _Location(msgspec.Struct):
    city: str | None = None
    state: str | None = None
    country: str | None = None


class _TypedDetail(msgspec.Struct):
    datetime: str | None = None
    status: str | None = None
    status_detail: str | None = None
    carrier_code: str | None = None
    message: str | None = None
    tracking_location: _Location | None = None


class _TypedTracker(msgspec.Struct):
    object: str = "Tracker"
    id: str | None = None
    mode: str | None = None
    tracking_code: str | None = None
    carrier: str | None = None
    tracking_details: list[_TypedDetail] | None = None


class _TypedEvent(msgspec.Struct):
    object: str | None = None
    description: str | None = None
    id: str | None = None
    mode: str | None = None
    created_at: str | None = None
    result: _TypedTracker | None = None


_WEBHOOK = msgspec.json.Decoder(_TypedEvent)


def _typed_webhook(raw: RawMessage) -> AdapterResult | None:
    """The events of a well-formed tracker webhook, or None: the generic reader decides."""
    try:
        event = _WEBHOOK.decode(raw.value)
    except msgspec.DecodeError:  # also ValidationError: a field of another type than ours
        return None
    tracker = event.result
    if (
        event.object != "Event"
        or event.description is None
        or not event.description.startswith("tracker.")
        or tracker is None
        or tracker.object != "Tracker"
        or event.created_at is None
        or not tracker.tracking_details  # none: the generic reader ignores the message
    ):
        return None
    tracking_code = opt_str(tracker.tracking_code)
    if tracking_code is None:
        return None
    details: list[Detail] = []
    try:
        recorded_at = _parse_time(event.created_at)
        for typed in tracker.tracking_details:
            detail = _typed_detail(typed)
            if detail is None:
                return None
            details.append(detail)
    except (TimeParseError, OverflowError):
        return None
    attributes = _tracker_attributes(event.id, tracker.id, event.mode or tracker.mode)
    return _events(raw, tracking_code, opt_str(tracker.carrier), attributes, recorded_at, details)


def _typed_detail(detail: _TypedDetail) -> Detail | None:
    when = detail.datetime
    if when is None:
        return None
    location = detail.tracking_location
    return (
        _parse_time(when),
        (detail.status or "").strip(),
        (detail.status_detail or "").strip(),
        (detail.carrier_code or "").strip(),
        (detail.message or "").strip(),
        when,
        _joined_location(location.city or "", location.state or "", location.country or "") if location else None,
    )


def _parse_time(text: str) -> datetime:
    if not text:
        raise TimeParseError("empty")  # as parse_iso: the generic reader says which field
    return iso_instant(text)


# --- the generic reader: names the field that is wrong ------------------------------------------


def _tracker_events(raw: RawMessage, tracker: _Json, recorded_at: datetime, webhook: _Json | None) -> AdapterResult:
    tracking_code = opt_str(tracker.get("tracking_code"))
    if tracking_code is None:
        raise _Invalid(f"Tracker.tracking_code: required, got {describe(tracker.get('tracking_code'))}")
    details = tracker.get("tracking_details")
    if not isinstance(details, list):
        raise _Invalid(f"Tracker.tracking_details: expected a list, got {describe(details)}")
    if not details:
        return ignored(f"tracker {tracking_code} has no tracking details yet")
    attributes = _tracker_attributes(
        webhook.get("id") if webhook else None,
        tracker.get("id"),
        (webhook.get("mode") if webhook else None) or tracker.get("mode"),
    )
    read: list[Detail] = []
    for index, detail in enumerate(details):
        if not isinstance(detail, dict):
            raise _Invalid(f"{_where(index)}: expected an object, got {describe(detail)}")
        when = detail.get("datetime")
        occurred_at = _time(when, f"{_where(index)}.datetime")  # raises unless `when` is valid ISO 8601 text
        read.append(
            (
                occurred_at,
                _text(detail, "status", index),
                _text(detail, "status_detail", index),
                _text(detail, "carrier_code", index),
                _text(detail, "message", index),
                str(when),
                _location(detail.get("tracking_location")),
            )
        )
    return _events(raw, tracking_code, opt_str(tracker.get("carrier")), attributes, recorded_at, read)


def _tracker_attributes(event_id: object, tracker_id: object, mode: object) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for name, value in (("easypost_event_id", event_id), ("tracker_id", tracker_id), ("mode", mode)):
        text = opt_str(value)
        if text is not None:
            attributes[name] = text
    return attributes


def _location(value: object) -> str | None:
    """`city, state, country` of the parts present (zip left out), or None."""
    if not isinstance(value, dict):
        return None
    city, state, country = value.get("city"), value.get("state"), value.get("country")
    if type(city) is str and type(state) is str and type(country) is str:
        return _joined_location(city, state, country)  # the usual case: three strings
    parts = (opt_str(city), opt_str(state), opt_str(country))
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


# --- the events, whichever reader read the details ----------------------------------------------


def _events(
    raw: RawMessage,
    tracking_code: str,
    carrier: str | None,
    attributes: dict[str, str],
    recorded_at: datetime,
    details: list[Detail],
) -> AdapterResult:
    milestones = history_milestones(details)
    events: dict[str, CanonicalEvent] = {}
    first: CanonicalEvent | None = None
    for (occurred_at, status, status_detail, carrier_code, message, when, location), milestone in zip(
        details, milestones, strict=True
    ):
        event_id = _identity(carrier, tracking_code, when, status, status_detail, message)
        if event_id in events:
            continue  # two identical details in one history are one fact
        detail_attributes = attributes.copy()
        if message:
            detail_attributes["message"] = message
        if status:
            detail_attributes["easypost_status"] = status  # the raw status behind the milestone
        # Test-mode and some carriers send an empty carrier_code: fall back to the detail.
        status_code = carrier_code or status_detail or status or None
        if first is None:
            event = first = CanonicalEvent(
                event_id=event_id,
                event_type=EventType.CARRIER_STATUS,
                source_kind=SourceKind.CARRIER,
                source_format=SOURCE_FORMAT,
                source_system=SOURCE_SYSTEM,
                occurred_at=occurred_at,
                recorded_at=recorded_at,
                received_at=raw.received_at,
                time_precision=TimePrecision.S,  # EasyPost datetimes are whole seconds, `Z`
                tracking_number=tracking_code,
                carrier=carrier,
                milestone=milestone,
                status_code=status_code,
                reason_code=status_detail or None,
                location=location,
                raw_ref=raw.raw_ref,
                attributes=detail_attributes,
            )
        else:
            # The next details differ from the first in exactly these fields: copy it.
            event = msgspec.structs.replace(
                first,
                event_id=event_id,
                occurred_at=occurred_at,
                milestone=milestone,
                status_code=status_code,
                reason_code=status_detail or None,
                location=location,
                attributes=detail_attributes,
            )
        events[event_id] = event
    return ok(list(events.values()))


# EasyPost resends a tracker's whole history on every update: the same detail comes back many
# times, and its id is a pure function of these strings, so remember recent ones (resends come
# soon after: on the benchmark 4096 entries already catch every repeat).
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


@functools.lru_cache(maxsize=4096)
def _joined_location(city: str, state: str, country: str) -> str | None:
    parts = (city.strip(), state.strip(), country.strip())
    return ", ".join([part for part in parts if part]) or None

"""Payload writers for the built-in simulator: the raw formats of design.md 2.1-2.3 as bytes.

Pure functions from small structured values to bytes; no randomness here (the story in
`simulator.story` decides everything). Times are epoch milliseconds (int) so the story can do
exact arithmetic; each format's own time notation is written here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import orjson

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

COMPANY_PREFIX = "0614141"  # GS1's documentation company prefix: obviously not a real company
SAP_SOURCE = "/default/sap.s4.beh/S4HCLNT100"
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"

# E623 generic zone codes for the zones of our US sites (G6205 / AT707).
US_TIME_CODES = {
    "America/New_York": "ET",
    "America/Chicago": "CT",
    "America/Denver": "MT",
    "America/Los_Angeles": "PT",
}


# --- time -------------------------------------------------------------------------------


def to_dt(ms: int) -> datetime:
    return EPOCH + timedelta(0, 0, 0, ms)  # positional: the hot path of every timestamp


def to_ms(value: datetime) -> int:
    return (value - EPOCH) // timedelta(milliseconds=1)


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local(ms: int, tz: str) -> datetime:
    return to_dt(ms).astimezone(zone(tz))


def iso_ms(ms: int) -> str:
    """`2026-01-05T06:00:00.123Z` (CloudEvents `time`, EPCIS `recordTime`)."""
    return to_dt(ms).isoformat(timespec="milliseconds")[:-6] + "Z"  # drop "+00:00"


def iso_s(ms: int) -> str:
    """`2026-01-05T06:00:00Z`: EasyPost datetimes are whole seconds."""
    return to_dt(ms).isoformat(timespec="seconds")[:-6] + "Z"


def iso_local_ms(ms: int, tz: str) -> tuple[str, str]:
    """(`2026-01-05T00:12:33.123-06:00`, `-06:00`): an EPCIS eventTime written in the site's zone."""
    text = local(ms, tz).isoformat(timespec="milliseconds")
    return text, text[-6:]


def sap_time(ms: int, odata: bool) -> str:
    """An OData v2 `/Date(ms)/` literal or ISO 8601 (design.md 2.3: SAP sends both)."""
    return f"/Date({ms})/" if odata else iso_ms(ms)


# --- GS1 identifiers --------------------------------------------------------------------


def check_digit(body: str) -> str:
    """GS1 mod-10 check digit: weights 3, 1, 3, ... from the right of the body."""
    total = sum(int(digit) * (3 if index % 2 == 0 else 1) for index, digit in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def with_check(body: str) -> str:
    return body + check_digit(body)


def gtin14(item_ref: int, indicator: str = "0") -> str:
    """GTIN-14 = indicator + company prefix (7) + item reference (5) + check digit."""
    return with_check(f"{indicator}{COMPANY_PREFIX}{item_ref:05d}")


def gln13(location_ref: int) -> str:
    return with_check(f"{COMPANY_PREFIX}{location_ref:05d}")


def sgln(location_ref: int, extension: str = "0") -> str:
    return f"urn:epc:id:sgln:{COMPANY_PREFIX}.{location_ref:05d}.{extension}"


def _epc_parts(gtin: str) -> tuple[str, str]:
    """(company prefix, indicator + item reference) of one of our GTIN-14s (TDS 6.3.1)."""
    return gtin[1:8], gtin[0] + gtin[8:13]


def sgtin(gtin: str, serial: int) -> str:
    prefix, item = _epc_parts(gtin)
    return f"urn:epc:id:sgtin:{prefix}.{item}.{serial}"


def lgtin(gtin: str, lot: str) -> str:
    prefix, item = _epc_parts(gtin)
    return f"urn:epc:class:lgtin:{prefix}.{item}.{lot}"


def digital_link(gtin: str, serial: int | None = None, lot: str | None = None) -> str:
    """GS1 Digital Link URI: `/01/<gtin>/21/<serial>` (instance) or `/10/<lot>` (class)."""
    tail = f"/21/{serial}" if serial is not None else f"/10/{lot}"
    return f"https://id.gs1.org/01/{gtin}{tail}"


# --- JSON formats -----------------------------------------------------------------------


def dumps(document: Mapping[str, Any]) -> bytes:
    return orjson.dumps(document)


def sap_event(ce_type: str, ce_id: str, time_ms: int, data: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudEvents 1.0 envelope as S/4HANA's event mesh sends it (samples/sap_s4_*)."""
    return {
        "type": ce_type,
        "specversion": "1.0",
        "source": SAP_SOURCE,
        "id": ce_id,
        "time": iso_ms(time_ms),
        "datacontenttype": "application/json",
        "data": data,
    }


@dataclass(frozen=True, slots=True)
class EpcisFacts:
    """What one EPCIS ObjectEvent says (EPCIS 2.0 section 7.4.2)."""

    event_id: str
    biz_step: str  # already in the spelling to write (bare word, GS1 URI or URN)
    disposition: str
    event_ms: int
    record_ms: int
    timezone: str
    biz_location: str
    read_point: str
    transactions: Sequence[tuple[str, str]]  # (type, bizTransaction value)
    epcs: Sequence[str] = ()
    quantities: Sequence[tuple[str, int, str]] = ()  # (epcClass, quantity, uom)


def epcis_event(facts: EpcisFacts) -> dict[str, Any]:
    event_time, offset = iso_local_ms(facts.event_ms, facts.timezone)
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventID": facts.event_id,
        "eventTime": event_time,
        "eventTimeZoneOffset": offset,
        "recordTime": iso_ms(facts.record_ms),
        "action": "OBSERVE",
        "bizStep": facts.biz_step,
        "disposition": facts.disposition,
        "readPoint": {"id": facts.read_point},
        "bizLocation": {"id": facts.biz_location},
    }
    if facts.epcs:
        event["epcList"] = list(facts.epcs)
    if facts.quantities:
        event["quantityList"] = [
            {"epcClass": epc_class, "quantity": quantity, "uom": uom} for epc_class, quantity, uom in facts.quantities
        ]
    if facts.transactions:
        event["bizTransactionList"] = [{"type": kind, "bizTransaction": value} for kind, value in facts.transactions]
    return event


def epcis_document(event: Mapping[str, Any], creation_ms: int, sender: str, bare: bool) -> bytes:
    """An EPCISDocument around one event, or (bare) the event itself with its @context."""
    if bare:
        return dumps({"@context": [EPCIS_CONTEXT], **event})
    return dumps(
        {
            "@context": [EPCIS_CONTEXT],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": iso_ms(creation_ms),
            "sender": sender,
            "epcisBody": {"eventList": [event]},
        }
    )


@dataclass(frozen=True, slots=True)
class TrackingDetail:
    """One EasyPost TrackingDetail (domain-notes 6.1)."""

    ms: int  # whole seconds
    status: str
    status_detail: str
    message: str
    carrier_code: str
    city: str
    state: str
    country: str
    postal: str

    def as_json(self, carrier: str) -> dict[str, Any]:
        return {
            "object": "TrackingDetail",
            "message": self.message,
            "description": self.message,
            "status": self.status,
            "status_detail": self.status_detail,
            "datetime": iso_s(self.ms),
            "source": carrier,
            "carrier_code": self.carrier_code,
            "tracking_location": {
                "object": "TrackingLocation",
                "city": self.city,
                "state": self.state or None,
                "country": self.country,
                "zip": self.postal,
            },
        }


@dataclass(frozen=True, slots=True)
class Tracker:
    """The Tracker fields that do not change between webhooks."""

    tracker_id: str
    tracking_code: str
    carrier: str
    created_ms: int
    weight_oz: float
    est_delivery_ms: int
    origin: str
    destination: str
    service: str


def tracker_json(tracker: Tracker) -> dict[str, Any]:
    """The Tracker fields every webhook of it repeats, written once (a template to copy)."""
    return {
        "id": tracker.tracker_id,
        "object": "Tracker",
        "mode": "production",
        "tracking_code": tracker.tracking_code,
        "status": "",
        "status_detail": "",
        "created_at": iso_s(tracker.created_ms),
        "updated_at": "",
        "signed_by": None,
        "weight": tracker.weight_oz,
        "est_delivery_date": iso_s(tracker.est_delivery_ms - tracker.est_delivery_ms % DAY),
        "shipment_id": None,
        "carrier": tracker.carrier,
        "tracking_details": [],
        "carrier_detail": {
            "object": "CarrierDetail",
            "service": tracker.service,
            "origin_location": tracker.origin,
            "destination_location": tracker.destination,
        },
        "finalized": False,
        "is_return": False,
        "public_url": f"https://track.easypost.com/{tracker.tracker_id}",
    }


def easypost_event(
    template: Mapping[str, Any],
    history: Sequence[dict[str, Any]],
    event_id: str,
    created_ms: int,
    created: bool,
    previous: Mapping[str, Any],
) -> dict[str, Any]:
    """A webhook Event whose result is the Tracker with its whole history (samples/easypost_*)."""
    last = history[-1]
    result = dict(template)
    result["status"] = last["status"]
    result["status_detail"] = last["status_detail"]
    result["updated_at"] = iso_s(created_ms - SECOND)
    result["tracking_details"] = list(history)
    result["finalized"] = last["status"] == "delivered"
    created_at = iso_ms(created_ms)
    return {
        "description": "tracker.created" if created else "tracker.updated",
        "mode": "production",
        "previous_attributes": dict(previous),
        "created_at": created_at,
        "pending_urls": ["https://hooks.logisync.example/easypost"],
        "completed_urls": [],
        "updated_at": created_at,
        "id": event_id,
        "user_id": "user_0b4c1d2e3f",
        "status": "pending",
        "object": "Event",
        "result": result,
    }


def snapshot(
    snapshot_id: str, system: str, source_system: str, as_of_ms: int, site: str, lines: Sequence[tuple[str, float]]
) -> dict[str, Any]:
    """logisync's stock snapshot contract (design.md 2.3); quantities in the base unit EA."""
    return {
        "snapshot_id": snapshot_id,
        "system": system,
        "source_system": source_system,
        "as_of": iso_s(as_of_ms),
        "site": site,
        "lines": [{"sku": sku, "quantity": quantity, "uom": "EA"} for sku, quantity in lines],
    }


# --- X12 ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class X12Partner:
    """One EDI trading partner's habits: ids and separators (domain-notes 2)."""

    sender_id: str
    receiver_id: str
    terminator: str  # "~", "~\n" or "\n"
    component: str  # ISA16
    se_miscount: bool = False  # SE01 excludes ST/SE: a real-world habit, a warning only


def x12_interchange(
    partner: X12Partner,
    functional_id: str,
    set_id: str,
    sets: Sequence[Sequence[str]],
    sent_ms: int,
    control: int,
) -> bytes:
    """ISA/GS/ST..SE/GE/IEA around transaction-set bodies (segments without terminators).

    ISA13 = GS06 = `control`; ST02 derives from it, so a retransmission with a new `control`
    has new ISA13/GS06/ST02 and otherwise identical content. GS04/GS05 are UTC (recorded_at).
    """
    sent = to_dt(sent_ms)
    segments = [
        f"ISA*00*{'':10}*00*{'':10}*ZZ*{partner.sender_id:<15}*ZZ*{partner.receiver_id:<15}"
        f"*{sent:%y%m%d}*{sent:%H%M}*U*00401*{control:09d}*0*P*{partner.component}",
        f"GS*{functional_id}*{partner.sender_id}*{partner.receiver_id}*{sent:%Y%m%d}*{sent:%H%M}*{control}*X*004010",
    ]
    for number, body in enumerate(sets, 1):
        st02 = f"{control % 100_000:05d}{number:04d}"
        segments.append(f"ST*{set_id}*{st02}")
        segments.extend(body)
        count = len(body) + (0 if partner.se_miscount else 2)
        segments.append(f"SE*{count}*{st02}")
    segments.append(f"GE*{len(sets)}*{control}")
    segments.append(f"IEA*1*{control:09d}")
    terminator = partner.terminator
    return (terminator.join(segments) + terminator).encode("ascii")


def x12_date(moment: datetime) -> str:
    return f"{moment:%Y%m%d}"


def x12_time(moment: datetime) -> str:
    return f"{moment:%H%M}"

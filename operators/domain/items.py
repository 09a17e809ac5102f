"""What the keyed stages send each other (design.md 1, 3.2-3.4).

Every item travels with an order key (operators.domain.watermark) and may cross a bytewax
process, so each is a small msgspec Struct (encoded as msgpack, never pickled field by field).

    dedup ──Teach / Lookup──> resolution (by reference) ──Candidate / RefLearned──> arbiter
    dedup ──Pending──> arbiter (by primary reference) ──Resolved──> lifecycle (by delivery)
    dedup ──CanonicalEvent──> lifecycle, inventory (by site)
    lifecycle ──InFlight / GoodsIssue──> inventory
"""

from __future__ import annotations

import zlib

import msgspec

from operators.domain.health import TopicMinute
from operators.model import CanonicalEvent, Line


class Teach(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """An event that names its delivery teaches one of its references (design.md 3.2)."""

    ref: str  # reference key: "ref:<tracking number / PRO / BOL>" or "order:<order id>"
    delivery_id: str
    order_id: str


class Lookup(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """An event without a delivery asks one of its references for it."""

    event_id: str
    ref: str
    via: str  # the field the reference came from: tracking_number, shipment_ref, order_id
    primary: str  # the event's primary reference: the arbiter bucket that decides for it
    expires_ms: int  # received_at + xref_ttl: a reference learned from then on does not rescue it


class Candidate(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """One reference of an event resolved to a delivery; the arbiter keeps the first."""

    event_id: str
    primary: str
    delivery_id: str
    order_id: str
    via: str
    ref: str
    effective_ms: int  # when resolution could know: max(event received, reference learned)


class RefLearned(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """A reference whose waiting events expired was learned later: its orphan alert resolves."""

    ref: str
    delivery_id: str


class Pending(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """An event that needs resolution, registered with the arbiter of its primary reference."""

    event: CanonicalEvent
    primary: str  # reference key, or "event:<event_id>" for an event without any reference
    refs: int  # how many references it was looked up by (0: nothing can ever resolve it)
    expires_ms: int


class Resolved(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """An event attached to its delivery by resolution (`event.delivery_id` is set)."""

    event: CanonicalEvent
    via: str
    ref: str


class InFlight(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """Dispatched by the WMS, goods issue not posted in the ERP: `sign` +1 adds the dispatch's
    lines to the positions' in-flight quantity, -1 takes them out again."""

    site: str
    delivery_id: str
    dispatch_id: str  # event_id of the dispatch
    lines: tuple[Line, ...]
    sign: int
    at_ms: int  # event time of the change: the dispatch's, the goods issue's, or the expiry


class GoodsIssue(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """The ERP goods-issue movement of one delivery at one site, replacing any earlier one.

    Every OutboundDelivery.Changed with status C is an after-image of the same goods issue, so a
    delivery has one movement (`goods_issue:<delivery>`): from its earliest goods issue, with the
    lines of the earliest one that has lines, else of its release. `lines` empty: none (any
    earlier movement of this delivery at this site is taken back).
    """

    site: str
    delivery_id: str
    occurred_ms: int
    lines: tuple[Line, ...]


DomainItem = (
    Teach | Lookup | Candidate | RefLearned | Pending | Resolved | InFlight | GoodsIssue | TopicMinute | CanonicalEvent
)


def tie_of(event_id: str) -> int:
    """A 64-bit stand-in for an event id where the id only breaks ties between equal times.

    Deterministic (two crc32s, never hash()), so the choice it makes is the same in every process
    and every run; state keeps 8 bytes instead of the id (40-60 characters), and the id's string
    can be let go with its event."""
    data = event_id.encode("utf-8")
    return (zlib.crc32(data) << 32) | zlib.crc32(data, 0x9E3779B9)


def bucket_of(key: str, buckets: int) -> int:
    """A stable bucket for a key (crc32, never hash(): it must agree across processes)."""
    return zlib.crc32(key.encode("utf-8")) % buckets

"""Delivery status: the `delivery_status` row and the fold that decides it (design.md 4).

`status` is the furthest physical milestone, computed by a fold over the delivery's
status-bearing events sorted by (occurred_at, event_id), so it does not depend on arrival order:
- RELEASED < PICKING < PACKED < DISPATCHED < IN_TRANSIT < OUT_FOR_DELIVERY < DELIVERED; an event of
  a lower rank than the current one leaves it (the furthest milestone wins);
- DELIVERY_FAILED / EXCEPTION keep the rank of where they happened (a later event of the same or
  a higher rank replaces them);
- DELIVERED / RETURNED / CANCELLED are terminal: only a later terminal event replaces them (a
  return after delivery), never an event that occurred earlier or a later non-terminal scan;
- an ERP GOODS_ISSUE_POSTED counts as DISPATCHED (the goods left the warehouse); carrier
  PICKED_UP and ARRIVED count as IN_TRANSIT; ETA / ACKNOWLEDGED / UNKNOWN and invoices say nothing
  about progress (invoicing is a time column).
`out_of_sequence` is set when a milestone that occurred earlier was received after a later one
(by received_at, so it too is a function of the event set); the late event is still applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from operators.model import CanonicalEvent, EventType, Milestone

RELEASED = "RELEASED"
PICKING = "PICKING"
PACKED = "PACKED"
DISPATCHED = "DISPATCHED"
IN_TRANSIT = "IN_TRANSIT"
OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
DELIVERED = "DELIVERED"
DELIVERY_FAILED = "DELIVERY_FAILED"
EXCEPTION = "EXCEPTION"
RETURNED = "RETURNED"
CANCELLED = "CANCELLED"
UNKNOWN = "UNKNOWN"  # only non-status events known so far (e.g. just an invoice)

TERMINAL = frozenset({DELIVERED, RETURNED, CANCELLED})
_RANK = {RELEASED: 0, PICKING: 1, PACKED: 2, DISPATCHED: 3, IN_TRANSIT: 4, OUT_FOR_DELIVERY: 5, DELIVERED: 6}
# Ranks used to detect out-of-sequence arrival; failures, exceptions and cancellations have none.
_SEQUENCE_RANK = {**_RANK, RETURNED: 7}

_TYPE_STATUS = {
    EventType.ORDER_RELEASED: RELEASED,
    EventType.PICK_CONFIRMED: PICKING,
    EventType.PACK_CONFIRMED: PACKED,
    EventType.SHIPMENT_DISPATCHED: DISPATCHED,
    EventType.GOODS_ISSUE_POSTED: DISPATCHED,
}
# Carrier milestones (design.md 2.3); ETA, ACKNOWLEDGED and UNKNOWN say nothing about progress.
_MILESTONE_STATUS = {
    Milestone.PICKED_UP: IN_TRANSIT,
    Milestone.IN_TRANSIT: IN_TRANSIT,
    Milestone.ARRIVED: IN_TRANSIT,
    Milestone.OUT_FOR_DELIVERY: OUT_FOR_DELIVERY,
    Milestone.DELIVERED: DELIVERED,
    Milestone.DELIVERY_FAILED: DELIVERY_FAILED,
    Milestone.EXCEPTION: EXCEPTION,
    Milestone.RETURNED: RETURNED,
    Milestone.CANCELLED: CANCELLED,
}


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """One version of a row of `delivery_status`. Strings are "" when unknown."""

    delivery_id: str
    order_id: str
    site: str
    status: str
    released_at: datetime | None
    first_wms_at: datetime | None
    dispatched_at: datetime | None
    gi_posted_at: datetime | None
    picked_up_at: datetime | None
    delivered_at: datetime | None
    invoiced_at: datetime | None
    out_of_sequence: bool
    version: int


@dataclass(slots=True, order=True)
class StatusSighting:
    """A status-bearing event, ordered as the status fold reads them: (occurred_at, event_id).

    Not `frozen` (that makes building one several times slower); never changed once built.
    """

    occurred_at: datetime
    event_id: str
    status: str
    received_at: datetime


def status_of(event: CanonicalEvent) -> str | None:
    """The status an event shows, or None when it says nothing about physical progress."""
    if event.event_type == EventType.CARRIER_STATUS:
        return None if event.milestone is None else _MILESTONE_STATUS.get(event.milestone)
    return _TYPE_STATUS.get(event.event_type)


def fold_status(sightings: Sequence[StatusSighting]) -> str:
    """The status after the sorted status-bearing events (see the module docstring)."""
    status, rank, terminal = UNKNOWN, -1, False
    for sighting in sightings:
        if sighting.status in TERMINAL:
            status, terminal = sighting.status, True
        elif terminal:
            continue  # a terminal status is never overwritten by a non-terminal event
        elif sighting.status in (DELIVERY_FAILED, EXCEPTION):
            status = sighting.status  # keeps the rank of where it happened
        elif _RANK[sighting.status] >= rank:
            status, rank = sighting.status, _RANK[sighting.status]
    return status


def out_of_sequence(sightings: Sequence[StatusSighting], new: StatusSighting) -> bool:
    """Did a milestone that occurred earlier (lower rank) reach us after a later one?"""
    rank_of = _SEQUENCE_RANK.get
    rank = rank_of(new.status)
    if rank is None:
        return False
    occurred_at, received_at = new.occurred_at, new.received_at
    for other in sightings:
        other_rank = rank_of(other.status)
        if other_rank is None or other_rank == rank:
            continue
        if other_rank < rank:  # `other` is the earlier milestone
            if other.occurred_at < occurred_at and other.received_at > received_at:
                return True
        elif occurred_at < other.occurred_at and received_at > other.received_at:
            return True
    return False

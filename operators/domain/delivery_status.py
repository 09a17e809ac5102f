"""Delivery status: the `delivery_status` row, the fold that decides it (design.md 4) and the
per-delivery record they are made from (`DeliveryState`, kept by `operators.domain.lifecycle`).

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

from bisect import insort
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from operators.domain.handoff_tracks import Candidate, HandoffTrack, better, copy_track
from operators.model import CanonicalEvent, EventType, Milestone, SourceKind
from operators.records import pickled_as_values

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
_WMS_WORK = frozenset({EventType.PICK_CONFIRMED, EventType.PACK_CONFIRMED, EventType.SHIPMENT_DISPATCHED})
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


@pickled_as_values
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


@pickled_as_values
@dataclass(slots=True)
class DeliveryState:
    """Everything one delivery needs.

    Mutable working state, changed in place by the `DeliveryLifecycle` that holds it: copying
    the record on every event cost more than everything else the event does. A snapshot shares
    the records, so the lifecycle copies one (`private_copy`) before its first change after a
    snapshot (copy-on-write, see `operators.domain.lifecycle.DeliveryLifecycle._own`).

    Discarded when (by `operators.domain.lifecycle`): the delivery is terminal (DELIVERED / RETURNED /
    CANCELLED, invoiced or not) and W >= last_received_at + retention, or whatever its status
    when W >= last_received_at + idle_retention (no event for that long). An event that arrives
    afterwards starts a new state whose versions restart at 1: its rows lose against the
    retained ones in ReplacingMergeTree.
    """

    delivery_id: str
    event_ids: set[str] = field(default_factory=set)  # dedup; len() is the DeliveryStatus version
    last_received_at: datetime | None = None
    order: Candidate | None = None  # ERP first, then earliest (operators.domain.handoff_tracks.candidate)
    site: Candidate | None = None
    released_at: datetime | None = None
    first_wms_at: datetime | None = None
    dispatched_at: datetime | None = None
    gi_posted_at: datetime | None = None
    picked_up_at: datetime | None = None  # carrier PICKED_UP
    first_in_transit_at: datetime | None = None  # carrier IN_TRANSIT, used when no PICKED_UP is known
    delivered_at: datetime | None = None
    invoiced_at: datetime | None = None
    sightings: list[StatusSighting] = field(default_factory=list)  # sorted
    out_of_sequence: bool = False
    tracks: list[HandoffTrack] = field(default_factory=list)  # one per configured handoff, same order
    row: DeliveryStatus | None = None  # last emitted


def _earliest(current: datetime | None, new: datetime) -> datetime:
    return new if current is None or new < current else current


def apply_event(state: DeliveryState, event: CanonicalEvent, order: Candidate | None, site: Candidate | None) -> bool:
    """Fold one new event into the delivery, in place, except its handoff tracks (the caller has
    checked it is not a duplicate; `order` / `site` are the event's candidates).

    Returns whether the event is status-bearing (it changed the sightings).
    """
    at, received, event_id, event_type = event.occurred_at, event.received_at, event.event_id, event.event_type
    state.event_ids.add(event_id)
    state.last_received_at = max(state.last_received_at or received, received)
    state.order = better(state.order, order)
    state.site = better(state.site, site)
    if event_type == EventType.ORDER_RELEASED:
        state.released_at = _earliest(state.released_at, at)
    if event_type in _WMS_WORK and event.source_kind == SourceKind.WMS:
        state.first_wms_at = _earliest(state.first_wms_at, at)
    if event_type == EventType.SHIPMENT_DISPATCHED:
        state.dispatched_at = _earliest(state.dispatched_at, at)
    if event_type == EventType.GOODS_ISSUE_POSTED:
        state.gi_posted_at = _earliest(state.gi_posted_at, at)
    if event_type == EventType.INVOICE_POSTED:
        state.invoiced_at = _earliest(state.invoiced_at, at)
    if event_type == EventType.CARRIER_STATUS:
        if event.milestone == Milestone.PICKED_UP:
            state.picked_up_at = _earliest(state.picked_up_at, at)
        elif event.milestone == Milestone.IN_TRANSIT:
            state.first_in_transit_at = _earliest(state.first_in_transit_at, at)
        elif event.milestone == Milestone.DELIVERED:
            state.delivered_at = _earliest(state.delivered_at, at)
    status = status_of(event)
    if status is None:
        return False
    sighting = StatusSighting(at, event_id, status, received)
    state.out_of_sequence = state.out_of_sequence or out_of_sequence(state.sightings, sighting)
    insort(state.sightings, sighting)
    return True


def private_copy(state: DeliveryState) -> DeliveryState:
    """A copy that shares nothing mutable with `state` (it may be held by a snapshot)."""
    return DeliveryState(
        delivery_id=state.delivery_id,
        event_ids=set(state.event_ids),
        last_received_at=state.last_received_at,
        order=state.order,
        site=state.site,
        released_at=state.released_at,
        first_wms_at=state.first_wms_at,
        dispatched_at=state.dispatched_at,
        gi_posted_at=state.gi_posted_at,
        picked_up_at=state.picked_up_at,
        first_in_transit_at=state.first_in_transit_at,
        delivered_at=state.delivered_at,
        invoiced_at=state.invoiced_at,
        sightings=list(state.sightings),
        out_of_sequence=state.out_of_sequence,
        tracks=[copy_track(track) for track in state.tracks],
        row=state.row,
    )


# (DeliveryStatus fields but the version, in declaration order) of the current status.
StatusContent = tuple[
    str, str, str, str, datetime | None, datetime | None, datetime | None, datetime | None,
    datetime | None, datetime | None, datetime | None, bool,
]  # fmt: skip


def status_content(state: DeliveryState, status: str) -> StatusContent:
    """The delivery's `delivery_status` row as a tuple without the version, given the status its
    sightings fold to: the lifecycle compares it with the last emitted row, and builds a row
    only to emit it."""
    order, site = state.order, state.site
    return (
        state.delivery_id,
        "" if order is None else order[3],
        "" if site is None else site[3],
        status,
        state.released_at,
        state.first_wms_at,
        state.dispatched_at,
        state.gi_posted_at,
        state.picked_up_at if state.picked_up_at is not None else state.first_in_transit_at,
        state.delivered_at,
        state.invoiced_at,
        state.out_of_sequence,
    )

"""Delivery status (design.md 4): the `delivery_status` row and the fold that decides it.

`status` is the furthest physical milestone, as a fold over the delivery's status-bearing events
sorted by (occurred_at, event_id), so it does not depend on arrival order:
- RELEASED < PICKING < PACKED < DISPATCHED < IN_TRANSIT < OUT_FOR_DELIVERY < DELIVERED; an event of
  a lower rank than the current one leaves it (the furthest milestone wins);
- DELIVERY_FAILED / EXCEPTION keep the rank of where they happened (a later event of the same or
  a higher rank replaces them);
- DELIVERED / RETURNED / CANCELLED are terminal: only a later terminal event replaces them (a
  return after delivery), never an event that occurred earlier or a later non-terminal scan;
- an ERP GOODS_ISSUE_POSTED counts as DISPATCHED (the goods left the warehouse); carrier
  PICKED_UP and ARRIVED count as IN_TRANSIT; ETA / ACKNOWLEDGED / UNKNOWN and invoices say nothing
  about progress (invoicing is a time column).

The fold needs O(1) state, not the list of events: its result is the last terminal event if
there is one, else whichever comes later of the last failure and the last event of the highest
rank seen (`StatusFold`). A delivery with ten thousand scans costs what one with ten does.

`out_of_sequence` compares the first occurrence of each milestone: it is set when a milestone
that occurred first reached us after the first occurrence of a later one (e.g. the pickup scan
arrived after the delivery scan). Also a function of the event set.
"""

from __future__ import annotations

import msgspec

from operators.model import EventType, Milestone

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
FAILURES = frozenset({DELIVERY_FAILED, EXCEPTION})
RANK = {RELEASED: 0, PICKING: 1, PACKED: 2, DISPATCHED: 3, IN_TRANSIT: 4, OUT_FOR_DELIVERY: 5, DELIVERED: 6}
# Ranks for out_of_sequence; failures, exceptions and cancellations have none.
SEQUENCE_RANK = {**RANK, RETURNED: 7}

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


def status_of(event_type: EventType, milestone: Milestone | None) -> str | None:
    """The status an event shows, or None when it says nothing about physical progress."""
    if event_type == EventType.CARRIER_STATUS:
        return None if milestone is None else _MILESTONE_STATUS.get(milestone)
    return _TYPE_STATUS.get(event_type)


class DeliveryStatus(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One version of a row of `delivery_status`. Strings are "" when unknown; times are epoch ms."""

    delivery_id: str
    order_id: str
    site: str
    status: str
    released_at: int | None
    first_wms_at: int | None
    dispatched_at: int | None
    gi_posted_at: int | None
    picked_up_at: int | None
    delivered_at: int | None
    invoiced_at: int | None
    out_of_sequence: bool
    version: int
    failed_attempts: int = 0  # distinct failed delivery attempts (DELIVERY_FAILED carrier events, by time)


# (occurred ms, tie of the event id, status): a status-bearing event, ordered as the fold reads
# them (operators.domain.items.tie_of stands in for the event id).
Sighting = tuple[int, int, str]


class StatusFold(msgspec.Struct, gc=False, array_like=True):
    """The fold's state (see the module docstring). Discarded when: with its delivery."""

    terminal: Sighting | None = None  # the last terminal sighting
    failure: Sighting | None = None  # the last failure / exception
    top_rank: int = -1  # the highest progress rank seen ...
    top: Sighting | None = None  # ... and its last sighting
    # sequence rank -> (occurred ms, tie, received ms) of its first occurrence
    firsts: dict[int, tuple[int, int, int]] = {}

    def add(self, occurred_ms: int, tie: int, status: str, received_ms: int) -> None:
        sighting = (occurred_ms, tie, status)
        if status in TERMINAL:
            if self.terminal is None or sighting > self.terminal:
                self.terminal = sighting
        elif status in FAILURES:
            if self.failure is None or sighting > self.failure:
                self.failure = sighting
        else:
            rank = RANK[status]
            if rank > self.top_rank or (rank == self.top_rank and self.top is not None and sighting > self.top):
                self.top_rank, self.top = rank, sighting
        sequence = SEQUENCE_RANK.get(status)
        if sequence is not None:
            first = self.firsts.get(sequence)
            if first is None or (occurred_ms, tie) < first[:2]:
                self.firsts[sequence] = (occurred_ms, tie, received_ms)

    @property
    def status(self) -> str:
        if self.terminal is not None:
            return self.terminal[2]
        top, failure = self.top, self.failure
        if failure is not None and (top is None or failure > top):
            return failure[2]
        return top[2] if top is not None else UNKNOWN

    @property
    def out_of_sequence(self) -> bool:
        firsts = sorted(self.firsts.items())
        for index, (_, (occurred, _, received)) in enumerate(firsts):
            for _, (later_occurred, _, later_received) in firsts[index + 1 :]:
                if occurred < later_occurred and received > later_received:
                    return True
        return False

"""Reference resolution (design.md 3.2), keyed by reference value.

Carrier events often carry only a tracking number / PRO or a BOL, order-level ERP events only an
order id. Every event that names its delivery teaches its references ("this reference is that
delivery"); every event without a delivery looks each of its references up. A bucket holds the
references that hash to it:

    Teach(ref -> delivery)   learn it (the latest received teaching wins, ties by delivery id),
                             and answer the lookups that were waiting for it
    Lookup(event, ref)       answer at once when the reference is known, else wait

An answer is a `Candidate` for the arbiter of the event's primary reference (operators.domain.
arbiter), which keeps the first candidate of each event in order, so an event with several
references resolves exactly once, through whichever reference resolved it first. A lookup waits
until `received_at + xref_ttl` of W; a reference learned from then on does not rescue it (the
arbiter orphans it), but still resolves the orphan alert of that reference (`RefLearned`).

References match by value whatever field a partner filed them in (a parcel's tracking number
arrives as an EPCIS `bol`, a PRO as 214 B10-01 and as 945 N9*CN): tracking numbers and BOLs
share one key space ("ref:<value>", trimmed, upper case); order ids have their own ("order:").
"""

from __future__ import annotations

import heapq
from typing import Any

import msgspec

from operators.domain.items import Candidate, Lookup, RefLearned, Teach
from operators.domain.watermark import OrderKey
from operators.model import CanonicalEvent, EventType, SourceKind

TRACKING = "tracking_number"
SHIPMENT_REF = "shipment_ref"
ORDER = "order_id"
# Which reference of an event decides when several resolve at the same time: the most specific.
VIA_RANK = {TRACKING: 0, SHIPMENT_REF: 1, ORDER: 2}

# Events that belong to a delivery by nature and are worth resolving when they lack its id.
RESOLVABLE = frozenset(
    {
        EventType.CARRIER_STATUS,
        EventType.APPOINTMENT,
        EventType.ORDER_CREATED,
        EventType.PICK_CONFIRMED,
        EventType.PACK_CONFIRMED,
        EventType.SHIPMENT_DISPATCHED,
        EventType.INVOICE_POSTED,
    }
)
# Not GOODS_ISSUE_POSTED: without a delivery it is a plain ERP movement of its site's ledger, and
# resolving it as well would count it twice.


def reference_keys(event: CanonicalEvent) -> tuple[tuple[str, str], ...]:
    """(via, key) of the event's references, most specific first, each key once."""
    found: list[tuple[str, str]] = []
    keys: set[str] = set()
    for via, value, space in (
        (TRACKING, event.tracking_number, "ref:"),
        (SHIPMENT_REF, event.shipment_ref, "ref:"),
        (ORDER, event.order_id, "order:"),
    ):
        if value:
            text = value.strip().upper()
            if text:
                key = space + text
                if key not in keys:
                    keys.add(key)
                    found.append((via, key))
    return tuple(found)


def needs_resolution(event: CanonicalEvent) -> bool:
    """An event without a delivery that resolution may attach to one (or, for a carrier event,
    must report as an orphan when it cannot)."""
    return not event.delivery_id and event.event_type in RESOLVABLE


def is_carrier(event: CanonicalEvent) -> bool:
    return event.source_kind == SourceKind.CARRIER


class Xref(msgspec.Struct, gc=False, array_like=True):
    """A learned reference. Discarded when: W >= touched_ms + retention (not learned nor used)."""

    delivery_id: str
    order_id: str
    learned_ms: int  # received time of the teaching that set it
    touched_ms: int  # latest time it was taught or used


class Waiting(msgspec.Struct, gc=False, array_like=True):
    """A lookup waiting for its reference. Discarded when: the reference is learned (answered),
    or W >= expires_ms."""

    via: str
    primary: str
    expires_ms: int
    received_ms: int = 0  # the lookup's arrival: it is never answered earlier


class ResolutionState(msgspec.Struct, gc=False):
    """One bucket's state; every entry says when it is discarded."""

    xrefs: dict[str, Xref] = {}
    # ref -> event_id -> lookup. See Waiting.
    waiting: dict[str, dict[str, Waiting]] = {}
    # Heap of (expires_ms, ref, event_id), re-checked when popped. Discarded when: popped.
    waiting_expiry: list[tuple[int, str, str]] = []
    # Heap of (discard ms, ref), re-checked when popped (see Xref). Discarded when: popped.
    xref_expiry: list[tuple[int, str]] = []
    # Primary references whose waiting events expired unanswered -> when; a later teaching of
    # one resolves its orphan alert. Discarded when: learned, or W >= that time + retention.
    expired: dict[str, int] = {}
    expired_expiry: list[tuple[int, str]] = []
    now: int = -(2**62)


# (destination stage, routing entity, order key, item): the flow turns the entity into a bucket.
Emit = tuple[str, str, OrderKey, Any]
ARBITER = "arbiter"


class ResolutionLogic:
    """The references of one bucket."""

    __slots__ = ("retention_ms", "state")

    def __init__(self, retention_ms: int, state: ResolutionState | None = None) -> None:
        self.retention_ms = retention_ms
        self.state = state if state is not None else ResolutionState()

    def apply(self, key: OrderKey, item: Any, out: list[Any]) -> None:
        if isinstance(item, Teach):
            self._teach(key, item, out)
        elif isinstance(item, Lookup):
            self._lookup(key, item, out)
        else:  # pragma: no cover - the flow routes only these here
            raise TypeError(f"resolution: unexpected {type(item).__name__}")

    def _teach(self, key: OrderKey, teach: Teach, out: list[Any]) -> None:
        state, now_ms = self.state, key[0]
        ref, delivery_id = teach.ref, teach.delivery_id
        known = state.xrefs.get(ref)
        if known is None:
            xref = state.xrefs[ref] = Xref(delivery_id, teach.order_id, now_ms, now_ms)
            heapq.heappush(state.xref_expiry, (now_ms + self.retention_ms, ref))
        elif (now_ms, delivery_id) >= (known.learned_ms, known.delivery_id):
            same = known.delivery_id == delivery_id
            known.order_id = teach.order_id or (known.order_id if same else "")
            known.delivery_id, known.learned_ms = delivery_id, now_ms
            known.touched_ms = max(known.touched_ms, now_ms)
            xref = known
        else:
            known.touched_ms = max(known.touched_ms, now_ms)
            xref = known
        waiting = state.waiting.pop(ref, None)
        if waiting:
            for event_id in sorted(waiting):  # sorted: the order of the answers is not arrival's
                lookup = waiting[event_id]
                answered_ms = max(now_ms, lookup.received_ms)  # a teaching applied late
                out.append(_answer(event_id, ref, lookup.via, lookup.primary, xref, answered_ms))
        if ref in state.expired:
            del state.expired[ref]
            out.append((ARBITER, ref, (now_ms, ref, 0), RefLearned(ref, xref.delivery_id)))

    def _lookup(self, key: OrderKey, lookup: Lookup, out: list[Any]) -> None:
        state, now_ms = self.state, key[0]
        xref = state.xrefs.get(lookup.ref)
        if xref is not None:
            xref.touched_ms = max(xref.touched_ms, now_ms)
            out.append(_answer(lookup.event_id, lookup.ref, lookup.via, lookup.primary, xref, now_ms))
            return
        if lookup.expires_ms <= state.now:
            self._expired(lookup.ref, lookup.primary, lookup.expires_ms)  # late beyond the ttl
            return
        per_ref = state.waiting.get(lookup.ref)
        if per_ref is None:
            per_ref = state.waiting[lookup.ref] = {}
        per_ref[lookup.event_id] = Waiting(lookup.via, lookup.primary, lookup.expires_ms, now_ms)
        heapq.heappush(state.waiting_expiry, (lookup.expires_ms, lookup.ref, lookup.event_id))

    def fire_until(self, time_ms: int, out: list[Any]) -> None:
        state = self.state
        if time_ms <= state.now:
            return
        state.now = now = time_ms
        heap = state.waiting_expiry
        while heap and heap[0][0] <= now:
            expires_ms, ref, event_id = heapq.heappop(heap)
            per_ref = state.waiting.get(ref)
            lookup = per_ref.get(event_id) if per_ref else None
            if lookup is None or lookup.expires_ms != expires_ms or per_ref is None:
                continue
            del per_ref[event_id]
            if not per_ref:
                del state.waiting[ref]
            self._expired(ref, lookup.primary, expires_ms)
        self._forget(now)

    def _expired(self, ref: str, primary: str, at_ms: int) -> None:
        if ref == primary:
            state = self.state
            if ref not in state.expired:
                heapq.heappush(state.expired_expiry, (at_ms + self.retention_ms, ref))
            state.expired[ref] = max(at_ms, state.expired.get(ref, at_ms))

    def _forget(self, now: int) -> None:
        state, retention = self.state, self.retention_ms
        heap = state.xref_expiry
        while heap and heap[0][0] <= now:
            _, ref = heapq.heappop(heap)
            xref = state.xrefs.get(ref)
            if xref is None:
                continue
            if xref.touched_ms + retention <= now:
                del state.xrefs[ref]
            else:
                heapq.heappush(heap, (xref.touched_ms + retention, ref))
        heap2 = state.expired_expiry
        while heap2 and heap2[0][0] <= now:
            _, ref = heapq.heappop(heap2)
            at = state.expired.get(ref)
            if at is not None and at + retention <= now:
                del state.expired[ref]
            elif at is not None:
                heapq.heappush(heap2, (at + retention, ref))

    def flush(self, out: list[Any]) -> None:
        return None

    def waiting_count(self) -> int:
        return sum(len(per_ref) for per_ref in self.state.waiting.values())


def _answer(event_id: str, ref: str, via: str, primary: str, xref: Xref, now_ms: int) -> Emit:
    # Never before the reference was learned: a lookup applied late (below W) would otherwise
    # resolve at its own arrival, earlier than it could have in key order.
    effective_ms = max(now_ms, xref.learned_ms)
    candidate = Candidate(event_id, primary, xref.delivery_id, xref.order_id, via, ref, effective_ms)
    return (ARBITER, primary, (effective_ms, event_id, 1 + VIA_RANK.get(via, 3)), candidate)


def lookups(event: CanonicalEvent, received_ms: int, xref_ttl_ms: int) -> tuple[str, int, list[Lookup]]:
    """(primary reference, expiry, one lookup per reference) of an event that needs resolution."""
    refs = reference_keys(event)
    expires_ms = received_ms + xref_ttl_ms
    if not refs:
        return f"event:{event.event_id}", received_ms, []
    primary = refs[0][1]
    return primary, expires_ms, [Lookup(event.event_id, ref, via, primary, expires_ms) for via, ref in refs]


def teachings(event: CanonicalEvent) -> list[Teach]:
    """What an event that names its delivery teaches: each of its references -> that delivery."""
    delivery_id = event.delivery_id
    if not delivery_id:
        return []
    order_id = event.order_id or ""
    return [Teach(ref, delivery_id, order_id) for _, ref in reference_keys(event)]

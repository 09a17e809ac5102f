"""Exactly-once resolution and orphan alerts (design.md 3.2, 3.5), keyed by primary reference.

An event that needs resolution is registered here (`Pending`, from dedup) with the arbiter of its
primary (most specific) reference, and looked up by every reference it has (operators.domain.
resolution). Each reference that resolves sends a `Candidate`. Candidates are applied in order
(effective time, event, reference rank), so the first one applied is the earliest of all, and it
wins: the event goes on to its delivery's lifecycle bucket as `Resolved`, once, whatever the
number of references that resolve it, and in whatever order they do.

When W reaches `received_at + xref_ttl` and no reference resolved the event, it is an orphan:
a carrier event opens (or updates) the `orphan_carrier_event` alert of its primary reference;
one alert per reference, counting its events (a parcel with ten unmatched scans is one alert).
When that reference is learned later (`RefLearned`), the alert resolves; the orphaned events
stay unattached (raise `xref_ttl` if partners are that slow). A carrier event without any
reference is an orphan at once (nothing can ever attach it). Other events that stay unresolved
(an order that never got a delivery) are let go without an alert.
"""

from __future__ import annotations

import heapq
from typing import Any

import msgspec

from operators.domain.alerts import (
    OPEN,
    ORPHAN_CARRIER_EVENT,
    RESOLVED,
    WARNING,
    Alert,
    alert_id,
    details_json,
    with_alert,
)
from operators.domain.items import Candidate, Pending, RefLearned, Resolved
from operators.domain.resolution import is_carrier, reference_keys
from operators.domain.watermark import OrderKey
from operators.model import CanonicalEvent, with_changes

LIFECYCLE = "lifecycle"


class Waiting(msgspec.Struct, gc=False, array_like=True):
    """A registered event. `event` is dropped (None) once it is resolved; an event with several
    references stays as a tombstone that turns away their later candidates (one with a single
    reference can have no other). Discarded when: W >= expires_ms, or resolved with one reference."""

    event: CanonicalEvent | None
    expires_ms: int
    carrier: bool
    refs: int = 1


class Orphan(msgspec.Struct, gc=False, array_like=True):
    """The orphan alert of one reference. Discarded when: W >= touched_ms + retention (an open
    alert is resolved as expired first)."""

    alert: Alert  # last emitted version
    events: int
    touched_ms: int


class ArbiterState(msgspec.Struct, gc=False):
    waiting: dict[str, Waiting] = {}
    # Heap of (expires_ms, event_id). Discarded when: popped.
    expiry: list[tuple[int, str]] = []
    orphans: dict[str, Orphan] = {}
    # Heap of (discard ms, entity), re-checked when popped. Discarded when: popped.
    orphan_expiry: list[tuple[int, str]] = []
    now: int = -(2**62)


class ArbiterLogic:
    __slots__ = ("retention_ms", "state")

    def __init__(self, retention_ms: int, state: ArbiterState | None = None) -> None:
        self.retention_ms = retention_ms
        self.state = state if state is not None else ArbiterState()

    def apply(self, key: OrderKey, item: Any, out: list[Any]) -> None:
        state = self.state
        if isinstance(item, Pending):
            event_id = item.event.event_id
            if event_id in state.waiting:
                return  # already registered (a replay after a crash sends it again)
            state.waiting[event_id] = Waiting(item.event, item.expires_ms, is_carrier(item.event), item.refs)
            heapq.heappush(state.expiry, (item.expires_ms, event_id))
            if item.expires_ms <= state.now:  # no reference, or registered later than its ttl
                self._expire(out)
        elif isinstance(item, Candidate):
            waiting = state.waiting.get(item.event_id)
            if waiting is None or waiting.event is None:
                return  # decided already (or its ttl is over): exactly once
            event = with_changes(
                waiting.event,
                delivery_id=item.delivery_id,
                order_id=waiting.event.order_id or item.order_id or None,
            )
            if waiting.refs > 1:
                waiting.event = None  # a tombstone until the expiry: other references may still answer
            else:
                del state.waiting[item.event_id]  # its expiry entry is skipped when popped
            out.append((LIFECYCLE, item.delivery_id, (key[0], item.event_id, 0), Resolved(event, item.via, item.ref)))
        elif isinstance(item, RefLearned):
            orphan = state.orphans.get(item.ref)
            if orphan is not None and orphan.alert.state == OPEN:
                summary = f"reference learned for delivery {item.delivery_id} after the xref ttl"
                out.append(self._resolve(item.ref, orphan, key[0], summary, item.delivery_id))
        else:  # pragma: no cover - the flow routes only these here
            raise TypeError(f"arbiter: unexpected {type(item).__name__}")

    def fire_until(self, time_ms: int, out: list[Any]) -> None:
        state = self.state
        if time_ms <= state.now:
            return
        state.now = time_ms
        self._expire(out)
        heap = state.orphan_expiry
        while heap and heap[0][0] <= time_ms:
            _, entity = heapq.heappop(heap)
            orphan = state.orphans.get(entity)
            if orphan is None:
                continue
            discard_ms = orphan.touched_ms + self.retention_ms
            if discard_ms > time_ms:
                heapq.heappush(heap, (discard_ms, entity))
                continue
            if orphan.alert.state == OPEN:
                summary = "no delivery learned within the retention; the events stay unattached"
                out.append(self._resolve(entity, orphan, discard_ms, summary, ""))
            del state.orphans[entity]

    def _expire(self, out: list[Any]) -> None:
        state = self.state
        heap = state.expiry
        now = state.now
        while heap and heap[0][0] <= now:
            expires_ms, event_id = heapq.heappop(heap)
            waiting = state.waiting.get(event_id)
            if waiting is None or waiting.expires_ms != expires_ms:
                continue
            del state.waiting[event_id]
            if waiting.event is not None and waiting.carrier:
                out.append(self._orphan(waiting.event, expires_ms))

    def _orphan(self, event: CanonicalEvent, at_ms: int) -> Alert:
        """Open (or update) the orphan alert of the event's primary reference."""
        state = self.state
        entity = _primary(event)
        orphan = state.orphans.get(entity)
        count = 1 if orphan is None else orphan.events + 1
        details = details_json(
            events=count,
            last_event_id=event.event_id,
            tracking_number=event.tracking_number,
            shipment_ref=event.shipment_ref,
            carrier=event.carrier,
            summary=f"{count} carrier event(s) without a known delivery after the xref ttl",
        )
        if orphan is None:
            # The record of a reference lives until `retention` after its last change; a reference
            # orphaned again after that (a recycled parcel number) is a new finding with its own
            # id (its first orphaning time is part of it), so its v1 is not hidden behind the old
            # alert's resolved v2 in ReplacingMergeTree(version).
            alert = Alert(
                alert_id=alert_id(ORPHAN_CARRIER_EVENT, entity, f"since:{at_ms}"),
                rule=ORPHAN_CARRIER_EVENT,
                handoff="",
                severity=WARNING,
                entity=entity,
                delivery_id="",
                site=event.site or "",
                sku="",
                state=OPEN,
                due_at=at_ms,
                opened_at=at_ms,
                resolved_at=None,
                details=details,
                version=1,
            )
            heapq.heappush(state.orphan_expiry, (at_ms + self.retention_ms, entity))
        else:
            # A new orphan under a resolved alert reopens it; versions continue.
            old = orphan.alert
            alert = with_alert(old, state=OPEN, resolved_at=None, details=details, version=old.version + 1)
        state.orphans[entity] = Orphan(alert, count, at_ms)
        return alert

    def _resolve(self, entity: str, orphan: Orphan, at_ms: int, summary: str, delivery_id: str) -> Alert:
        details = details_json(events=orphan.events, delivery_id=delivery_id or None, summary=summary)
        old = orphan.alert
        alert = with_alert(old, state=RESOLVED, resolved_at=at_ms, details=details, version=old.version + 1)
        self.state.orphans[entity] = Orphan(alert, orphan.events, at_ms)
        return alert

    def flush(self, out: list[Any]) -> None:
        return None

    def open_alert_count(self) -> int:
        return sum(1 for orphan in self.state.orphans.values() if orphan.alert.state == OPEN)


def _primary(event: CanonicalEvent) -> str:
    refs = reference_keys(event)
    return refs[0][1] if refs else f"event:{event.event_id}"

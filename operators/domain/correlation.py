"""Correlation of carrier events to deliveries through learned cross-references (design.md 3.2).

Carrier events often carry only a tracking number / PRO or a BOL. Any event that has a
delivery_id together with a tracking_number and/or shipment_ref (WMS ship confirmations from 945
or EPCIS shipping, ERP deliveries, carrier 214s with an L11 DO ref) teaches "this reference is
that delivery". A carrier event without delivery_id is enriched from a known reference, or
buffered until one is learned, or - once `W >= received_at + xref_ttl` - emitted unenriched and
flagged `attributes["orphan"] = "true"` with an `orphan_carrier_event` alert. Nothing is dropped.
A reference only rescues events received less than `xref_ttl` before it: one learned later
orphans them too (even if W has not reached their expiry yet), so within the allowed lateness the
outcome of an event does not depend on arrival order. It still resolves the orphan alert of that
reference ("learned after the xref ttl"), but the orphaned events stay uncorrelated: raise
`xref_ttl` if your partners are that slow.

The flow runs one instance under a single key so that it sees every reference; each event costs
a few dict lookups and heap operations (O(log n)), never a scan.

References are matched per kind (a tracking number never matches a BOL), after trimming and
upper-casing; a tracking number wins over a BOL when both are known. When two deliveries claim
the same reference (a recycled parcel number, a consolidated BOL), the one learned from the
latest received event wins (ties by delivery_id).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeAlias

from operators.domain.alerts import OPEN, ORPHAN_CARRIER_EVENT, RESOLVED, WARNING, Alert, alert_id, details_json
from operators.model import CanonicalEvent, SourceKind, with_changes

CorrelationOutput: TypeAlias = CanonicalEvent | Alert

TRACKING = "tracking_number"
SHIPMENT_REF = "shipment_ref"


def reference_keys(event: CanonicalEvent) -> tuple[str, ...]:
    """The event's reference keys, most specific first: ("ref:<tracking>", "ref:<shipment ref>").

    Keys are the reference value alone, not its kind: partners file the same number in different
    places (a parcel's tracking number arrives as an EPCIS `bol` business transaction, a PRO as
    214 B10-01 and as 945 N9*CN), and a PRO colliding with another delivery's BOL is far less
    likely than a kind mismatch.
    """
    keys: list[str] = []
    for value in (event.tracking_number, event.shipment_ref):
        if value is not None and value.strip():
            key = f"ref:{value.strip().upper()}"
            if key not in keys:
                keys.append(key)
    return tuple(keys)


def needs_correlation(event: CanonicalEvent) -> bool:
    return event.source_kind == SourceKind.CARRIER and not event.delivery_id


@dataclass(frozen=True, slots=True)
class Xref:
    """A reference learned for a delivery."""

    delivery_id: str
    order_id: str | None
    learned_at: datetime  # received_at of the event that taught the current mapping
    touched_at: datetime  # latest received_at of an event that taught or used it


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A carrier event waiting for a reference."""

    event: CanonicalEvent
    refs: tuple[str, ...]
    expires_at: datetime  # received_at + xref_ttl


@dataclass(frozen=True, slots=True)
class Orphan:
    """The orphan alert of one reference (or of one reference-less event) and its bookkeeping."""

    alert: Alert  # last emitted version
    events: int  # carrier events orphaned under it
    touched_at: datetime  # when it last changed (orphaning or resolution)


@dataclass
class CorrelationState:
    """The snapshot-able state of an `XrefCorrelator`."""

    # reference key -> delivery. Discarded when: W >= touched_at + retention (not learned nor used since).
    xrefs: dict[str, Xref] = field(default_factory=dict)
    # Heap of (discard time, reference key), re-checked when popped. Discarded when: popped.
    xref_expiry: list[tuple[datetime, str]] = field(default_factory=list)
    # event_id -> buffered carrier event. Discarded when: a reference of it is learned (released
    # enriched) or W >= received_at + xref_ttl (emitted as an orphan).
    pending: dict[str, PendingEvent] = field(default_factory=dict)
    # reference key -> ids of pending events carrying it. Discarded when: the reference is learned,
    # or the last of its events is released or orphaned.
    waiting: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Heap of (expires_at, event_id). Discarded when: popped at W >= expires_at (stale ids skipped).
    pending_expiry: list[tuple[datetime, str]] = field(default_factory=list)
    # alert entity -> orphan alert record. Discarded when: W >= touched_at + retention (an open
    # alert is then resolved as expired first).
    orphans: dict[str, Orphan] = field(default_factory=dict)
    # Heap of (discard time, alert entity), re-checked when popped. Discarded when: popped.
    orphan_expiry: list[tuple[datetime, str]] = field(default_factory=list)
    # The last watermark passed to advance(). Never discarded (one value).
    watermark: datetime | None = None
    # Orphan alerts whose last version is open (a metric). Never discarded.
    open_alerts: int = 0


def _by_arrival(event: CanonicalEvent) -> tuple[datetime, str]:
    return (event.received_at, event.event_id)


class XrefCorrelator:
    """Learns reference -> delivery and attaches carrier events to their delivery."""

    def __init__(
        self,
        xref_ttl: timedelta = timedelta(days=7),
        retention: timedelta = timedelta(days=30),
        state: CorrelationState | None = None,
    ) -> None:
        self.xref_ttl = xref_ttl
        self.retention = retention
        self.state = state if state is not None else CorrelationState()

    def on_event(self, event: CanonicalEvent) -> list[CorrelationOutput]:
        """The events to pass on (the input itself when it needs no correlation) and alerts."""
        state, refs = self.state, reference_keys(event)
        outputs: list[CorrelationOutput] = []
        if event.delivery_id and refs:
            outputs.extend(self._learn(event, refs))
        if not needs_correlation(event):
            return [event, *outputs]
        for ref in refs:
            xref = state.xrefs.get(ref)
            if xref is not None:
                self._touch(ref, event.received_at)
                return [_enrich(event, xref, ref), *outputs]
        if not refs:
            # Nothing to wait for: no reference can ever attach it.
            return [*self._orphan(event, (), event.received_at), *outputs]
        if event.event_id not in state.pending:  # a duplicate is buffered once
            expires_at = event.received_at + self.xref_ttl
            state.pending[event.event_id] = PendingEvent(event, refs, expires_at)
            for ref in refs:
                state.waiting[ref] = (*state.waiting.get(ref, ()), event.event_id)
            heapq.heappush(state.pending_expiry, (expires_at, event.event_id))
        return outputs

    def advance(self, watermark: datetime) -> list[CorrelationOutput]:
        """Move W: orphan expired buffered events, forget unused references and old orphan records."""
        state = self.state
        if state.watermark is None or watermark > state.watermark:
            state.watermark = watermark
        now = state.watermark
        expired: list[PendingEvent] = []
        while state.pending_expiry and state.pending_expiry[0][0] <= now:
            _, event_id = heapq.heappop(state.pending_expiry)
            pending = state.pending.get(event_id)
            # A stale entry (the event was released, then buffered again later) must not expire it.
            if pending is not None and pending.expires_at <= now:
                del state.pending[event_id]
                self._unwait(pending)
                expired.append(pending)
        outputs: list[CorrelationOutput] = []
        for pending in sorted(expired, key=lambda p: _by_arrival(p.event)):
            outputs.extend(self._orphan(pending.event, pending.refs, pending.expires_at))
        while state.xref_expiry and state.xref_expiry[0][0] <= now:
            _, ref = heapq.heappop(state.xref_expiry)
            xref = state.xrefs.get(ref)
            if xref is not None:
                if xref.touched_at + self.retention <= now:
                    del state.xrefs[ref]
                else:
                    heapq.heappush(state.xref_expiry, (xref.touched_at + self.retention, ref))
        while state.orphan_expiry and state.orphan_expiry[0][0] <= now:
            _, entity = heapq.heappop(state.orphan_expiry)
            orphan = state.orphans.get(entity)
            if orphan is None:
                continue
            discard_at = orphan.touched_at + self.retention
            if discard_at > now:
                heapq.heappush(state.orphan_expiry, (discard_at, entity))
                continue
            del state.orphans[entity]
            if orphan.alert.is_unresolved:
                summary = "no cross-reference within the retention; the events stay uncorrelated"
                outputs.append(self._resolved(orphan, discard_at, summary).alert)
        return outputs

    def open_alert_count(self) -> int:
        return self.state.open_alerts

    def pending_count(self) -> int:
        return len(self.state.pending)

    def snapshot(self) -> CorrelationState:
        """A copy that later calls do not change (the records inside are immutable)."""
        state = self.state
        return CorrelationState(
            xrefs=dict(state.xrefs),
            xref_expiry=list(state.xref_expiry),
            pending=dict(state.pending),
            waiting=dict(state.waiting),
            pending_expiry=list(state.pending_expiry),
            orphans=dict(state.orphans),
            orphan_expiry=list(state.orphan_expiry),
            watermark=state.watermark,
            open_alerts=state.open_alerts,
        )

    # -- internals ------------------------------------------------------------------------------

    def _learn(self, event: CanonicalEvent, refs: tuple[str, ...]) -> list[CorrelationOutput]:
        """Record the event's references; release buffered events waiting for them, enriched."""
        state, received = self.state, event.received_at
        assert event.delivery_id is not None
        released: list[CanonicalEvent] = []
        too_late: list[PendingEvent] = []
        alerts: list[CorrelationOutput] = []
        for ref in refs:
            known = state.xrefs.get(ref)
            if known is None:
                xref = Xref(event.delivery_id, event.order_id, received, received)
                heapq.heappush(state.xref_expiry, (received + self.retention, ref))
            elif (received, event.delivery_id) >= (known.learned_at, known.delivery_id):
                same = known.delivery_id == event.delivery_id
                order_id = event.order_id or (known.order_id if same else None)
                xref = Xref(event.delivery_id, order_id, received, max(known.touched_at, received))
            else:
                xref = Xref(known.delivery_id, known.order_id, known.learned_at, max(known.touched_at, received))
            state.xrefs[ref] = xref
            for event_id in state.waiting.pop(ref, ()):
                pending = state.pending.pop(event_id, None)
                if pending is None:
                    continue
                self._unwait(pending)
                if received < pending.expires_at:
                    released.append(_enrich(pending.event, xref, ref))
                else:
                    # Received xref_ttl or more after the carrier event: an orphan whether or not
                    # W has reached the expiry yet, so the outcome does not depend on arrival order.
                    too_late.append(pending)
            for pending in sorted(too_late, key=lambda p: _by_arrival(p.event)):
                alerts.extend(self._orphan(pending.event, pending.refs, pending.expires_at))
            too_late.clear()
            orphan = state.orphans.get(ref)
            if orphan is not None and orphan.alert.is_unresolved:
                summary = f"cross-reference to delivery {xref.delivery_id} learned after the xref ttl"
                state.orphans[ref] = self._resolved(orphan, received, summary, delivery_id=xref.delivery_id)
                alerts.append(state.orphans[ref].alert)
        return [*sorted(released, key=_by_arrival), *alerts]

    def _touch(self, ref: str, received_at: datetime) -> None:
        xref = self.state.xrefs[ref]
        if received_at > xref.touched_at:
            # Xref(...) rather than dataclasses.replace: this runs for most carrier events.
            self.state.xrefs[ref] = Xref(xref.delivery_id, xref.order_id, xref.learned_at, received_at)

    def _unwait(self, pending: PendingEvent) -> None:
        waiting = self.state.waiting
        for ref in pending.refs:
            rest = tuple(event_id for event_id in waiting.get(ref, ()) if event_id != pending.event.event_id)
            if rest:
                waiting[ref] = rest
            else:
                waiting.pop(ref, None)

    def _orphan(self, event: CanonicalEvent, refs: tuple[str, ...], at: datetime) -> list[CorrelationOutput]:
        """Emit the event unenriched and open (or update) the orphan alert of its main reference."""
        state = self.state
        entity = refs[0] if refs else f"event:{event.event_id}"
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
            alert = Alert(
                alert_id=alert_id(ORPHAN_CARRIER_EVENT, entity),
                rule=ORPHAN_CARRIER_EVENT,
                handoff="",
                severity=WARNING,
                entity=entity,
                delivery_id="",
                site=event.site or "",
                sku="",
                state=OPEN,
                due_at=at,
                opened_at=at,
                resolved_at=None,
                details=details,
                version=1,
            )
        else:
            # A new orphan under a resolved alert reopens it; versions continue.
            old = orphan.alert
            alert = replace(old, state=OPEN, resolved_at=None, details=details, version=old.version + 1)
        state.orphans[entity] = Orphan(alert, count, at)
        state.open_alerts += 0 if orphan is not None and orphan.alert.is_unresolved else 1
        if orphan is None:
            heapq.heappush(state.orphan_expiry, (at + self.retention, entity))
        flagged = with_changes(event, attributes={**event.attributes, "orphan": "true"})
        return [flagged, alert]

    def _resolved(self, orphan: Orphan, at: datetime, summary: str, delivery_id: str = "") -> Orphan:
        """The orphan record with its alert resolved at `at` (the caller stores or drops it)."""
        old = orphan.alert
        details = details_json(events=orphan.events, delivery_id=delivery_id or None, summary=summary)
        alert = replace(old, state=RESOLVED, resolved_at=at, details=details, version=old.version + 1)
        self.state.open_alerts -= 1
        return Orphan(alert, orphan.events, at)


def _enrich(event: CanonicalEvent, xref: Xref, ref: str) -> CanonicalEvent:
    """The carrier event attached to its delivery; `correlated_by` says through which reference."""
    return with_changes(
        event,
        delivery_id=xref.delivery_id,
        order_id=event.order_id or xref.order_id,
        attributes={**event.attributes, "correlated_by": ref},
    )

"""The delivery lifecycle: status, handoff latency facts and SLA alerts per delivery (design.md 3.1-3.5).

`DeliveryLifecycle` holds many deliveries (the flow runs one instance per key bucket). It is
driven with explicit time: `on_event(event)` for each canonical event that has a delivery_id,
`advance(W)` whenever the watermark W = max(received_at seen) - allowed_lateness moves (and
`advance(max received_at)` at the end of a replay). Nothing reads a clock.

Determinism: the last version of every row (DeliveryStatus, SyncLatency, Alert) is the same for
any arrival order of the same events within the allowed lateness, and for any split of the
deliveries over instances. Every row content is a function of the delivery's event set and of W
(see `operators.handoff_tracks` for the alert rules); `version` is the number of distinct events
applied to the row's entity (all events of the delivery for DeliveryStatus, the events matched
to the handoff for SyncLatency and its alerts). A row is emitted as soon as its content changes;
an event that changes nothing visible only bumps the count, and that version-only change is
emitted at the next `advance()` (so the final version does not depend on the order, without a
row for every such event).

The status fold and the `delivery_status` row live in `operators.delivery_status`.
"""

from __future__ import annotations

import heapq
from bisect import insort
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeAlias, TypeVar

from operators.alerts import Alert
from operators.delivery_status import (
    TERMINAL,
    DeliveryStatus,
    StatusSighting,
    fold_status,
    out_of_sequence,
    status_of,
)
from operators.handoff_tracks import Candidate, HandoffTrack, better, candidate, observe, render_alerts, render_fact
from operators.handoffs import DEFAULT_HANDOFFS, Handoff, SyncLatency
from operators.model import CanonicalEvent, EventType, Milestone, SourceKind
from operators.records import copy_with, same_but_version

_WMS_WORK = frozenset({EventType.PICK_CONFIRMED, EventType.PACK_CONFIRMED, EventType.SHIPMENT_DISPATCHED})


LifecycleOutput: TypeAlias = DeliveryStatus | SyncLatency | Alert


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """Everything one delivery needs; immutable, replaced on every change (cheap snapshots).

    Discarded when: the delivery is terminal (DELIVERED / RETURNED / CANCELLED, invoiced or not)
    and W >= last_received_at + retention, or whatever its status when W >= last_received_at +
    idle_retention (no event for that long). An event that arrives afterwards starts a new state
    whose versions restart at 1: its rows lose against the retained ones in ReplacingMergeTree.
    """

    delivery_id: str
    event_ids: frozenset[str] = frozenset()  # dedup; len() is the DeliveryStatus version
    last_received_at: datetime | None = None
    order: Candidate | None = None  # ERP first, then earliest (operators.handoff_tracks.candidate)
    site: Candidate | None = None
    released_at: datetime | None = None
    first_wms_at: datetime | None = None
    dispatched_at: datetime | None = None
    gi_posted_at: datetime | None = None
    picked_up_at: datetime | None = None  # carrier PICKED_UP
    first_in_transit_at: datetime | None = None  # carrier IN_TRANSIT, used when no PICKED_UP is known
    delivered_at: datetime | None = None
    invoiced_at: datetime | None = None
    sightings: tuple[StatusSighting, ...] = ()  # sorted
    out_of_sequence: bool = False
    tracks: tuple[HandoffTrack, ...] = ()  # one per configured handoff, same order
    row: DeliveryStatus | None = None  # last emitted


@dataclass
class LifecycleState:
    """The snapshot-able state of one `DeliveryLifecycle` instance."""

    # delivery_id -> its state. Discarded when: see DeliveryState.
    deliveries: dict[str, DeliveryState] = field(default_factory=dict)
    # The last watermark passed to advance(); None before the first. Never discarded (one value).
    watermark: datetime | None = None
    # Heap of (deadline, delivery_id, handoff) not yet reached. Discarded when: W reaches the
    # deadline (popped, whether or not it is still current).
    deadlines: list[tuple[datetime, str, str]] = field(default_factory=list)
    # Heap of (discard time, delivery_id), re-checked lazily when popped. Discarded when: popped
    # (W reached it); a still-live delivery is pushed again with its current discard time.
    expiries: list[tuple[datetime, str]] = field(default_factory=list)
    # Deliveries with a version-only change not emitted yet. Discarded when: the next advance().
    dirty: set[str] = field(default_factory=set)
    # Number of alerts whose last emitted version is open (a metric). Never discarded.
    open_alerts: int = 0


def _earliest(current: datetime | None, new: datetime) -> datetime:
    return new if current is None or new < current else current


def apply_event(state: DeliveryState, event: CanonicalEvent, handoffs: tuple[Handoff, ...]) -> DeliveryState:
    """The delivery after one new event (the caller has checked it is not a duplicate)."""
    at = event.occurred_at
    changes: dict[str, object] = {
        "event_ids": state.event_ids | {event.event_id},
        "last_received_at": max(state.last_received_at or event.received_at, event.received_at),
        "order": better(state.order, candidate(event, event.order_id)),
        "site": better(state.site, candidate(event, event.site)),
    }
    event_type = event.event_type
    if event_type == EventType.ORDER_RELEASED:
        changes["released_at"] = _earliest(state.released_at, at)
    if event_type in _WMS_WORK and event.source_kind == SourceKind.WMS:
        changes["first_wms_at"] = _earliest(state.first_wms_at, at)
    if event_type == EventType.SHIPMENT_DISPATCHED:
        changes["dispatched_at"] = _earliest(state.dispatched_at, at)
    if event_type == EventType.GOODS_ISSUE_POSTED:
        changes["gi_posted_at"] = _earliest(state.gi_posted_at, at)
    if event_type == EventType.INVOICE_POSTED:
        changes["invoiced_at"] = _earliest(state.invoiced_at, at)
    if event_type == EventType.CARRIER_STATUS:
        if event.milestone == Milestone.PICKED_UP:
            changes["picked_up_at"] = _earliest(state.picked_up_at, at)
        elif event.milestone == Milestone.IN_TRANSIT:
            changes["first_in_transit_at"] = _earliest(state.first_in_transit_at, at)
        elif event.milestone == Milestone.DELIVERED:
            changes["delivered_at"] = _earliest(state.delivered_at, at)
    status = status_of(event)
    if status is not None:
        sighting = StatusSighting(at, event.event_id, status, event.received_at)
        changes["out_of_sequence"] = state.out_of_sequence or out_of_sequence(state.sightings, sighting)
        sightings = list(state.sightings)
        insort(sightings, sighting)
        changes["sightings"] = tuple(sightings)
    tracks = _aligned(state.tracks, handoffs)
    changes["tracks"] = tuple(
        observe(track, handoff, event) or track for track, handoff in zip(tracks, handoffs, strict=True)
    )
    return copy_with(state, **changes)


def _aligned(tracks: tuple[HandoffTrack, ...], handoffs: tuple[Handoff, ...]) -> tuple[HandoffTrack, ...]:
    """Tracks in handoff order; re-keyed by name when the configuration changed across a restart."""
    if len(tracks) == len(handoffs) and all(t.handoff == h.name for t, h in zip(tracks, handoffs, strict=True)):
        return tracks
    by_name = {track.handoff: track for track in tracks}
    return tuple(by_name.get(handoff.name, HandoffTrack(handoff.name)) for handoff in handoffs)


def render_status(state: DeliveryState) -> DeliveryStatus:
    picked_up = state.picked_up_at if state.picked_up_at is not None else state.first_in_transit_at
    return DeliveryStatus(
        delivery_id=state.delivery_id,
        order_id="" if state.order is None else state.order[3],
        site="" if state.site is None else state.site[3],
        status=fold_status(state.sightings),
        released_at=state.released_at,
        first_wms_at=state.first_wms_at,
        dispatched_at=state.dispatched_at,
        gi_posted_at=state.gi_posted_at,
        picked_up_at=picked_up,
        delivered_at=state.delivered_at,
        invoiced_at=state.invoiced_at,
        out_of_sequence=state.out_of_sequence,
        version=len(state.event_ids),
    )


Row = TypeVar("Row", DeliveryStatus, SyncLatency, Alert)


def _emit_needed(new: Row, old: Row | None, catch_up: bool) -> bool:
    """Emit when the content changed, or (at advance) when only the version moved on."""
    if old is None or not same_but_version(old, new):
        return True
    return catch_up and new.version > old.version


class DeliveryLifecycle:
    """Status, latency facts and SLA alerts for the deliveries of one key bucket."""

    def __init__(
        self,
        handoffs: tuple[Handoff, ...] = DEFAULT_HANDOFFS,
        retention: timedelta = timedelta(days=30),
        idle_retention: timedelta = timedelta(days=90),
        state: LifecycleState | None = None,
    ) -> None:
        self.handoffs = tuple(handoffs)
        self.retention = retention
        self.idle_retention = idle_retention
        self.state = state if state is not None else LifecycleState()

    # -- inputs ---------------------------------------------------------------------------------

    def on_event(self, event: CanonicalEvent) -> list[LifecycleOutput]:
        """Rows changed by one event. Events without a delivery_id and duplicates yield nothing."""
        delivery_id = event.delivery_id
        if not delivery_id:
            return []
        state = self.state
        before = state.deliveries.get(delivery_id)
        if before is not None and event.event_id in before.event_ids:
            return []
        after = apply_event(before or DeliveryState(delivery_id), event, self.handoffs)
        outputs: list[LifecycleOutput] = []
        # Only tracks the event changed can have new facts or alerts (W did not move).
        old_tracks = () if before is None else _aligned(before.tracks, self.handoffs)
        changed = {i for i, track in enumerate(after.tracks) if i >= len(old_tracks) or old_tracks[i] is not track}
        after = self._emit(after, outputs, catch_up=False, only=changed)
        state.deliveries[delivery_id] = after
        self._schedule(before, after)
        return outputs

    def advance(self, watermark: datetime) -> list[LifecycleOutput]:
        """Move W: fire reached deadlines, flush version-only changes, discard expired deliveries."""
        state = self.state
        if state.watermark is None or watermark > state.watermark:
            state.watermark = watermark
        now = state.watermark
        touched = set(state.dirty)
        state.dirty.clear()
        while state.deadlines and state.deadlines[0][0] <= now:
            _, delivery_id, _ = heapq.heappop(state.deadlines)
            touched.add(delivery_id)
        outputs: list[LifecycleOutput] = []
        for delivery_id in sorted(touched):
            delivery = state.deliveries.get(delivery_id)
            if delivery is not None:
                state.deliveries[delivery_id] = self._emit(delivery, outputs, catch_up=True)
        while state.expiries and state.expiries[0][0] <= now:
            _, delivery_id = heapq.heappop(state.expiries)
            delivery = state.deliveries.get(delivery_id)
            if delivery is None:
                continue  # already discarded through another entry
            discard_at = self._discard_at(delivery)
            if discard_at > now:
                heapq.heappush(state.expiries, (discard_at, delivery_id))
                continue
            del state.deliveries[delivery_id]
            state.open_alerts -= sum(1 for track in delivery.tracks for alert in track.alerts if alert.is_unresolved)
        return outputs

    # -- metrics --------------------------------------------------------------------------------

    def open_alert_count(self) -> int:
        """Alerts whose last emitted version is open, over the deliveries still held."""
        return self.state.open_alerts

    def delivery_count(self) -> int:
        return len(self.state.deliveries)

    def snapshot(self) -> LifecycleState:
        """A copy of the state that later calls do not change (per-delivery records are immutable)."""
        state = self.state
        return LifecycleState(
            deliveries=dict(state.deliveries),
            watermark=state.watermark,
            deadlines=list(state.deadlines),
            expiries=list(state.expiries),
            dirty=set(state.dirty),
            open_alerts=state.open_alerts,
        )

    # -- internals ------------------------------------------------------------------------------

    def _emit(
        self,
        delivery: DeliveryState,
        outputs: list[LifecycleOutput],
        catch_up: bool,
        only: set[int] | None = None,
    ) -> DeliveryState:
        """Append the rows of `delivery` that must be emitted; return it with those rows recorded.

        Rows whose only change is the version are left for the next advance() (`dirty`).
        `only` limits the handoff tracks looked at (the ones an event changed).
        """
        row = render_status(delivery)
        if _emit_needed(row, delivery.row, catch_up):
            outputs.append(row)
            delivery = copy_with(delivery, row=row)
        pending = delivery.row is not None and delivery.row.version < row.version
        tracks = []
        for index, (track, handoff) in enumerate(
            zip(_aligned(delivery.tracks, self.handoffs), self.handoffs, strict=True)
        ):
            if only is not None and index not in only:
                tracks.append(track)
                continue
            updated, track_pending = self._emit_track(track, handoff, delivery.delivery_id, outputs, catch_up)
            tracks.append(updated)
            pending |= track_pending
        if pending and not catch_up:
            self.state.dirty.add(delivery.delivery_id)
        return copy_with(delivery, tracks=tuple(tracks))

    def _emit_track(
        self,
        track: HandoffTrack,
        handoff: Handoff,
        delivery_id: str,
        outputs: list[LifecycleOutput],
        catch_up: bool,
    ) -> tuple[HandoffTrack, bool]:
        """The fact and alerts of one track to emit; returns the track and "a version-only change waits"."""
        pending = False
        fact = render_fact(track, handoff, delivery_id)
        if fact is not None:
            if _emit_needed(fact, track.fact, catch_up):
                outputs.append(fact)
                track = copy_with(track, fact=fact)
            pending = track.fact is not None and track.fact.version < fact.version
        alerts = render_alerts(track, handoff, delivery_id, self.state.watermark)
        if not alerts:
            return track, pending
        emitted = {alert.alert_id: alert for alert in track.alerts}
        for alert in alerts:
            old = emitted.get(alert.alert_id)
            if _emit_needed(alert, old, catch_up):
                outputs.append(alert)
                self.state.open_alerts += int(alert.is_unresolved) - int(old is not None and old.is_unresolved)
                emitted[alert.alert_id] = alert
            elif old is not None and old.version < alert.version:
                pending = True
        return copy_with(track, alerts=tuple(emitted[alert.alert_id] for alert in alerts)), pending

    def _discard_at(self, delivery: DeliveryState) -> datetime:
        assert delivery.last_received_at is not None
        terminal = delivery.row is not None and delivery.row.status in TERMINAL
        return delivery.last_received_at + (self.retention if terminal else self.idle_retention)

    def _schedule(self, before: DeliveryState | None, after: DeliveryState) -> None:
        """Queue the deadlines and the discard time that `after` has and `before` had not."""
        state = self.state
        for index, (track, handoff) in enumerate(zip(after.tracks, self.handoffs, strict=True)):
            deadline = track.deadline(handoff.sla)
            if deadline is None or (state.watermark is not None and deadline <= state.watermark):
                continue  # already decided in _emit with the current W
            old = None if before is None or index >= len(before.tracks) else before.tracks[index]
            if old is None or old.deadline(handoff.sla) != deadline:
                heapq.heappush(state.deadlines, (deadline, after.delivery_id, handoff.name))
        discard_at = self._discard_at(after)
        # A later discard time is found lazily when the old entry pops; an earlier one (the
        # delivery just became terminal) needs its own entry.
        if before is None or discard_at < self._discard_at(before):
            heapq.heappush(state.expiries, (discard_at, after.delivery_id))

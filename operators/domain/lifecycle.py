"""The delivery lifecycle: status, handoff latency facts and SLA alerts per delivery (design.md 3.1-3.5).

`DeliveryLifecycle` holds many deliveries (the flow runs one instance per key bucket). It is
driven with explicit time: `on_event(event)` for each canonical event that has a delivery_id,
`advance(W)` whenever the watermark W = max(received_at seen) - allowed_lateness moves (and
`advance(max received_at)` at the end of a replay). Nothing reads a clock.

Determinism: the last version of every row (DeliveryStatus, SyncLatency, Alert) is the same for
any arrival order of the same events within the allowed lateness, and for any split of the
deliveries over instances. Every row content is a function of the delivery's event set and of W
(see `operators.domain.handoff_tracks` for the alert rules); `version` is the number of distinct events
applied to the row's entity (all events of the delivery for DeliveryStatus, the events matched
to the handoff for SyncLatency and its alerts). A row is emitted as soon as its content changes;
an event that changes nothing visible only bumps the count, and that version-only change is
emitted at the next `advance()` (so the final version does not depend on the order, without a
row for every such event).

The per-delivery record (`DeliveryState`), the status fold and the `delivery_status` row live in
`operators.domain.delivery_status`, the per-handoff tracks in `operators.domain.handoff_tracks`. The records are
changed in place, copied on write after a snapshot (`DeliveryLifecycle._own`).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeAlias, TypeVar

from operators.domain.alerts import Alert

# DeliveryState is imported from here by states pickled before it moved to delivery_status.
from operators.domain.delivery_status import (
    TERMINAL,
    DeliveryState,
    DeliveryStatus,
    apply_event,
    fold_status,
    private_copy,
    status_content,
)
from operators.domain.handoff_tracks import HandoffTrack, candidate, fact_content, record, render_alerts
from operators.domain.handoffs import DEFAULT_HANDOFFS, Handoff, HandoffMatcher, SyncLatency
from operators.model import CanonicalEvent
from operators.records import content_getter, same_but_version

LifecycleOutput: TypeAlias = DeliveryStatus | SyncLatency | Alert


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


def _aligned(tracks: list[HandoffTrack], handoffs: tuple[Handoff, ...]) -> list[HandoffTrack]:
    """Tracks in handoff order; re-keyed by name when the configuration changed across a restart."""
    if len(tracks) == len(handoffs) and all(t.handoff == h.name for t, h in zip(tracks, handoffs, strict=True)):
        return tracks
    by_name = {track.handoff: track for track in tracks}
    return [by_name.get(handoff.name) or HandoffTrack(handoff.name) for handoff in handoffs]


Row = TypeVar("Row", DeliveryStatus, SyncLatency, Alert)

_STATUS_CONTENT = content_getter(DeliveryStatus)
_FACT_CONTENT = content_getter(SyncLatency)


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
        self._matcher = HandoffMatcher(self.handoffs)
        self._names = [handoff.name for handoff in self.handoffs]
        self.retention = retention
        self.idle_retention = idle_retention
        self.state = state if state is not None else LifecycleState()
        # Ids of the deliveries whose record this instance made since the last snapshot(), the
        # only ones it may change in place (see `_own`). Not state: a restored instance starts
        # with none. Discarded when: snapshot() (all shared again), or with the delivery.
        self._owned: set[str] = set()

    # -- inputs ---------------------------------------------------------------------------------

    def on_event(self, event: CanonicalEvent) -> list[LifecycleOutput]:
        """Rows changed by one event. Events without a delivery_id and duplicates yield nothing."""
        delivery_id = event.delivery_id
        if not delivery_id:
            return []
        deliveries = self.state.deliveries
        delivery = deliveries.get(delivery_id)
        from_before: list[datetime | None] | None = None
        if delivery is None:
            delivery = deliveries[delivery_id] = DeliveryState(delivery_id, tracks=self._fresh_tracks())
            self._owned.add(delivery_id)
            discard_before = None
        elif event.event_id in delivery.event_ids:
            return []
        else:
            discard_before = self._discard_at(delivery)
            if delivery_id not in self._owned:
                if not self._is_aligned(delivery.tracks):
                    # Restored under another handoff configuration: compare every track, by position.
                    from_before = [track.from_at for track in delivery.tracks]
                delivery = self._own(delivery_id, delivery)
        # Only the tracks of the handoffs the event takes part in change; only they can have new
        # facts or alerts (W did not move) or new deadlines.
        order, site = candidate(event, event.order_id), candidate(event, event.site)
        tracks = delivery.tracks
        changed: list[tuple[int, HandoffTrack, Handoff, datetime | None]] = []
        for index, handoff, is_from, is_to in self._matcher(event):
            track = tracks[index]
            changed.append((index, track, handoff, track.from_at))
            record(track, handoff, event, is_from, is_to, order, site)
        refold = apply_event(delivery, event, order, site)
        outputs: list[LifecycleOutput] = []
        self._emit(delivery, outputs, False, [(track, handoff) for _, track, handoff, _ in changed], refold)
        if from_before is None:
            self._schedule(delivery, [(index, old_from) for index, _, _, old_from in changed], discard_before)
        else:
            before = [(i, from_before[i] if i < len(from_before) else None) for i in range(len(tracks))]
            self._schedule(delivery, before, discard_before)
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
                delivery = self._own(delivery_id, delivery)
                self._emit(delivery, outputs, True, list(zip(delivery.tracks, self.handoffs, strict=True)))
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
            self._owned.discard(delivery_id)
            state.open_alerts -= sum(1 for track in delivery.tracks for alert in track.alerts if alert.is_unresolved)
        return outputs

    # -- metrics --------------------------------------------------------------------------------

    def open_alert_count(self) -> int:
        """Alerts whose last emitted version is open, over the deliveries still held."""
        return self.state.open_alerts

    def delivery_count(self) -> int:
        return len(self.state.deliveries)

    def snapshot(self) -> LifecycleState:
        """A copy of the state that later calls do not change.

        The per-delivery records are shared, not copied: from now on each is copied before its
        next change (`_own`), so a snapshot costs O(deliveries) pointer copies.
        """
        state = self.state
        self._owned.clear()
        return LifecycleState(
            deliveries=dict(state.deliveries),
            watermark=state.watermark,
            deadlines=list(state.deadlines),
            expiries=list(state.expiries),
            dirty=set(state.dirty),
            open_alerts=state.open_alerts,
        )

    # -- internals ------------------------------------------------------------------------------

    def _is_aligned(self, tracks: list[HandoffTrack]) -> bool:
        """Tracks in handoff order (the usual case: the configuration did not change)."""
        return [track.handoff for track in tracks] == self._names

    def _fresh_tracks(self) -> list[HandoffTrack]:
        return [HandoffTrack(name) for name in self._names]

    def _own(self, delivery_id: str, delivery: DeliveryState) -> DeliveryState:
        """The delivery's record, copied first unless this instance made it since the last
        snapshot: a record from a snapshot (or a restored state) must not change under it.

        The copy's tracks are aligned with the handoffs (`_aligned`), so those of an owned
        record always are.
        """
        if delivery_id in self._owned:
            return delivery
        delivery = self.state.deliveries[delivery_id] = private_copy(delivery)
        if not self._is_aligned(delivery.tracks):
            delivery.tracks = _aligned(delivery.tracks, self.handoffs)
        self._owned.add(delivery_id)
        return delivery

    def _emit(
        self,
        delivery: DeliveryState,
        outputs: list[LifecycleOutput],
        catch_up: bool,
        tracks: list[tuple[HandoffTrack, Handoff]],
        refold: bool = True,
    ) -> None:
        """Append the rows of `delivery` that must be emitted and record them in it (in place:
        the caller owns it, see `_own`).

        Rows whose only change is the version are left for the next advance() (`dirty`).
        `tracks`: the (track, handoff) pairs to look at (all, or the ones an event changed).
        `refold`: the status sightings changed since the last call; if not, the last emitted
        row has the status they fold to (any change of its content is emitted).
        """
        # `_emit_needed` on content tuples: most rows are not emitted, and are then never built.
        version = len(delivery.event_ids)
        row = delivery.row
        status = fold_status(delivery.sightings) if refold or row is None else row.status
        content = status_content(delivery, status)
        if row is None or content != _STATUS_CONTENT(row) or (catch_up and version > row.version):
            row = delivery.row = DeliveryStatus(*content, version=version)
            outputs.append(row)
        pending = row.version < version
        for track, handoff in tracks:
            pending |= self._emit_track(track, handoff, delivery.delivery_id, outputs, catch_up)
        if pending and not catch_up:
            self.state.dirty.add(delivery.delivery_id)

    def _emit_track(
        self,
        track: HandoffTrack,
        handoff: Handoff,
        delivery_id: str,
        outputs: list[LifecycleOutput],
        catch_up: bool,
    ) -> bool:
        """Emit and record (in place) the fact and alerts of one track; True when a version-only
        change waits."""
        pending = False
        content = fact_content(track, handoff, delivery_id)
        if content is not None:
            fact = track.fact
            if fact is None or content != _FACT_CONTENT(fact) or (catch_up and track.version > fact.version):
                fact = track.fact = SyncLatency(*content, version=track.version)
                outputs.append(fact)
            pending = fact.version < track.version
        alerts = render_alerts(track, handoff, delivery_id, self.state.watermark)
        if not alerts:
            return pending
        emitted = {alert.alert_id: alert for alert in track.alerts}
        for alert in alerts:
            old = emitted.get(alert.alert_id)
            if _emit_needed(alert, old, catch_up):
                outputs.append(alert)
                self.state.open_alerts += int(alert.is_unresolved) - int(old is not None and old.is_unresolved)
                emitted[alert.alert_id] = alert
            elif old is not None and old.version < alert.version:
                pending = True
        track.alerts = tuple(emitted[alert.alert_id] for alert in alerts)
        return pending

    def _discard_at(self, delivery: DeliveryState) -> datetime:
        assert delivery.last_received_at is not None
        terminal = delivery.row is not None and delivery.row.status in TERMINAL
        return delivery.last_received_at + (self.retention if terminal else self.idle_retention)

    def _schedule(
        self,
        delivery: DeliveryState,
        from_before: list[tuple[int, datetime | None]],
        discard_before: datetime | None,
    ) -> None:
        """Queue the deadlines and the discard time the delivery has and had not before the event.

        `from_before`: (index, from_at before the event) of each track the event can have
        changed; `discard_before`: the discard time before the event, None for a new delivery.
        """
        state = self.state
        handoffs, tracks = self.handoffs, delivery.tracks
        for index, old_from in from_before:
            handoff = handoffs[index]
            deadline = tracks[index].deadline(handoff.sla)
            if deadline is None or (state.watermark is not None and deadline <= state.watermark):
                continue  # already decided in _emit with the current W
            if old_from is None or old_from + handoff.sla != deadline:
                heapq.heappush(state.deadlines, (deadline, delivery.delivery_id, handoff.name))
        discard_at = self._discard_at(delivery)
        # A later discard time is found lazily when the old entry pops; an earlier one (the
        # delivery just became terminal) needs its own entry.
        if discard_before is None or discard_at < discard_before:
            heapq.heappush(state.expiries, (discard_at, delivery.delivery_id))

"""The delivery lifecycle (design.md 3.2-3.5), keyed by delivery bucket: status, synchronization
latency facts, SLA deadlines and alerts, and what each delivery tells the inventory ledger.

A bucket holds the deliveries whose id hashes to it. Its inputs are events that name their
delivery (from dedup) and events resolution attached to one (`Resolved`, from the arbiter), in
order-key order: (arrival, event_id), where arrival is received_at, or for a resolved event the
time resolution could know it (`Candidate.effective_ms`). Per event it updates the delivery in
place, O(1) whatever the delivery's size; rows are emitted once per batch (`flush`), for the
deliveries the batch touched, so the last row of every entity carries its final version.

Times from the adapters that had to be read in an assumed zone and could not be placed
(`attributes.tz_rule == "unresolved"`, the wall time kept in `attributes.local_time`) are read
again here in the zone of the delivery's site (design.md 2.3, 3.1), and the correction is
written to `event_links`.

Every delivery is discarded `retention` after its latest event once it is terminal (DELIVERED,
RETURNED, CANCELLED), or `idle_retention` after its latest event whatever its status. An event
that arrives afterwards starts a new state whose versions restart at 1: its rows lose against
the retained ones in ReplacingMergeTree.
"""

from __future__ import annotations

import heapq
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from operators.domain.alerts import OPEN, RESOLVED, Alert, details_json, with_alert
from operators.domain.delivery_goods import DeliveryGoods
from operators.domain.delivery_status import TERMINAL, DeliveryStatus, StatusFold, status_of
from operators.domain.handoff_tracks import Candidate, Track, better, render_alerts, render_fact, value_of
from operators.domain.handoffs import DEFAULT_HANDOFFS, OCCURRED_AT, Handoff, HandoffMatcher
from operators.domain.items import Resolved, tie_of
from operators.domain.watermark import OrderKey
from operators.formats.timeparse import to_epoch_ms
from operators.master import EMPTY_MASTER, MasterData
from operators.model import CanonicalEvent, EventType, Milestone, SourceKind

# Which system's ids win when events disagree: the ERP owns orders and shipping points.
_KIND_PRIORITY = {SourceKind.ERP: 0, SourceKind.WMS: 1, SourceKind.CARRIER: 2, SourceKind.SNAPSHOT: 3}
_WMS_WORK = frozenset({EventType.PICK_CONFIRMED, EventType.PACK_CONFIRMED, EventType.SHIPMENT_DISPATCHED})
DAY_MS = 86_400_000


class EventLink(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """A row of `event_links`: an event attached to a delivery by resolution, or whose time the
    delivery's site zone placed. `occurred_at` (epoch ms) is the time the lifecycle used."""

    delivery_id: str
    event_id: str
    order_id: str
    via: str  # tracking_number | shipment_ref | order_id | event (it named its delivery itself)
    ref: str
    event_type: str
    occurred_at: int
    tz_rule: str  # "delivery_site" when the site's zone placed a local time, else ""
    version: int


class Delivery(msgspec.Struct, gc=False, array_like=True):
    """Everything one delivery needs. Discarded when: see the module docstring."""

    delivery_id: str
    events: int = 0  # distinct events applied: the version of its status row
    last_ms: int = 0  # latest arrival
    order: Candidate | None = None
    site: Candidate | None = None
    released_at: int | None = None
    first_wms_at: int | None = None
    dispatched_at: int | None = None
    gi_posted_at: int | None = None
    picked_up_at: int | None = None
    first_in_transit_at: int | None = None  # used when no PICKED_UP is known
    delivered_at: int | None = None
    invoiced_at: int | None = None
    fold: StatusFold = msgspec.field(default_factory=StatusFold)
    tracks: list[Track | None] = []  # one per configured handoff, in order
    emitted: int = 0  # version of the last emitted status row
    goods: DeliveryGoods | None = None
    # Occurred times of failed delivery attempts, each once (a carrier reports an attempt in each
    # status history it resends, and two feeds may report the same attempt).
    failed_attempts: list[int] = []


class LifecycleState(msgspec.Struct, gc=False):
    handoffs: list[str] = []  # names of the handoffs the tracks are aligned with
    deliveries: dict[str, Delivery] = {}
    # Heap of (deadline ms, delivery_id, handoff index). Discarded when: W reaches it.
    deadlines: list[tuple[int, str, int]] = []
    # Heap of (check ms, delivery_id, kind 0 discard / 1 in-flight), re-checked lazily when popped.
    expiries: list[tuple[int, str, int]] = []
    now: int = -(2**62)


def _earliest(current: int | None, new: int) -> int:
    return new if current is None or new < current else current


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_ms(local_time: str, zone_name: str) -> int | None:
    """A wall time without offset (`2024-03-01T08:00:00`) in a zone, as epoch ms."""
    zone = _zone(zone_name)
    if zone is None:
        return None
    try:
        return to_epoch_ms(datetime.fromisoformat(local_time).replace(tzinfo=zone))
    except (ValueError, OverflowError):
        return None


class LifecycleLogic:
    """The deliveries of one bucket."""

    __slots__ = ("_dirty", "_matcher", "handoffs", "idle_retention_ms", "master", "retention_ms", "state")

    def __init__(
        self,
        handoffs: tuple[Handoff, ...] = DEFAULT_HANDOFFS,
        retention_ms: int = 30 * DAY_MS,
        idle_retention_ms: int = 90 * DAY_MS,
        master: MasterData = EMPTY_MASTER,
        state: LifecycleState | None = None,
    ) -> None:
        self.handoffs = tuple(handoffs)
        self._matcher = HandoffMatcher(self.handoffs)
        self.retention_ms = retention_ms
        self.idle_retention_ms = idle_retention_ms
        self.master = master
        self.state = state if state is not None else LifecycleState(handoffs=[h.name for h in self.handoffs])
        if self.state.handoffs != [h.name for h in self.handoffs]:
            self._realign()
        # delivery_id -> indexes of the tracks touched since the last flush. Not state: flush()
        # runs at the end of every batch, before any snapshot.
        self._dirty: dict[str, set[int]] = {}

    # -- inputs ---------------------------------------------------------------------------------

    def apply(self, key: OrderKey, item: Any, out: list[Any]) -> None:
        if isinstance(item, Resolved):
            event, via, ref = item.event, item.via, item.ref
        else:
            event, via, ref = item, "", ""
        delivery_id = event.delivery_id
        if not delivery_id:
            return
        state = self.state
        arrival = key[0]
        delivery = state.deliveries.get(delivery_id)
        if delivery is None:
            delivery = state.deliveries[delivery_id] = Delivery(delivery_id, tracks=[None] * len(self.handoffs))
            discard_before = None
        else:
            discard_before = self._discard_at(delivery)
        event_id, event_type = event.event_id, event.event_type
        tie = tie_of(event_id)
        occurred = to_epoch_ms(event.occurred_at)
        received = to_epoch_ms(event.received_at)
        recorded = received if event.recorded_at is None else to_epoch_ms(event.recorded_at)
        tz_rule = ""
        attributes = event.attributes
        if attributes and attributes.get("tz_rule") == "unresolved" and "local_time" in attributes:
            zone = self.master.timezone_of(value_of(delivery.site) or event.site)
            placed = local_ms(attributes["local_time"], zone) if zone else None
            if placed is not None:
                occurred, tz_rule = placed, "delivery_site"
        delivery.events += 1
        delivery.last_ms = max(delivery.last_ms, arrival)
        priority = _KIND_PRIORITY.get(event.source_kind, 9)
        if event.order_id:
            delivery.order = better(delivery.order, (priority, occurred, tie, event.order_id))
        if event.site:
            delivery.site = better(delivery.site, (priority, occurred, tie, event.site))
        self._times(delivery, event, occurred)
        status = status_of(event_type, event.milestone)
        if status is not None:
            delivery.fold.add(occurred, tie, status, received)
        touched = self._dirty.get(delivery_id)
        if touched is None:
            touched = self._dirty[delivery_id] = set()
        for index, handoff, is_from, is_to in self._matcher(event):
            track = delivery.tracks[index]
            if track is None:
                track = delivery.tracks[index] = Track()
            if is_from:
                at = occurred if handoff.from_time == OCCURRED_AT else recorded
                if track.record_from(at, event_id):
                    deadline = at + handoff.sla_ms
                    if deadline > state.now:
                        heapq.heappush(state.deadlines, (deadline, delivery_id, index))
            if is_to:
                track.record_to(occurred if handoff.to_time == OCCURRED_AT else recorded, event_id, arrival)
            track.version += 1
            if event.order_id:
                track.order = better(track.order, (priority, occurred, tie, event.order_id))
            if event.site:
                track.site = better(track.site, (priority, occurred, tie, event.site))
            touched.add(index)
        self._goods(delivery, event, occurred, tie, key, out)
        discard_at = self._discard_at(delivery)
        if discard_before is None or discard_at < discard_before:
            heapq.heappush(state.expiries, (discard_at, delivery_id, 0))
        if via or tz_rule:
            out.append(
                EventLink(
                    delivery_id,
                    event_id,
                    event.order_id or value_of(delivery.order),
                    via or "event",
                    ref.partition(":")[2],
                    str(event_type),
                    occurred,
                    tz_rule,
                    1,
                )
            )

    @staticmethod
    def _times(delivery: Delivery, event: CanonicalEvent, at: int) -> None:
        event_type = event.event_type
        if event_type == EventType.ORDER_RELEASED:
            delivery.released_at = _earliest(delivery.released_at, at)
        elif event_type == EventType.GOODS_ISSUE_POSTED:
            delivery.gi_posted_at = _earliest(delivery.gi_posted_at, at)
        elif event_type == EventType.INVOICE_POSTED:
            delivery.invoiced_at = _earliest(delivery.invoiced_at, at)
        elif event_type == EventType.CARRIER_STATUS:
            milestone = event.milestone
            if milestone == Milestone.PICKED_UP:
                delivery.picked_up_at = _earliest(delivery.picked_up_at, at)
            elif milestone == Milestone.IN_TRANSIT:
                delivery.first_in_transit_at = _earliest(delivery.first_in_transit_at, at)
            elif milestone == Milestone.DELIVERED:
                delivery.delivered_at = _earliest(delivery.delivered_at, at)
            elif milestone == Milestone.DELIVERY_FAILED and at not in delivery.failed_attempts:
                delivery.failed_attempts.append(at)
        if event_type in _WMS_WORK and event.source_kind == SourceKind.WMS:
            delivery.first_wms_at = _earliest(delivery.first_wms_at, at)
        if event_type == EventType.SHIPMENT_DISPATCHED:
            delivery.dispatched_at = _earliest(delivery.dispatched_at, at)

    def _goods(
        self, delivery: Delivery, event: CanonicalEvent, occurred: int, tie: int, key: OrderKey, out: list[Any]
    ) -> None:
        event_type, kind, delivery_id = event.event_type, event.source_kind, delivery.delivery_id
        dated = (occurred, tie, event.site or "", event.lines)
        if event_type == EventType.ORDER_RELEASED and kind == SourceKind.ERP:
            if event.lines:
                self._goods_of(delivery).release_lines(dated, key, delivery_id, out)
        elif event_type == EventType.GOODS_ISSUE_POSTED and kind == SourceKind.ERP:
            self._goods_of(delivery).goods_issue(dated, key, delivery_id, out)
        elif event_type == EventType.SHIPMENT_DISPATCHED and kind == SourceKind.WMS:
            if event.lines and event.site:
                goods = self._goods_of(delivery)
                goods.dispatch(event.event_id, dated, key, delivery_id, out)
                if goods.in_flight:
                    check = delivery.last_ms + self.retention_ms
                    heapq.heappush(self.state.expiries, (check, delivery_id, 1))
        elif event_type == EventType.EVENT_RETRACTED:
            target = event.attributes.get("retracts")
            if target:
                self._goods_of(delivery).retract(target, occurred, key, delivery_id, out)

    @staticmethod
    def _goods_of(delivery: Delivery) -> DeliveryGoods:
        if delivery.goods is None:
            delivery.goods = DeliveryGoods()
        return delivery.goods

    # -- clock ----------------------------------------------------------------------------------

    def fire_until(self, time_ms: int, out: list[Any]) -> None:
        state = self.state
        if time_ms <= state.now:
            return
        state.now = now = time_ms
        deadlines = state.deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, delivery_id, index = heapq.heappop(deadlines)
            delivery = state.deliveries.get(delivery_id)
            if delivery is not None:
                track = delivery.tracks[index] if index < len(delivery.tracks) else None
                if track is not None and track.deadline(self.handoffs[index]) == deadline:
                    self._dirty.setdefault(delivery_id, set()).add(index)
        expiries = state.expiries
        while expiries and expiries[0][0] <= now:
            _, delivery_id, kind = heapq.heappop(expiries)
            delivery = state.deliveries.get(delivery_id)
            if delivery is None:
                continue
            if kind == 1:
                goods = delivery.goods
                if goods is not None and goods.in_flight and goods.issue is None:
                    due = delivery.last_ms + self.retention_ms
                    if due <= now:
                        goods.expire_in_flight(due, delivery_id, out)
                    else:
                        heapq.heappush(expiries, (due, delivery_id, 1))
                continue
            discard_at = self._discard_at(delivery)
            if discard_at > now:
                heapq.heappush(expiries, (discard_at, delivery_id, 0))
                continue
            if delivery_id in self._dirty:
                self._flush_one(delivery, self._dirty.pop(delivery_id), out)
            if delivery.goods is not None and delivery.goods.in_flight:
                delivery.goods.expire_in_flight(discard_at, delivery_id, out)
            out.extend(_expired_alerts(delivery, discard_at))
            del state.deliveries[delivery_id]

    def _discard_at(self, delivery: Delivery) -> int:
        terminal = delivery.fold.status in TERMINAL
        return delivery.last_ms + (self.retention_ms if terminal else self.idle_retention_ms)

    # -- rows -----------------------------------------------------------------------------------

    def flush(self, out: list[Any]) -> None:
        if not self._dirty:
            return
        deliveries = self.state.deliveries
        for delivery_id in sorted(self._dirty):
            delivery = deliveries.get(delivery_id)
            if delivery is not None:
                self._flush_one(delivery, self._dirty[delivery_id], out)
        self._dirty.clear()

    def _flush_one(self, delivery: Delivery, touched: set[int], out: list[Any]) -> None:
        if delivery.events > delivery.emitted:
            out.append(status_row(delivery))
            delivery.emitted = delivery.events
        now = self.state.now
        for index in sorted(touched):
            track = delivery.tracks[index]
            if track is None:
                continue
            handoff = self.handoffs[index]
            if track.version > track.emitted and track.from_at is not None:
                fact = render_fact(track, handoff, delivery.delivery_id)
                if fact is not None:
                    out.append(fact)
                    track.emitted = track.version
            alerts = render_alerts(track, handoff, delivery.delivery_id, now)
            if alerts or track.alerts:
                before = {alert.alert_id: alert for alert in track.alerts}
                for alert in alerts:
                    if before.get(alert.alert_id) != alert:
                        out.append(alert)
                track.alerts = alerts

    # -- state ----------------------------------------------------------------------------------

    def _realign(self) -> None:
        """Tracks re-keyed by handoff name after the configuration changed across a restart."""
        old = self.state.handoffs
        names = [handoff.name for handoff in self.handoffs]
        for delivery in self.state.deliveries.values():
            by_name = dict(zip(old, delivery.tracks, strict=False))
            delivery.tracks = [by_name.get(name) for name in names]
        self.state.handoffs = names
        self.state.deadlines = []  # re-armed below from the tracks
        for delivery in self.state.deliveries.values():
            for index, track in enumerate(delivery.tracks):
                deadline = None if track is None else track.deadline(self.handoffs[index])
                if deadline is not None and deadline > self.state.now:
                    heapq.heappush(self.state.deadlines, (deadline, delivery.delivery_id, index))

    def delivery_count(self) -> int:
        return len(self.state.deliveries)


def _expired_alerts(delivery: Delivery, at_ms: int) -> list[Alert]:
    """The open alerts of a delivery being discarded, resolved: nothing will answer them now, and
    they must not stay open in the table forever."""
    expired = []
    for track in delivery.tracks:
        if track is None:
            continue
        for alert in track.alerts:
            if alert.state == OPEN:
                details = details_json(
                    expired=True,
                    summary=f"no event of delivery {delivery.delivery_id} for the retention; "
                    "its state was discarded with this alert still open",
                )
                expired.append(
                    with_alert(alert, state=RESOLVED, resolved_at=at_ms, details=details, version=alert.version + 1)
                )
    return expired


def status_row(delivery: Delivery) -> DeliveryStatus:
    fold = delivery.fold
    picked_up = delivery.picked_up_at if delivery.picked_up_at is not None else delivery.first_in_transit_at
    return DeliveryStatus(
        delivery.delivery_id,
        value_of(delivery.order),
        value_of(delivery.site),
        fold.status,
        delivery.released_at,
        delivery.first_wms_at,
        delivery.dispatched_at,
        delivery.gi_posted_at,
        picked_up,
        delivery.delivered_at,
        delivery.invoiced_at,
        fold.out_of_sequence,
        delivery.events,
        len(delivery.failed_attempts),
    )

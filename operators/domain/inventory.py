"""The ERP-vs-WMS inventory ledger (design.md 3.4) as a pure state machine with an explicit clock.

Per (site, sku, uom) position and side (erp / wms): quantity = the side's latest snapshot of the
site (a sku absent from it has 0) + the side's movements with occurred_at > the snapshot's as_of.
  ERP: GOODS_ISSUE_POSTED (-), GOODS_RECEIVED (+), INVENTORY_ADJUSTED (signed lines)
  WMS: SHIPMENT_DISPATCHED (-), GOODS_RECEIVED (+), INVENTORY_ADJUSTED (signed lines)
A WMS dispatch whose delivery has no ERP goods issue yet is in flight and explains a negative
delta: unexplained_delta = delta + in_flight_qty.

Order independence: the final positions (and their versions) are a function of the event set.
Per side only the latest snapshot (as_of, then event_id) is kept with the movements after it;
every sum is math.fsum; a delivery's goods issue is one movement (`goods_issue:<delivery>`) taken
from its earliest GOODS_ISSUE_POSTED, because every OutboundDelivery.Changed with status C is an
after-image of the same goods issue; its lines, when the event has none, are the delivery's
ORDER_RELEASED lines. Alerts are not order-free: an alert's "since" time is the occurred_at of
the event that pushed the position out of tolerance, so a replay in the same order repeats them.

Version of a position = the distinct events that touched it: events with a line of it, every
snapshot of its site (a snapshot is complete, so it speaks about every sku of the site), and
every event of a delivery that has a line of it (its release, goods issues, dispatches and their
retractions, since each can change its goods issue or in-flight quantity); plus one per change
made by expiry alone. A touch re-emits the row even when the quantities stay, so that the last
row of a position carries the final version whatever the arrival order.

Events without a site are skipped: the flow routes by site, and such an event can't be placed.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from operators.domain.alerts import OPEN, Alert
from operators.domain.inventory_units import (
    ERP,
    SIDES,
    WMS,
    DeliveryState,
    GraceConfig,
    InventoryDelta,
    InventoryPosition,
    InventoryState,
    PositionKey,
    PositionState,
    Quantities,
    SiteState,
    SkuUnit,
    SnapshotState,
    ToleranceConfig,
    delta_row,
    is_unit_mismatch,
    line_quantities,
    open_alert,
    position_row,
    resolve_alert,
)
from operators.master import MasterData
from operators.model import CanonicalEvent, EventType, SourceKind

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_RETENTION",
    "Alert",
    "GraceConfig",
    "InventoryDelta",
    "InventoryLedger",
    "InventoryPosition",
    "InventoryState",
    "Output",
    "ToleranceConfig",
]

DEFAULT_GRACE = timedelta(hours=1)
DEFAULT_RETENTION = timedelta(days=30)
GOODS_ISSUE = "goods_issue:"  # movement id prefix of a delivery's goods issue

Output = InventoryPosition | InventoryDelta | Alert

_OUT, _IN, _SIGNED = -1, 1, 0
# (source_kind, event_type) -> (side, direction). Issues and receipts report counts, so the event
# type gives the sign; adjustment lines are signed already (947 W1902, SAP 701 + / 702 and 551 -).
_MOVEMENTS: dict[tuple[SourceKind, EventType], tuple[str, int]] = {
    (SourceKind.ERP, EventType.GOODS_ISSUE_POSTED): (ERP, _OUT),
    (SourceKind.ERP, EventType.GOODS_RECEIVED): (ERP, _IN),
    (SourceKind.ERP, EventType.INVENTORY_ADJUSTED): (ERP, _SIGNED),
    (SourceKind.WMS, EventType.SHIPMENT_DISPATCHED): (WMS, _OUT),
    (SourceKind.WMS, EventType.GOODS_RECEIVED): (WMS, _IN),
    (SourceKind.WMS, EventType.INVENTORY_ADJUSTED): (WMS, _SIGNED),
}
# Events that belong to a delivery's state when they carry a delivery_id.
_DELIVERY_EVENTS = {
    (SourceKind.ERP, EventType.ORDER_RELEASED),
    (SourceKind.ERP, EventType.GOODS_ISSUE_POSTED),
    (SourceKind.WMS, EventType.SHIPMENT_DISPATCHED),
}


def _signed(quantity: float, direction: int) -> float:
    return quantity if direction == _SIGNED else direction * abs(quantity)


def _earliest(by_id: dict[str, tuple[datetime, Quantities]]) -> Quantities | None:
    """Lines of the earliest (occurred_at, event_id) entry that has lines."""
    for _, (_, quantities) in sorted(by_id.items(), key=lambda item: (item[1][0], item[0])):
        if quantities:
            return quantities
    return None


class InventoryLedger:
    """One instance per key bucket; it must see every inventory event of its sites.

    `on_event(event)` and `advance(watermark)` return the rows to write: InventoryPosition (every
    touch), InventoryDelta (every change of erp_qty / wms_qty / in_flight_qty) and Alert versions.
    """

    def __init__(
        self,
        master: MasterData,
        tolerance: ToleranceConfig | None = None,
        grace: timedelta | GraceConfig = DEFAULT_GRACE,
        state: InventoryState | None = None,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        self.master = master
        self.tolerance = tolerance if tolerance is not None else ToleranceConfig()
        self.grace = grace if isinstance(grace, GraceConfig) else GraceConfig(default=grace)
        self.retention = retention
        self.state = state if state is not None else InventoryState()

    # -- input ----------------------------------------------------------------------------------

    def on_event(self, event: CanonicalEvent) -> list[Output]:
        site = event.site
        if site is None or not _is_inventory_event(event) or event.event_id in self.state.seen:
            return []
        self.state.seen[event.event_id] = event.received_at
        kind = (event.source_kind, event.event_type)
        if event.event_type is EventType.INVENTORY_SNAPSHOT:
            touched = self._on_snapshot(site, event)
        elif event.event_type is EventType.EVENT_RETRACTED:
            touched = self._on_retraction(site, event)
        elif event.delivery_id and kind in _DELIVERY_EVENTS:
            touched = self._on_delivery_event(site, event.delivery_id, event)
        else:
            touched = self._on_movement(site, event, *_MOVEMENTS[kind])
        return self._emit(site, touched, event.occurred_at)

    def advance(self, watermark: datetime) -> list[Output]:
        """Move the alert clock W (never backwards): expire deliveries, prune, open due alerts."""
        state = self.state
        if state.watermark is None or watermark > state.watermark:
            state.watermark = watermark
        now = state.watermark
        outputs = self._expire_deliveries(now)
        if state.next_housekeeping is None or now >= state.next_housekeeping:
            self._housekeeping(now)
            # Pruning and folding are O(state): at most once per tenth of the retention.
            state.next_housekeeping = now + self.retention / 10
        outputs.extend(self._open_due_alerts(now))
        return outputs

    # -- queries --------------------------------------------------------------------------------

    def positions(self, site: str | None = None) -> list[InventoryPosition]:
        """Current rows of every position (of one site), sorted by (site, sku, uom)."""
        sites = [site] if site is not None else sorted(self.state.sites)
        return [
            position_row(self.state.sites[name], name, key, position)
            for name in sites
            if name in self.state.sites
            for key, position in sorted(self.state.sites[name].positions.items())
        ]

    def accuracy(self, site: str) -> float:
        """Inventory record accuracy: share of the site's skus whose positions (all units) are within
        tolerance. NaN when the site has no position (nothing known is not 100 % accurate)."""
        accurate: dict[str, bool] = {}
        for row in self.positions(site):
            within = abs(row.unexplained_delta) <= self.tolerance.for_position(site, row.sku)
            accurate[row.sku] = accurate.get(row.sku, True) and within
        return sum(accurate.values()) / len(accurate) if accurate else math.nan

    # -- event handlers (each returns the (sku, uom) keys of the site it touched) ---------------

    def _on_snapshot(self, site: str, event: CanonicalEvent) -> set[SkuUnit]:
        side = event.attributes["system"]
        site_state = self._site(site)
        site_state.snapshot_count += 1
        quantities = line_quantities(event.lines, self.master)
        for key in quantities:
            self._position(site, key)
        current = site_state.snapshots.get(side)
        newer = current is None or (event.occurred_at, event.event_id) > (current.as_of, current.snapshot_id)
        floor = site_state.floor.get(side)
        # A snapshot older than the folding floor can't be applied: the movements after it are
        # partly folded into a total. Only a snapshot later than `retention` is affected.
        if newer and (floor is None or event.occurred_at > floor):
            as_of = event.occurred_at
            site_state.snapshots[side] = SnapshotState(event.event_id, as_of, quantities)
            for position in site_state.positions.values():
                ledger = position.side(side)
                # Movements up to as_of are in the snapshot; folded ones are older than the floor.
                ledger.movements = {mid: move for mid, move in ledger.movements.items() if move[0] > as_of}
                ledger.folded = 0.0
        return set(site_state.positions)

    def _on_movement(self, site: str, event: CanonicalEvent, side: str, direction: int) -> set[SkuUnit]:
        quantities = line_quantities(event.lines, self.master)
        self._touch(site, quantities, event.event_id)
        if event.event_id not in self.state.retracted:
            for key, quantity in quantities.items():
                self._add_movement(site, side, key, event.event_id, event.occurred_at, _signed(quantity, direction))
        return set(quantities)

    def _on_retraction(self, site: str, event: CanonicalEvent) -> set[SkuUnit]:
        """EVENT_RETRACTED (EPCIS errorDeclaration): undo the event named in attributes["retracts"],
        now or when it arrives. The retraction repeats the retracted event's lines and
        bizTransactions, so its own lines and delivery_id say which positions it touches."""
        target = event.attributes["retracts"]
        self.state.retracted[target] = event.event_id
        touched: set[SkuUnit] = set()
        for key, position in self._site(site).positions.items():
            for side in SIDES:
                if position.side(side).movements.pop(target, None) is not None:
                    touched.add(key)
        if event.delivery_id:
            touched |= self._on_delivery_event(site, event.delivery_id, event)
        else:
            touched |= set(line_quantities(event.lines, self.master))
        self._touch(site, touched, event.event_id)
        return touched

    def _on_delivery_event(self, site: str, delivery_id: str, event: CanonicalEvent) -> set[SkuUnit]:
        delivery = self.state.deliveries.get((site, delivery_id))
        if delivery is None:  # not setdefault: building a DeliveryState on every call costs
            delivery = self.state.deliveries[(site, delivery_id)] = DeliveryState()
        quantities = line_quantities(event.lines, self.master)
        touched = self._register(site, delivery, event.event_id, quantities)
        received = event.received_at
        delivery.last_received = max(received, delivery.last_received or received)
        if event.event_type is EventType.EVENT_RETRACTED:
            target = event.attributes["retracts"]
            for events in (delivery.releases, delivery.goods_issues, delivery.dispatches):
                events.pop(target, None)
        elif event.event_id in self.state.retracted:
            pass  # counted (touched) but never applied
        elif event.event_type is EventType.ORDER_RELEASED:
            delivery.releases[event.event_id] = (event.occurred_at, quantities)
        elif event.event_type is EventType.GOODS_ISSUE_POSTED:
            delivery.goods_issues[event.event_id] = (event.occurred_at, quantities)
            delivery.first_gi_received = min(received, delivery.first_gi_received or received)
        else:  # SHIPMENT_DISPATCHED: a WMS movement, and in flight until the goods issue
            delivery.dispatches[event.event_id] = quantities
            for key, quantity in quantities.items():
                self._add_movement(site, WMS, key, event.event_id, event.occurred_at, -abs(quantity))
        self._refresh_delivery(site, delivery_id, delivery)
        # 'retention' after the goods issue; without one, after the delivery's latest event.
        expires_at = (delivery.first_gi_received or delivery.last_received) + self.retention
        if expires_at != delivery.expires_at:
            delivery.expires_at = expires_at
            heapq.heappush(self.state.expiries, (expires_at, site, delivery_id))
        return touched

    # -- state helpers --------------------------------------------------------------------------

    def _site(self, site: str) -> SiteState:
        site_state = self.state.sites.get(site)
        if site_state is None:  # not setdefault: building a SiteState on every call costs
            site_state = self.state.sites[site] = SiteState()
        return site_state

    def _position(self, site: str, key: SkuUnit) -> PositionState:
        positions = self._site(site).positions
        position = positions.get(key)
        if position is None:
            position = positions[key] = PositionState(unit_mismatch=is_unit_mismatch(self.master, *key))
        return position

    def _touch(self, site: str, keys: Iterable[SkuUnit], *event_ids: str) -> None:
        for key in keys:
            self._position(site, key).contributors.update(event_ids)

    def _register(self, site: str, delivery: DeliveryState, event_id: str, keys: Iterable[SkuUnit]) -> set[SkuUnit]:
        """Every event of a delivery touches every (sku, uom) of the delivery (see module doc)."""
        new_keys = set(keys) - delivery.keys
        delivery.event_ids.add(event_id)
        self._touch(site, delivery.keys, event_id)
        self._touch(site, new_keys, *delivery.event_ids)
        delivery.keys |= new_keys
        return set(delivery.keys)

    def _add_movement(
        self, site: str, side: str, key: SkuUnit, movement_id: str, occurred_at: datetime, quantity: float
    ) -> None:
        snapshot = self._site(site).snapshots.get(side)
        if snapshot is not None and occurred_at <= snapshot.as_of:
            return  # already counted in the snapshot
        self._position(site, key).side(side).movements[movement_id] = (occurred_at, quantity)

    def _refresh_delivery(self, site: str, delivery_id: str, delivery: DeliveryState) -> None:
        """Recompute the delivery's goods issue movement and in-flight quantities from its events."""
        movement_id = GOODS_ISSUE + delivery_id
        positions = self._site(site).positions
        for key in delivery.issue_keys:
            positions[key].erp.movements.pop(movement_id, None)
        for key in delivery.keys:
            positions[key].in_flight.pop(delivery_id, None)
        if delivery.goods_issues:
            occurred_at = min(at for at, _ in delivery.goods_issues.values())
            lines = _earliest(delivery.goods_issues) or _earliest(delivery.releases) or {}
            delivery.issue_keys = set(lines)
            for key, quantity in lines.items():
                self._add_movement(site, ERP, key, movement_id, occurred_at, -abs(quantity))
            return
        parts: dict[SkuUnit, list[float]] = {}
        for quantities in delivery.dispatches.values():
            for key, quantity in quantities.items():
                parts.setdefault(key, []).append(abs(quantity))
        for key, values in parts.items():
            positions[key].in_flight[delivery_id] = math.fsum(values)

    # -- clock ----------------------------------------------------------------------------------

    def _expire_deliveries(self, now: datetime) -> list[Output]:
        outputs: list[Output] = []
        heap = self.state.expiries
        while heap and heap[0][0] <= now:
            expires_at, site, delivery_id = heapq.heappop(heap)
            delivery = self.state.deliveries.get((site, delivery_id))
            if delivery is None or delivery.expires_at != expires_at:
                continue  # superseded by a later schedule
            del self.state.deliveries[(site, delivery_id)]
            changed = set()
            for key in delivery.keys:
                position = self.state.sites[site].positions[key]
                if position.in_flight.pop(delivery_id, None) is not None:
                    position.retired += 1  # a change without an event still needs a new version
                    changed.add(key)
            outputs.extend(self._emit(site, changed, expires_at))
        return outputs

    def _housekeeping(self, now: datetime) -> None:
        state = self.state
        horizon = now - self.retention
        state.seen = {event_id: at for event_id, at in state.seen.items() if at > horizon}
        state.retracted = {target: by for target, by in state.retracted.items() if by in state.seen}
        live_events: set[str] = set().union(*(delivery.event_ids for delivery in state.deliveries.values()))
        live_issues = {(site, GOODS_ISSUE + delivery_id) for site, delivery_id in state.deliveries}
        for site, site_state in state.sites.items():
            for side in SIDES:
                site_state.floor[side] = max(horizon, site_state.floor.get(side, horizon))
            for position in site_state.positions.values():
                stale = [i for i in position.contributors if i not in state.seen and i not in live_events]
                position.contributors.difference_update(stale)
                position.retired += len(stale)
                for side in SIDES:
                    ledger = position.side(side)
                    old = [
                        mid
                        for mid, (at, _) in ledger.movements.items()
                        if at <= horizon and (site, mid) not in live_issues
                    ]
                    if old:
                        ledger.folded = math.fsum([ledger.folded, *(ledger.movements.pop(mid)[1] for mid in old)])

    # -- rows and alerts ------------------------------------------------------------------------

    def _emit(self, site: str, keys: Iterable[SkuUnit], at: datetime) -> list[Output]:
        outputs: list[Output] = []
        ordered = sorted(keys)
        if not ordered:
            return outputs  # the site may not even exist yet (an event without lines)
        site_state = self.state.sites[site]
        for key in ordered:
            position = site_state.positions[key]
            row = position_row(site_state, site, key, position)
            content = (row.erp_qty, row.wms_qty, row.in_flight_qty, row.erp_as_of, row.wms_as_of)
            if row.version == position.emitted_version and content == position.emitted_content:
                continue  # touched again by an event it already counts
            if row.version <= position.emitted_version:
                # A change no counted event explains would reuse a version: keep versions strictly
                # increasing rather than let ReplacingMergeTree pick between equal ones.
                position.retired += position.emitted_version + 1 - row.version
                row = replace(row, version=position.emitted_version + 1)
            outputs.append(row)
            if content[:3] != position.emitted_content[:3]:
                outputs.append(delta_row(row, at))
            position.emitted_version, position.emitted_content = row.version, content
            outputs.extend(self._evaluate(row, position, at))
        return outputs

    def _evaluate(self, row: InventoryPosition, position: PositionState, at: datetime) -> list[Output]:
        """Track when the position left tolerance; resolve its open alert when it is back."""
        key: PositionKey = (row.site, row.sku, row.uom)
        tolerance = self.tolerance.for_position(row.site, row.sku)
        alert = position.alert
        is_unresolved = alert is not None and alert.state == OPEN
        if abs(row.unexplained_delta) > tolerance:
            if position.out_since is None:
                position.out_since = at
                if not is_unresolved:
                    self.state.pending_alerts[key] = at + self.grace.for_position(row.site, row.sku)
            return []
        position.out_since = None
        self.state.pending_alerts.pop(key, None)
        if alert is None or not is_unresolved:
            return []
        resolved = resolve_alert(alert, row, at, tolerance)
        position.alert = resolved
        return [resolved]

    def _open_due_alerts(self, now: datetime) -> list[Output]:
        outputs: list[Output] = []
        pending = self.state.pending_alerts
        for key, due_at in sorted(pending.items()):
            if due_at > now:
                continue
            del pending[key]
            site, sku, uom = key
            position = self.state.sites[site].positions[(sku, uom)]
            row = position_row(self.state.sites[site], site, (sku, uom), position)
            tolerance = self.tolerance.for_position(site, sku)
            alert = open_alert(row, due_at, position.out_since, tolerance, position.alert)
            position.alert = alert
            outputs.append(alert)
        return outputs


def _is_inventory_event(event: CanonicalEvent) -> bool:
    if event.event_type is EventType.INVENTORY_SNAPSHOT:
        return event.attributes.get("system") in SIDES
    if event.event_type is EventType.EVENT_RETRACTED:
        return bool(event.attributes.get("retracts"))
    kind = (event.source_kind, event.event_type)
    return kind in _MOVEMENTS or (kind in _DELIVERY_EVENTS and bool(event.delivery_id))

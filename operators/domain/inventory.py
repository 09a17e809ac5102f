"""The ERP-vs-WMS inventory ledger (design.md 3.4), keyed by site bucket.

Per (site, sku, uom) position and side (erp / wms): quantity = the side's latest snapshot of the
site (a sku absent from it has 0) + the side's movements with occurred_at > the snapshot's as_of.
  ERP: GOODS_RECEIVED (+), INVENTORY_ADJUSTED (signed lines), GOODS_ISSUE_POSTED (-) of events
       without a delivery, and each delivery's one goods-issue movement (`GoodsIssue`, from the
       lifecycle, which knows the delivery's events: operators.domain.delivery_goods)
  WMS: SHIPMENT_DISPATCHED (-), GOODS_RECEIVED (+), INVENTORY_ADJUSTED (signed lines)
A WMS dispatch whose delivery has no ERP goods issue yet is in flight (`InFlight` from the
lifecycle) and explains a negative delta: unexplained_delta = delta + in_flight_qty.

Inputs are applied in order-key order, so every position's sequence of changes, and therefore
its `version` (the number of changes of its content so far) and its `inventory_deltas` rows, are a
function of the event set. Every sum is math.fsum. A position out of tolerance for `grace` of W
opens `inventory_mismatch`; it resolves when the position is back within tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import msgspec

from operators.domain.alerts import OPEN, Alert
from operators.domain.inventory_units import (
    ERP,
    SIDES,
    WMS,
    GraceConfig,
    InventoryDelta,
    InventoryPosition,
    InventoryState,
    PositionState,
    SiteState,
    SnapshotState,
    ToleranceConfig,
    base_uom,
    delta_row,
    is_unit_mismatch,
    line_quantities,
    open_alert,
    position_row,
    resolve_alert,
    split_key,
)
from operators.domain.items import GoodsIssue, InFlight
from operators.domain.watermark import OrderKey
from operators.formats.timeparse import to_epoch_ms
from operators.master import MasterData
from operators.model import CanonicalEvent, EventType, SourceKind

__all__ = ["InventoryLogic", "inventory_relevant"]

DAY_MS = 86_400_000
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


def inventory_relevant(event: CanonicalEvent) -> bool:
    """Does the site's ledger take this event itself? (A delivery's ERP goods issue reaches it
    through the lifecycle instead, as that delivery's one movement.)"""
    if not event.site:
        return False
    event_type = event.event_type
    if event_type is EventType.INVENTORY_SNAPSHOT:
        return event.attributes.get("system") in SIDES
    if event_type is EventType.EVENT_RETRACTED:
        return bool(event.attributes.get("retracts"))
    kind = (event.source_kind, event_type)
    if kind == (SourceKind.ERP, EventType.GOODS_ISSUE_POSTED):
        return not event.delivery_id
    return kind in _MOVEMENTS


def _signed(quantity: float, direction: int) -> float:
    return quantity if direction == _SIGNED else direction * abs(quantity)


class InventoryLogic:
    """The sites of one bucket."""

    __slots__ = ("_dirty", "grace", "master", "retention_ms", "state", "tolerance")

    def __init__(
        self,
        master: MasterData,
        tolerance: ToleranceConfig | None = None,
        grace: GraceConfig | None = None,
        retention_ms: int = 30 * DAY_MS,
        state: InventoryState | None = None,
    ) -> None:
        self.master = master
        self.tolerance = tolerance if tolerance is not None else ToleranceConfig()
        self.grace = grace if grace is not None else GraceConfig()
        self.retention_ms = retention_ms
        self.state = state if state is not None else InventoryState()
        # (site, position key) changed since the last flush. Not state (flushed every batch).
        self._dirty: set[tuple[str, str]] = set()

    # -- inputs ---------------------------------------------------------------------------------

    def apply(self, key: OrderKey, item: Any, out: list[Any]) -> None:
        if isinstance(item, InFlight):
            self._in_flight(item, out)
        elif isinstance(item, GoodsIssue):
            self._goods_issue(item, out)
        elif isinstance(item, CanonicalEvent):
            self._event(key, item, out)
        else:  # pragma: no cover - the flow routes only these here
            raise TypeError(f"inventory: unexpected {type(item).__name__}")

    def _event(self, key: OrderKey, event: CanonicalEvent, out: list[Any]) -> None:
        site = event.site
        if not site:
            return
        at = to_epoch_ms(event.occurred_at)
        event_type = event.event_type
        if event_type is EventType.INVENTORY_SNAPSHOT:
            self._changed(site, self._snapshot(site, event, at), at, out)
        elif event_type is EventType.EVENT_RETRACTED:
            target = event.attributes["retracts"]
            self.state.retracted[target] = key[0]
            touched = [
                position_key
                for position_key, position in self._site(site).positions.items()
                if position.erp.take_back(target) or position.wms.take_back(target)
            ]
            self._changed(site, touched, at, out)
        else:
            side, direction = _MOVEMENTS[(event.source_kind, event_type)]
            if event.event_id in self.state.retracted:
                return
            quantities = line_quantities(event.lines, self.master)
            for position_key, quantity in quantities.items():
                self._add_movement(site, side, position_key, event.event_id, at, _signed(quantity, direction))
            self._changed(site, quantities, at, out)

    def _snapshot(self, site: str, event: CanonicalEvent, as_of: int) -> Iterable[str]:
        """A snapshot is complete for its site: it speaks about every position of the site."""
        side = event.attributes["system"]
        site_state = self._site(site)
        quantities = line_quantities(event.lines, self.master)
        for position_key in quantities:
            self._position(site, position_key)
        current = site_state.snapshots.get(side)
        newer = current is None or (as_of, event.event_id) > (current.as_of, current.snapshot_id)
        floor = site_state.floor.get(side)
        # A snapshot older than the folding floor can't be applied: the movements after it are
        # partly folded into a total. Only a snapshot later than `retention` is affected.
        if newer and (floor is None or as_of > floor):
            site_state.snapshots[side] = SnapshotState(event.event_id, as_of, quantities)
            for position in site_state.positions.values():
                # Movements up to as_of are in the snapshot; folded ones are older than the floor.
                position.side(side).restart_after(as_of)
        return list(site_state.positions)

    def _in_flight(self, item: InFlight, out: list[Any]) -> None:
        entry = f"{item.delivery_id}/{item.dispatch_id}"
        quantities = line_quantities(item.lines, self.master)
        for position_key, quantity in quantities.items():
            position = self._position(item.site, position_key)
            if item.sign > 0:
                position.fly(entry, abs(quantity))
            else:
                position.land(entry)
        self._changed(item.site, quantities, item.at_ms, out)

    def _goods_issue(self, item: GoodsIssue, out: list[Any]) -> None:
        site_state = self._site(item.site)
        movement_id = GOODS_ISSUE + item.delivery_id
        touched = set(site_state.issues.pop(item.delivery_id, ()))
        for position_key in touched:
            site_state.positions[position_key].erp.take_back(movement_id)
        quantities = line_quantities(item.lines, self.master)
        for position_key, quantity in quantities.items():
            self._add_movement(item.site, ERP, position_key, movement_id, item.occurred_ms, -abs(quantity))
        if quantities:
            site_state.issues[item.delivery_id] = sorted(quantities)
        touched.update(quantities)
        self._changed(item.site, touched, item.occurred_ms, out)

    # -- state helpers --------------------------------------------------------------------------

    def _site(self, site: str) -> SiteState:
        site_state = self.state.sites.get(site)
        if site_state is None:
            site_state = self.state.sites[site] = SiteState()
        return site_state

    def _position(self, site: str, position_key: str) -> PositionState:
        positions = self._site(site).positions
        position = positions.get(position_key)
        if position is None:
            sku, uom = split_key(position_key)
            position = positions[position_key] = PositionState(is_unit_mismatch(self.master, sku, uom))
        return position

    def _add_movement(
        self, site: str, side: str, position_key: str, movement_id: str, occurred_ms: int, quantity: float
    ) -> None:
        position = self._position(site, position_key)  # created even when the snapshot has it
        snapshot = self._site(site).snapshots.get(side)
        if snapshot is not None and occurred_ms <= snapshot.as_of:
            return  # already counted in the snapshot
        position.side(side).put(movement_id, occurred_ms, quantity)

    # -- changes, rows and alerts -----------------------------------------------------------------

    def _changed(self, site: str, position_keys: Iterable[str], at: int, out: list[Any]) -> None:
        """Record the positions whose content changed: a new version, an inventory_deltas row when
        a quantity changed, and the tolerance check. The position row itself is emitted once per
        batch (`flush`)."""
        site_state = self.state.sites.get(site)
        if site_state is None:
            return
        for position_key in sorted(position_keys):
            position = site_state.positions[position_key]
            row = position_row(site_state, site, position_key, position)
            content = (row.erp_qty, row.wms_qty, row.in_flight_qty, row.erp_as_of, row.wms_as_of)
            before = position.content
            if content == before:
                continue
            position.version += 1
            position.content = content
            row = msgspec.structs.replace(row, version=position.version)
            if before is None or content[:3] != before[:3]:
                # A time series of the quantities: a new snapshot's as_of alone is not a change of it.
                out.append(delta_row(row, at))
            self._dirty.add((site, position_key))
            self._evaluate(row, position, at, out)

    def _evaluate(self, row: InventoryPosition, position: PositionState, at: int, out: list[Any]) -> None:
        """Track when the position left tolerance; resolve its open alert when it is back."""
        tolerance = self.tolerance.for_position(row.site, row.sku)
        pending_key = f"{row.site}\x1f{row.sku}\x1f{row.uom}"
        alert = position.alert
        is_open = alert is not None and alert.state == OPEN
        if abs(row.unexplained_delta) > tolerance:
            if position.out_since is None:
                position.out_since = at
                if not is_open:
                    grace_ms = int(self.grace.for_position(row.site, row.sku).total_seconds() * 1000)
                    self.state.pending_alerts[pending_key] = at + grace_ms
            return
        position.out_since = None
        self.state.pending_alerts.pop(pending_key, None)
        if alert is not None and is_open:
            position.alert = resolved = resolve_alert(alert, row, at, tolerance)
            out.append(resolved)

    def fire_until(self, time_ms: int, out: list[Any]) -> None:
        state = self.state
        if time_ms <= state.now:
            return
        state.now = now = time_ms
        if state.next_housekeeping is None or now >= state.next_housekeeping:
            self._housekeeping(now)
            # Pruning and folding are O(state): at most once per tenth of the retention.
            state.next_housekeeping = now + self.retention_ms // 10
        pending = state.pending_alerts
        if pending:
            due = [(due_at, key) for key, due_at in pending.items() if due_at <= now]
            for due_at, key in sorted(due):
                del pending[key]
                site, sku, uom = key.split("\x1f")
                site_state = state.sites[site]
                position_key = f"{sku}\x1f{uom}"
                position = site_state.positions[position_key]
                row = position_row(site_state, site, position_key, position)
                tolerance = self.tolerance.for_position(site, sku)
                apart = position.unit_mismatch or base_uom(self.master, sku) is None
                position.alert = alert = open_alert(row, due_at, position.out_since, tolerance, position.alert, apart)
                out.append(alert)

    def _housekeeping(self, now: int) -> None:
        state = self.state
        horizon = now - self.retention_ms
        state.retracted = {target: at for target, at in state.retracted.items() if at > horizon}
        for site_state in state.sites.values():
            for side in SIDES:
                site_state.floor[side] = max(horizon, site_state.floor.get(side, horizon))
            live_issues = {GOODS_ISSUE + delivery_id for delivery_id in site_state.issues}
            for position in site_state.positions.values():
                for side in SIDES:
                    ledger = position.side(side)
                    old = [mid for mid, (at, _) in ledger.movements.items() if at <= horizon and mid not in live_issues]
                    for mid in old:
                        ledger.fold(mid)

    def flush(self, out: list[Any]) -> None:
        if not self._dirty:
            return
        sites = self.state.sites
        for site, position_key in sorted(self._dirty):
            site_state = sites[site]
            out.append(position_row(site_state, site, position_key, site_state.positions[position_key]))
        self._dirty.clear()

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

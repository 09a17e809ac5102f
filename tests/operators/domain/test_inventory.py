"""The inventory ledger (design.md 3.4): positions, in-flight, units, retractions, alerts, expiry,
and the order independence of the final positions (a hypothesis permutation test)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.domain.alerts import INVENTORY_MISMATCH, alert_id
from operators.domain.inventory import (
    Alert,
    GraceConfig,
    InventoryDelta,
    InventoryLedger,
    InventoryPosition,
    Output,
    ToleranceConfig,
)
from operators.master import EMPTY_MASTER, MasterData, Product, Site
from operators.model import CanonicalEvent, EventType, Line, SourceKind, TimePrecision, with_changes

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
DAY = timedelta(days=1)
SITE = "1710"
MASTER = MasterData(
    products=(
        Product("MAT1", "00012345678905", "EA", conversions=(("CS", 12.0),)),
        Product("MAT2", "", "EA"),
    ),
    sites=(Site(SITE),),
)

ERP, WMS = SourceKind.ERP, SourceKind.WMS


def line(sku: str, quantity: float, uom: str = "EA") -> Line:
    return Line(sku=sku, quantity=quantity, uom=uom)


def event(
    event_type: EventType,
    source_kind: SourceKind,
    event_id: str,
    at: datetime,
    lines: tuple[Line, ...] = (),
    *,
    delivery_id: str | None = None,
    site: str | None = SITE,
    attributes: dict[str, str] | None = None,
    received_at: datetime | None = None,
) -> CanonicalEvent:
    return CanonicalEvent(
        event_id=event_id,
        event_type=event_type,
        source_kind=source_kind,
        source_format="test",
        source_system="test",
        occurred_at=at,
        recorded_at=at,
        received_at=received_at or at,
        time_precision=TimePrecision.S,
        delivery_id=delivery_id,
        site=site,
        lines=lines,
        raw_ref=f"test:0:{event_id}",
        attributes=attributes or {},
    )


def snapshot(system: str, snapshot_id: str, as_of: datetime, *lines: Line, site: str = SITE) -> CanonicalEvent:
    return event(
        EventType.INVENTORY_SNAPSHOT,
        SourceKind.SNAPSHOT,
        f"snapshot:{snapshot_id}",
        as_of,
        lines,
        site=site,
        attributes={"system": system},
    )


def retraction(target: CanonicalEvent, at: datetime) -> CanonicalEvent:
    """As the EPCIS adapter makes it: same lines and refs, `<id>#retracted`."""
    return event(
        EventType.EVENT_RETRACTED,
        WMS,
        f"{target.event_id}#retracted",
        at,
        target.lines,
        delivery_id=target.delivery_id,
        site=target.site,
        attributes={"retracts": target.event_id},
    )


def feed(ledger: InventoryLedger, *events: CanonicalEvent) -> list[Output]:
    outputs: list[Output] = []
    for item in events:
        outputs.extend(ledger.on_event(item))
    return outputs


def position(ledger: InventoryLedger, sku: str, uom: str = "EA", site: str = SITE) -> InventoryPosition:
    found = [row for row in ledger.positions(site) if row.sku == sku and row.uom == uom]
    assert len(found) == 1, ledger.positions(site)
    return found[0]


def alerts(outputs: list[Output]) -> list[Alert]:
    return [item for item in outputs if isinstance(item, Alert)]


def baseline(ledger: InventoryLedger, quantity: float = 100) -> None:
    feed(ledger, snapshot("erp", "e0", T0, line("MAT1", quantity)), snapshot("wms", "w0", T0, line("MAT1", quantity)))


# -- positions ----------------------------------------------------------------------------------


def test_snapshot_then_movements() -> None:
    ledger = InventoryLedger(MASTER)
    first = feed(ledger, snapshot("erp", "e0", T0, line("MAT1", 100), line("MAT2", 7)))
    rows = [o for o in first if isinstance(o, InventoryPosition)]
    assert [(r.sku, r.erp_qty, r.wms_qty, r.delta, r.erp_as_of, r.wms_as_of) for r in rows] == [
        ("MAT1", 100.0, 0.0, -100.0, T0, None),
        ("MAT2", 7.0, 0.0, -7.0, T0, None),
    ]
    feed(ledger, snapshot("wms", "w0", T0, line("MAT1", 100), line("MAT2", 7)))
    outputs = feed(
        ledger,
        event(EventType.GOODS_RECEIVED, ERP, "sap:gr1", T0 + H, (line("MAT1", 10),)),
        event(EventType.GOODS_RECEIVED, WMS, "epcis:gr1", T0 + 2 * H, (line("MAT1", 10),)),
        event(EventType.INVENTORY_ADJUSTED, WMS, "x12:947", T0 + 3 * H, (line("MAT1", -4),)),
        event(EventType.INVENTORY_ADJUSTED, ERP, "sap:702", T0 + 3 * H, (line("MAT1", -4),)),
    )
    row = position(ledger, "MAT1")
    assert (row.erp_qty, row.wms_qty, row.delta, row.unexplained_delta) == (106.0, 106.0, 0.0, 0.0)
    assert (row.erp_as_of, row.wms_as_of, row.unit_mismatch) == (T0, T0, False)
    # version: two snapshots of the site + four movements of MAT1
    assert row.version == 6
    deltas = [o for o in outputs if isinstance(o, InventoryDelta)]
    assert [(d.at, d.delta, d.version) for d in deltas] == [
        (T0 + H, -10.0, 3),
        (T0 + 2 * H, 0.0, 4),
        (T0 + 3 * H, -4.0, 5),
        (T0 + 3 * H, 0.0, 6),
    ]
    assert position(ledger, "MAT2").version == 2  # the snapshots only


def test_movements_before_the_snapshot_are_in_it() -> None:
    ledger = InventoryLedger(MASTER)
    early = event(EventType.GOODS_RECEIVED, ERP, "sap:early", T0 - H, (line("MAT1", 10),))
    at_as_of = event(EventType.GOODS_RECEIVED, ERP, "sap:at", T0, (line("MAT1", 5),))
    later = event(EventType.GOODS_RECEIVED, ERP, "sap:later", T0 + H, (line("MAT1", 1),))
    feed(ledger, early)
    assert position(ledger, "MAT1").erp_qty == 10  # no snapshot yet: movements only
    feed(ledger, snapshot("erp", "e0", T0, line("MAT1", 50)), at_as_of, later)
    row = position(ledger, "MAT1")
    # the early movement is dropped by the snapshot, the one at as_of is in it
    assert row.erp_qty == 51
    assert row.version == 4  # all four events touched it, even the ones in the snapshot
    erp_side = ledger.state.sites[SITE].positions[("MAT1", "EA")].erp
    assert set(erp_side.movements) == {"sap:later"}  # Discarded when: a newer snapshot holds them


def test_snapshot_is_complete_for_its_site() -> None:
    ledger = InventoryLedger(MASTER)
    feed(
        ledger,
        event(EventType.GOODS_RECEIVED, WMS, "epcis:gr", T0 - H, (line("MAT2", 3),)),
        snapshot("wms", "w0", T0, line("MAT1", 4)),
        snapshot("wms", "other-site", T0, line("MAT2", 9), site="1010"),
    )
    assert position(ledger, "MAT2").wms_qty == 0  # absent from the site's snapshot
    assert position(ledger, "MAT2", site="1010").wms_qty == 9


def test_late_snapshot_older_than_the_current_one_is_ignored() -> None:
    ledger = InventoryLedger(MASTER)
    feed(
        ledger,
        snapshot("erp", "e2", T0 + 2 * H, line("MAT1", 80)),
        event(EventType.GOODS_RECEIVED, ERP, "sap:gr", T0 + 3 * H, (line("MAT1", 5),)),
    )
    outputs = feed(ledger, snapshot("erp", "e1", T0 + H, line("MAT1", 999)))
    row = position(ledger, "MAT1")
    assert (row.erp_qty, row.erp_as_of) == (85.0, T0 + 2 * H)
    # re-emitted only for its version (the last version must not depend on arrival order)
    assert [(o.version, o.erp_qty) for o in outputs if isinstance(o, InventoryPosition)] == [(3, 85.0)]
    assert not [o for o in outputs if isinstance(o, InventoryDelta)]
    # a tie on as_of is broken by event_id
    feed(ledger, snapshot("erp", "e3", T0 + 2 * H, line("MAT1", 70)))
    assert position(ledger, "MAT1").erp_qty == 75


def test_duplicate_event_counts_once() -> None:
    ledger = InventoryLedger(MASTER)
    receipt = event(EventType.GOODS_RECEIVED, WMS, "epcis:gr", T0, (line("MAT1", 5),))
    assert feed(ledger, receipt)
    assert feed(ledger, with_changes(receipt, received_at=T0 + H)) == []
    assert (position(ledger, "MAT1").wms_qty, position(ledger, "MAT1").version) == (5.0, 1)


def test_pick_pack_carrier_and_siteless_events_move_nothing() -> None:
    ledger = InventoryLedger(MASTER)
    outputs = feed(
        ledger,
        event(EventType.PICK_CONFIRMED, WMS, "p", T0, (line("MAT1", 5),), delivery_id="80000001"),
        event(EventType.PACK_CONFIRMED, WMS, "k", T0, (line("MAT1", 5),), delivery_id="80000001"),
        event(EventType.GOODS_RECEIVED, SourceKind.CARRIER, "c", T0, (line("MAT1", 5),)),
        event(EventType.GOODS_RECEIVED, WMS, "nosite", T0, (line("MAT1", 5),), site=None),
    )
    assert outputs == [] and ledger.positions() == [] and ledger.state.seen == {}


# -- in flight ----------------------------------------------------------------------------------


def test_in_flight_shipment_later_posted() -> None:
    ledger = InventoryLedger(MASTER)
    baseline(ledger)
    dispatch = event(EventType.SHIPMENT_DISPATCHED, WMS, "x12:945", T0 + H, (line("MAT1", 5),), delivery_id="8001")
    feed(ledger, dispatch)
    row = position(ledger, "MAT1")
    assert (row.wms_qty, row.erp_qty, row.delta, row.in_flight_qty, row.unexplained_delta) == (95, 100, -5, 5, 0)
    assert alerts(ledger.advance(T0 + 10 * H)) == []  # explained by the shipment in flight
    feed(ledger, event(EventType.GOODS_ISSUE_POSTED, ERP, "sap:gi", T0 + 2 * H, (line("MAT1", 5),), delivery_id="8001"))
    row = position(ledger, "MAT1")
    assert (row.erp_qty, row.delta, row.in_flight_qty, row.unexplained_delta) == (95, 0, 0, 0)


def test_goods_issue_without_lines_uses_the_release_lines_in_any_order() -> None:
    release = event(EventType.ORDER_RELEASED, ERP, "sap:rel", T0, (line("MAT1", 4),), delivery_id="8002")
    issue = event(EventType.GOODS_ISSUE_POSTED, ERP, "sap:gi", T0 + H, delivery_id="8002")
    issue_again = event(EventType.GOODS_ISSUE_POSTED, ERP, "sap:gi-2", T0 + 2 * H, delivery_id="8002")
    finals = []
    for order in ([release, issue, issue_again], [issue, issue_again, release], [issue_again, release, issue]):
        ledger = InventoryLedger(MASTER)
        baseline(ledger)
        feed(ledger, *order)
        finals.append(position(ledger, "MAT1"))
    # one goods issue per delivery: a repeated Changed (status C) after-image is not a second one
    assert finals[0].erp_qty == 96
    assert finals[0] == finals[1] == finals[2]
    # the release is kept until the goods issue: before it, nothing moves
    ledger = InventoryLedger(MASTER)
    baseline(ledger)
    feed(ledger, issue)
    assert position(ledger, "MAT1").erp_qty == 100
    assert ledger.state.deliveries[(SITE, "8002")].goods_issues


def test_goods_issue_known_before_the_dispatch_means_not_in_flight() -> None:
    ledger = InventoryLedger(MASTER)
    baseline(ledger)
    feed(
        ledger,
        event(EventType.GOODS_ISSUE_POSTED, ERP, "sap:gi", T0 + H, (line("MAT1", 5),), delivery_id="8003"),
        event(EventType.SHIPMENT_DISPATCHED, WMS, "x12:945", T0 + 2 * H, (line("MAT1", 5),), delivery_id="8003"),
    )
    row = position(ledger, "MAT1")
    assert (row.erp_qty, row.wms_qty, row.in_flight_qty, row.unexplained_delta) == (95, 95, 0, 0)


def test_dispatch_without_delivery_is_not_in_flight() -> None:
    ledger = InventoryLedger(MASTER)
    baseline(ledger)
    feed(ledger, event(EventType.SHIPMENT_DISPATCHED, WMS, "epcis:ship", T0 + H, (line("MAT1", 5),)))
    row = position(ledger, "MAT1")
    assert (row.wms_qty, row.in_flight_qty, row.unexplained_delta) == (95, 0, -5)


# -- alerts -------------------------------------------------------------------------------------


def test_adjustment_on_one_side_only_alerts_after_grace_and_resolves() -> None:
    ledger = InventoryLedger(MASTER, ToleranceConfig())
    baseline(ledger)
    feed(ledger, event(EventType.INVENTORY_ADJUSTED, WMS, "x12:947", T0 + H, (line("MAT1", -3),)))
    assert position(ledger, "MAT1").unexplained_delta == -3
    assert alerts(ledger.advance(T0 + 2 * H - timedelta(seconds=1))) == []  # not before the grace
    opened = alerts(ledger.advance(T0 + 5 * H))
    expected_id = alert_id(INVENTORY_MISMATCH, f"{SITE}/MAT1")
    assert [(a.alert_id, a.rule, a.state, a.version) for a in opened] == [
        (expected_id, "inventory_mismatch", "open", 1)
    ]
    alert = opened[0]
    assert (alert.entity, alert.site, alert.sku, alert.handoff, alert.delivery_id) == (
        f"{SITE}/MAT1",
        SITE,
        "MAT1",
        "",
        "",
    )
    assert (alert.due_at, alert.opened_at, alert.resolved_at) == (T0 + 2 * H, T0 + 2 * H, None)
    assert json.loads(alert.details) == {
        "uom": "EA",
        "unexplained_delta": -3.0,
        "erp_qty": 100.0,
        "wms_qty": 97.0,
        "in_flight_qty": 0.0,
        "tolerance": 0.0,
        "unit_mismatch": False,
        "out_of_tolerance_since": (T0 + H).isoformat(),
    }
    assert alerts(ledger.advance(T0 + 6 * H)) == []  # opened once
    outputs = feed(ledger, event(EventType.INVENTORY_ADJUSTED, ERP, "sap:702", T0 + 7 * H, (line("MAT1", -3),)))
    resolved = alerts(outputs)
    assert [(a.alert_id, a.state, a.version, a.resolved_at, a.opened_at) for a in resolved] == [
        (expected_id, "resolved", 2, T0 + 7 * H, T0 + 2 * H)
    ]
    assert ledger.state.pending_alerts == {}


def test_back_within_tolerance_before_grace_opens_nothing_and_reopen_bumps_version() -> None:
    ledger = InventoryLedger(MASTER)
    baseline(ledger)
    feed(
        ledger,
        event(EventType.GOODS_RECEIVED, WMS, "w1", T0 + H, (line("MAT1", 2),)),
        event(EventType.GOODS_RECEIVED, ERP, "e1", T0 + H + 30 * timedelta(minutes=1), (line("MAT1", 2),)),
    )
    assert alerts(ledger.advance(T0 + 9 * H)) == []
    feed(ledger, event(EventType.GOODS_RECEIVED, WMS, "w2", T0 + 10 * H, (line("MAT1", 1),)))
    assert [a.version for a in alerts(ledger.advance(T0 + 11 * H))] == [1]
    late_fix = event(EventType.GOODS_RECEIVED, ERP, "e2", T0 + 9 * H, (line("MAT1", 1),))  # dated before it opened
    assert [(a.version, a.resolved_at) for a in alerts(feed(ledger, late_fix))] == [(2, T0 + 11 * H)]
    feed(ledger, event(EventType.GOODS_RECEIVED, WMS, "w3", T0 + 12 * H, (line("MAT1", 1),)))
    assert [(a.state, a.version, a.due_at) for a in alerts(ledger.advance(T0 + 13 * H))] == [("open", 3, T0 + 13 * H)]


def test_tolerance_and_grace_overrides() -> None:
    tolerance = ToleranceConfig(default=0, by_site={SITE: 5}, by_sku={"MAT2": 1}, by_site_sku={(SITE, "MAT1"): 2})
    grace = GraceConfig(default=H, by_sku={"MAT2": 4 * H})
    assert (tolerance.for_position(SITE, "MAT1"), tolerance.for_position(SITE, "MAT2")) == (2, 1)
    assert (tolerance.for_position(SITE, "X"), tolerance.for_position("1010", "X")) == (5, 0)
    ledger = InventoryLedger(MASTER, tolerance, grace)
    feed(
        ledger,
        event(EventType.GOODS_RECEIVED, WMS, "a", T0, (line("MAT1", 2), line("MAT2", 2), line("X", 5))),
    )
    assert ledger.accuracy(SITE) == pytest.approx(2 / 3)  # MAT2 is beyond its tolerance of 1
    assert alerts(ledger.advance(T0 + 2 * H)) == []  # MAT2's grace is 4 h
    assert [a.sku for a in alerts(ledger.advance(T0 + 4 * H))] == ["MAT2"]
    with pytest.raises(ValueError, match="tolerance"):
        ToleranceConfig(by_sku={"MAT1": -1})
    with pytest.raises(ValueError, match="grace"):
        GraceConfig(default=-H)


def test_accuracy_and_positions() -> None:
    ledger = InventoryLedger(MASTER)
    assert math.isnan(ledger.accuracy(SITE))
    baseline(ledger)
    feed(ledger, event(EventType.GOODS_RECEIVED, WMS, "w", T0 + H, (line("MAT2", 1), line("MAT2", 1, "CS"))))
    assert [(r.sku, r.uom, r.unexplained_delta) for r in ledger.positions()] == [
        ("MAT1", "EA", 0.0),
        ("MAT2", "CS", 1.0),
        ("MAT2", "EA", 1.0),
    ]
    assert ledger.accuracy(SITE) == 0.5  # per sku: MAT2 is off in both of its units


# -- units --------------------------------------------------------------------------------------


def test_unit_converted_with_a_master_factor() -> None:
    ledger = InventoryLedger(MASTER)
    baseline(ledger)
    feed(ledger, event(EventType.GOODS_RECEIVED, WMS, "w", T0 + H, (line("MAT1", 2, "cs"),)))
    row = position(ledger, "MAT1")
    assert (row.wms_qty, row.uom, row.unit_mismatch) == (124.0, "EA", False)
    assert len(ledger.positions()) == 1


def test_unit_without_factor_is_kept_apart_and_flagged() -> None:
    ledger = InventoryLedger(MASTER)
    feed(
        ledger,
        snapshot("erp", "e0", T0, line("MAT2", 24)),
        event(EventType.GOODS_RECEIVED, WMS, "w", T0 + H, (line("MAT2", 2, "CS"), line("MAT2", 24))),
    )
    base, apart = position(ledger, "MAT2"), position(ledger, "MAT2", "CS")
    assert (base.wms_qty, base.erp_qty, base.unit_mismatch) == (24, 24, False)
    assert (apart.wms_qty, apart.erp_qty, apart.delta, apart.unit_mismatch) == (2, 0, 2, True)
    opened = alerts(ledger.advance(T0 + 3 * H))
    entity = f"{SITE}/MAT2/CS"  # its own alert, apart from the base unit's
    assert [(a.alert_id, a.entity, a.sku) for a in opened] == [(alert_id(INVENTORY_MISMATCH, entity), entity, "MAT2")]
    assert json.loads(opened[0].details)["unit_mismatch"] is True


def test_unknown_sku_and_empty_master_keep_the_line_unit() -> None:
    for master in (MASTER, EMPTY_MASTER):
        ledger = InventoryLedger(master)
        feed(ledger, event(EventType.GOODS_RECEIVED, WMS, "w", T0, (line("NEW", 3, "KGM"), line("MAT1", 1, "CS"))))
        assert position(ledger, "NEW", "KGM").unit_mismatch is False
    # without a master MAT1 has no base unit either: CS is its unit, nothing is flagged
    assert position(ledger, "MAT1", "CS").unit_mismatch is False


# -- retractions --------------------------------------------------------------------------------


def test_retraction_undoes_a_wms_movement_in_either_order() -> None:
    receipt = event(EventType.GOODS_RECEIVED, WMS, "epcis:gr", T0 + H, (line("MAT1", 5),))
    undo = retraction(receipt, T0 + 2 * H)
    finals = []
    for order in ([receipt, undo], [undo, receipt]):
        ledger = InventoryLedger(MASTER)
        baseline(ledger)
        feed(ledger, *order)
        finals.append(position(ledger, "MAT1"))
    assert finals[0].wms_qty == 100 and finals[0] == finals[1]
    assert finals[0].version == 4  # two snapshots, the event and its retraction


def test_retracted_dispatch_is_no_longer_in_flight() -> None:
    ledger = InventoryLedger(MASTER)
    baseline(ledger)
    dispatch = event(EventType.SHIPMENT_DISPATCHED, WMS, "epcis:ship", T0 + H, (line("MAT1", 5),), delivery_id="8004")
    feed(ledger, dispatch)
    assert position(ledger, "MAT1").in_flight_qty == 5
    feed(ledger, retraction(dispatch, T0 + 2 * H))
    row = position(ledger, "MAT1")
    assert (row.wms_qty, row.in_flight_qty, row.delta) == (100, 0, 0)


# -- discarded when ... -------------------------------------------------------------------------


def test_delivery_state_is_discarded_retention_after_the_goods_issue() -> None:
    ledger = InventoryLedger(MASTER)
    baseline(ledger)
    feed(
        ledger,
        event(EventType.ORDER_RELEASED, ERP, "rel", T0, (line("MAT1", 5),), delivery_id="8005"),
        event(EventType.SHIPMENT_DISPATCHED, WMS, "ship", T0 + H, (line("MAT1", 5),), delivery_id="8005"),
        event(EventType.GOODS_ISSUE_POSTED, ERP, "gi", T0 + 2 * H, delivery_id="8005"),
    )
    ledger.advance(T0 + 2 * H + 30 * DAY - timedelta(seconds=1))
    assert (SITE, "8005") in ledger.state.deliveries
    assert ledger.advance(T0 + 2 * H + 30 * DAY) == []  # nothing in flight: no row changes
    assert ledger.state.deliveries == {}
    row = position(ledger, "MAT1")
    assert (row.erp_qty, row.wms_qty, row.unexplained_delta) == (95, 95, 0)  # the movement stays
    # a late event re-creates the delivery's state: it must not take back the expired one's movement
    late_ship = event(EventType.SHIPMENT_DISPATCHED, WMS, "ship-2", T0 + 3 * H, (line("MAT1", 1),), delivery_id="8005")
    feed(ledger, late_ship)
    assert (position(ledger, "MAT1").erp_qty, position(ledger, "MAT1").in_flight_qty) == (95, 1)
    late_issue = event(EventType.GOODS_ISSUE_POSTED, ERP, "gi-2", T0 + 2 * H, (line("MAT1", 5),), delivery_id="8005")
    feed(ledger, late_issue)  # an after-image of the same goods issue: the same movement, not a second one
    assert (position(ledger, "MAT1").erp_qty, position(ledger, "MAT1").in_flight_qty) == (95, 0)


def test_dispatch_without_goods_issue_stays_in_flight_until_retention() -> None:
    ledger = InventoryLedger(MASTER)
    baseline(ledger)
    feed(ledger, event(EventType.SHIPMENT_DISPATCHED, WMS, "ship", T0 + H, (line("MAT1", 5),), delivery_id="8006"))
    assert alerts(ledger.advance(T0 + 29 * DAY)) == []
    assert position(ledger, "MAT1").in_flight_qty == 5
    outputs = ledger.advance(T0 + H + 30 * DAY)
    rows = [o for o in outputs if isinstance(o, InventoryDelta)]
    assert [(r.in_flight_qty, r.unexplained_delta, r.at, r.version) for r in rows] == [(0, -5, T0 + H + 30 * DAY, 4)]
    assert ledger.state.deliveries == {}
    # the goods issue that never came is now drift: alert after the grace
    assert [a.state for a in alerts(ledger.advance(T0 + 2 * H + 30 * DAY))] == ["open"]


def test_dedup_ids_retractions_and_contributors_are_pruned_keeping_the_version() -> None:
    ledger = InventoryLedger(MASTER)
    receipt = event(EventType.GOODS_RECEIVED, WMS, "gr", T0, (line("MAT1", 5),))
    feed(ledger, receipt, retraction(receipt, T0 + H))
    version = position(ledger, "MAT1").version
    ledger.advance(T0 + H + 30 * DAY)
    assert ledger.state.seen == {} and ledger.state.retracted == {}
    kept = ledger.state.sites[SITE].positions[("MAT1", "EA")]
    assert kept.contributors == set() and kept.retired == 2
    assert position(ledger, "MAT1").version == version


def test_movements_without_snapshots_are_folded_after_retention() -> None:
    ledger = InventoryLedger(MASTER)
    feed(
        ledger,
        event(EventType.GOODS_RECEIVED, ERP, "old", T0, (line("MAT1", 0.1),)),
        event(EventType.GOODS_RECEIVED, ERP, "older", T0 - H, (line("MAT1", 0.2),)),
        event(EventType.GOODS_RECEIVED, ERP, "new", T0 + 20 * DAY, (line("MAT1", 1),)),
    )
    ledger.advance(T0 + 30 * DAY)
    erp_side = ledger.state.sites[SITE].positions[("MAT1", "EA")].erp
    assert set(erp_side.movements) == {"new"} and erp_side.folded == pytest.approx(0.3)
    assert position(ledger, "MAT1").erp_qty == 1.3
    # a snapshot older than the folding floor can't be applied; a newer one resets the total
    feed(ledger, snapshot("erp", "stale", T0 - DAY, line("MAT1", 50)))
    assert position(ledger, "MAT1").erp_qty == 1.3
    feed(ledger, snapshot("erp", "fresh", T0 + 10 * DAY, line("MAT1", 50)))
    assert position(ledger, "MAT1").erp_qty == 51 and erp_side.folded == 0


# -- order independence -------------------------------------------------------------------------

_SKUS = ("MAT1", "MAT2", "NEW")
_quantity = st.sampled_from([0.1, 0.2, 0.3, 1.0, 2.5, 7.0, 12.0])
_at = st.integers(min_value=0, max_value=8).map(lambda hours: T0 + hours * H)
_lines = st.lists(
    st.builds(line, st.sampled_from(_SKUS), _quantity, st.sampled_from(["EA", "EA", "CS"])),
    min_size=0,
    max_size=3,
).map(tuple)


@st.composite
def event_sets(draw: st.DrawFn) -> list[CanonicalEvent]:
    events: list[CanonicalEvent] = []
    for index in range(draw(st.integers(0, 3))):
        system = draw(st.sampled_from(["erp", "wms"]))
        events.append(snapshot(system, f"s{index}", draw(_at), *draw(_lines)))
    kinds = [
        (EventType.GOODS_RECEIVED, ERP),
        (EventType.GOODS_RECEIVED, WMS),
        (EventType.INVENTORY_ADJUSTED, ERP),
        (EventType.INVENTORY_ADJUSTED, WMS),
        (EventType.SHIPMENT_DISPATCHED, WMS),
    ]
    for index in range(draw(st.integers(0, 6))):
        event_type, kind = draw(st.sampled_from(kinds))
        events.append(event(event_type, kind, f"m{index}", draw(_at), draw(_lines)))
    for index in range(draw(st.integers(0, 3))):
        delivery = f"D{draw(st.integers(0, 2))}"
        options = [
            (EventType.ORDER_RELEASED, ERP),
            (EventType.GOODS_ISSUE_POSTED, ERP),
            (EventType.SHIPMENT_DISPATCHED, WMS),
        ]
        for event_type, kind in draw(st.lists(st.sampled_from(options), min_size=1, max_size=3)):
            lines = draw(_lines) if event_type is not EventType.GOODS_ISSUE_POSTED or draw(st.booleans()) else ()
            events.append(event(event_type, kind, f"d{index}-{len(events)}", draw(_at), lines, delivery_id=delivery))
    wms_events = [e for e in events if e.source_kind is WMS]
    for target in (
        draw(st.lists(st.sampled_from(wms_events), max_size=2, unique_by=lambda e: e.event_id)) if wms_events else []
    ):
        events.append(retraction(target, draw(_at)))
    events.extend(draw(st.lists(st.sampled_from(events), max_size=3)) if events else [])  # duplicates
    return events


def _run(events: list[CanonicalEvent]) -> tuple[list[InventoryPosition], dict[tuple[str, str], InventoryPosition]]:
    ledger = InventoryLedger(MASTER)
    last: dict[tuple[str, str], InventoryPosition] = {}
    for item in events:
        for output in ledger.on_event(item):
            if isinstance(output, InventoryPosition):
                previous = last.get((output.sku, output.uom))
                assert previous is None or output.version > previous.version  # strictly increasing
                last[(output.sku, output.uom)] = output
    return ledger.positions(), last


@settings(max_examples=250, deadline=None)
@given(st.data())
def test_final_positions_are_a_function_of_the_event_set(data: st.DataObject) -> None:
    events = data.draw(event_sets())
    shuffled = data.draw(st.permutations(events))
    final, last_rows = _run(events)
    final_shuffled, last_rows_shuffled = _run(shuffled)
    assert final == final_shuffled
    # the last row written per position is the final one, version included
    assert sorted(last_rows.values(), key=lambda r: (r.sku, r.uom)) == final
    assert last_rows == last_rows_shuffled


def test_state_is_a_plain_dataclass_that_resumes() -> None:
    import copy
    import pickle

    ledger = InventoryLedger(MASTER)
    baseline(ledger)
    feed(ledger, event(EventType.SHIPMENT_DISPATCHED, WMS, "ship", T0 + H, (line("MAT1", 5),), delivery_id="8007"))
    ledger.advance(T0 + 2 * H)
    resumed = InventoryLedger(MASTER, state=pickle.loads(pickle.dumps(copy.deepcopy(ledger.state))))
    issue = event(EventType.GOODS_ISSUE_POSTED, ERP, "gi", T0 + 3 * H, (line("MAT1", 5),), delivery_id="8007")
    assert resumed.on_event(issue) == ledger.on_event(issue)
    assert resumed.positions() == ledger.positions()

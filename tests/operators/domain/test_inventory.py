"""InventoryLogic (design.md 3.4): positions, snapshots and movements, in-flight, goods issues,
units, retractions, alerts, discards, and order independence (hypothesis).

Semantics that changed on purpose with the keyed stages (the old InventoryLedger tests asserted
the former ones):
- in-flight quantities and a delivery's goods-issue movement come from the lifecycle
  (operators.domain.delivery_goods) as InFlight / GoodsIssue items, so these tests feed those items
  directly (test_lifecycle.py asserts when the lifecycle sends them);
- a position's version is the number of changes of its content (an event that changes nothing,
  e.g. a movement already in the snapshot, leaves it);
- inventory_deltas rows are emitted per change (in apply), position rows once per batch (flush);
- the ledger has no dedup of its own: dedup runs upstream, and a movement is keyed by its event
  id, so applying one twice counts it once.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.domain.alerts import INVENTORY_MISMATCH, OPEN, RESOLVED, Alert, alert_id
from operators.domain.inventory import InventoryLogic, inventory_relevant
from operators.domain.inventory_units import (
    GraceConfig,
    InventoryDelta,
    InventoryPosition,
    InventoryState,
    SideLedger,
    ToleranceConfig,
)
from operators.domain.items import GoodsIssue, InFlight
from operators.domain.lifecycle import LifecycleLogic
from operators.domain.stage import Bucket
from operators.formats.timeparse import to_epoch_ms
from operators.ingest.route import INVENTORY, LIFECYCLE, route_event
from operators.master import EMPTY_MASTER, MasterData, Product, Site
from operators.model import CanonicalEvent, EventType, Line, SourceKind, TimePrecision
from tests.operators.eventkit import Driver, Keyed, key_of

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


def ms(when: datetime) -> int:
    return to_epoch_ms(when)


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


def in_flight(delivery_id: str, dispatch_id: str, at: datetime, lines: tuple[Line, ...], sign: int = 1) -> Keyed:
    """What the lifecycle sends when a dispatch goes into (+1) or out of (-1) flight."""
    return (ms(at), f"{dispatch_id}/flight", 1), InFlight(SITE, delivery_id, dispatch_id, lines, sign, ms(at))


def goods_issue(delivery_id: str, at: datetime, lines: tuple[Line, ...]) -> Keyed:
    """The lifecycle's one goods-issue movement of a delivery (lines empty: none)."""
    return (ms(at), f"{delivery_id}/issue", 3), GoodsIssue(SITE, delivery_id, ms(at), lines)


def ledger(master: MasterData = MASTER, **kw: Any) -> Driver[InventoryLogic]:
    return Driver(InventoryLogic(master, **kw))


def logic_of(driver: Driver[InventoryLogic]) -> InventoryLogic:
    return driver.logic


def position(driver: Driver[InventoryLogic], sku: str, uom: str = "EA", site: str = SITE) -> InventoryPosition:
    found = [row for row in logic_of(driver).positions(site) if row.sku == sku and row.uom == uom]
    assert len(found) == 1, logic_of(driver).positions(site)
    return found[0]


def alerts(outputs: list[Any]) -> list[Alert]:
    return [item for item in outputs if isinstance(item, Alert)]


def baseline(driver: Driver[InventoryLogic], quantity: float = 100) -> None:
    driver.feed(snapshot("erp", "e0", T0, line("MAT1", quantity)))
    driver.feed(snapshot("wms", "w0", T0, line("MAT1", quantity)))


# -- positions ----------------------------------------------------------------------------------


def test_snapshot_then_movements() -> None:
    inv = ledger()
    first = inv.feed(snapshot("erp", "e0", T0, line("MAT1", 100), line("MAT2", 7)))
    rows = [o for o in first if isinstance(o, InventoryPosition)]
    assert [(r.sku, r.erp_qty, r.wms_qty, r.delta, r.erp_as_of, r.wms_as_of, r.version) for r in rows] == [
        ("MAT1", 100.0, 0.0, -100.0, ms(T0), None, 1),
        ("MAT2", 7.0, 0.0, -7.0, ms(T0), None, 1),
    ]
    inv.feed(snapshot("wms", "w0", T0, line("MAT1", 100), line("MAT2", 7)))
    outputs = inv.feed(
        event(EventType.GOODS_RECEIVED, ERP, "sap:gr1", T0 + H, (line("MAT1", 10),)),
        event(EventType.GOODS_RECEIVED, WMS, "epcis:gr1", T0 + 2 * H, (line("MAT1", 10),)),
        event(EventType.INVENTORY_ADJUSTED, WMS, "x12:947", T0 + 3 * H, (line("MAT1", -4),)),
        event(EventType.INVENTORY_ADJUSTED, ERP, "sap:702", T0 + 3 * H, (line("MAT1", -4),)),
    )
    row = position(inv, "MAT1")
    assert (row.erp_qty, row.wms_qty, row.delta, row.unexplained_delta) == (106.0, 106.0, 0.0, 0.0)
    assert (row.erp_as_of, row.wms_as_of, row.unit_mismatch) == (ms(T0), ms(T0), False)
    assert row.version == 6  # two snapshots + four movements, each a change of content
    deltas = [o for o in outputs if isinstance(o, InventoryDelta)]
    assert [(d.at, d.delta, d.version) for d in deltas] == [  # one per change
        (ms(T0 + H), -10.0, 3),
        (ms(T0 + 2 * H), 0.0, 4),
        (ms(T0 + 3 * H), -4.0, 5),
        (ms(T0 + 3 * H), 0.0, 6),
    ]
    # one position row per batch, with the batch's last version
    assert [o for o in outputs if isinstance(o, InventoryPosition)] == [row]
    assert position(inv, "MAT2").version == 2  # the snapshots only


def test_movements_before_the_snapshot_are_in_it() -> None:
    inv = ledger()
    inv.feed(event(EventType.GOODS_RECEIVED, ERP, "sap:early", T0 - H, (line("MAT1", 10),)))
    assert position(inv, "MAT1").erp_qty == 10  # no snapshot yet: movements only
    inv.feed(snapshot("erp", "e0", T0, line("MAT1", 50)))
    assert inv.feed(event(EventType.GOODS_RECEIVED, ERP, "sap:at", T0, (line("MAT1", 5),), received_at=T0 + H)) == []
    inv.feed(event(EventType.GOODS_RECEIVED, ERP, "sap:later", T0 + 2 * H, (line("MAT1", 1),)))
    row = position(inv, "MAT1")
    # the early movement is dropped by the snapshot, the one at as_of is in it
    assert row.erp_qty == 51
    assert row.version == 3  # the movement at as_of changed nothing: no new version
    erp_side = logic_of(inv).state.sites[SITE].positions["MAT1\x1fEA"].erp
    assert set(erp_side.movements) == {"sap:later"}  # Discarded when: a kept snapshot holds them


def test_snapshot_is_complete_for_its_site() -> None:
    inv = ledger()
    inv.feed(
        event(EventType.GOODS_RECEIVED, WMS, "epcis:gr", T0 - H, (line("MAT2", 3),)),
        snapshot("wms", "w0", T0, line("MAT1", 4)),
        snapshot("wms", "other-site", T0, line("MAT2", 9), site="1010"),
    )
    assert position(inv, "MAT2").wms_qty == 0  # absent from the site's snapshot
    assert position(inv, "MAT2", site="1010").wms_qty == 9


def test_late_snapshot_older_than_the_current_one_is_ignored() -> None:
    inv = ledger()
    inv.feed(
        snapshot("erp", "e2", T0 + 2 * H, line("MAT1", 80)),
        event(EventType.GOODS_RECEIVED, ERP, "sap:gr", T0 + 3 * H, (line("MAT1", 5),)),
    )
    assert inv.feed(snapshot("erp", "e1", T0 + H, line("MAT1", 999))) == []  # no change, no row
    row = position(inv, "MAT1")
    assert (row.erp_qty, row.erp_as_of, row.version) == (85.0, ms(T0 + 2 * H), 2)
    # a tie on as_of is broken by event_id; the newer snapshot replaces the old one
    inv.feed(snapshot("erp", "e3", T0 + 2 * H, line("MAT1", 70)))
    assert position(inv, "MAT1").erp_qty == 75
    assert logic_of(inv).state.sites[SITE].snapshots["erp"].snapshot_id == "snapshot:e3"


def test_applying_a_movement_twice_counts_it_once() -> None:
    inv = ledger()
    receipt = event(EventType.GOODS_RECEIVED, WMS, "epcis:gr", T0, (line("MAT1", 5),))
    assert inv.feed(receipt)
    assert inv.feed(receipt) == []
    assert (position(inv, "MAT1").wms_qty, position(inv, "MAT1").version) == (5.0, 1)


def test_what_the_ledger_takes_itself() -> None:
    takes = [
        event(EventType.GOODS_RECEIVED, WMS, "gr", T0),
        event(EventType.INVENTORY_ADJUSTED, ERP, "adj", T0),
        event(EventType.SHIPMENT_DISPATCHED, WMS, "ship", T0, delivery_id="8001"),
        event(EventType.GOODS_ISSUE_POSTED, ERP, "gi-no-delivery", T0),
        snapshot("erp", "s", T0),
        event(EventType.EVENT_RETRACTED, WMS, "r", T0, attributes={"retracts": "gr"}),
    ]
    leaves = [
        event(EventType.PICK_CONFIRMED, WMS, "p", T0, (line("MAT1", 5),), delivery_id="8001"),
        event(EventType.PACK_CONFIRMED, WMS, "k", T0, (line("MAT1", 5),), delivery_id="8001"),
        event(EventType.GOODS_RECEIVED, SourceKind.CARRIER, "c", T0, (line("MAT1", 5),)),
        event(EventType.GOODS_RECEIVED, WMS, "nosite", T0, (line("MAT1", 5),), site=None),
        # a delivery's goods issue reaches the ledger through the lifecycle (GoodsIssue)
        event(EventType.GOODS_ISSUE_POSTED, ERP, "gi", T0, (line("MAT1", 5),), delivery_id="8001"),
        snapshot("mainframe", "s2", T0),
        event(EventType.EVENT_RETRACTED, WMS, "r2", T0),
    ]
    assert [inventory_relevant(e) for e in takes] == [True] * len(takes)
    assert [inventory_relevant(e) for e in leaves] == [False] * len(leaves)
    for item in leaves:
        routed: list[Any] = []
        route_event(item, ms(T0), 1, routed)
        assert INVENTORY not in [stage for stage, *_ in routed]


# -- in flight and goods issues -----------------------------------------------------------------


def test_in_flight_shipment_later_posted() -> None:
    inv = ledger()
    baseline(inv)
    lines = (line("MAT1", 5),)
    inv.feed(event(EventType.SHIPMENT_DISPATCHED, WMS, "x12:945", T0 + H, lines, delivery_id="8001"))
    assert position(inv, "MAT1").unexplained_delta == -5  # until the lifecycle says it is in flight
    inv.feed(in_flight("8001", "x12:945", T0 + H, lines))
    row = position(inv, "MAT1")
    assert (row.wms_qty, row.erp_qty, row.delta, row.in_flight_qty, row.unexplained_delta) == (95, 100, -5, 5, 0)
    assert alerts(inv.advance(ms(T0 + 10 * H))) == []  # explained by the shipment in flight
    assert logic_of(inv).state.pending_alerts == {}
    inv.feed(goods_issue("8001", T0 + 2 * H, lines), in_flight("8001", "x12:945", T0 + 2 * H, lines, -1))
    row = position(inv, "MAT1")
    assert (row.erp_qty, row.delta, row.in_flight_qty, row.unexplained_delta) == (95, 0, 0, 0)
    assert logic_of(inv).state.sites[SITE].positions["MAT1\x1fEA"].in_flight == {}  # Discarded when: InFlight(-1)


def test_a_delivery_has_one_goods_issue_movement_which_each_new_one_replaces() -> None:
    inv = ledger()
    baseline(inv)
    inv.feed(goods_issue("8002", T0 + H, (line("MAT1", 4),)))
    assert position(inv, "MAT1").erp_qty == 96
    assert logic_of(inv).state.sites[SITE].issues == {"8002": ["MAT1\x1fEA"]}
    inv.feed(goods_issue("8002", T0 + H, (line("MAT1", 5), line("MAT2", 1))))  # an after-image: replaces it
    assert (position(inv, "MAT1").erp_qty, position(inv, "MAT2").erp_qty) == (95, -1)
    inv.feed(goods_issue("8002", T0 + H, ()))  # taken back (the lifecycle moved it to another site)
    assert (position(inv, "MAT1").erp_qty, position(inv, "MAT2").erp_qty) == (100, 0)
    assert logic_of(inv).state.sites[SITE].issues == {}  # Discarded when: taken back


def test_a_goods_issue_without_delivery_is_a_plain_erp_movement() -> None:
    inv = ledger()
    baseline(inv)
    inv.feed(event(EventType.GOODS_ISSUE_POSTED, ERP, "sap:gi", T0 + H, (line("MAT1", 5),)))
    assert position(inv, "MAT1").erp_qty == 95


def test_dispatch_without_delivery_is_not_in_flight() -> None:
    inv = ledger()
    baseline(inv)
    inv.feed(event(EventType.SHIPMENT_DISPATCHED, WMS, "epcis:ship", T0 + H, (line("MAT1", 5),)))
    row = position(inv, "MAT1")
    assert (row.wms_qty, row.in_flight_qty, row.unexplained_delta) == (95, 0, -5)


def test_a_goods_issue_sent_again_after_the_lifecycle_forgot_the_delivery_is_the_same_movement() -> None:
    inv = ledger()
    baseline(inv)
    inv.feed(goods_issue("8005", T0 + 2 * H, (line("MAT1", 5),)))
    inv.advance(ms(T0 + 2 * H + 31 * DAY))
    inv.feed(goods_issue("8005", T0 + 2 * H, (line("MAT1", 5),)))  # a new lifecycle state re-sends it
    assert position(inv, "MAT1").erp_qty == 95


def test_in_flight_that_expired_is_drift_after_the_grace() -> None:
    inv = ledger()
    baseline(inv)
    lines = (line("MAT1", 5),)
    inv.feed(
        event(EventType.SHIPMENT_DISPATCHED, WMS, "ship", T0 + H, lines, delivery_id="8006"),
        in_flight("8006", "ship", T0 + H, lines),
    )
    assert alerts(inv.advance(ms(T0 + 29 * DAY))) == []
    due = T0 + H + 30 * DAY  # the lifecycle takes it out of flight `retention` after the delivery's last event
    outputs = inv.feed(in_flight("8006", "ship", due, lines, -1))
    rows = [o for o in outputs if isinstance(o, InventoryDelta)]
    assert [(r.in_flight_qty, r.unexplained_delta, r.at, r.version) for r in rows] == [(0, -5, ms(due), 5)]
    assert alerts(inv.advance(ms(due + H) - 1)) == []
    assert [a.state for a in alerts(inv.advance(ms(due + H)))] == [OPEN]


# -- alerts -------------------------------------------------------------------------------------


def test_adjustment_on_one_side_only_alerts_after_grace_and_resolves() -> None:
    inv = ledger(tolerance=ToleranceConfig())
    baseline(inv)
    inv.feed(event(EventType.INVENTORY_ADJUSTED, WMS, "x12:947", T0 + H, (line("MAT1", -3),)))
    assert position(inv, "MAT1").unexplained_delta == -3
    assert alerts(inv.advance(ms(T0 + 2 * H) - 1)) == []  # not before the grace
    opened = alerts(inv.advance(ms(T0 + 5 * H)))
    expected_id = alert_id(INVENTORY_MISMATCH, f"{SITE}/MAT1")
    assert [(a.alert_id, a.rule, a.state, a.version) for a in opened] == [(expected_id, INVENTORY_MISMATCH, OPEN, 1)]
    alert = opened[0]
    assert (alert.entity, alert.site, alert.sku, alert.handoff, alert.delivery_id) == (
        f"{SITE}/MAT1",
        SITE,
        "MAT1",
        "",
        "",
    )
    assert (alert.due_at, alert.opened_at, alert.resolved_at) == (ms(T0 + 2 * H), ms(T0 + 2 * H), None)
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
    assert alerts(inv.advance(ms(T0 + 6 * H))) == []  # opened once
    outputs = inv.feed(event(EventType.INVENTORY_ADJUSTED, ERP, "sap:702", T0 + 7 * H, (line("MAT1", -3),)))
    assert [(a.alert_id, a.state, a.version, a.resolved_at, a.opened_at) for a in alerts(outputs)] == [
        (expected_id, RESOLVED, 2, ms(T0 + 7 * H), ms(T0 + 2 * H))
    ]
    assert logic_of(inv).state.pending_alerts == {}


def test_back_within_tolerance_before_grace_opens_nothing_and_reopen_bumps_version() -> None:
    inv = ledger()
    baseline(inv)
    inv.feed(
        event(EventType.GOODS_RECEIVED, WMS, "w1", T0 + H, (line("MAT1", 2),)),
        event(EventType.GOODS_RECEIVED, ERP, "e1", T0 + H + timedelta(minutes=30), (line("MAT1", 2),)),
    )
    assert logic_of(inv).state.pending_alerts == {}  # Discarded when: back within tolerance
    assert alerts(inv.advance(ms(T0 + 9 * H))) == []
    inv.feed(event(EventType.GOODS_RECEIVED, WMS, "w2", T0 + 10 * H, (line("MAT1", 1),)))
    assert [a.version for a in alerts(inv.advance(ms(T0 + 11 * H)))] == [1]
    late_fix = event(EventType.GOODS_RECEIVED, ERP, "e2", T0 + 9 * H, (line("MAT1", 1),))  # dated before it opened
    assert [(a.version, a.resolved_at) for a in alerts(inv.feed(late_fix))] == [(2, ms(T0 + 11 * H))]
    inv.feed(event(EventType.GOODS_RECEIVED, WMS, "w3", T0 + 12 * H, (line("MAT1", 1),)))
    assert [(a.state, a.version, a.due_at) for a in alerts(inv.advance(ms(T0 + 13 * H)))] == [
        (OPEN, 3, ms(T0 + 13 * H))
    ]


def test_tolerance_and_grace_overrides() -> None:
    tolerance = ToleranceConfig(default=0, by_site={SITE: 5}, by_sku={"MAT2": 1}, by_site_sku={(SITE, "MAT1"): 2})
    grace = GraceConfig(default=H, by_sku={"MAT2": 4 * H})
    assert (tolerance.for_position(SITE, "MAT1"), tolerance.for_position(SITE, "MAT2")) == (2, 1)
    assert (tolerance.for_position(SITE, "X"), tolerance.for_position("1010", "X")) == (5, 0)
    inv = ledger(tolerance=tolerance, grace=grace)
    inv.feed(event(EventType.GOODS_RECEIVED, WMS, "a", T0, (line("MAT1", 2), line("MAT2", 2), line("X", 5))))
    assert logic_of(inv).accuracy(SITE) == pytest.approx(2 / 3)  # MAT2 is beyond its tolerance of 1
    assert alerts(inv.advance(ms(T0 + 2 * H))) == []  # MAT2's grace is 4 h
    assert [a.sku for a in alerts(inv.advance(ms(T0 + 4 * H)))] == ["MAT2"]
    with pytest.raises(ValueError, match="tolerance"):
        ToleranceConfig(by_sku={"MAT1": -1})
    with pytest.raises(ValueError, match="grace"):
        GraceConfig(default=-H)


def test_accuracy_and_positions() -> None:
    inv = ledger()
    assert math.isnan(logic_of(inv).accuracy(SITE))
    baseline(inv)
    inv.feed(event(EventType.GOODS_RECEIVED, WMS, "w", T0 + H, (line("MAT2", 1), line("MAT2", 1, "CS"))))
    assert [(r.sku, r.uom, r.unexplained_delta) for r in logic_of(inv).positions()] == [
        ("MAT1", "EA", 0.0),
        ("MAT2", "CS", 1.0),
        ("MAT2", "EA", 1.0),
    ]
    assert logic_of(inv).accuracy(SITE) == 0.5  # per sku: MAT2 is off in both of its units


# -- units --------------------------------------------------------------------------------------


def test_unit_converted_with_a_master_factor() -> None:
    inv = ledger()
    baseline(inv)
    inv.feed(event(EventType.GOODS_RECEIVED, WMS, "w", T0 + H, (line("MAT1", 2, "cs"),)))
    row = position(inv, "MAT1")
    assert (row.wms_qty, row.uom, row.unit_mismatch) == (124.0, "EA", False)
    assert len(logic_of(inv).positions()) == 1


def test_unit_without_factor_is_kept_apart_and_flagged() -> None:
    inv = ledger()
    inv.feed(
        snapshot("erp", "e0", T0, line("MAT2", 24)),
        event(EventType.GOODS_RECEIVED, WMS, "w", T0 + H, (line("MAT2", 2, "CS"), line("MAT2", 24))),
    )
    base, apart = position(inv, "MAT2"), position(inv, "MAT2", "CS")
    assert (base.wms_qty, base.erp_qty, base.unit_mismatch) == (24, 24, False)
    assert (apart.wms_qty, apart.erp_qty, apart.delta, apart.unit_mismatch) == (2, 0, 2, True)
    opened = alerts(inv.advance(ms(T0 + 3 * H)))
    entity = f"{SITE}/MAT2/CS"  # its own alert, apart from the base unit's
    assert [(a.alert_id, a.entity, a.sku) for a in opened] == [(alert_id(INVENTORY_MISMATCH, entity), entity, "MAT2")]
    assert json.loads(opened[0].details)["unit_mismatch"] is True


def test_unknown_sku_and_empty_master_keep_the_line_unit() -> None:
    for master in (MASTER, EMPTY_MASTER):
        inv = ledger(master)
        inv.feed(event(EventType.GOODS_RECEIVED, WMS, "w", T0, (line("NEW", 3, "KGM"), line("MAT1", 1, "CS"))))
        assert position(inv, "NEW", "KGM").unit_mismatch is False
    # without a master MAT1 has no base unit either: CS is its unit, nothing is flagged
    assert position(inv, "MAT1", "CS").unit_mismatch is False


def test_positions_of_a_sku_without_known_base_unit_have_an_alert_each() -> None:
    # An unmapped sku reported in EA by the ERP and in CS by the WMS: two positions, both out of
    # tolerance. Their alerts must not share an id (ReplacingMergeTree would keep one of them).
    inv = ledger()
    inv.feed(
        event(EventType.GOODS_RECEIVED, ERP, "e", T0, (line("UNMAPPED:77", 3, "EA"),)),
        event(EventType.GOODS_RECEIVED, WMS, "w", T0, (line("UNMAPPED:77", 1, "CS"),)),
    )
    opened = alerts(inv.advance(ms(T0 + H)))
    entities = [f"{SITE}/UNMAPPED:77/CS", f"{SITE}/UNMAPPED:77/EA"]
    assert [(a.entity, a.alert_id, a.version) for a in opened] == [
        (entity, alert_id(INVENTORY_MISMATCH, entity), 1) for entity in entities
    ]
    # a sku whose base unit is known keeps `site/sku` for its base-unit position
    known = ledger()
    known.feed(event(EventType.GOODS_RECEIVED, WMS, "w", T0, (line("MAT1", 1),)))
    assert [a.entity for a in alerts(known.advance(ms(T0 + H)))] == [f"{SITE}/MAT1"]


def test_in_flight_and_goods_issue_lines_are_converted_too() -> None:
    inv = ledger()
    baseline(inv)
    inv.feed(
        in_flight("8008", "ship", T0 + H, (line("MAT1", 1, "CS"),)),
        goods_issue("8009", T0 + H, (line("MAT1", 1, "cs"),)),
    )
    row = position(inv, "MAT1")
    assert (row.in_flight_qty, row.erp_qty) == (12, 88)


# -- retractions --------------------------------------------------------------------------------


def test_retraction_undoes_a_wms_movement_whatever_the_arrival_order() -> None:
    receipt = event(EventType.GOODS_RECEIVED, WMS, "epcis:gr", T0 + H, (line("MAT1", 5),))
    undo = retraction(receipt, T0 + 2 * H)
    finals = []
    for order in ([receipt, undo], [undo, receipt]):
        logic = InventoryLogic(MASTER)
        bucket = Bucket(["dedup/0"], logic)
        out: list[Any] = []
        for item in [snapshot("erp", "e0", T0, line("MAT1", 100)), snapshot("wms", "w0", T0, line("MAT1", 100))]:
            bucket.receive("dedup/0", None, False, [(key_of(item), item)], out)
        for item in order:  # both arrive before W passes them: applied in key order
            bucket.receive("dedup/0", None, False, [(key_of(item), item)], out)
        bucket.receive("dedup/0", ms(T0 + 2 * H), True, [], out)
        bucket.settle(out)
        finals.append(logic.positions())
    assert finals[0] == finals[1]
    assert (finals[0][0].wms_qty, finals[0][0].version) == (100, 4)  # two snapshots, the event, its retraction


def test_a_retraction_applied_before_its_event_keeps_it_out() -> None:
    inv = ledger()
    baseline(inv)
    receipt = event(EventType.GOODS_RECEIVED, WMS, "epcis:gr", T0 + H, (line("MAT1", 5),))
    assert inv.feed(retraction(receipt, T0 + 2 * H)) == []  # nothing to undo yet
    assert inv.feed(receipt) == []  # applied late, after its retraction: not counted
    row = position(inv, "MAT1")
    # the same quantities as in key order; the version counts only the changes that happened
    assert (row.wms_qty, row.version) == (100, 2)


def test_retracted_dispatch_is_no_longer_in_flight() -> None:
    inv = ledger()
    baseline(inv)
    lines = (line("MAT1", 5),)
    dispatch = event(EventType.SHIPMENT_DISPATCHED, WMS, "epcis:ship", T0 + H, lines, delivery_id="8004")
    inv.feed(dispatch, in_flight("8004", "epcis:ship", T0 + H, lines))
    assert position(inv, "MAT1").in_flight_qty == 5
    inv.feed(retraction(dispatch, T0 + 2 * H), in_flight("8004", "epcis:ship", T0 + 2 * H, lines, -1))
    row = position(inv, "MAT1")
    assert (row.wms_qty, row.in_flight_qty, row.delta, row.unexplained_delta) == (100, 0, 0, 0)


# -- discarded when ... -------------------------------------------------------------------------


def test_retractions_are_forgotten_retention_after_and_versions_are_kept() -> None:
    inv = ledger(retention_ms=30 * 86_400_000)
    receipt = event(EventType.GOODS_RECEIVED, WMS, "gr", T0, (line("MAT1", 5),))
    inv.feed(receipt, retraction(receipt, T0 + H))
    version = position(inv, "MAT1").version
    state = logic_of(inv).state
    inv.advance(ms(T0 + H + 30 * DAY) - 1)
    assert state.retracted == {"gr": ms(T0 + H)}
    # Pruning is housekeeping, run at most once per tenth of the retention.
    inv.advance(ms(T0 + H + 33 * DAY))
    assert state.retracted == {}
    assert position(inv, "MAT1").version == version


def test_movements_without_snapshots_are_folded_after_retention() -> None:
    inv = ledger()
    inv.feed(
        event(EventType.GOODS_RECEIVED, ERP, "older", T0 - H, (line("MAT1", 0.2),)),
        event(EventType.GOODS_RECEIVED, ERP, "old", T0, (line("MAT1", 0.1),)),
        event(EventType.GOODS_RECEIVED, ERP, "new", T0 + 20 * DAY, (line("MAT1", 1),)),
    )
    inv.advance(ms(T0 + 30 * DAY))
    erp_side = logic_of(inv).state.sites[SITE].positions["MAT1\x1fEA"].erp
    # folded: the ids are gone, the quantities stay in the exact total
    assert set(erp_side.movements) == {"new"} and math.fsum(erp_side.total) == 1.3
    assert position(inv, "MAT1").erp_qty == 1.3
    # a snapshot older than the folding floor can't be applied; a newer one resets the total
    inv.feed(snapshot("erp", "stale", T0 - DAY, line("MAT1", 50)))
    assert position(inv, "MAT1").erp_qty == 1.3
    inv.feed(snapshot("erp", "fresh", T0 + 10 * DAY, line("MAT1", 50)))
    assert position(inv, "MAT1").erp_qty == 51 and erp_side.total == [1.0]


def test_a_delivery_goods_issue_is_not_folded_while_the_delivery_owns_it() -> None:
    inv = ledger()
    inv.feed(goods_issue("8010", T0, (line("MAT1", 5),)))
    inv.advance(ms(T0 + 40 * DAY))
    erp_side = logic_of(inv).state.sites[SITE].positions["MAT1\x1fEA"].erp
    assert set(erp_side.movements) == {"goods_issue:8010"} and erp_side.total == [-5.0]
    inv.feed(goods_issue("8010", T0, (line("MAT1", 4),)))  # so a later after-image still replaces it
    assert position(inv, "MAT1").erp_qty == -4


def test_state_round_trips_and_resumes() -> None:
    inv = ledger()
    baseline(inv)
    lines = (line("MAT1", 5),)
    inv.feed(
        event(EventType.SHIPMENT_DISPATCHED, WMS, "ship", T0 + H, lines, delivery_id="8007"),
        in_flight("8007", "ship", T0 + H, lines),
        event(EventType.INVENTORY_ADJUSTED, WMS, "adj", T0 + H, (line("MAT2", -1),)),
    )
    inv.advance(ms(T0 + 3 * H))
    state = msgspec.msgpack.decode(msgspec.msgpack.encode(logic_of(inv).state), type=InventoryState)
    assert state == logic_of(inv).state
    resumed = ledger(state=state)
    rest = [goods_issue("8007", T0 + 4 * H, lines), in_flight("8007", "ship", T0 + 4 * H, lines, -1)]
    assert resumed.feed(*rest) + resumed.advance(ms(T0 + 9 * H)) == inv.feed(*rest) + inv.advance(ms(T0 + 9 * H))
    assert logic_of(resumed).positions() == logic_of(inv).positions()


# -- order independence -------------------------------------------------------------------------

_SKUS = ("MAT1", "MAT2", "NEW")
_quantity = st.sampled_from([0.1, 0.2, 0.3, 1.0, 2.5, 7.0, 12.0])
_minutes = st.integers(min_value=0, max_value=8 * 60)
_lines = st.lists(
    st.builds(line, st.sampled_from(_SKUS), _quantity, st.sampled_from(["EA", "EA", "CS"])),
    min_size=0,
    max_size=3,
).map(tuple)


@st.composite
def event_sets(draw: st.DrawFn, deliveries: bool = True) -> list[CanonicalEvent]:
    """Distinct events (dedup runs upstream): snapshots, movements, delivery events, retractions."""
    events: list[CanonicalEvent] = []

    def when() -> datetime:
        return T0 + timedelta(minutes=draw(_minutes))

    for index in range(draw(st.integers(0, 3))):
        events.append(snapshot(draw(st.sampled_from(["erp", "wms"])), f"s{index}", when(), *draw(_lines)))
    kinds = [
        (EventType.GOODS_RECEIVED, ERP),
        (EventType.GOODS_RECEIVED, WMS),
        (EventType.INVENTORY_ADJUSTED, ERP),
        (EventType.INVENTORY_ADJUSTED, WMS),
        (EventType.SHIPMENT_DISPATCHED, WMS),
    ]
    for index in range(draw(st.integers(0, 6))):
        event_type, kind = draw(st.sampled_from(kinds))
        events.append(event(event_type, kind, f"m{index}", when(), draw(_lines)))
    options = [
        (EventType.ORDER_RELEASED, ERP),
        (EventType.GOODS_ISSUE_POSTED, ERP),
        (EventType.SHIPMENT_DISPATCHED, WMS),
    ]
    for index in range(draw(st.integers(0, 3)) if deliveries else 0):
        delivery = f"D{draw(st.integers(0, 2))}"
        for event_type, kind in draw(st.lists(st.sampled_from(options), min_size=1, max_size=3)):
            lines = draw(_lines) if event_type is not EventType.GOODS_ISSUE_POSTED or draw(st.booleans()) else ()
            events.append(event(event_type, kind, f"d{index}-{len(events)}", when(), lines, delivery_id=delivery))
    wms_events = [e for e in events if e.source_kind is WMS]
    if wms_events:
        for target in draw(st.lists(st.sampled_from(wms_events), max_size=2, unique_by=lambda e: e.event_id)):
            events.append(retraction(target, when()))
    return events


LATENESS_MS = 5 * 60_000


def run_stages(arrivals: Sequence[CanonicalEvent], lateness_ms: int | None) -> tuple[Any, ...]:
    """dedup's routing -> lifecycle -> inventory, one bucket each, as the flow wires them. Dedup
    promises W = newest received - `lateness_ms` after each event (None: only at the end). The
    final positions and the last row of each entity, checking on the way that a row's version
    never goes back and that one version of an entity is never emitted with two contents."""
    lifecycle = Bucket(["dedup/0"], LifecycleLogic())
    inventory_logic = InventoryLogic(MASTER)
    inventory = Bucket(["dedup/0", "lifecycle/0"], inventory_logic)
    outputs: list[Any] = []
    newest = -(2**62)

    def step(routed: list[Any], promise: int | None, done: bool) -> None:
        from_lifecycle: list[Any] = []
        lifecycle.receive("dedup/0", promise, done, [(k, i) for s, _, k, i in routed if s == LIFECYCLE], from_lifecycle)
        lifecycle.settle(from_lifecycle)
        goods = [(k, i) for s, _, k, i in (o for o in from_lifecycle if isinstance(o, tuple)) if s == INVENTORY]
        inventory.receive("dedup/0", promise, done, [(k, i) for s, _, k, i in routed if s == INVENTORY], outputs)
        inventory.receive("lifecycle/0", lifecycle.watermark, lifecycle.done, goods, outputs)
        inventory.settle(outputs)

    for item in arrivals:
        newest = max(newest, ms(item.received_at))
        routed: list[Any] = []
        route_event(item, ms(item.received_at), 7 * 86_400_000, routed)
        step(routed, None if lateness_ms is None else newest - lateness_ms, False)
    step([], newest, True)
    assert inventory.done
    last: dict[tuple[str, ...], Any] = {}
    versions: dict[tuple[Any, ...], Any] = {}
    for row in outputs:
        if isinstance(row, InventoryPosition | InventoryDelta):
            entity: tuple[str, ...] = (type(row).__name__, row.site, row.sku, row.uom)
        elif isinstance(row, Alert):
            entity = ("alert", row.alert_id)
        else:
            continue
        previous = last.get(entity)
        if isinstance(row, InventoryPosition):  # once per batch: the same version may come again
            assert previous is None or previous.version <= row.version
            assert versions.setdefault((*entity, row.version), row) == row
        else:  # per change
            assert previous is None or previous.version < row.version, (previous, row)
        last[entity] = row
    return inventory_logic.positions(), last


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_final_positions_rows_and_alerts_do_not_depend_on_arrival_order(data: st.DataObject) -> None:
    events = data.draw(event_sets())
    if not events:
        return
    ordered = sorted(events, key=key_of)
    reference = run_stages(ordered, LATENESS_MS)
    shuffled = data.draw(st.permutations(events))
    assert run_stages(shuffled, None) == reference
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    jitter = {e.event_id: rng.randint(0, LATENESS_MS // 1000) for e in events}
    jittered = sorted(events, key=lambda e: e.received_at + timedelta(seconds=jitter[e.event_id]))
    assert run_stages(jittered, LATENESS_MS) == reference
    positions, last = reference
    # the last row written per position is the final one, version included
    assert sorted((r for r in last.values() if isinstance(r, InventoryPosition)), key=lambda r: (r.sku, r.uom)) == [
        p for p in positions if p.version > 0
    ]


@settings(max_examples=150, deadline=None)
@given(data=st.data(), lateness_ms=st.sampled_from([0, LATENESS_MS]))
def test_rows_stay_consistent_even_with_inputs_beyond_the_lateness(data: st.DataObject, lateness_ms: int) -> None:
    """Any arrival order, W right behind the newest arrival: many inputs are late. Versions still
    never go back, no (entity, version) has two contents, and the stages end done (run_stages)."""
    events = data.draw(event_sets())
    positions, last = run_stages(data.draw(st.permutations(events)), lateness_ms)
    assert [p for p in positions if p.version] == sorted(
        (r for r in last.values() if isinstance(r, InventoryPosition)), key=lambda r: (r.site, r.sku, r.uom)
    )


def quantities(rows: list[InventoryPosition]) -> dict[tuple[str, str], tuple[float, ...]]:
    """The quantities of every position that has any (a position may exist with all zeros)."""
    found: dict[tuple[str, str], tuple[float, ...]] = {}
    for row in rows:
        values = (row.erp_qty, row.wms_qty, row.in_flight_qty, row.unexplained_delta)
        if any(values):
            found[(row.sku, row.uom)] = values
    return found


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_final_quantities_are_a_function_of_the_event_set_in_any_application_order(data: st.DataObject) -> None:
    """Snapshots, movements and retractions applied in any order, every one late (at once),
    end with the same quantities: the ledger's folds do not depend on the order of their terms."""
    events = data.draw(event_sets(deliveries=False))
    shuffled = data.draw(st.permutations(events))

    def final(order: Sequence[CanonicalEvent]) -> dict[tuple[str, str], tuple[float, ...]]:
        inv = ledger()
        inv.advance(ms(T0 + DAY))  # W past every event: each is applied as it comes
        for item in order:
            inv.feed(item)
        return quantities(logic_of(inv).positions())

    assert final(shuffled) == final(sorted(events, key=key_of))


def test_the_exact_total_is_the_correctly_rounded_sum_in_any_order_and_after_take_backs() -> None:
    """A position's total is kept exactly (constant cost per movement, however many it holds):
    the same float whatever the order of the movements, and taking one back leaves the total of
    the others, not an accumulated rounding error."""
    quantities = [0.1, 0.2, -0.3, 1e-9, 12.5, 3.0000001, -7.25, 0.7, 1e9, -1e9]
    expected = math.fsum(quantities)
    for seed in range(20):
        order = list(enumerate(quantities))
        random.Random(seed).shuffle(order)
        side = SideLedger()
        for index, quantity in order:
            side.put(f"m{index}", index, quantity)
        assert math.fsum(side.total) == expected
        side.put("m0", 0, 0.4)  # a replaced movement: the old quantity leaves the total
        assert math.fsum(side.total) == math.fsum([0.4, *quantities[1:]])
        for index, _ in order:
            assert side.take_back(f"m{index}")
        assert math.fsum(side.total) == 0.0 and not side.take_back("m1")

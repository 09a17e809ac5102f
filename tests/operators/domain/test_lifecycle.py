"""DeliveryLifecycle: status, latency facts, SLA alerts, retention, and order-independence."""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.domain.alerts import HANDOFF_LATE, HANDOFF_MISSING, Alert, alert_id
from operators.domain.delivery_status import (
    CANCELLED,
    DELIVERED,
    DELIVERY_FAILED,
    DISPATCHED,
    IN_TRANSIT,
    OUT_FOR_DELIVERY,
    RETURNED,
    UNKNOWN,
    DeliveryStatus,
)
from operators.domain.handoffs import DEFAULT_HANDOFFS, SyncLatency
from operators.domain.lifecycle import DeliveryLifecycle, LifecycleOutput, LifecycleState
from operators.model import CanonicalEvent, EventType, Milestone, with_changes
from tests.operators.eventkit import at, carrier, erp, released, wms

E, M = EventType, Milestone
RELEASE_TO_WMS_ID = alert_id(HANDOFF_MISSING, "D1", "release_to_wms")


def rows(outputs: Iterable[LifecycleOutput], kind: type) -> list:
    return [row for row in outputs if isinstance(row, kind)]


def only(outputs: Iterable[LifecycleOutput], kind: type) -> object:
    found = rows(outputs, kind)
    assert len(found) == 1, found
    return found[0]


def fact_of(outputs: Iterable[LifecycleOutput], handoff: str) -> SyncLatency:
    found = [row for row in rows(outputs, SyncLatency) if row.handoff == handoff]
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------------------------
# Status and milestone times
# --------------------------------------------------------------------------------------------


def test_happy_path_status_times_and_latency() -> None:
    lc = DeliveryLifecycle()
    out = lc.on_event(released(occurred=at(0), received=at(1), order_id="SO1", site="1710"))
    status = only(out, DeliveryStatus)
    assert (status.status, status.order_id, status.site, status.version) == ("RELEASED", "SO1", "1710", 1)
    fact = fact_of(out, "release_to_wms")
    assert fact.from_at == at(0) and fact.to_at is None and fact.latency_ms is None and fact.version == 1

    out = lc.on_event(wms(E.PICK_CONFIRMED, "pick", occurred=at(20), recorded=at(30), received=at(31), order_id="PO9"))
    status = only(out, DeliveryStatus)
    assert status.status == "PICKING" and status.first_wms_at == at(20)
    assert status.order_id == "SO1"  # the ERP's order id wins over the WMS's PO
    fact = fact_of(out, "release_to_wms")
    assert (fact.to_event_id, fact.to_at, fact.latency_ms) == ("pick", at(30), 30 * 60_000)
    assert not fact.breached and not fact.clock_skew and fact.version == 2

    lc.on_event(wms(E.SHIPMENT_DISPATCHED, "disp", occurred=at(60), recorded=at(61)))
    lc.on_event(erp(E.GOODS_ISSUE_POSTED, "gi", occurred=at(62), recorded=at(70)))
    lc.on_event(carrier(M.IN_TRANSIT, "it", occurred=at(100)))
    out = lc.on_event(carrier(M.DELIVERED, "dl", occurred=at(300)))
    out += lc.on_event(erp(E.INVOICE_POSTED, "inv", occurred=at(400), recorded=at(401)))
    status = rows(out, DeliveryStatus)[-1]
    assert status.status == DELIVERED
    assert (status.dispatched_at, status.gi_posted_at, status.picked_up_at) == (at(60), at(62), at(100))
    assert (status.delivered_at, status.invoiced_at, status.version) == (at(300), at(400), 7)
    assert fact_of(out, "ship_to_invoice").latency_ms == (401 - 62) * 60_000
    # everything answered in time: no alert. The dispatch was a second, later to-event of
    # release_to_wms: it changed nothing visible, so its version is flushed now.
    flushed = lc.advance(at(2000))
    assert flushed == [replace(fact_of(flushed, "release_to_wms"), version=3)]
    assert flushed[0].to_event_id == "pick" and lc.advance(at(2001)) == []
    assert lc.open_alert_count() == 0


def test_picked_up_prefers_picked_up_over_first_in_transit() -> None:
    lc = DeliveryLifecycle()
    out = lc.on_event(carrier(M.IN_TRANSIT, "it", occurred=at(10)))
    assert only(out, DeliveryStatus).picked_up_at == at(10)
    out = lc.on_event(carrier(M.PICKED_UP, "pu", occurred=at(20)))
    assert only(out, DeliveryStatus).picked_up_at == at(20)


def test_out_of_order_arrival_keeps_terminal_status_and_flags_sequence() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(carrier(M.DELIVERED, "dl", occurred=at(300), received=at(301)))
    out = lc.on_event(wms(E.SHIPMENT_DISPATCHED, "disp", occurred=at(60), received=at(400)))
    status = only(out, DeliveryStatus)
    assert status.status == DELIVERED  # an event that occurred earlier never overwrites a terminal status
    assert status.dispatched_at == at(60)  # ... but it is kept
    assert status.out_of_sequence


def test_events_received_in_occurrence_order_are_not_out_of_sequence() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(wms(E.SHIPMENT_DISPATCHED, "disp", occurred=at(60)))
    out = lc.on_event(carrier(M.DELIVERED, "dl", occurred=at(300)))
    assert not only(out, DeliveryStatus).out_of_sequence


def test_later_terminal_replaces_terminal_and_failures_keep_their_rank() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(carrier(M.OUT_FOR_DELIVERY, "ofd1", occurred=at(10)))
    assert only(lc.on_event(carrier(M.DELIVERY_FAILED, "fail", occurred=at(20))), DeliveryStatus).status == (
        DELIVERY_FAILED
    )
    # back at the depot (lower rank): the furthest milestone stays the failed attempt
    assert not rows(lc.on_event(carrier(M.ARRIVED, "depot", occurred=at(30))), DeliveryStatus)
    assert lc.advance(at(31))[0].status == DELIVERY_FAILED  # version-only change, flushed at advance
    out = lc.on_event(carrier(M.OUT_FOR_DELIVERY, "ofd2", occurred=at(40)))
    assert only(out, DeliveryStatus).status == OUT_FOR_DELIVERY
    assert only(lc.on_event(carrier(M.DELIVERED, "dl", occurred=at(50))), DeliveryStatus).status == DELIVERED
    assert not rows(lc.on_event(carrier(M.EXCEPTION, "exc", occurred=at(60))), DeliveryStatus)  # after terminal
    out = lc.on_event(carrier(M.RETURNED, "ret", occurred=at(90)))
    status = only(out, DeliveryStatus)
    assert status.status == RETURNED and status.delivered_at == at(50)


def test_cancellation_is_terminal_and_non_progress_events_leave_status_unknown() -> None:
    lc = DeliveryLifecycle()
    assert only(lc.on_event(erp(E.INVOICE_POSTED, "inv", occurred=at(0))), DeliveryStatus).status == UNKNOWN
    lc.on_event(released(occurred=at(1)))
    assert only(lc.on_event(carrier(M.CANCELLED, "ca", occurred=at(5))), DeliveryStatus).status == CANCELLED
    status = only(lc.on_event(wms(E.PICK_CONFIRMED, "pick", occurred=at(9))), DeliveryStatus)
    assert status.status == CANCELLED and status.first_wms_at == at(9)  # kept, but not a status any more


def test_goods_issue_counts_as_dispatched() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(released(occurred=at(0)))
    assert only(lc.on_event(erp(E.GOODS_ISSUE_POSTED, "gi", occurred=at(5))), DeliveryStatus).status == DISPATCHED


def test_duplicates_and_events_without_delivery_yield_nothing() -> None:
    lc = DeliveryLifecycle()
    event = released(occurred=at(0))
    assert lc.on_event(event)
    assert lc.on_event(event) == []
    assert lc.on_event(released("other", delivery_id=None)) == []
    assert lc.advance(at(1)) == []
    assert lc.state.deliveries["D1"].row.version == 1  # type: ignore[union-attr]


def test_version_only_change_is_flushed_at_the_next_advance() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(carrier(M.IN_TRANSIT, "it", occurred=at(10)))
    assert lc.on_event(carrier(M.ETA, "eta", occurred=at(11))) == []  # nothing visible changed
    flushed = lc.advance(at(12))
    assert flushed == [replace(flushed[0], version=2)] and flushed[0].status == IN_TRANSIT
    assert lc.advance(at(13)) == []


# --------------------------------------------------------------------------------------------
# Latency facts and SLA alerts
# --------------------------------------------------------------------------------------------


def test_missing_alert_opens_exactly_when_w_crosses_the_deadline_then_resolves_late() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(released(occurred=at(0), received=at(1), site="1710"))
    deadline = at(120)
    assert lc.advance(deadline - timedelta(milliseconds=1)) == []
    alert = only(lc.advance(deadline), Alert)
    assert (alert.alert_id, alert.rule, alert.handoff, alert.state) == (
        RELEASE_TO_WMS_ID,
        HANDOFF_MISSING,
        "release_to_wms",
        "open",
    )
    assert (alert.opened_at, alert.due_at, alert.resolved_at, alert.version) == (deadline, deadline, None, 1)
    assert (alert.entity, alert.delivery_id, alert.site, alert.severity) == ("D1", "D1", "1710", "critical")
    assert lc.open_alert_count() == 1
    assert lc.advance(at(150)) == []  # opened once

    out = lc.on_event(wms(E.PACK_CONFIRMED, "pack", occurred=at(170), recorded=at(180), received=at(182)))
    resolved = only(out, Alert)
    assert (resolved.alert_id, resolved.state, resolved.version) == (RELEASE_TO_WMS_ID, "resolved", 2)
    assert resolved.resolved_at == at(180) and resolved.opened_at == deadline
    details = json.loads(resolved.details)
    assert details["summary"].startswith("arrived late, latency 3h00m") and details["breached"] is True
    fact = fact_of(out, "release_to_wms")
    assert fact.breached and fact.latency_ms == 180 * 60_000
    assert lc.open_alert_count() == 0


def test_answer_received_after_deadline_but_before_w_gives_the_same_final_alert() -> None:
    events = [
        released(occurred=at(0), received=at(1)),
        wms(E.PICK_CONFIRMED, "pick", occurred=at(125), recorded=at(126), received=at(127)),
    ]
    early = DeliveryLifecycle()  # the answer arrives while W is still before the deadline
    out = early.on_event(events[0]) + early.on_event(events[1])
    assert not rows(out, Alert)
    direct = only(early.advance(at(128)), Alert)
    assert (direct.state, direct.version, direct.resolved_at) == ("resolved", 2, at(126))

    late = DeliveryLifecycle()  # W passes the deadline first
    late.on_event(events[0])
    assert only(late.advance(at(120)), Alert).state == "open"
    assert only(late.on_event(events[1]), Alert) == direct


def test_answer_received_before_deadline_opens_nothing() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(released(occurred=at(0)))
    lc.on_event(wms(E.PICK_CONFIRMED, "pick", occurred=at(100), recorded=at(119), received=at(119)))
    assert not rows(lc.advance(at(500)), Alert)


def test_missing_alert_resolved_in_time_but_received_late_is_clamped_to_the_deadline() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(released(occurred=at(0)))
    lc.advance(at(120))
    alert = only(lc.on_event(wms(E.PICK_CONFIRMED, "pick", occurred=at(50), recorded=at(60), received=at(200))), Alert)
    assert alert.state == "resolved" and alert.resolved_at == at(120)  # never before it opened
    assert "within sla" in json.loads(alert.details)["summary"]


def test_from_event_arriving_after_its_deadline_opens_the_alert_at_once() -> None:
    lc = DeliveryLifecycle()
    lc.advance(at(500))
    out = lc.on_event(released(occurred=at(0), received=at(501)))
    alert = only(out, Alert)
    assert alert.state == "open" and alert.opened_at == at(120)


def test_late_from_event_moving_the_deadline_earlier_reissues_the_alert() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(released("rel-b", occurred=at(60)))
    assert only(lc.advance(at(180)), Alert).opened_at == at(180)
    out = lc.on_event(released("rel-a", occurred=at(0), received=at(181)))
    alert = only(out, Alert)
    assert (alert.opened_at, alert.due_at, alert.version, alert.state) == (at(120), at(120), 2, "open")
    assert fact_of(out, "release_to_wms").from_event_id == "rel-a"


def test_clock_skew_gives_negative_latency_flagged_and_not_breached() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(wms(E.SHIPMENT_DISPATCHED, "disp", occurred=at(30)))
    out = lc.on_event(erp(E.GOODS_ISSUE_POSTED, "gi", occurred=at(10), recorded=at(20)))
    fact = fact_of(out, "ship_to_erp")
    assert fact.latency_ms == -10 * 60_000 and fact.clock_skew and not fact.breached


def test_recorded_at_missing_falls_back_to_received_at() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(wms(E.SHIPMENT_DISPATCHED, "disp", occurred=at(0)))
    gi = with_changes(erp(E.GOODS_ISSUE_POSTED, "gi", occurred=at(1), received=at(9)), recorded_at=None)
    assert fact_of(lc.on_event(gi), "ship_to_erp").to_at == at(9)


def test_handoff_late_when_answer_received_in_time_but_stamped_after_deadline() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(wms(E.SHIPMENT_DISPATCHED, "disp", occurred=at(0)))
    # the ERP's clock is an hour ahead: recorded after the deadline, received before it
    lc.on_event(erp(E.GOODS_ISSUE_POSTED, "gi", occurred=at(5), recorded=at(65), received=at(6)))
    alert = only(lc.advance(at(15)), Alert)
    assert (alert.rule, alert.state, alert.severity) == (HANDOFF_LATE, "resolved", "warning")
    assert (alert.opened_at, alert.resolved_at, alert.version) == (at(15), at(65), 2)
    assert alert.alert_id == alert_id(HANDOFF_LATE, "D1", "ship_to_erp")
    assert lc.open_alert_count() == 0


def test_alert_that_stops_applying_gets_a_final_withdrawn_version() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(wms(E.SHIPMENT_DISPATCHED, "disp-945", occurred=at(60)))
    lc.on_event(erp(E.GOODS_ISSUE_POSTED, "gi", occurred=at(65), recorded=at(80), received=at(70)))
    late = only(lc.advance(at(75)), Alert)
    assert late.rule == HANDOFF_LATE
    # an EPCIS dispatch of the same delivery, stamped an hour earlier: the deadline moves to 00:15,
    # the GI was received after that, so the handoff was missing instead of late
    out = lc.on_event(wms(E.SHIPMENT_DISPATCHED, "disp-epcis", occurred=at(0), received=at(76)))
    by_rule = {alert.rule: alert for alert in rows(out, Alert)}
    assert by_rule[HANDOFF_MISSING].state == "resolved" and by_rule[HANDOFF_MISSING].opened_at == at(15)
    withdrawn = by_rule[HANDOFF_LATE]
    assert (withdrawn.alert_id, withdrawn.state, withdrawn.version) == (late.alert_id, "resolved", 3)
    assert json.loads(withdrawn.details)["withdrawn"] is True
    assert lc.advance(at(100)) == [] and lc.open_alert_count() == 0


def test_dispatch_to_pickup_uses_carrier_pickup_or_in_transit_only() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(wms(E.SHIPMENT_DISPATCHED, "disp", occurred=at(0)))
    out = lc.on_event(carrier(M.ETA, "eta", occurred=at(10)))
    assert not [row for row in rows(out, SyncLatency) if row.handoff == "dispatch_to_pickup"]
    out = lc.on_event(carrier(M.IN_TRANSIT, "it", occurred=at(30), recorded=at(90)))
    assert fact_of(out, "dispatch_to_pickup").to_at == at(30)  # carrier occurred_at


# --------------------------------------------------------------------------------------------
# Retention and snapshots
# --------------------------------------------------------------------------------------------


def test_terminal_delivery_is_discarded_retention_after_its_last_event() -> None:
    lc = DeliveryLifecycle(retention=timedelta(days=30))
    lc.on_event(carrier(M.PICKED_UP, "pu", occurred=at(0)))
    lc.on_event(carrier(M.DELIVERED, "dl", occurred=at(10), received=at(11)))
    lc.advance(at(11, days=30) - timedelta(milliseconds=1))
    assert lc.delivery_count() == 1
    lc.advance(at(11, days=30))
    assert lc.delivery_count() == 0
    assert len(lc.state.expiries) == 1  # the stale 90-day entry of the delivery: skipped when reached
    lc.advance(at(0, days=91))
    assert not lc.state.expiries


def test_open_delivery_is_discarded_after_ninety_idle_days_and_its_alerts_uncounted() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(released(occurred=at(0), received=at(1)))
    lc.advance(at(121))
    assert lc.open_alert_count() == 1
    lc.advance(at(1, days=30))
    assert lc.delivery_count() == 1  # not terminal: the 30-day retention does not apply
    lc.advance(at(1, days=90) - timedelta(milliseconds=1))
    assert lc.delivery_count() == 1
    lc.advance(at(1, days=90))
    assert lc.delivery_count() == 0 and lc.open_alert_count() == 0


def test_new_events_postpone_the_discard() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(carrier(M.DELIVERED, "dl", occurred=at(0)))
    lc.on_event(erp(E.INVOICE_POSTED, "inv", occurred=at(0, days=20), recorded=at(0, days=20)))
    lc.advance(at(0, days=31))
    assert lc.delivery_count() == 1
    lc.advance(at(0, days=50))
    assert lc.delivery_count() == 0


def test_deadline_and_dirty_entries_are_discarded_when_w_passes() -> None:
    lc = DeliveryLifecycle()
    lc.on_event(released(occurred=at(0)))
    lc.on_event(carrier(M.ETA, "eta", occurred=at(1)))
    assert lc.state.deadlines and lc.state.dirty
    lc.advance(at(120))
    assert not lc.state.deadlines and not lc.state.dirty


def test_resuming_from_a_snapshot_gives_the_same_outputs() -> None:
    first = [released(occurred=at(0)), wms(E.SHIPMENT_DISPATCHED, "disp", occurred=at(30))]
    rest = [erp(E.GOODS_ISSUE_POSTED, "gi", occurred=at(31), recorded=at(80)), carrier(M.DELIVERED, "dl")]
    straight = DeliveryLifecycle()
    for event in first:
        straight.on_event(event)
    snapshot = straight.snapshot()
    expected = [row for event in rest for row in straight.on_event(event)] + straight.advance(at(300))
    assert len(snapshot.deliveries["D1"].event_ids) == 2  # the snapshot did not follow the later events
    assert snapshot.deliveries["D1"].row.status == "DISPATCHED"  # type: ignore[union-attr]
    resumed = DeliveryLifecycle(state=snapshot)
    assert [row for event in rest for row in resumed.on_event(event)] + resumed.advance(at(300)) == expected


# --------------------------------------------------------------------------------------------
# Order independence (hypothesis)
# --------------------------------------------------------------------------------------------

LATENESS = timedelta(minutes=5)
_TEMPLATES: list[tuple[str, EventType, Milestone | None]] = [
    ("erp", E.ORDER_RELEASED, None),
    ("wms", E.PICK_CONFIRMED, None),
    ("wms", E.PACK_CONFIRMED, None),
    ("wms", E.SHIPMENT_DISPATCHED, None),
    ("erp", E.GOODS_ISSUE_POSTED, None),
    ("erp", E.INVOICE_POSTED, None),
    *[("carrier", E.CARRIER_STATUS, m) for m in (M.PICKED_UP, M.IN_TRANSIT, M.OUT_FOR_DELIVERY, M.DELIVERED)],
    *[("carrier", E.CARRIER_STATUS, m) for m in (M.DELIVERY_FAILED, M.EXCEPTION, M.RETURNED, M.ETA)],
]


@st.composite
def event_sets(draw: st.DrawFn, skew: bool) -> list[CanonicalEvent]:
    """Events of up to 3 deliveries; times in minutes. With skew, recorded may precede occurred."""
    specs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["D1", "D2", "D3"]),
                st.integers(0, len(_TEMPLATES) - 1),
                st.integers(0, 600),  # occurred
                st.integers(-120 if skew else 0, 300),  # recorded - occurred
                st.integers(0, 300),  # received - recorded
            ),
            min_size=1,
            max_size=14,
        )
    )
    events = []
    for index, (delivery_id, template, occurred, record_lag, receive_lag) in enumerate(specs):
        kind, event_type, milestone = _TEMPLATES[template]
        builder = {"erp": erp, "wms": wms}.get(kind)
        kw = {
            "occurred": at(occurred),
            "recorded": at(occurred + record_lag),
            "received": at(occurred + record_lag + receive_lag),
            "delivery_id": delivery_id,
            "order_id": f"SO-{delivery_id}" if kind == "erp" else None,
            "site": "1710" if kind != "carrier" else None,
        }
        if builder is not None:
            events.append(builder(event_type, f"e{index}", **kw))
        else:
            events.append(carrier(milestone, f"e{index}", **kw))  # type: ignore[arg-type]
    duplicates = draw(st.lists(st.sampled_from(events), max_size=3))
    return events + duplicates


def final_rows(outputs: Sequence[LifecycleOutput]) -> dict[tuple[str, ...], LifecycleOutput]:
    """The last version of every entity; also checks that versions never go back."""
    last: dict[tuple[str, ...], LifecycleOutput] = {}
    for row in outputs:
        if isinstance(row, DeliveryStatus):
            key: tuple[str, ...] = ("status", row.delivery_id)
        elif isinstance(row, SyncLatency):
            key = ("fact", row.handoff, row.delivery_id)
        else:
            key = ("alert", row.alert_id)
        previous = last.get(key)
        assert previous is None or previous.version < row.version, (previous, row)
        last[key] = row
    return last


def run(
    events: Sequence[CanonicalEvent], instances: int = 1, watermarks: bool = False
) -> dict[tuple[str, ...], LifecycleOutput]:
    """Feed the events in the given order; with `watermarks`, advance W = max received - lateness."""
    lifecycles = [DeliveryLifecycle(DEFAULT_HANDOFFS, state=LifecycleState()) for _ in range(instances)]
    outputs: list[LifecycleOutput] = []
    newest: datetime | None = None
    for event in events:
        bucket = zlib.crc32((event.delivery_id or "").encode()) % instances
        outputs += lifecycles[bucket].on_event(event)
        newest = event.received_at if newest is None else max(newest, event.received_at)
        if watermarks:
            for lifecycle in lifecycles:
                outputs += lifecycle.advance(newest - LATENESS)
    assert newest is not None
    for lifecycle in lifecycles:
        outputs += lifecycle.advance(newest)  # end of replay: W = max received_at
    return final_rows(outputs)


@settings(max_examples=250, deadline=None)
@given(events=event_sets(skew=True), seed=st.integers(0, 2**32 - 1))
def test_final_rows_identical_for_any_arrival_order_and_split(events: list[CanonicalEvent], seed: int) -> None:
    reference = run(sorted(events, key=lambda e: (e.received_at, e.event_id)))
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    assert run(shuffled) == reference
    assert run(shuffled, instances=2) == reference


@settings(max_examples=250, deadline=None)
@given(events=event_sets(skew=False), seed=st.integers(0, 2**32 - 1))
def test_final_rows_identical_when_shuffled_within_the_allowed_lateness(
    events: list[CanonicalEvent], seed: int
) -> None:
    ordered = sorted(events, key=lambda e: (e.received_at, e.event_id))
    reference = run(ordered, watermarks=True)
    rng = random.Random(seed)
    lateness_s = int(LATENESS.total_seconds())
    jitter = {id(event): rng.randint(0, lateness_s) for event in events}
    shuffled = sorted(events, key=lambda e: e.received_at + timedelta(seconds=jitter[id(e)]))
    assert run(shuffled, watermarks=True) == reference
    assert run(shuffled, instances=2, watermarks=True) == reference
    assert run(ordered) == reference  # deciding everything at the end gives the same rows


def test_permutation_property_covers_alerts() -> None:
    """A fixed case of the properties above that is sure to raise and resolve alerts."""
    events = [
        released(occurred=at(0), received=at(1)),
        wms(E.SHIPMENT_DISPATCHED, "disp", occurred=at(200), received=at(201)),
        erp(E.GOODS_ISSUE_POSTED, "gi", occurred=at(201), recorded=at(260), received=at(261)),
        released("tick", delivery_id="D9", occurred=at(0, days=2)),  # moves W past every D1 deadline
    ]
    reference = run(events, watermarks=True)
    alerts = [row for row in reference.values() if isinstance(row, Alert) and row.delivery_id == "D1"]
    assert {(a.handoff, a.state) for a in alerts} == {
        ("release_to_wms", "resolved"),
        ("ship_to_erp", "resolved"),
        ("dispatch_to_pickup", "open"),
        ("ship_to_invoice", "open"),
    }
    for order in ([2, 1, 0, 3], [1, 2, 3, 0], [3, 0, 2, 1]):
        assert run([events[i] for i in order]) == reference


@pytest.mark.parametrize("instances", [1, 2, 3])
def test_split_by_delivery_gives_the_same_rows(instances: int) -> None:
    events = [released(f"rel-{d}", delivery_id=d, occurred=at(i)) for i, d in enumerate(["A", "B", "C", "D"])]
    assert run(events, instances=instances) == run(events)

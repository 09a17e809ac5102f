"""XrefCorrelator: learning references, enrichment, buffering, orphans, and every discard."""

from __future__ import annotations

import json
import random
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.domain.alerts import ORPHAN_CARRIER_EVENT, Alert, alert_id
from operators.domain.correlation import CorrelationOutput, XrefCorrelator, reference_keys
from operators.model import CanonicalEvent, EventType, Milestone
from tests.operators.eventkit import at, carrier, erp, wms

E, M = EventType, Milestone
MS = timedelta(milliseconds=1)


def ship(
    delivery_id: str = "D1", tracking: str | None = "1Z999", bol: str | None = None, minute: float = 0
) -> CanonicalEvent:
    """A WMS ship confirmation (945) that teaches the references of a delivery."""
    return wms(
        E.SHIPMENT_DISPATCHED,
        f"945-{delivery_id}-{minute}",
        delivery_id=delivery_id,
        order_id=f"SO-{delivery_id}",
        tracking_number=tracking,
        shipment_ref=bol,
        received=at(minute),
    )


def scan(event_id: str, tracking: str | None = "1Z999", bol: str | None = None, minute: float = 0) -> CanonicalEvent:
    """A carrier scan without delivery_id."""
    return carrier(
        M.IN_TRANSIT,
        event_id,
        delivery_id=None,
        tracking_number=tracking,
        shipment_ref=bol,
        carrier="UPS",
        received=at(minute),
    )


def events_of(outputs: list[CorrelationOutput]) -> list[CanonicalEvent]:
    return [row for row in outputs if isinstance(row, CanonicalEvent)]


def alerts_of(outputs: list[CorrelationOutput]) -> list[Alert]:
    return [row for row in outputs if isinstance(row, Alert)]


def test_reference_keys_are_normalized_and_most_specific_first() -> None:
    assert reference_keys(scan("s", tracking=" 1z999 ", bol="bol7")) == ("ref:1Z999", "ref:BOL7")
    assert reference_keys(scan("s", tracking=None, bol=None)) == ()


def test_known_reference_enriches_at_once() -> None:
    corr = XrefCorrelator()
    teacher = ship()
    assert corr.on_event(teacher) == [teacher]  # passes through unchanged
    [enriched] = corr.on_event(scan("s1", tracking="1z999", minute=5))
    assert enriched.delivery_id == "D1" and enriched.order_id == "SO-D1"
    assert enriched.attributes["correlated_by"] == "ref:1Z999"
    assert enriched.event_id == "s1" and enriched.received_at == at(5)
    assert corr.state.xrefs["ref:1Z999"].touched_at == at(5)


def test_events_that_need_no_correlation_pass_through() -> None:
    corr = XrefCorrelator()
    adjustment = erp(E.INVENTORY_ADJUSTED, "adj", delivery_id=None)
    assert corr.on_event(adjustment) == [adjustment]
    with_do = carrier(M.PICKED_UP, "c-do", delivery_id="D7", tracking_number="PRO1")
    assert corr.on_event(with_do) == [with_do]  # a 214 with an L11 DO ref ...
    [enriched] = corr.on_event(scan("later", tracking="PRO1"))  # ... teaches its PRO
    assert enriched.delivery_id == "D7"


def test_carrier_before_xref_is_buffered_then_released_in_order() -> None:
    corr = XrefCorrelator()
    assert corr.on_event(scan("s2", minute=3)) == []
    assert corr.on_event(scan("s1", minute=1)) == []
    assert corr.on_event(scan("s1", minute=1)) == []  # a duplicate is buffered once
    assert corr.pending_count() == 2
    teacher = ship(minute=10)
    outputs = corr.on_event(teacher)
    assert outputs[0] == teacher
    released = outputs[1:]
    assert [e.event_id for e in released] == ["s1", "s2"]  # by received_at, then event_id
    assert {e.delivery_id for e in released} == {"D1"}
    assert corr.pending_count() == 0 and not corr.state.waiting
    assert corr.advance(at(0, days=8)) == []  # their expiry entries are stale now: nothing orphaned
    assert not corr.state.pending_expiry


def test_event_with_two_references_is_released_once_by_either() -> None:
    corr = XrefCorrelator()
    corr.on_event(scan("s", tracking="1Z1", bol="BOL1"))
    assert set(corr.state.waiting) == {"ref:1Z1", "ref:BOL1"}
    outputs = corr.on_event(ship(tracking=None, bol="BOL1", minute=1))
    [released] = events_of(outputs)[1:]
    assert released.attributes["correlated_by"] == "ref:BOL1"
    assert not corr.state.waiting  # its entry under the tracking number went too
    assert corr.on_event(ship("D2", tracking="1Z1", minute=2))[1:] == []


def test_tracking_number_wins_over_bol() -> None:
    corr = XrefCorrelator()
    corr.on_event(ship("D1", tracking="1Z1", bol=None))
    corr.on_event(ship("D2", tracking=None, bol="BOL1"))
    [enriched] = corr.on_event(scan("s", tracking="1Z1", bol="BOL1", minute=1))
    assert enriched.delivery_id == "D1"


def test_latest_learned_mapping_wins() -> None:
    corr = XrefCorrelator()
    corr.on_event(ship("D2", minute=10))
    corr.on_event(ship("D1", minute=5))  # learned from an older message: does not override
    assert corr.on_event(scan("s", minute=11))[0].delivery_id == "D2"
    corr.on_event(ship("D3", minute=20))  # a recycled tracking number
    assert corr.on_event(scan("t", minute=21))[0].delivery_id == "D3"


def test_xref_ttl_expiry_emits_the_orphan_and_an_alert() -> None:
    corr = XrefCorrelator(xref_ttl=timedelta(days=7))
    corr.on_event(scan("s1", minute=0))
    due = at(0, days=7)
    assert corr.advance(due - MS) == []
    outputs = corr.advance(due)
    [orphan] = events_of(outputs)
    [alert] = alerts_of(outputs)
    assert orphan.delivery_id is None and orphan.attributes["orphan"] == "true"
    assert (alert.rule, alert.state, alert.version, alert.severity) == (ORPHAN_CARRIER_EVENT, "open", 1, "warning")
    assert alert.alert_id == alert_id(ORPHAN_CARRIER_EVENT, "ref:1Z999")
    assert (alert.opened_at, alert.due_at, alert.handoff, alert.delivery_id) == (due, due, "", "")
    assert json.loads(alert.details)["events"] == 1
    assert corr.open_alert_count() == 1
    assert corr.pending_count() == 0 and not corr.state.waiting and not corr.state.pending_expiry

    corr.on_event(scan("s2", minute=60))
    [second] = alerts_of(corr.advance(at(60, days=7)))
    assert (second.alert_id, second.version, json.loads(second.details)["events"]) == (alert.alert_id, 2, 2)
    assert corr.open_alert_count() == 1


def test_xref_learned_after_the_orphan_resolves_its_alert() -> None:
    corr = XrefCorrelator()
    corr.on_event(scan("s1"))
    corr.advance(at(0, days=7))
    outputs = corr.on_event(ship(minute=60 * 24 * 8))
    [resolved] = alerts_of(outputs)
    assert (resolved.state, resolved.version, resolved.resolved_at) == ("resolved", 2, at(0, days=8))
    assert json.loads(resolved.details)["delivery_id"] == "D1"
    assert corr.open_alert_count() == 0


def test_event_without_any_reference_is_an_orphan_at_once() -> None:
    corr = XrefCorrelator()
    outputs = corr.on_event(scan("bare", tracking=None, bol=None, minute=2))
    [orphan] = events_of(outputs)
    [alert] = alerts_of(outputs)
    assert orphan.attributes["orphan"] == "true" and alert.entity == "event:bare" and alert.opened_at == at(2)
    assert corr.pending_count() == 0


def test_xref_is_discarded_retention_after_its_last_use() -> None:
    corr = XrefCorrelator(retention=timedelta(days=30))
    corr.on_event(ship(minute=0))
    corr.on_event(scan("s", minute=60 * 24 * 10))  # used on day 10
    corr.advance(at(0, days=30))
    assert "ref:1Z999" in corr.state.xrefs  # learned 30 days ago but used since
    corr.advance(at(0, days=40) - MS)
    assert "ref:1Z999" in corr.state.xrefs
    corr.advance(at(0, days=40))
    assert not corr.state.xrefs and not corr.state.xref_expiry
    assert corr.on_event(scan("late", minute=60 * 24 * 41)) == []  # buffered again


def test_orphan_record_is_discarded_after_retention_and_its_open_alert_resolved() -> None:
    corr = XrefCorrelator(xref_ttl=timedelta(days=7), retention=timedelta(days=30))
    corr.on_event(scan("s1"))
    corr.advance(at(0, days=7))
    assert corr.advance(at(0, days=37) - MS) == []
    [expired] = corr.advance(at(0, days=37))
    assert (expired.state, expired.version, expired.resolved_at) == ("resolved", 2, at(0, days=37))
    assert "no cross-reference" in json.loads(expired.details)["summary"]
    assert not corr.state.orphans and not corr.state.orphan_expiry and corr.open_alert_count() == 0


def test_snapshot_is_independent_of_later_calls() -> None:
    corr = XrefCorrelator()
    corr.on_event(scan("s1"))
    snapshot = corr.snapshot()
    corr.on_event(ship(minute=1))
    assert "s1" in snapshot.pending and not snapshot.xrefs
    resumed = XrefCorrelator(state=snapshot)
    assert [e.event_id for e in events_of(resumed.on_event(ship(minute=1)))] == ["945-D1-1", "s1"]


@settings(max_examples=200, deadline=None)
@given(
    specs=st.lists(
        st.tuples(st.booleans(), st.sampled_from(["A", "B", "C"]), st.integers(0, 60 * 24 * 10)),
        min_size=1,
        max_size=12,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_nothing_is_dropped_and_late_xrefs_do_not_change_the_outcome(
    specs: list[tuple[bool, str, int]], seed: int
) -> None:
    """Every carrier event comes out exactly once, enriched or flagged; within the lateness the
    outcome per event does not depend on the arrival order."""
    events = [
        ship(f"D{ref}", tracking=ref, minute=minute) if teaches else scan(f"s{i}", tracking=ref, minute=minute)
        for i, (teaches, ref, minute) in enumerate(specs)
    ]
    lateness = timedelta(minutes=5)

    def outcome(order: list[CanonicalEvent]) -> dict[str, tuple[str | None, str | None]]:
        corr, newest, out = XrefCorrelator(xref_ttl=timedelta(minutes=30)), order[0].received_at, []
        for item in order:
            out += corr.on_event(item)
            newest = max(newest, item.received_at)
            out += corr.advance(newest - lateness)
        out += corr.advance(newest + timedelta(hours=1))
        scans = [e for e in events_of(out) if e.event_id.startswith("s")]
        assert sorted(e.event_id for e in scans) == sorted({e.event_id for e in events if e.event_id.startswith("s")})
        return {e.event_id: (e.delivery_id, e.attributes.get("orphan")) for e in scans}

    ordered = sorted(events, key=lambda e: (e.received_at, e.event_id))
    rng = random.Random(seed)
    jitter = {e.event_id: rng.randint(0, 300) for e in events}
    shuffled = sorted(events, key=lambda e: e.received_at + timedelta(seconds=jitter[e.event_id]))
    assert outcome(shuffled) == outcome(ordered)


def test_xref_received_ttl_after_the_event_orphans_it_even_before_w_gets_there() -> None:
    corr = XrefCorrelator(xref_ttl=timedelta(days=7))
    corr.on_event(scan("s1"))
    teacher = ship(minute=60 * 24 * 7)
    outputs = corr.on_event(teacher)  # W has not reached the expiry: no advance() yet
    assert outputs[0] == teacher
    [orphan] = events_of(outputs)[1:]
    opened, resolved = alerts_of(outputs)
    assert orphan.delivery_id is None and orphan.attributes["orphan"] == "true"
    assert (opened.state, opened.version, resolved.state, resolved.version) == ("open", 1, "resolved", 2)
    assert corr.pending_count() == 0 and corr.open_alert_count() == 0


def test_stale_expiry_entry_does_not_orphan_an_event_buffered_again() -> None:
    corr = XrefCorrelator(xref_ttl=timedelta(days=7), retention=timedelta(days=1))
    corr.on_event(scan("s1", minute=0))
    corr.on_event(ship(minute=1))  # released; its expiry entry (day 7) is stale now
    corr.advance(at(0, days=3))  # the xref is forgotten
    assert corr.on_event(scan("s1", minute=60 * 24 * 3)) == []  # redelivered: buffered again
    assert corr.advance(at(0, days=7)) == []  # the stale day-7 entry pops: s1 stays pending
    assert corr.pending_count() == 1
    assert events_of(corr.advance(at(0, days=10)))[0].attributes["orphan"] == "true"


def test_a_reference_matches_whatever_field_each_partner_files_it_in() -> None:
    # An EPCIS-site parcel: the tracking number arrives as the EPCIS `bol`, EasyPost sends it as
    # the tracking code.
    corr = XrefCorrelator()
    confirmation = ship("D9", tracking=None, bol="1Z777")
    assert corr.on_event(confirmation) == [confirmation]
    (enriched,) = corr.on_event(scan("s1", tracking="1Z777", minute=1))
    assert isinstance(enriched, CanonicalEvent) and enriched.delivery_id == "D9"
    assert enriched.attributes["correlated_by"] == "ref:1Z777"

"""Reference resolution (operators.domain.resolution) and the arbiter (operators.domain.arbiter):
learning references, waiting lookups, exactly-once resolution, orphans, and every discard.

The harness wires one bucket of each stage as the flow does: dedup's routing (route_event) feeds
resolution and the arbiter, resolution's candidates feed the arbiter, and both apply their inputs
in order-key order as W passes them (operators.domain.stage.Bucket)."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.domain.alerts import OPEN, ORPHAN_CARRIER_EVENT, RESOLVED, Alert, alert_id
from operators.domain.arbiter import LIFECYCLE, ArbiterLogic
from operators.domain.items import Candidate, Lookup, Pending, RefLearned, Resolved, Teach
from operators.domain.resolution import (
    ARBITER,
    ResolutionLogic,
    lookups,
    needs_resolution,
    reference_keys,
    teachings,
)
from operators.domain.stage import Bucket
from operators.domain.watermark import OrderKey
from operators.formats.timeparse import to_epoch_ms
from operators.ingest.route import RESOLUTION, route_event
from operators.model import CanonicalEvent, EventType, Milestone
from tests.operators.eventkit import at, carrier, erp, ms, wms

E, M = EventType, Milestone
DAY_MS = 86_400_000
TTL_MS = 7 * DAY_MS
RETENTION_MS = 30 * DAY_MS


def ship(
    delivery_id: str = "D1",
    tracking: str | None = "1Z999",
    bol: str | None = None,
    minute: float = 0,
    event_id: str | None = None,
) -> CanonicalEvent:
    """A WMS ship confirmation (945) that teaches the references of a delivery."""
    return wms(
        E.SHIPMENT_DISPATCHED,
        event_id or f"945-{delivery_id}-{minute}",
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


class Correlation:
    """dedup -> resolution -> arbiter, one bucket each. `send` is one packet per sender."""

    def __init__(self, xref_ttl_ms: int = TTL_MS, retention_ms: int = RETENTION_MS) -> None:
        self.xref_ttl_ms = xref_ttl_ms
        self.resolution = ResolutionLogic(retention_ms)
        self.arbiter = ArbiterLogic(retention_ms)
        self._resolution = Bucket(["dedup/0"], self.resolution)
        self._arbiter = Bucket(["dedup/0", "resolution/0"], self.arbiter)

    def send(self, *events: CanonicalEvent, until: int) -> list[Any]:
        """New events from dedup with its promise `until` (W); the arbiter's outputs."""
        routed: list[Any] = []
        for event in events:
            route_event(event, to_epoch_ms(event.received_at), self.xref_ttl_ms, routed)
        to_resolution = [(key, item) for stage, _, key, item in routed if stage == RESOLUTION]
        to_arbiter = [(key, item) for stage, _, key, item in routed if stage == ARBITER]
        candidates: list[Any] = []
        self._resolution.receive("dedup/0", until, False, to_resolution, candidates)
        self._resolution.settle(candidates)
        assert all(stage == ARBITER for stage, _, _, _ in candidates)
        out: list[Any] = []
        self._arbiter.receive("dedup/0", until, False, to_arbiter, out)
        promise = self._resolution.watermark
        self._arbiter.receive("resolution/0", promise, False, [(key, item) for _, _, key, item in candidates], out)
        self._arbiter.settle(out)
        return out

    def feed(self, *events: CanonicalEvent) -> list[Any]:
        """Events in received order, W up to the newest of them."""
        return self.send(*events, until=max(to_epoch_ms(event.received_at) for event in events))


def resolved(outputs: list[Any]) -> list[tuple[OrderKey, Resolved]]:
    found = []
    for output in outputs:
        if isinstance(output, tuple):
            stage, entity, key, item = output
            assert stage == LIFECYCLE and isinstance(item, Resolved) and entity == item.event.delivery_id
            found.append((key, item))
    return found


def alerts(outputs: list[Any]) -> list[Alert]:
    return [output for output in outputs if isinstance(output, Alert)]


# -- references ---------------------------------------------------------------------------------


def test_reference_keys_are_normalized_most_specific_first_and_each_once() -> None:
    assert reference_keys(scan("s", tracking=" 1z999 ", bol="bol7")) == (
        ("tracking_number", "ref:1Z999"),
        ("shipment_ref", "ref:BOL7"),
    )
    assert reference_keys(scan("s", tracking="PRO1", bol="pro1")) == (("tracking_number", "ref:PRO1"),)
    order_only = erp(E.INVOICE_POSTED, "inv", delivery_id=None, order_id="SO1")
    assert reference_keys(order_only) == (("order_id", "order:SO1"),)
    assert reference_keys(scan("s", tracking="  ", bol=None)) == ()


def test_what_an_event_teaches_and_asks() -> None:
    assert teachings(ship(bol="B1")) == [
        Teach("ref:1Z999", "D1", "SO-D1"),
        Teach("ref:B1", "D1", "SO-D1"),
        Teach("order:SO-D1", "D1", "SO-D1"),
    ]
    assert teachings(scan("s")) == []
    primary, expires, asks = lookups(scan("s", bol="B1"), 1_000, 50)
    assert (primary, expires) == ("ref:1Z999", 1_050)
    assert asks == [
        Lookup("s", "ref:1Z999", "tracking_number", "ref:1Z999", 1_050),
        Lookup("s", "ref:B1", "shipment_ref", "ref:1Z999", 1_050),
    ]
    assert lookups(scan("bare", tracking=None), 1_000, 50) == ("event:bare", 1_000, [])
    assert needs_resolution(scan("s")) and not needs_resolution(ship())
    assert not needs_resolution(erp(E.GOODS_ISSUE_POSTED, "gi", delivery_id=None, order_id="SO1"))


# -- resolution ---------------------------------------------------------------------------------


def test_known_reference_resolves_at_once() -> None:
    corr = Correlation()
    assert corr.feed(ship(minute=0)) == []
    [(key, item)] = resolved(corr.feed(scan("s1", tracking="1z999", minute=5)))
    assert key == (ms(5), "s1", 0)  # at the scan's arrival
    assert (item.via, item.ref) == ("tracking_number", "ref:1Z999")
    assert (item.event.event_id, item.event.delivery_id, item.event.order_id) == ("s1", "D1", "SO-D1")
    assert item.event.received_at == at(5)
    assert corr.resolution.state.xrefs["ref:1Z999"].touched_ms == ms(5)


def test_carrier_event_before_its_reference_waits_then_resolves_at_the_teaching_time() -> None:
    corr = Correlation()
    assert corr.feed(scan("s2", minute=3)) == []
    assert corr.feed(scan("s1", minute=1)) == []  # late for W = 3 min: applied at once, waits too
    assert corr.resolution.waiting_count() == 2
    out = corr.feed(ship(minute=10))
    assert [(key, item.event.event_id, item.event.delivery_id) for key, item in resolved(out)] == [
        ((ms(10), "s1", 0), "s1", "D1"),  # when resolution could know: the teaching's arrival
        ((ms(10), "s2", 0), "s2", "D1"),
    ]
    assert corr.resolution.waiting_count() == 0 and not corr.resolution.state.waiting
    # Their expiry entries are stale now: nothing is orphaned when W passes them.
    assert corr.send(until=ms(0, days=8)) == []
    assert not corr.resolution.state.waiting_expiry and not corr.arbiter.state.expiry


def test_an_event_with_several_references_resolves_exactly_once_through_the_earliest() -> None:
    corr = Correlation()
    corr.feed(scan("s", tracking="1Z1", bol="BOL1", minute=0))
    assert set(corr.resolution.state.waiting) == {"ref:1Z1", "ref:BOL1"}
    [(key, first)] = resolved(corr.feed(ship("D2", tracking=None, bol="BOL1", minute=1)))
    assert (key[0], first.via, first.ref, first.event.delivery_id) == (ms(1), "shipment_ref", "ref:BOL1", "D2")
    # The tracking number resolves later, to another delivery: the arbiter turns it away.
    assert resolved(corr.feed(ship("D1", tracking="1Z1", minute=2))) == []
    assert corr.arbiter.state.waiting["s"].event is None  # a tombstone until its expiry


def test_references_resolving_at_the_same_time_the_most_specific_wins() -> None:
    corr = Correlation()
    corr.feed(ship("D2", tracking=None, bol="BOL1", minute=0), ship("D1", tracking="1Z1", bol=None, minute=0))
    [(_, item)] = resolved(corr.feed(scan("s", tracking="1Z1", bol="BOL1", minute=1)))
    assert (item.event.delivery_id, item.via) == ("D1", "tracking_number")


def test_the_resolved_event_keeps_its_own_order_id() -> None:
    corr = Correlation()
    corr.feed(ship(minute=0))
    event = carrier(M.DELIVERED, "dl", delivery_id=None, tracking_number="1Z999", order_id="PO-7", received=at(1))
    [(_, item)] = resolved(corr.feed(event))
    assert (item.event.delivery_id, item.event.order_id) == ("D1", "PO-7")


def test_the_latest_received_teaching_wins() -> None:
    corr = Correlation()
    corr.feed(ship("D2", minute=10))
    corr.feed(ship("D1", minute=5))  # an older message, applied late: it does not override
    assert corr.resolution.state.xrefs["ref:1Z999"].delivery_id == "D2"
    [(_, item)] = resolved(corr.feed(scan("s", minute=11)))
    assert item.event.delivery_id == "D2"
    corr.feed(ship("D3", minute=20))  # a recycled tracking number
    [(_, item)] = resolved(corr.feed(scan("t", minute=21)))
    assert item.event.delivery_id == "D3" and item.event.order_id == "SO-D3"


def test_a_reference_matches_whatever_field_each_partner_files_it_in() -> None:
    # An EPCIS-site parcel: the tracking number arrives as the EPCIS `bol`; EasyPost sends it as
    # the tracking code.
    corr = Correlation()
    assert corr.feed(ship("D9", tracking=None, bol="1Z777")) == []
    [(_, item)] = resolved(corr.feed(scan("s1", tracking="1z777", minute=1)))
    assert (item.event.delivery_id, item.via, item.ref) == ("D9", "tracking_number", "ref:1Z777")


def test_an_order_level_event_resolves_by_its_order_id_without_an_alert_when_it_cannot() -> None:
    corr = Correlation()
    invoice = erp(E.INVOICE_POSTED, "inv", delivery_id=None, order_id="SO-D1", received=at(0))
    assert corr.feed(invoice) == []
    [(_, item)] = resolved(corr.feed(ship(minute=1)))
    assert (item.event.event_id, item.via, item.ref) == ("inv", "order_id", "order:SO-D1")
    stray = erp(E.INVOICE_POSTED, "inv-2", delivery_id=None, order_id="SO-X", received=at(2))
    corr.feed(stray)
    assert corr.send(until=ms(2, days=8)) == []  # unresolved, but not a carrier event: no alert
    assert "inv-2" not in corr.arbiter.state.waiting


def test_a_late_input_resolves_no_earlier_than_its_event_arrived_or_its_reference_was_learned() -> None:
    """Candidate.effective_ms is max(event received, reference learned), as in key order: a lookup
    or a teaching applied late (below W) must not resolve an event before it arrived, nor before
    its reference existed."""
    late_lookup = ResolutionLogic(RETENTION_MS)
    out: list[Any] = []
    late_lookup.fire_until(ms(100), out)
    late_lookup.apply((ms(100), "t", 1), Teach("ref:A", "D1", ""), out)
    late_lookup.apply((ms(50), "s", 10), Lookup("s", "ref:A", "tracking_number", "ref:A", ms(0, days=7)), out)
    late_teach = ResolutionLogic(RETENTION_MS)
    late_teach.fire_until(ms(100), out)
    late_teach.apply((ms(100), "s", 10), Lookup("s", "ref:A", "tracking_number", "ref:A", ms(0, days=7)), out)
    late_teach.apply((ms(50), "t", 1), Teach("ref:A", "D1", ""), out)
    # In key order both would have resolved at 100 (the teaching, resp. the lookup, came first).
    assert [(key[0], item.effective_ms) for _, _, key, item in out] == [(ms(100), ms(100))] * 2


# -- orphans ------------------------------------------------------------------------------------


def test_expiry_opens_one_orphan_alert_per_primary_reference_counting_its_events() -> None:
    corr = Correlation()
    corr.feed(scan("s1", minute=0), scan("other", tracking="1Z000", minute=0))
    due = ms(0, days=7)
    assert corr.send(until=due - 1) == []
    out = corr.send(until=due)
    assert resolved(out) == []
    by_entity = {alert.entity: alert for alert in alerts(out)}
    assert set(by_entity) == {"ref:1Z999", "ref:1Z000"}
    alert = by_entity["ref:1Z999"]
    assert alert.alert_id == alert_id(ORPHAN_CARRIER_EVENT, "ref:1Z999", f"since:{due}")  # see the discard test
    assert (alert.rule, alert.state, alert.version, alert.severity) == (ORPHAN_CARRIER_EVENT, OPEN, 1, "warning")
    assert (alert.opened_at, alert.due_at, alert.resolved_at, alert.handoff, alert.delivery_id) == (
        due,
        due,
        None,
        "",
        "",
    )
    details = json.loads(alert.details)
    assert (details["events"], details["last_event_id"], details["carrier"]) == (1, "s1", "UPS")
    assert corr.arbiter.open_alert_count() == 2
    assert not corr.arbiter.state.waiting and not corr.resolution.state.waiting

    corr.feed(scan("s2", minute=60))
    [second] = alerts(corr.send(until=ms(60, days=7)))
    assert (second.alert_id, second.version, json.loads(second.details)["events"]) == (alert.alert_id, 2, 2)
    assert second.opened_at == due  # the same alert, updated


def test_a_reference_learned_after_the_ttl_resolves_the_orphan_alert_not_the_event() -> None:
    corr = Correlation()
    corr.feed(scan("s1", minute=0))
    corr.send(until=ms(0, days=7))
    assert corr.resolution.state.expired == {"ref:1Z999": ms(0, days=7)}
    out = corr.feed(ship(minute=60 * 24 * 8))
    assert resolved(out) == []  # the orphaned event stays unattached
    [alert] = alerts(out)
    assert (alert.state, alert.version, alert.resolved_at) == (RESOLVED, 2, ms(0, days=8))
    assert json.loads(alert.details)["delivery_id"] == "D1"
    assert corr.arbiter.open_alert_count() == 0
    assert corr.resolution.state.expired == {}  # Discarded when: learned


def test_a_reference_received_exactly_at_the_expiry_does_not_rescue_the_event() -> None:
    corr = Correlation()
    corr.feed(scan("s1", minute=0))
    out = corr.feed(ship(minute=60 * 24 * 7))  # the expiry fires before the teaching is applied
    assert resolved(out) == []
    assert [(alert.state, alert.version) for alert in alerts(out)] == [(OPEN, 1), (RESOLVED, 2)]


def test_a_carrier_event_without_any_reference_is_an_orphan_at_once() -> None:
    corr = Correlation()
    [alert] = alerts(corr.feed(scan("bare", tracking=None, bol=None, minute=2)))
    assert (alert.entity, alert.state, alert.opened_at) == ("event:bare", OPEN, ms(2))
    assert not corr.arbiter.state.waiting


def test_a_lookup_later_than_its_ttl_is_an_orphan_as_soon_as_it_is_applied() -> None:
    corr = Correlation()
    corr.send(until=ms(0, days=10))
    late = scan("late", minute=0)  # received 10 days before W: far beyond the allowed lateness
    [alert] = alerts(corr.send(late, until=ms(0, days=10)))
    assert (alert.entity, alert.opened_at) == ("ref:1Z999", ms(0, days=7))
    assert corr.resolution.state.expired == {"ref:1Z999": ms(0, days=7)}


# -- discarded when ... -------------------------------------------------------------------------


def test_xref_is_discarded_retention_after_its_last_use() -> None:
    corr = Correlation()
    corr.feed(ship(minute=0))
    corr.feed(scan("s", minute=60 * 24 * 10))  # used on day 10
    corr.send(until=ms(0, days=30))
    assert "ref:1Z999" in corr.resolution.state.xrefs  # learned 30 days ago, but used since
    corr.send(until=ms(0, days=40) - 1)
    assert "ref:1Z999" in corr.resolution.state.xrefs
    corr.send(until=ms(0, days=40))
    assert not corr.resolution.state.xrefs and not corr.resolution.state.xref_expiry
    assert corr.feed(scan("again", minute=60 * 24 * 41)) == []  # waits again
    assert corr.resolution.waiting_count() == 1


def test_an_open_orphan_alert_is_resolved_and_discarded_retention_after_its_last_event() -> None:
    corr = Correlation()
    corr.feed(scan("s1"))
    corr.send(until=ms(0, days=7))
    assert corr.send(until=ms(0, days=37) - 1) == []
    [expired] = alerts(corr.send(until=ms(0, days=37)))
    assert (expired.state, expired.version, expired.resolved_at) == (RESOLVED, 2, ms(0, days=37))
    assert "no delivery learned within the retention" in json.loads(expired.details)["summary"]
    assert not corr.arbiter.state.orphans and not corr.arbiter.state.orphan_expiry
    assert corr.arbiter.open_alert_count() == 0
    # resolution's record of the expired reference goes at the same horizon
    assert not corr.resolution.state.expired and not corr.resolution.state.expired_expiry


def test_a_resolved_orphan_alert_is_discarded_retention_after_its_resolution() -> None:
    corr = Correlation()
    corr.feed(scan("s1"))
    corr.send(until=ms(0, days=7))
    corr.feed(ship(minute=60 * 24 * 8))  # resolves it on day 8
    corr.send(until=ms(0, days=38) - 1)
    assert "ref:1Z999" in corr.arbiter.state.orphans
    assert alerts(corr.send(until=ms(0, days=38))) == []  # resolved already: nothing more to say
    assert not corr.arbiter.state.orphans


def test_a_new_orphan_after_the_discard_is_a_new_alert() -> None:
    """The orphan record of a reference is discarded `retention` after its last event, its open
    alert resolved as v2. A later orphan of the same reference (a recycled tracking number) is a
    new finding: a new alert_id (not a v1 hidden behind the old alert's v2 in
    ReplacingMergeTree(version))."""
    corr = Correlation()
    corr.feed(scan("s1", minute=0))
    first = alerts(corr.send(until=ms(0, days=37)))  # orphaned on day 7, record discarded on day 37
    assert [(a.state, a.version) for a in first] == [(OPEN, 1), (RESOLVED, 2)]
    corr.feed(scan("s2", minute=60 * 24 * 40))
    [alert] = alerts(corr.send(until=ms(0, days=47)))
    assert (alert.state, alert.version, alert.entity) == (OPEN, 1, first[0].entity)
    assert alert.alert_id != first[0].alert_id


def test_an_arbiter_entry_is_a_tombstone_until_its_expiry() -> None:
    """An event with several references stays as a tombstone (the others may still answer); one
    with a single reference is let go as soon as it is resolved: it can have no other answer."""
    corr = Correlation()
    corr.feed(ship(minute=0))
    corr.feed(scan("s1", minute=1, bol="BOL7"), scan("single", minute=1))
    assert corr.arbiter.state.waiting["s1"].event is None
    assert "single" not in corr.arbiter.state.waiting
    corr.send(until=ms(1, days=7) - 1)
    assert "s1" in corr.arbiter.state.waiting
    assert corr.send(until=ms(1, days=7)) == []
    assert not corr.arbiter.state.waiting and not corr.arbiter.state.expiry


def test_a_stale_expiry_entry_does_not_expire_a_lookup_that_waits_again() -> None:
    logic = ResolutionLogic(retention_ms=DAY_MS)
    out: list[Any] = []
    first = Lookup("s1", "ref:A", "tracking_number", "ref:A", ms(0, days=7))
    logic.apply((ms(0), "s1", 10), first, out)
    logic.fire_until(ms(1), out)
    logic.apply((ms(1), "t", 1), Teach("ref:A", "D1", ""), out)  # answers it; its heap entry stays
    assert [type(item).__name__ for _, _, _, item in out] == ["Candidate"]
    logic.fire_until(ms(0, days=3), out)  # the xref is forgotten (retention one day)
    assert not logic.state.xrefs
    again = Lookup("s1", "ref:A", "tracking_number", "ref:A", ms(0, days=10))  # a redelivery
    logic.apply((ms(0, days=3), "s1", 10), again, out)
    logic.fire_until(ms(0, days=7), out)  # the stale day-7 entry pops
    assert logic.waiting_count() == 1 and not logic.state.expired
    logic.fire_until(ms(0, days=10), out)
    assert logic.waiting_count() == 0 and logic.state.expired == {"ref:A": ms(0, days=10)}


def test_the_arbiter_registers_an_event_once() -> None:
    arbiter = ArbiterLogic(RETENTION_MS)
    event = scan("s1")
    pending = Pending(event, "ref:1Z999", 1, ms(0, days=7))
    out: list[Any] = []
    arbiter.apply((ms(0), "s1", 0), pending, out)
    arbiter.apply((ms(0), "s1", 0), pending, out)  # sent again (a replay after a crash)
    candidate = Candidate("s1", "ref:1Z999", "D1", "SO1", "tracking_number", "ref:1Z999", ms(1))
    arbiter.apply((ms(1), "s1", 1), candidate, out)
    arbiter.apply((ms(1), "s1", 1), candidate, out)
    assert len(out) == 1 and len(arbiter.state.expiry) == 1
    arbiter.apply((ms(2), "x", 0), RefLearned("ref:UNKNOWN", "D1"), out)  # no orphan: nothing
    assert len(out) == 1


# -- order independence -------------------------------------------------------------------------

Spec = tuple[bool, str, str | None, str, int]  # (teaches, tracking, bol, delivery, received minute)


def outcome(corr: Correlation, outputs: list[Any]) -> tuple[set[tuple[Any, ...]], dict[str, Alert]]:
    """Resolved (event, delivery, via, time) and the final version of every orphan alert."""
    found = {(item.event.event_id, item.event.delivery_id, item.via, key[0]) for key, item in resolved(outputs)}
    final: dict[str, Alert] = {}
    for alert in alerts(outputs):
        previous = final.get(alert.alert_id)
        assert previous is None or previous.version < alert.version
        final[alert.alert_id] = alert
    return found, final


@settings(max_examples=150, deadline=None)
@given(
    specs=st.lists(
        st.tuples(
            st.booleans(),
            st.sampled_from(["A", "B", "C"]),
            st.sampled_from([None, "B", "C"]),
            st.sampled_from(["1", "2"]),
            st.integers(0, 120),
        ),
        min_size=1,
        max_size=12,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_resolved_set_and_orphan_alerts_do_not_depend_on_arrival_order(specs: list[Spec], seed: int) -> None:
    """Within the allowed lateness, or with everything waiting for the end of input, the same
    events resolve to the same deliveries at the same times, and the same orphan alerts are
    raised; every carrier event is either resolved once or counted in an orphan alert."""
    ttl_ms, lateness_ms = 30 * 60_000, 5 * 60_000
    events = [
        ship(f"D{ref}{delivery}", tracking=ref, bol=bol, minute=minute, event_id=f"t{index}")
        if teaches
        else scan(f"s{index}", tracking=ref, bol=bol, minute=minute)
        for index, (teaches, ref, bol, delivery, minute) in enumerate(specs)
    ]
    end = max(to_epoch_ms(event.received_at) for event in events) + ttl_ms + 1

    def run(order: list[CanonicalEvent], watermarks: bool) -> tuple[set[tuple[Any, ...]], dict[str, Alert]]:
        corr, outputs, newest = Correlation(ttl_ms, RETENTION_MS), [], -(2**62)
        for event in order:
            newest = max(newest, to_epoch_ms(event.received_at))
            outputs += corr.send(event, until=newest - lateness_ms if watermarks else -(2**62))
        outputs += corr.send(until=end)
        return outcome(corr, outputs)

    ordered = sorted(events, key=lambda e: (e.received_at, e.event_id))
    reference = run(ordered, watermarks=True)
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    assert run(shuffled, watermarks=False) == reference
    rng = random.Random(seed)
    jitter = {e.event_id: rng.randint(0, 300) for e in events}  # seconds, within the lateness
    jittered = sorted(events, key=lambda e: e.received_at + timedelta(seconds=jitter[e.event_id]))
    assert run(jittered, watermarks=True) == reference

    found, final = reference
    scans = {e.event_id for e in events if e.event_id.startswith("s")}
    resolved_ids = [event_id for event_id, *_ in found]
    assert len(resolved_ids) == len(set(resolved_ids))  # exactly once
    orphaned = sum(json.loads(alert.details)["events"] for alert in final.values())
    assert len(resolved_ids) + orphaned == len(scans)  # nothing dropped


@settings(max_examples=100, deadline=None)
@given(
    specs=st.lists(
        st.tuples(st.booleans(), st.sampled_from(["A", "B"]), st.sampled_from([None, "B"]), st.integers(0, 600)),
        min_size=1,
        max_size=12,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_even_late_inputs_never_resolve_an_event_before_it_arrived(
    specs: list[tuple[bool, str, str | None, int]], seed: int
) -> None:
    """Any arrival order with W following the newest arrival: inputs beyond the lateness are
    applied late. A resolved event still arrives at its delivery no earlier than it arrived
    itself, and no earlier than a teaching of the reference that resolved it."""
    events = [
        ship(f"D{ref}", tracking=ref, bol=bol, minute=minute, event_id=f"t{index}")
        if teaches
        else scan(f"s{index}", tracking=ref, bol=bol, minute=minute)
        for index, (teaches, ref, bol, minute) in enumerate(specs)
    ]
    random.Random(seed).shuffle(events)
    corr, outputs, newest = Correlation(30 * 60_000, RETENTION_MS), [], -(2**62)
    for event in events:
        newest = max(newest, to_epoch_ms(event.received_at))
        outputs += corr.send(event, until=newest - 5 * 60_000)
    for key, item in resolved(outputs):
        assert key[0] >= to_epoch_ms(item.event.received_at)
        taught = [
            to_epoch_ms(e.received_at)
            for e in events
            if e.event_id.startswith("t") and e.delivery_id == item.event.delivery_id
        ]
        assert key[0] >= min(taught)

"""Handoff configuration (the defaults of design.md 3.3, matching, config parsing) and the
per-(handoff, delivery) track that renders the latency fact and its alerts (handoff_tracks)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from operators.domain.alerts import HANDOFF_LATE, HANDOFF_MISSING, OPEN, RESOLVED, alert_id, details_json, iso
from operators.domain.handoff_tracks import Track, better, render_alerts, render_fact, value_of
from operators.domain.handoffs import (
    DEFAULT_HANDOFFS,
    Handoff,
    HandoffConfigError,
    HandoffMatcher,
    parse_duration,
    parse_handoffs,
)
from operators.domain.items import tie_of
from operators.model import EventType, Milestone, SourceKind
from tests.operators.eventkit import at, carrier, erp, event, ms, released, wms

E, M = EventType, Milestone
BY_NAME = {handoff.name: handoff for handoff in DEFAULT_HANDOFFS}


def test_defaults_are_the_four_of_the_design() -> None:
    assert list(BY_NAME) == ["release_to_wms", "ship_to_erp", "dispatch_to_pickup", "ship_to_invoice"]
    assert [h.sla for h in DEFAULT_HANDOFFS] == [
        timedelta(hours=2),
        timedelta(minutes=15),
        timedelta(hours=4),
        timedelta(hours=24),
    ]
    assert [(h.from_time, h.to_time) for h in DEFAULT_HANDOFFS] == [
        ("occurred_at", "recorded_at"),
        ("occurred_at", "recorded_at"),
        ("occurred_at", "occurred_at"),
        ("occurred_at", "recorded_at"),
    ]
    assert BY_NAME["ship_to_erp"].sla_ms == 900_000


@pytest.mark.parametrize(
    ("name", "from_event", "to_event", "not_to"),
    [
        (
            "release_to_wms",
            released(),
            wms(E.PACK_CONFIRMED, "pack"),
            event(E.PACK_CONFIRMED, "erp-pack", kind=SourceKind.ERP),  # must be a WMS event
        ),
        ("ship_to_erp", wms(E.SHIPMENT_DISPATCHED, "d"), erp(E.GOODS_ISSUE_POSTED, "gi"), wms(E.PICK_CONFIRMED, "p")),
        (
            "dispatch_to_pickup",
            wms(E.SHIPMENT_DISPATCHED, "d"),
            carrier(M.PICKED_UP, "pu"),
            carrier(M.OUT_FOR_DELIVERY, "ofd"),  # only PICKED_UP / IN_TRANSIT answer it
        ),
        ("ship_to_invoice", erp(E.GOODS_ISSUE_POSTED, "gi"), erp(E.INVOICE_POSTED, "inv"), released()),
    ],
)
def test_default_matching(name: str, from_event: object, to_event: object, not_to: object) -> None:
    handoff = BY_NAME[name]
    assert handoff.is_from(from_event) and not handoff.is_to(from_event)  # type: ignore[arg-type]
    assert handoff.is_to(to_event) and not handoff.is_from(to_event)  # type: ignore[arg-type]
    assert not handoff.is_to(not_to) and not handoff.is_from(not_to)  # type: ignore[arg-type]


def test_carrier_in_transit_answers_dispatch_to_pickup_and_erp_dispatch_does_not_start_it() -> None:
    handoff = BY_NAME["dispatch_to_pickup"]
    assert handoff.is_to(carrier(M.IN_TRANSIT, "it"))
    assert not handoff.is_from(event(E.SHIPMENT_DISPATCHED, "x", kind=SourceKind.ERP))


def test_matcher_lists_the_handoffs_an_event_takes_part_in() -> None:
    matcher = HandoffMatcher(DEFAULT_HANDOFFS)
    dispatch = wms(E.SHIPMENT_DISPATCHED, "d")
    assert [(index, h.name, is_from, is_to) for index, h, is_from, is_to in matcher(dispatch)] == [
        (0, "release_to_wms", False, True),
        (1, "ship_to_erp", True, False),
        (2, "dispatch_to_pickup", True, False),
    ]
    assert matcher(carrier(M.ETA, "eta")) == ()
    assert matcher(wms(E.SHIPMENT_DISPATCHED, "other")) is matcher(dispatch)  # cached per (type, kind, milestone)
    assert [h.name for _, h, _, _ in matcher(carrier(M.PICKED_UP, "pu"))] == ["dispatch_to_pickup"]


def test_parse_handoffs_reads_a_config_list() -> None:
    parsed = parse_handoffs(
        [
            {
                "name": "release_to_wms",
                "from": ["ORDER_RELEASED"],
                "from_kinds": ["erp"],
                "to": ["PICK_CONFIRMED", "PACK_CONFIRMED", "SHIPMENT_DISPATCHED"],
                "to_kinds": "wms",
                "from_time": "occurred_at",
                "to_time": "recorded_at",
                "sla": "2h",
            },
            {
                "name": "dispatch_to_pickup",
                "from_types": "SHIPMENT_DISPATCHED",
                "from_kinds": ["wms"],
                "to_types": ["CARRIER_STATUS"],
                "to_kinds": ["carrier"],
                "to_milestones": ["PICKED_UP", "IN_TRANSIT"],
                "to_time": "occurred_at",
                "sla": "PT4H",
            },
        ]
    )
    assert parsed == (BY_NAME["release_to_wms"], BY_NAME["dispatch_to_pickup"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", timedelta(hours=2)),
        ("15min", timedelta(minutes=15)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("500ms", timedelta(milliseconds=500)),
        ("PT2H30M", timedelta(hours=2, minutes=30)),
        ("P1D", timedelta(days=1)),
        (900, timedelta(minutes=15)),
        (1.5, timedelta(seconds=1.5)),
    ],
)
def test_durations(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "2", "two hours", "2x", "PT", "h2", True, None, [1]])
def test_bad_durations(text: object) -> None:
    with pytest.raises(HandoffConfigError, match="sla"):
        parse_duration(text)


_VALID = {"name": "h", "from": ["ORDER_RELEASED"], "to": ["PICK_CONFIRMED"], "sla": "1h"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": ""}, r"handoffs\[0\]: 'name' must be a non-empty string"),
        ({"from": ["NOPE"]}, r"handoffs\[0\] \('h'\)\.from: unknown value 'NOPE'"),
        ({"to_kinds": ["erp", "mainframe"]}, r"\.to_kinds: unknown value 'mainframe'"),
        ({"to_milestones": ["LOST"]}, r"\.to_milestones: unknown value 'LOST'"),
        ({"from_types": ["ORDER_RELEASED"]}, r"either 'from' or 'from_types'"),
        ({"from": []}, r"at least one event type"),
        ({"to_time": "received_at"}, r"\.to_time: must be one of"),
        ({"sla": "-1h"}, r"\.sla: cannot read duration"),
        ({"sla": 0}, r"sla must be positive"),
        ({"slaa": "1h"}, r"unknown key\(s\) \['slaa'\]"),
        ({"from": {"a": 1}}, r"expected a name or a list of names"),
    ],
)
def test_parse_errors_name_the_entry_and_the_key(change: dict[str, object], message: str) -> None:
    with pytest.raises(HandoffConfigError, match=message):
        parse_handoffs([{**_VALID, **change}])


def test_parse_errors_for_the_list() -> None:
    with pytest.raises(HandoffConfigError, match="defined twice"):
        parse_handoffs([_VALID, _VALID])
    with pytest.raises(HandoffConfigError, match="empty"):
        parse_handoffs([])
    with pytest.raises(HandoffConfigError, match="expected a list"):
        parse_handoffs("release_to_wms")  # type: ignore[arg-type]
    with pytest.raises(HandoffConfigError, match="missing 'sla'"):
        parse_handoffs([{k: v for k, v in _VALID.items() if k != "sla"}])
    with pytest.raises(HandoffConfigError, match="missing 'to'"):
        parse_handoffs([{k: v for k, v in _VALID.items() if k != "to"}])


def test_handoff_constructor_validates() -> None:
    with pytest.raises(HandoffConfigError, match="to_time"):
        Handoff(
            name="x",
            from_types=frozenset({E.ORDER_RELEASED}),
            to_types=frozenset({E.PICK_CONFIRMED}),
            to_time="later",
            sla=timedelta(1),
        )


def test_track_keeps_the_earliest_times_and_renders_the_fact() -> None:
    handoff = BY_NAME["release_to_wms"]
    track = Track()
    track.record_to(ms(50), "pack", ms(51))
    track.version += 1
    assert render_fact(track, handoff, "D1") is None  # no from-time yet
    assert render_alerts(track, handoff, "D1", ms(10_000)) == []
    track.record_to(ms(40), "pick", ms(60))
    track.version += 1
    assert track.record_from(ms(1), "rel-b") and not track.record_from(ms(1), "rel-z")  # ties by event_id
    assert track.record_from(ms(1), "rel-a") and track.record_from(ms(0), "rel-c")
    track.version += 1
    track.order = better(better(None, (1, ms(5), "w", "PO9")), (0, ms(9), "e", "SO1"))
    track.site = better(None, (0, ms(0), "rel", "1710"))
    fact = render_fact(track, handoff, "D1")
    assert fact is not None
    assert (fact.from_event_id, fact.from_at, fact.to_event_id, fact.to_at) == ("rel-c", ms(0), "pick", ms(40))
    assert (fact.latency_ms, fact.sla_ms, fact.breached, fact.clock_skew, fact.version) == (
        40 * 60_000,
        7_200_000,
        False,
        False,
        3,
    )
    assert (fact.order_id, fact.site) == ("SO1", "1710")  # the ERP's (priority 0) order id
    assert track.deadline(handoff) == ms(120)
    assert render_alerts(track, handoff, "D1", ms(119)) == []  # W before the deadline: undecided
    assert render_alerts(track, handoff, "D1", ms(500)) == []  # answered by a to-event arrived in time
    assert value_of(None) == ""


def test_the_staircase_keeps_the_earliest_to_time_among_those_arrived_before_a_time() -> None:
    track = Track()
    track.record_to(ms(100), "late-stamp", ms(10))  # arrived first, stamped latest
    track.record_to(ms(50), "mid", ms(20))
    track.record_to(ms(70), "worse", ms(30))  # arrived later with a later to-time: not a step
    track.record_to(ms(5), "skewed", ms(90))
    # the staircase keeps a tie of each id (operators.domain.items.tie_of), not the id
    assert [point[2] for point in track.stair] == [tie_of("late-stamp"), tie_of("mid"), tie_of("skewed")]
    assert track.first_before(ms(10)) is None  # arrived at 10: not before 10
    assert track.first_before(ms(11)) == (ms(10), ms(100), tie_of("late-stamp"))
    assert track.first_before(ms(60)) == (ms(20), ms(50), tie_of("mid"))
    assert track.first_before(ms(1000)) == (ms(90), ms(5), tie_of("skewed"))
    assert (track.to_at, track.to_event_id) == (ms(5), "skewed")


def test_track_alerts_missing_late_and_in_time() -> None:
    handoff = BY_NAME["ship_to_erp"]  # 15 min
    missing = Track(version=1)
    missing.record_from(ms(0), "disp")
    [alert] = render_alerts(missing, handoff, "D1", ms(15))
    assert (alert.rule, alert.state, alert.opened_at, alert.due_at, alert.resolved_at) == (
        HANDOFF_MISSING,
        OPEN,
        ms(15),
        ms(15),
        None,
    )
    assert alert.alert_id == alert_id(HANDOFF_MISSING, "D1", "ship_to_erp")
    late = Track(version=2)
    late.record_from(ms(0), "disp")
    late.record_to(ms(20), "gi", ms(10))  # arrived before the deadline, stamped after it
    [alert] = render_alerts(late, handoff, "D1", ms(15))
    assert (alert.rule, alert.state, alert.resolved_at, alert.version) == (HANDOFF_LATE, RESOLVED, ms(20), 2)
    in_time = Track(version=2)
    in_time.record_from(ms(0), "disp")
    in_time.record_to(ms(14), "gi", ms(14))
    assert render_alerts(in_time, handoff, "D1", ms(15)) == []


def test_an_alert_that_no_longer_applies_is_withdrawn_not_dropped() -> None:
    handoff = BY_NAME["ship_to_erp"]
    track = Track(version=2)
    track.record_from(ms(60), "disp")
    track.record_to(ms(80), "gi", ms(70))
    track.alerts = render_alerts(track, handoff, "D1", ms(75))
    assert [a.rule for a in track.alerts] == [HANDOFF_LATE]
    track.record_from(ms(0), "earlier")  # the deadline moves to 00:15, before the GI arrived
    track.version = 3
    by_rule = {a.rule: a for a in render_alerts(track, handoff, "D1", ms(76))}
    assert by_rule[HANDOFF_MISSING].resolved_at == ms(80)
    withdrawn = by_rule[HANDOFF_LATE]
    assert (withdrawn.state, withdrawn.version, withdrawn.resolved_at) == (RESOLVED, 3, ms(80))
    assert '"withdrawn":true' in withdrawn.details


def test_alert_ids_are_deterministic_and_distinct() -> None:
    assert alert_id("handoff_missing", "D1", "ship_to_erp") == alert_id("handoff_missing", "D1", "ship_to_erp")
    assert alert_id("handoff_missing", "D1", "ship_to_erp") != alert_id("handoff_late", "D1", "ship_to_erp")
    assert alert_id("r", "ab", "c") != alert_id("r", "a", "bc")
    assert len(alert_id("orphan_carrier_event", "tracking_number:1Z")) == 32
    assert details_json(b=1, a=None, at=at(0), sla=timedelta(minutes=1)) == (
        '{"at":"2024-03-01T08:00:00+00:00","b":1,"sla":60000}'
    )
    assert iso(ms(0)) == "2024-03-01T08:00:00+00:00" and iso(None) is None

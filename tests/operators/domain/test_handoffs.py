"""Handoff configuration: the defaults of design.md 3.3, matching, and config parsing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from operators.domain.alerts import alert_id, details_json
from operators.domain.handoff_tracks import HandoffTrack, observe, render_alerts, render_fact
from operators.domain.handoffs import (
    DEFAULT_HANDOFFS,
    Handoff,
    HandoffConfigError,
    event_time,
    parse_duration,
    parse_handoffs,
)
from operators.model import EventType, Milestone, SourceKind, with_changes
from tests.operators.eventkit import at, carrier, erp, event, released, wms

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


def test_recorded_time_falls_back_to_received() -> None:
    gi = with_changes(erp(E.GOODS_ISSUE_POSTED, "gi", occurred=at(1), received=at(9)), recorded_at=None)
    assert event_time(gi, "recorded_at") == at(9)
    assert event_time(gi, "occurred_at") == at(1)
    assert BY_NAME["ship_to_erp"].to_time_of(gi) == at(9)


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


def test_track_keeps_the_earliest_times_and_every_to_sighting() -> None:
    handoff = BY_NAME["release_to_wms"]
    track = HandoffTrack("release_to_wms")
    assert observe(track, handoff, erp(E.INVOICE_POSTED, "inv")) is None
    track = observe(track, handoff, wms(E.PACK_CONFIRMED, "pack", recorded=at(50), received=at(51)))  # type: ignore[assignment]
    assert render_fact(track, handoff, "D1") is None  # no from-time yet
    track = observe(track, handoff, wms(E.PICK_CONFIRMED, "pick", recorded=at(40), received=at(60)))  # type: ignore[arg-type]
    track = observe(track, handoff, released("rel", occurred=at(0), order_id="SO1", site="1710"))  # type: ignore[arg-type]
    fact = render_fact(track, handoff, "D1")
    assert fact is not None
    assert (fact.to_event_id, fact.to_at, fact.latency_ms, fact.version) == ("pick", at(40), 40 * 60_000, 3)
    assert (fact.order_id, fact.site) == ("SO1", "1710")
    assert [seen.event_id for seen in track.to_seen] == ["pack", "pick"]
    assert render_alerts(track, handoff, "D1", at(119)) == ()
    assert render_alerts(track, handoff, "D1", at(500)) == ()  # answered by a to-event received in time


def test_alert_ids_are_deterministic_and_distinct() -> None:
    assert alert_id("handoff_missing", "D1", "ship_to_erp") == alert_id("handoff_missing", "D1", "ship_to_erp")
    assert alert_id("handoff_missing", "D1", "ship_to_erp") != alert_id("handoff_late", "D1", "ship_to_erp")
    assert alert_id("r", "ab", "c") != alert_id("r", "a", "bc")
    assert len(alert_id("orphan_carrier_event", "tracking_number:1Z")) == 32
    assert details_json(b=1, a=None, at=at(0), sla=timedelta(minutes=1)) == (
        '{"at":"2024-03-01T08:00:00+00:00","b":1,"sla":60000}'
    )

"""EasyPost webhook adapter: the public samples, the milestone table, history resends, errors."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.adapters.easypost import adapt_easypost, milestone_for
from operators.master import EMPTY_MASTER
from operators.model import (
    AdapterResult,
    DeadLetterReason,
    EventType,
    Milestone,
    SourceKind,
    TimePrecision,
    content_id,
)
from tests.conftest import FIXTURES, RECEIVED, raw_message

EASYPOST = FIXTURES / "easypost"
FEDEX = "easypost_webhook_tracker_updated_fedex.json"
USPS = "easypost_tracker_usps_pre_transit.json"


def adapt(doc: dict[str, Any] | str | bytes, offset: int = 3) -> AdapterResult:
    payload = doc if isinstance(doc, (str, bytes)) else json.dumps(doc)
    return adapt_easypost(raw_message(payload, topic="carrier.webhooks", offset=offset), EMPTY_MASTER)


def load(directory: Path, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((directory / name).read_text())
    return loaded


def dead_error(result: AdapterResult, reason: DeadLetterReason = DeadLetterReason.SCHEMA_ERROR) -> str:
    assert result.dead_letter is not None, result
    assert result.dead_letter.reason == reason
    assert result.dead_letter.adapter == "easypost"
    return result.dead_letter.error


# --- the FedEx webhook sample (official EasyPost fixture) -------------------------------------


def test_fedex_webhook_yields_seven_carrier_status_events(samples_dir: Path) -> None:
    result = adapt((samples_dir / FEDEX).read_bytes())
    events = result.events
    assert len(events) == 7
    assert [e.status_code for e in events] == ["OC", "PU", "AR", "DP", "IT", "IT", "AR"]
    assert [e.milestone for e in events] == [
        Milestone.ACKNOWLEDGED,
        Milestone.PICKED_UP,  # FedEx PU although EasyPost says in_transit / arrived_at_facility
        Milestone.IN_TRANSIT,
        Milestone.IN_TRANSIT,
        Milestone.IN_TRANSIT,
        Milestone.IN_TRANSIT,
        Milestone.IN_TRANSIT,
    ]
    assert events[0].occurred_at == datetime(2024, 7, 31, 15, 0, tzinfo=UTC)
    assert events[0].reason_code == "label_created"
    assert events[0].location == "US"  # only the country is known for the label scan
    last = events[-1]
    assert last.occurred_at == datetime(2024, 8, 2, 18, 50, tzinfo=UTC)
    assert last.location == "EDISON, NJ, US"
    assert last.reason_code == "arrived_at_facility"
    assert result.warnings == ()
    for event in events:
        assert event.event_type == EventType.CARRIER_STATUS
        assert event.recorded_at == datetime(2024, 8, 2, 19, 26, 52, tzinfo=UTC)  # Event.created_at
        assert event.received_at == RECEIVED
        assert event.raw_ref == "carrier.webhooks:0:3"
        assert (event.tracking_number, event.carrier) == ("1", "FedEx")
        assert (event.source_system, event.source_kind, event.source_format) == (
            "easypost",
            SourceKind.CARRIER,
            "easypost",
        )
        assert event.time_precision == TimePrecision.S
        assert event.attributes["easypost_event_id"] == "evt_1"
        assert event.attributes["tracker_id"] == "trk_1"
        assert event.attributes["mode"] == "production"
    assert events[1].attributes["message"] == "Picked up"


def test_fedex_event_ids_are_content_hashes(samples_dir: Path) -> None:
    events = adapt((samples_dir / FEDEX).read_bytes()).events
    assert events[0].event_id == content_id(
        "easypost",
        "FedEx",
        "1",
        "2024-07-31T15:00:00+00:00",
        "pre_transit",
        "label_created",
        "Shipment information sent to FedEx",
    )
    assert len({e.event_id for e in events}) == 7  # the two IT scans differ in time


def test_resent_history_plus_one_new_detail_keeps_old_ids(samples_dir: Path) -> None:
    first = load(samples_dir, FEDEX)
    second = copy.deepcopy(first)
    second["id"] = "evt_2"  # a new webhook delivery
    second["created_at"] = "2024-08-03T09:00:00Z"
    second["result"]["tracking_details"].append(
        {
            "object": "TrackingDetail",
            "message": "On FedEx vehicle for delivery",
            "status": "out_for_delivery",
            "status_detail": "out_for_delivery",
            "datetime": "2024-08-03T08:41:00Z",
            "source": "FedEx",
            "carrier_code": "OD",
            "tracking_location": {"city": "BROOKLYN", "state": "NY", "country": "US", "zip": None},
        }
    )
    old_ids = [e.event_id for e in adapt(first, offset=1).events]
    new_events = adapt(second, offset=2).events
    assert [e.event_id for e in new_events[:7]] == old_ids
    assert new_events[7].event_id not in old_ids
    assert new_events[7].milestone == Milestone.OUT_FOR_DELIVERY
    assert new_events[7].location == "BROOKLYN, NY, US"
    assert new_events[7].attributes["easypost_event_id"] == "evt_2"


# --- the USPS test-mode Tracker sample (bare Tracker, no webhook Event) -----------------------


def test_usps_bare_tracker_in_test_mode(samples_dir: Path) -> None:
    events = adapt((samples_dir / USPS).read_bytes()).events
    assert len(events) == 2
    for event in events:
        assert event.milestone == Milestone.ACKNOWLEDGED
        assert event.status_code == "status_update"  # carrier_code is empty: the detail stands in
        assert event.reason_code == "status_update"
        assert event.recorded_at == datetime(2024, 7, 30, 16, 6, 32, tzinfo=UTC)  # Tracker.updated_at
        assert (event.tracking_number, event.carrier) == ("EZ1000000001", "USPS")
        assert event.attributes["mode"] == "test"
        assert event.attributes["tracker_id"] == "trk_8b5833c2c3e6428ab09a48a31c1a9071"
        assert "easypost_event_id" not in event.attributes
    assert events[0].location is None  # all location parts null
    assert events[0].occurred_at == datetime(2024, 6, 30, 16, 6, 32, tzinfo=UTC)
    assert events[1].location == "HOUSTON, TX"
    assert events[1].attributes["message"] == "Shipping Label Created"


# --- the milestone table ----------------------------------------------------------------------


def test_fixture_with_every_status() -> None:
    events = adapt(load(EASYPOST, "event_tracker_all_statuses.json")).events
    assert [(e.status_code, e.milestone) for e in events] == [
        ("GX", Milestone.ACKNOWLEDGED),
        ("03", Milestone.PICKED_UP),  # message "USPS picked up item"
        ("10", Milestone.IN_TRANSIT),  # received_at_origin_facility, after "USPS picked up item"
        ("NT", Milestone.IN_TRANSIT),
        ("07", Milestone.ARRIVED),  # in_transit / arrived_at_destination
        ("OF", Milestone.OUT_FOR_DELIVERY),
        ("55", Milestone.DELIVERY_FAILED),
        ("arrived_at_pickup_location", Milestone.ARRIVED),  # empty carrier_code
        ("01", Milestone.DELIVERED),  # "Picked Up at Post Office" is a delivery, not a pickup
    ]
    assert events[3].location is None


@pytest.mark.parametrize(
    ("status", "detail", "code", "message", "expected"),
    [
        ("pre_transit", "label_created", "OC", "Label created", Milestone.ACKNOWLEDGED),
        ("in_transit", "arrived_at_facility", "PU", "Picked up", Milestone.PICKED_UP),
        ("in_transit", "in_transit", "", "Shipment picked up", Milestone.PICKED_UP),
        ("pre_transit", "status_update", "", "Ready to be picked up by carrier", Milestone.ACKNOWLEDGED),
        ("in_transit", "departed_facility", "DP", "Departed", Milestone.IN_TRANSIT),
        ("in_transit", "arrived_at_destination", "", "Arrived", Milestone.ARRIVED),
        ("in_transit", "out_for_delivery", "", "On vehicle", Milestone.OUT_FOR_DELIVERY),
        ("out_for_delivery", "out_for_delivery", "OD", "", Milestone.OUT_FOR_DELIVERY),
        ("delivered", "arrived_at_destination", "DL", "Delivered", Milestone.DELIVERED),
        ("available_for_pickup", "arrived_at_pickup_location", "", "", Milestone.ARRIVED),
        ("return_to_sender", "return", "", "", Milestone.RETURNED),
        ("failure", "delivery_exception", "", "", Milestone.DELIVERY_FAILED),
        ("failure", "damaged", "", "", Milestone.EXCEPTION),
        ("failure", "lost", "", "", Milestone.EXCEPTION),
        ("cancelled", "cancelled", "", "", Milestone.CANCELLED),
        ("unknown", "unknown", "", "", Milestone.UNKNOWN),
        ("error", "unknown", "", "", Milestone.UNKNOWN),
        ("teleported", "", "ZZ", "", Milestone.UNKNOWN),
        ("", "", "", "", Milestone.UNKNOWN),
    ],
)
def test_milestone_table(status: str, detail: str, code: str, message: str, expected: Milestone) -> None:
    assert milestone_for(status, detail, code, message) == expected


@pytest.mark.parametrize(
    ("status", "detail", "code", "message", "history", "expected"),
    [
        # An arrival scan is the pickup only when nothing moved before it.
        ("in_transit", "received_at_origin_facility", "AR", "Arrived at FedEx location", "", Milestone.PICKED_UP),
        (
            "in_transit",
            "received_at_origin_facility",
            "AR",
            "Arrived at FedEx location",
            "picked",
            Milestone.IN_TRANSIT,
        ),
        ("in_transit", "received_at_origin_facility", "AR", "Arrived at FedEx location", "ofd", Milestone.IN_TRANSIT),
        ("pre_transit", "received_at_origin_facility", "", "Accepted", "picked", Milestone.IN_TRANSIT),
        # A pickup scan after out-for-delivery is not a pickup either.
        ("in_transit", "arrived_at_facility", "PU", "Picked up", "ofd", Milestone.IN_TRANSIT),
        # FedEx's failed attempt: failure / delayed.
        ("failure", "delayed", "DE", "Customer not available or business closed", "", Milestone.DELIVERY_FAILED),
        ("failure", "delayed", "DE", "Delivery exception", "ofd", Milestone.DELIVERY_FAILED),
        ("failure", "delayed", "", "Delivery attempted", "picked", Milestone.DELIVERY_FAILED),
        ("failure", "delayed", "SE", "Delay beyond our control", "picked", Milestone.EXCEPTION),
        ("failure", "damaged", "", "Package damaged", "ofd", Milestone.EXCEPTION),
        ("failure", "unknown", "", "", "ofd", Milestone.DELIVERY_FAILED),
    ],
)
def test_milestone_depends_on_the_history_before(
    status: str, detail: str, code: str, message: str, history: str, expected: Milestone
) -> None:
    ofd = history == "ofd"
    picked = ofd or history == "picked"
    assert milestone_for(status, detail, code, message, picked_up=picked, out_for_delivery=ofd) == expected


# --- FedEx through EasyPost: a failed attempt and arrival scans after pickup ---------------------

FEDEX_ATTEMPT = "fedex_failed_attempt.json"
FEDEX_ATTEMPT_MILESTONES = [
    ("OC", Milestone.ACKNOWLEDGED),
    ("PU", Milestone.PICKED_UP),
    ("AR", Milestone.IN_TRANSIT),  # received_at_origin_facility at Orlando, after the pickup
    ("DP", Milestone.IN_TRANSIT),
    ("IT", Milestone.IN_TRANSIT),
    ("AR", Milestone.IN_TRANSIT),  # received_at_origin_facility at the Edison destination station
    ("OD", Milestone.OUT_FOR_DELIVERY),
    ("DE", Milestone.DELIVERY_FAILED),  # failure / delayed "Customer not available or business closed"
    ("AR", Milestone.IN_TRANSIT),  # back at the station after the attempt
    ("OD", Milestone.OUT_FOR_DELIVERY),
    ("DL", Milestone.DELIVERED),
]


def test_fedex_failed_attempt_and_arrival_scans() -> None:
    result = adapt(load(EASYPOST, FEDEX_ATTEMPT))
    assert [(e.status_code, e.milestone) for e in result.events] == FEDEX_ATTEMPT_MILESTONES
    attempt = result.events[7]
    assert (attempt.reason_code, attempt.attributes["easypost_status"]) == ("delayed", "failure")
    assert attempt.attributes["message"] == "Customer not available or business closed"
    assert [e.milestone for e in result.events].count(Milestone.DELIVERY_FAILED) == 1
    assert [e.milestone for e in result.events].count(Milestone.PICKED_UP) == 1


def test_milestones_do_not_depend_on_the_order_of_the_history() -> None:
    doc = load(EASYPOST, FEDEX_ATTEMPT)
    in_order = {e.event_id: e.milestone for e in adapt(doc).events}
    doc["result"]["tracking_details"].reverse()  # newest first, as some carriers list it
    assert {e.event_id: e.milestone for e in adapt(doc).events} == in_order


def test_an_early_webhook_and_the_full_history_agree_on_shared_details() -> None:
    doc = load(EASYPOST, FEDEX_ATTEMPT)
    full = {e.event_id: e.milestone for e in adapt(doc).events}
    for count in range(1, len(FEDEX_ATTEMPT_MILESTONES)):
        early = copy.deepcopy(doc)
        early["result"]["tracking_details"] = doc["result"]["tracking_details"][:count]
        for event in adapt(early).events:
            assert full[event.event_id] == event.milestone


def test_unknown_status_keeps_raw_codes() -> None:
    doc = load(EASYPOST, "event_tracker_all_statuses.json")
    doc["result"]["tracking_details"] = [
        {"status": "teleported", "status_detail": "beamed", "carrier_code": "ZZ", "datetime": "2024-08-01T10:00:00Z"}
    ]
    (event,) = adapt(doc).events
    assert (event.milestone, event.status_code, event.reason_code) == (Milestone.UNKNOWN, "ZZ", "beamed")
    assert event.attributes["easypost_status"] == "teleported"
    assert event.location is None


def test_identical_details_in_one_history_collapse() -> None:
    doc = load(EASYPOST, "event_tracker_all_statuses.json")
    details = doc["result"]["tracking_details"]
    doc["result"]["tracking_details"] = [details[0], details[0], details[1]]
    assert len(adapt(doc).events) == 2


# --- ignores and errors -----------------------------------------------------------------------


def test_non_tracker_event_is_ignored() -> None:
    result = adapt(load(EASYPOST, "event_batch_created.json"))
    assert result.outcome == "ignored"
    assert result.ignored_reason == "EasyPost event 'batch.created' is not a tracker event"


def test_tracker_without_details_is_ignored() -> None:
    result = adapt(load(EASYPOST, "event_tracker_created_empty.json"))
    assert result.outcome == "ignored"
    assert result.ignored_reason == "tracker EZ4000000004 has no tracking details yet"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.pop("result"), "Event.result"),
        (lambda d: d.update(result={"object": "Batch"}), "Event.result"),
        (lambda d: d.pop("created_at"), "Event.created_at"),
        (lambda d: d.update(created_at="2024-08-05 18:00"), "Event.created_at"),
        (lambda d: d.update(description=None), "Event.description"),
        (lambda d: d["result"].pop("tracking_code"), "Tracker.tracking_code"),
        (lambda d: d["result"].update(tracking_details=None), "Tracker.tracking_details"),
        (lambda d: d["result"]["tracking_details"].append("scan"), "Tracker.tracking_details[9]"),
        (lambda d: d["result"]["tracking_details"][2].pop("datetime"), "tracking_details[2].datetime"),
        (lambda d: d["result"]["tracking_details"][2].update(datetime="2024-08-01T21:02:00"), "[2].datetime"),
        (lambda d: d["result"]["tracking_details"][4].update(status=7), "tracking_details[4].status"),
        (lambda d: d["result"]["tracking_details"][0].update(message=["x"]), "tracking_details[0].message"),
        (lambda d: d.pop("object"), "object: expected 'Event' or 'Tracker'"),
    ],
)
def test_bad_webhooks_are_schema_errors_naming_the_field(mutate: Any, expected: str) -> None:
    doc = load(EASYPOST, "event_tracker_all_statuses.json")
    mutate(doc)
    assert expected in dead_error(adapt(doc))


def test_other_objects_decode_and_parse_errors() -> None:
    assert "Shipment" in dead_error(adapt({"object": "Shipment", "id": "shp_1"}), DeadLetterReason.UNSUPPORTED)
    assert dead_error(adapt(b"\xc3\x28"), DeadLetterReason.DECODE_ERROR)
    assert dead_error(adapt('{"object": "Event", "result": {'), DeadLetterReason.PARSE_ERROR)
    assert "JSON object" in dead_error(adapt('"tracker.updated"'))


# --- never raises -----------------------------------------------------------------------------

_VALID = [path.read_bytes() for path in sorted(EASYPOST.glob("*.json"))]


def _check_one_outcome(result: AdapterResult) -> None:
    outcomes = [bool(result.events), result.dead_letter is not None, result.ignored_reason is not None]
    assert outcomes.count(True) == 1
    if result.dead_letter is not None:
        assert result.dead_letter.error


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.tuples(st.sampled_from(_VALID), st.integers(0, 6000)).map(lambda p: p[0][: p[1]]),
        st.tuples(st.sampled_from(_VALID), st.integers(0, 6000), st.binary(min_size=1, max_size=3)).map(
            lambda p: p[0][: p[1]] + p[2] + p[0][p[1] + len(p[2]) :]
        ),
    )
)
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    _check_one_outcome(adapt(payload))


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_FIELDS = ["object", "description", "result", "created_at", "updated_at", "tracking_code", "carrier",
           "tracking_details", "datetime", "status", "status_detail", "carrier_code", "message",
           "tracking_location", "city", "mode", "id"]  # fmt: skip


def _replace_fields(node: Any, field: str, value: Any) -> Any:
    if isinstance(node, dict):
        return {k: value if k == field else _replace_fields(v, field, value) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_fields(v, field, value) for v in node]
    return node


@settings(max_examples=250, deadline=None)
@given(st.sampled_from(_VALID), st.sampled_from(_FIELDS), _JSON_VALUES)
def test_mistyped_fields_never_raise(payload: bytes, field: str, value: Any) -> None:
    _check_one_outcome(adapt(_replace_fields(json.loads(payload), field, value)))


# --- the typed reader agrees with the generic one ----------------------------------------------


@pytest.mark.parametrize(
    "name", ["event_tracker_all_statuses.json", "fedex_failed_attempt.json", "event_batch_created.json"]
)
def test_typed_and_generic_readers_agree(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from operators.adapters import easypost

    payload = (EASYPOST / name).read_bytes()
    typed = adapt(payload)
    monkeypatch.setattr(easypost, "_typed_webhook", lambda raw: None)
    assert adapt(payload) == typed


def test_typed_reader_takes_well_formed_webhooks_only() -> None:
    from operators.adapters.easypost import _typed_webhook

    doc = load(EASYPOST, "fedex_failed_attempt.json")
    assert _typed_webhook(raw_message(json.dumps(doc))) is not None
    for path, value in [
        (("result", "tracking_code"), 776012345678),  # a number: the generic reader takes it as text
        (("result", "tracking_details", 0, "datetime"), None),
        (("result", "tracking_details", 1, "status"), 3),
        (("created_at",), "yesterday"),
        (("description",), "batch.created"),
    ]:
        broken = copy.deepcopy(doc)
        holder = broken
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = value
        assert _typed_webhook(raw_message(json.dumps(broken))) is None, path


def _generic_reader_only(payload: bytes) -> AdapterResult:
    """The result of the generic (dict) reader alone."""
    from operators.adapters import easypost

    typed = easypost._typed_webhook
    easypost._typed_webhook = lambda raw: None  # type: ignore[assignment]
    try:
        return adapt(payload)
    finally:
        easypost._typed_webhook = typed


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_VALID), st.sampled_from(_FIELDS), _JSON_VALUES)
def test_typed_and_generic_readers_agree_on_mistyped_fields(payload: bytes, field: str, value: Any) -> None:
    mutated = json.dumps(_replace_fields(json.loads(payload), field, value)).encode()
    assert adapt(mutated) == _generic_reader_only(mutated)

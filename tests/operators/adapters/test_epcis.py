"""GS1 EPCIS 2.0 adapter: the public GS1 examples (SOURCES.md), own fixtures, errors, properties."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.adapters.epcis import adapt_epcis
from operators.master import EMPTY_MASTER, MasterData
from operators.model import AdapterResult, DeadLetterReason, EventType, Line, SourceKind, TimePrecision
from sources.master_files import load_master
from tests.conftest import FIXTURES, RECEIVED, raw_message

EPCIS_FIXTURES = FIXTURES / "epcis"
MASTER = load_master(FIXTURES / "master")
TDS_GTIN = "10614141073464"  # urn:epc:id:sgtin:0614141.107346.*
LGTIN_GTIN = "04012345123456"  # urn:epc:class:lgtin:4012345.012345.*
IDPAT_GTIN = "04012345987652"  # urn:epc:idpat:sgtin:4012345.098765.*


def adapt(payload: bytes | str | dict[str, Any], master: MasterData = EMPTY_MASTER) -> AdapterResult:
    value = json.dumps(payload) if isinstance(payload, dict) else payload
    return adapt_epcis(raw_message(value, topic="wms.epcis", offset=7), master)


def sample(samples_dir: Path, name: str) -> bytes:
    return (samples_dir / name).read_bytes()


def utc(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is UTC
    return parsed


def event(**overrides: Any) -> dict[str, Any]:
    """A minimal mapped ObjectEvent (shipping of two SGTINs)."""
    base: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": "2024-03-01T10:00:00Z",
        "eventTimeZoneOffset": "+01:00",
        "action": "OBSERVE",
        "bizStep": "shipping",
        "epcList": ["urn:epc:id:sgtin:0614141.107346.1", "urn:epc:id:sgtin:0614141.107346.2"],
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


# --- public GS1 examples (expected facts in samples/SOURCES.md) -------------------------------


def test_shipping_receiving_sample(samples_dir: Path) -> None:
    result = adapt(sample(samples_dir, "epcis2_objectevent_shipping_receiving.jsonld"))
    assert result.outcome == "normalized" and result.warnings == ()
    shipped, received = result.events
    assert shipped.event_type is EventType.SHIPMENT_DISPATCHED
    assert shipped.event_id == (
        "epcis:ni:///sha-256;df7bb3c352fef055578554f09f5e2aa41782150ced7bd0b8af24dd3ccb30ba69?ver=CBV2.0"
    )
    # Written 2005-04-03T20:33:31.116000-06:00.
    assert shipped.occurred_at == utc("2005-04-04T02:33:31.116Z")
    assert shipped.time_precision is TimePrecision.MS
    assert shipped.attributes["event_tz_offset"] == "-06:00"
    assert shipped.attributes["disposition"] == "in_transit"
    assert shipped.order_id == "12345678"
    assert shipped.delivery_id is None
    # Two SGTINs of one GTIN class -> one line of 2 EA.
    assert shipped.lines == (Line(sku=TDS_GTIN, quantity=2, uom="EA"),)
    assert shipped.site == "urn:epc:id:sgln:0614141.07346.1234"  # readPoint: no bizLocation; empty master
    assert shipped.recorded_at == utc("2005-07-11T11:30:47Z")  # no recordTime -> creationDate
    assert (shipped.source_kind, shipped.source_format, shipped.source_system) == (SourceKind.WMS, "epcis", "epcis")
    assert shipped.received_at == RECEIVED and shipped.raw_ref == "wms.epcis:0:7"

    assert received.event_type is EventType.GOODS_RECEIVED
    assert received.occurred_at == utc("2005-04-05T02:33:31.116Z")
    assert received.lines == (Line(sku=TDS_GTIN, quantity=1, uom="EA"),)  # partial receipt: 2 shipped, 1 received
    assert (received.order_id, received.delivery_id) == ("12345678", "1152")
    assert received.site == "urn:epc:id:sgln:0012345.11111.0"  # bizLocation wins over readPoint
    assert received.attributes["read_point"] == "urn:epc:id:sgln:0012345.11111.400"


def test_shipping_receiving_sample_with_master(samples_dir: Path) -> None:
    result = adapt(sample(samples_dir, "epcis2_objectevent_shipping_receiving.jsonld"), MASTER)
    shipped, received = result.events
    # Sites via the SGLN -> GLN-13 conversion (0614141073467, 0012345111112).
    assert (shipped.site, received.site) == ("1000", "3000")
    assert shipped.lines == (Line(sku="MAT-100", quantity=2, uom="EA"),)
    assert result.warnings == ()


def test_quantity_source_dest_sample(samples_dir: Path) -> None:
    result = adapt(sample(samples_dir, "epcis2_objectevent_quantity_source_dest.jsonld"), MASTER)
    (received,) = result.events
    assert received.event_type is EventType.GOODS_RECEIVED
    assert received.lines == (Line(sku="MAT-200", quantity=200, uom="KGM"),)
    assert received.occurred_at == utc("2013-06-08T14:58:56.591Z")
    assert received.attributes["event_tz_offset"] == "+02:00"  # independent of the Z in eventTime
    assert received.site == "2000"  # bizLocation matched as the full epcis_location id
    assert result.warnings == ()


def test_aggregation_sample(samples_dir: Path) -> None:
    result = adapt(sample(samples_dir, "epcis2_aggregationevent.jsonld"))
    (received,) = result.events
    # The file's bizStep is `receiving`.
    assert received.event_type is EventType.GOODS_RECEIVED
    assert received.attributes["parent_id"] == "urn:epc:id:sscc:0614141.1234567890"
    assert received.attributes["epcis_type"] == "AggregationEvent"
    assert received.lines == (
        Line(sku=TDS_GTIN, quantity=2, uom="EA"),  # childEPCs
        Line(sku=IDPAT_GTIN, quantity=10, uom="EA"),  # idpat class, no uom -> count
        Line(sku=LGTIN_GTIN, quantity=200.5, uom="KGM"),
    )


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("epcis2_transformationevent.jsonld", "no mapped EPCIS events (1 TransformationEvent)"),
        ("epcis2_transactionevent_all_fields.jsonld", "no mapped EPCIS events (1 TransactionEvent)"),
    ],
)
def test_unmapped_event_types_are_ignored(samples_dir: Path, name: str, reason: str) -> None:
    result = adapt(sample(samples_dir, name), MASTER)
    assert result.outcome == "ignored"
    assert result.ignored_reason == reason
    assert result.dead_letter is None


# --- own fixtures --------------------------------------------------------------------------


def test_error_declaration_retracts_the_original() -> None:
    result = adapt((EPCIS_FIXTURES / "object_event_error_declaration.jsonld").read_bytes(), MASTER)
    (retraction,) = result.events
    original_id = "epcis:urn:uuid:6c3f2b1e-7a0d-4c1e-9f3b-2d1a5e8c4b70"
    assert retraction.event_type is EventType.EVENT_RETRACTED
    assert retraction.event_id == original_id + "#retracted"
    assert retraction.occurred_at == utc("2024-03-01T16:00:00Z")  # declarationTime
    assert retraction.reason_code == "did_not_occur"
    attributes = retraction.attributes
    assert attributes["retracts"] == original_id
    assert attributes["reason"] == "did_not_occur"
    assert attributes["corrective_event_ids"] == (
        "epcis:urn:uuid:0d9a7f54-1b2c-4e3d-8f6a-5b4c3d2e1f00,epcis:urn:uuid:1e8b6a43-2c3d-4f5e-9a7b-6c5d4e3f2a11"
    )
    assert attributes["retracted_event_type"] == "SHIPMENT_DISPATCHED"
    assert attributes["retracted_occurred_at"] == "2024-03-01T13:30:05.250000+00:00"
    # The original's fields, so downstream can undo it (URN and GS1 URI BTT spellings).
    assert (retraction.delivery_id, retraction.order_id, retraction.shipment_ref) == (
        "80001234",
        "4500012345",
        "06141411234567890",
    )
    assert retraction.site == "1000"
    assert retraction.lines == (Line(sku="MAT-100", quantity=2, uom="EA"),)  # the SSCC is not a line
    assert retraction.source_system == "urn:epc:id:sgln:0614141.07346.0"  # the document's sender
    assert retraction.recorded_at == utc("2024-03-01T14:31:00Z")  # recordTime


def test_error_declaration_without_event_id_matches_the_content_hash() -> None:
    original = event(recordTime="2024-03-01T10:05:00Z")
    declared = copy.deepcopy(original)
    declared["recordTime"] = "2024-03-02T08:00:00Z"
    declared["errorDeclaration"] = {"declarationTime": "2024-03-02T07:59:00Z", "reason": "incorrect_data"}
    (first,) = adapt(original).events
    (retraction,) = adapt(declared).events
    assert first.event_id.startswith("epcis:") and len(first.event_id) == len("epcis:") + 32
    assert retraction.attributes["retracts"] == first.event_id
    assert retraction.event_id == first.event_id + "#retracted"
    assert retraction.attributes["corrective_event_ids"] == ""


def test_query_document_with_digital_links() -> None:
    result = adapt((EPCIS_FIXTURES / "query_document_digital_link.jsonld").read_bytes(), MASTER)
    picked, packed = result.events  # the `storing` event in between is skipped
    assert picked.event_type is EventType.PICK_CONFIRMED
    assert picked.source_system == "wms-north"
    assert picked.recorded_at == utc("2024-05-10T07:15:42.123Z")  # recordTime beats creationDate
    assert picked.time_precision is TimePrecision.S
    assert picked.attributes["disposition"] == "in_progress"
    assert picked.lines == (
        Line(sku="MAT-100", quantity=2, uom="EA"),  # two DL instances; the /00/ SSCC is not a line
        Line(sku="MAT-200", quantity=12.5, uom="KGM"),
        Line(sku="MAT-300", quantity=4, uom="EA"),
    )
    assert picked.delivery_id == "80004711" and picked.site == "2000"
    assert packed.event_type is EventType.PACK_CONFIRMED
    assert packed.attributes["action"] == "ADD"
    assert packed.recorded_at == utc("2024-05-10T08:00:00Z")  # creationDate
    assert result.warnings == ()


# --- vocabulary, identifiers, mapping ----------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("picking", EventType.PICK_CONFIRMED),
        ("packing", EventType.PACK_CONFIRMED),
        ("shipping", EventType.SHIPMENT_DISPATCHED),
        ("departing", EventType.SHIPMENT_DISPATCHED),
        ("receiving", EventType.GOODS_RECEIVED),
    ],
)
@pytest.mark.parametrize("spelling", ["{}", "https://ref.gs1.org/cbv/BizStep-{}", "urn:epcglobal:cbv:bizstep:{}"])
def test_biz_step_in_three_spellings(word: str, expected: EventType, spelling: str) -> None:
    (canonical,) = adapt(event(bizStep=spelling.format(word))).events
    assert canonical.event_type is expected
    assert canonical.attributes["biz_step"] == word


@pytest.mark.parametrize("spelling", ["desadv", "https://ref.gs1.org/cbv/BTT-desadv", "urn:epcglobal:cbv:btt:desadv"])
@pytest.mark.parametrize(
    ("value", "business_id"),
    [
        ("urn:epcglobal:cbv:bt:0614141073467:80001234", "80001234"),
        ("https://erp.example.com/deliveries/80001234/", "80001234"),
        ("80001234", "80001234"),
    ],
)
def test_biz_transaction_type_and_value_forms(spelling: str, value: str, business_id: str) -> None:
    (canonical,) = adapt(event(bizTransactionList=[{"type": spelling, "bizTransaction": value}])).events
    assert canonical.delivery_id == business_id


def test_biz_transactions_first_of_a_type_wins_all_are_kept() -> None:
    transactions = [
        {"type": "po", "bizTransaction": "PO-1"},
        {"type": "po", "bizTransaction": "PO-2"},
        {"type": "inv", "bizTransaction": "INV-9"},
        {"bizTransaction": "urn:x:untyped"},
    ]
    (canonical,) = adapt(event(bizTransactionList=transactions)).events
    assert canonical.order_id == "PO-1"
    assert canonical.attributes["biz_transactions"] == "po=PO-1,po=PO-2,inv=INV-9,untyped"


def test_unmapped_ids_with_master() -> None:
    epcs = ["urn:epc:id:sgtin:0614141.107346.1", "urn:epc:id:sgtin:0614141.207346.1"]
    payload = event(epcList=epcs, bizLocation={"id": "urn:epc:id:sgln:9999999.00001.0"})
    result = adapt(payload, MASTER)
    (canonical,) = result.events
    assert canonical.site == "UNMAPPED:urn:epc:id:sgln:9999999.00001.0"
    assert canonical.lines == (
        Line(sku="MAT-100", quantity=1, uom="EA"),
        Line(sku="UNMAPPED:20614141073461", quantity=1, uom="EA"),
    )
    assert [str(w) for w in result.warnings] == [
        "mapping: site 'urn:epc:id:sgln:9999999.00001.0' (event.bizLocation.id) not in the site master",
        "mapping: GTIN 20614141073461 (event.epcList) not in the product master",
    ]


def test_empty_master_keeps_raw_ids_without_warnings() -> None:
    result = adapt(event(bizLocation={"id": "urn:epc:id:sgln:9999999.00001.0"}))
    assert result.events[0].site == "urn:epc:id:sgln:9999999.00001.0"
    assert result.events[0].lines == (Line(sku=TDS_GTIN, quantity=2, uom="EA"),)
    assert result.warnings == ()


def test_non_product_epcs_are_not_lines() -> None:
    epcs = ["urn:epc:id:sscc:0614141.1234567890", "urn:epc:id:grai:0614141.12345.400"]
    result = adapt(event(epcList=epcs, quantityList=[{"epcClass": "urn:epc:idpat:sgtin:4012345.*.*", "quantity": 3}]))
    assert result.events[0].lines == ()
    assert tuple(str(w) for w in result.warnings) == (
        "skipped: event.epcList[1] 'urn:epc:id:grai:0614141.12345.400' is not a serialized GTIN; not counted",
        "skipped: event.quantityList[0].epcClass 'urn:epc:idpat:sgtin:4012345.*.*' names no single GTIN; not counted",
    )


def test_delete_and_unmapped_biz_steps_are_skipped_and_counted() -> None:
    document = {
        "type": "EPCISDocument",
        "epcisBody": {
            "eventList": [
                event(action="DELETE"),
                event(bizStep="storing"),
                event(bizStep=None),
                event(type="AssociationEvent"),
                event(bizStep="storing"),
            ]
        },
    }
    result = adapt(document)
    assert result.outcome == "ignored"
    assert result.ignored_reason == (
        "no mapped EPCIS events (1 ObjectEvent action DELETE, 2 ObjectEvent bizStep storing, "
        "1 ObjectEvent bizStep absent, 1 AssociationEvent)"
    )


def test_empty_event_list_is_ignored() -> None:
    result = adapt({"type": "EPCISDocument", "epcisBody": {"eventList": []}})
    assert result.ignored_reason == "no mapped EPCIS events (empty eventList)"


def test_event_id_from_content_ignores_record_time() -> None:
    first = adapt(event(recordTime="2024-03-01T10:01:00Z")).events[0]
    again = adapt(event(recordTime="2024-03-05T00:00:00Z")).events[0]
    other = adapt(event(eventTime="2024-03-01T10:00:01Z")).events[0]
    assert first.event_id == again.event_id != other.event_id


def test_naive_event_time_takes_the_event_offset_and_is_flagged() -> None:
    (canonical,) = adapt(event(eventTime="2024-03-01T10:00:00.5", eventTimeZoneOffset="+02:00")).events
    assert canonical.occurred_at == utc("2024-03-01T08:00:00.500Z")
    assert canonical.tz_assumed is True
    assert canonical.time_precision is TimePrecision.MS


def test_bad_tz_offset_is_a_warning() -> None:
    result = adapt(event(eventTimeZoneOffset="CET"))
    assert "event_tz_offset" not in result.events[0].attributes
    assert [str(w) for w in result.warnings] == ["bad_value: event.eventTimeZoneOffset 'CET' is not +hh:mm; dropped"]


def test_master_data_document_is_ignored() -> None:
    result = adapt({"type": "EPCISMasterDataDocument", "epcisBody": {}})
    assert result.ignored_reason == "EPCIS master data document (no events)"


# --- dead letters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason", "error"),
    [
        (b"\xff\xfe{}", DeadLetterReason.DECODE_ERROR, "not UTF-8"),
        (b'{"type": "EPCISDocument", "epcisBody": {', DeadLetterReason.PARSE_ERROR, "invalid JSON"),
        (b"[]", DeadLetterReason.SCHEMA_ERROR, "document: expected a JSON object, got list"),
        (b"{}", DeadLetterReason.SCHEMA_ERROR, "type: missing"),
        (b'{"type": "Invoice"}', DeadLetterReason.UNSUPPORTED, "type 'Invoice' is not an EPCIS"),
        (b'{"type": "EPCISDocument"}', DeadLetterReason.SCHEMA_ERROR, "epcisBody: expected an object, got nothing"),
        (
            b'{"type": "EPCISQueryDocument", "epcisBody": {"queryResults": {}}}',
            DeadLetterReason.SCHEMA_ERROR,
            "epcisBody.queryResults.resultsBody: expected an object",
        ),
        (
            b'{"type": "EPCISDocument", "epcisBody": {"eventList": {}}}',
            DeadLetterReason.SCHEMA_ERROR,
            "epcisBody.eventList: expected an array, got dict",
        ),
    ],
)
def test_dead_letters(payload: bytes, reason: DeadLetterReason, error: str) -> None:
    result = adapt(payload)
    assert result.dead_letter is not None
    assert result.dead_letter.reason is reason
    assert result.dead_letter.adapter == "epcis"
    assert error in result.dead_letter.error
    assert result.dead_letter.raw.raw_ref == "wms.epcis:0:7"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"eventTime": None}, "event.eventTime: missing"),
        ({"eventTime": 1700000000}, "event.eventTime: expected a string, got int"),
        ({"eventTime": "yesterday"}, "event.eventTime: bad ISO 8601 timestamp"),
        ({"eventTime": "2024-03-01T10:00:00", "eventTimeZoneOffset": None}, "has no UTC offset"),
        ({"epcList": "urn:epc:id:sgtin:0614141.107346.1"}, "event.epcList: expected an array, got str"),
        ({"epcList": [42]}, "event.epcList[0]: expected a string, got int"),
        ({"quantityList": [{"epcClass": "urn:x", "quantity": "2"}]}, "quantityList[0].quantity: expected a number"),
        ({"quantityList": [{"quantity": 2}]}, "event.quantityList[0].epcClass: missing"),
        ({"bizStep": ["shipping"]}, "event.bizStep: expected a string, got list"),
        ({"bizLocation": "urn:epc:id:sgln:0614141.00888.0"}, "event.bizLocation: expected an object"),
        ({"readPoint": {}}, "event.readPoint.id: missing"),
        ({"bizTransactionList": [{"type": "po"}]}, "event.bizTransactionList[0].bizTransaction: missing"),
        ({"recordTime": "soon"}, "event.recordTime: bad ISO 8601 timestamp"),
        ({"errorDeclaration": {"reason": "did_not_occur"}}, "event.errorDeclaration.declarationTime: missing"),
        ({"errorDeclaration": {"declarationTime": "2024-03-01T10:00:00Z", "correctiveEventIDs": "x"}}, "array"),
    ],
)
def test_schema_errors_name_the_field(overrides: dict[str, Any], error: str) -> None:
    result = adapt(event(**overrides))
    assert result.dead_letter is not None, result
    assert result.dead_letter.reason is DeadLetterReason.SCHEMA_ERROR
    assert error in result.dead_letter.error


def test_schema_error_path_inside_a_document() -> None:
    document = {"type": "EPCISDocument", "epcisBody": {"eventList": [event(), event(eventTime=None)]}}
    result = adapt(document)
    assert result.dead_letter is not None
    assert result.dead_letter.error == "epcisBody.eventList[1].eventTime: missing"


def test_same_input_same_output(samples_dir: Path) -> None:
    payload = sample(samples_dir, "epcis2_aggregationevent.jsonld")
    assert adapt(payload, MASTER) == adapt(payload, MASTER)


# --- properties ----------------------------------------------------------------------------


def assert_one_outcome(result: AdapterResult) -> None:
    outcomes = [bool(result.events), result.dead_letter is not None, result.ignored_reason is not None]
    assert outcomes.count(True) == 1, result
    if result.dead_letter is not None:
        assert result.dead_letter.error
    for canonical in result.events:
        assert canonical.occurred_at.utcoffset() is not None
        assert canonical.event_id.startswith("epcis:")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    assert_one_outcome(adapt(payload, MASTER))


VALID_PAYLOADS = [
    (EPCIS_FIXTURES / "object_event_error_declaration.jsonld").read_bytes(),
    (EPCIS_FIXTURES / "query_document_digital_link.jsonld").read_bytes(),
    json.dumps(event()).encode(),
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(VALID_PAYLOADS),
    st.integers(min_value=0, max_value=4000),
    st.binary(max_size=8),
    st.booleans(),
)
def test_mutated_and_truncated_payloads_never_raise(base: bytes, cut: int, splice: bytes, truncate: bool) -> None:
    position = cut % (len(base) + 1)
    payload = base[:position] if truncate else base[:position] + splice + base[position + len(splice) :]
    assert_one_outcome(adapt(payload, MASTER))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)
EVENT_KEYS = [
    "type", "eventTime", "eventTimeZoneOffset", "recordTime", "eventID", "action", "bizStep", "disposition",
    "epcList", "quantityList", "childEPCs", "childQuantityList", "parentID", "readPoint", "bizLocation",
    "bizTransactionList", "errorDeclaration",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(EVENT_KEYS), JSON_VALUES, max_size=4), st.booleans())
def test_mistyped_fields_never_raise(replacements: dict[str, Any], aggregation: bool) -> None:
    base = event(type="AggregationEvent") if aggregation else event()
    base.update(replacements)
    assert_one_outcome(adapt({"type": "EPCISDocument", "epcisBody": {"eventList": [base]}}, MASTER))

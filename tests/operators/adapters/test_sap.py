"""SAP S/4HANA CloudEvents adapter: real samples, own fixtures for the five types, edge cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.adapters.sap import adapt_sap
from operators.master import EMPTY_MASTER, MasterData, Product, Site
from operators.model import (
    AdapterResult,
    DeadLetterReason,
    EventType,
    Line,
    SourceKind,
    TimePrecision,
    with_changes,
)
from tests.conftest import FIXTURES, RECEIVED, raw_message

SAP = FIXTURES / "sap"
MASTER = MasterData(
    products=(Product("TG11", "", "EA"), Product("TG12", "", "KG")),
    sites=(Site("1710", timezone="America/Los_Angeles"),),
)


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAP / name).read_text())
    return loaded


def adapt(doc: dict[str, Any] | str | bytes, master: MasterData = EMPTY_MASTER) -> AdapterResult:
    payload = doc if isinstance(doc, (str, bytes)) else json.dumps(doc)
    return adapt_sap(raw_message(payload, topic="erp.sap.events", offset=7), master)


def dead_error(result: AdapterResult, reason: DeadLetterReason = DeadLetterReason.SCHEMA_ERROR) -> str:
    assert result.dead_letter is not None, result
    assert result.dead_letter.reason == reason
    assert result.dead_letter.adapter == "sap_ce"
    return result.dead_letter.error


# --- the public samples: valid CloudEvents of a type without logistics meaning -------------


@pytest.mark.parametrize(
    ("name", "event_type"),
    [
        ("sap_s4_cloudevent_bp_created.json", "sap.s4.beh.businesspartner.v1.BusinessPartner.Created.v1"),
        ("sap_s4_cloudevent_bp_changed.json", "sap.s4.beh.businesspartner.v1.BusinessPartner.Changed.v1"),
    ],
)
def test_real_business_partner_samples_are_ignored_and_counted(samples_dir: Path, name: str, event_type: str) -> None:
    result = adapt_sap(raw_message((samples_dir / name).read_bytes()), EMPTY_MASTER)
    assert result.outcome == "ignored"
    assert result.ignored_reason == f"unsupported event type {event_type}"
    assert result.dead_letter is None
    assert result.events == ()


def test_real_sample_envelope_is_valid_once_the_type_is_supported(samples_dir: Path) -> None:
    # The sample's envelope facts (source, id, time) flow into the event when the type maps.
    doc = json.loads((samples_dir / "sap_s4_cloudevent_bp_created.json").read_text())
    doc["type"] = "sap.s4.beh.salesorder.v1.SalesOrder.Created.v1"
    doc["data"] = {"SalesOrder": "1"}
    (event,) = adapt(doc).events
    assert event.event_id == "sap:1fad4742-d03c-1edd-aeb8-ebbdc1e74ef9"
    assert event.source_system == "/default/sap.s4.beh/730431274"
    assert event.recorded_at == datetime(2023, 3, 3, 13, 29, 5, tzinfo=UTC)
    assert event.occurred_at == event.recorded_at  # no CreationDateTime: the event time
    assert event.time_precision == TimePrecision.S


# --- the five types ---------------------------------------------------------------------------


def test_sales_order_created() -> None:
    result = adapt(fixture("salesorder_created.json"))
    (event,) = result.events
    assert event.event_id == "sap:6f1b2c3d-0001-4a5b-9c8d-000000000001"
    assert event.event_type == EventType.ORDER_CREATED
    assert event.order_id == "4500012345"
    assert event.occurred_at == datetime(2024, 7, 30, 8, 14, 55, 123000, tzinfo=UTC)
    assert event.time_precision == TimePrecision.MS
    assert event.recorded_at == datetime(2024, 7, 30, 8, 15, 2, tzinfo=UTC)
    assert event.received_at == RECEIVED
    assert event.raw_ref == "erp.sap.events:0:7"
    assert event.source_kind == SourceKind.ERP
    assert event.source_format == "sap-ce"
    assert event.source_system == "/default/sap.s4.beh/S4HCLNT100"
    assert event.delivery_id is None
    assert result.warnings == ()


def test_delivery_created_with_lines_and_string_quantities() -> None:
    (event,) = adapt(fixture("delivery_created.json")).events
    assert event.event_type == EventType.ORDER_RELEASED
    assert event.event_id == "sap:6f1b2c3d-0002-4a5b-9c8d-000000000002"
    assert (event.delivery_id, event.order_id, event.site) == ("80001234", "4500012345", "1710")
    assert event.occurred_at == datetime(2024, 7, 30, 9, 0, tzinfo=UTC)
    assert event.lines == (Line(sku="TG11", quantity=10.0, uom="EA"), Line(sku="TG12", quantity=2.5, uom="KG"))


def test_delivery_created_odata_date_and_results_wrapper() -> None:
    (event,) = adapt(fixture("delivery_created_odata.json")).events
    assert event.delivery_id == "80001235"  # OData's DeliveryDocument key
    assert event.order_id == "4500012346"  # the items' common ReferenceSDDocument
    assert event.occurred_at == datetime(2024, 7, 30, 9, 9, tzinfo=UTC)  # /Date(1722330540000)/
    assert event.time_precision == TimePrecision.S
    assert [(line.sku, line.quantity) for line in event.lines] == [("TG11", 4.0), ("TG13", 1.0)]


def test_delivery_site_and_material_through_master_data() -> None:
    result = adapt(fixture("delivery_created_odata.json"), MASTER)
    (event,) = result.events
    assert event.site == "1710"
    assert event.lines[1].sku == "TG13"  # unknown material: kept, reported
    assert [str(w) for w in result.warnings] == [
        "mapping: sku 'TG13' (data.to_DeliveryDocumentItem[1].Material) not in the product master"
    ]

    doc = fixture("delivery_created.json")
    doc["data"]["ShippingPoint"] = "9999"
    result = adapt(doc, MASTER)
    assert result.events[0].site == "UNMAPPED:9999"
    assert [str(w) for w in result.warnings] == ["mapping: site '9999' (data.ShippingPoint) not in the site master"]
    assert adapt(doc).events[0].site == "9999"  # no master loaded: raw id, no warning
    assert adapt(doc).warnings == ()


def test_thin_delivery_notification_still_releases() -> None:
    doc = fixture("delivery_created.json")
    doc["data"] = {"OutboundDelivery": "80001299"}
    (event,) = adapt(doc).events
    assert (event.delivery_id, event.order_id, event.site, event.lines) == ("80001299", None, None, ())
    assert event.occurred_at == datetime(2024, 7, 30, 9, 0, 5, tzinfo=UTC)  # falls back to `time`


def test_goods_issue_posted_on_status_c() -> None:
    (event,) = adapt(fixture("delivery_changed_goods_issue.json")).events
    assert event.event_type == EventType.GOODS_ISSUE_POSTED
    assert event.event_id == "sap:6f1b2c3d-0004-4a5b-9c8d-000000000004"
    assert (event.delivery_id, event.order_id, event.site) == ("80001234", "4500012345", "1710")
    assert event.occurred_at == datetime(2024, 7, 30, 14, 30, tzinfo=UTC)  # ActualGoodsMovementDateTime
    assert event.recorded_at == datetime(2024, 7, 30, 14, 31, 10, tzinfo=UTC)
    assert [line.quantity for line in event.lines] == [10.0, 2.5]


def test_goods_issue_without_movement_time_uses_event_time() -> None:
    doc = fixture("delivery_changed_goods_issue.json")
    del doc["data"]["ActualGoodsMovementDateTime"]
    (event,) = adapt(doc).events
    assert event.occurred_at == datetime(2024, 7, 30, 14, 31, 10, tzinfo=UTC)


@pytest.mark.parametrize("status", ["A", "B", None, ""])
def test_delivery_changed_other_status_is_ignored(status: str | None) -> None:
    doc = fixture("delivery_changed_goods_issue.json")
    doc["data"]["OverallGoodsMovementStatus"] = status
    result = adapt(doc)
    assert result.outcome == "ignored"
    assert result.ignored_reason is not None
    assert "OverallGoodsMovementStatus" in result.ignored_reason


def test_billing_document_created() -> None:
    (event,) = adapt(fixture("billing_created.json")).events
    assert event.event_type == EventType.INVOICE_POSTED
    assert event.event_id == "sap:6f1b2c3d-0005-4a5b-9c8d-000000000005"
    assert (event.delivery_id, event.order_id) == ("80001234", "4500012345")
    assert event.attributes == {"billing_document": "90000321", "billing_document_type": "F2"}
    assert event.occurred_at == datetime(2024, 7, 31, 5, 59, 58, tzinfo=UTC)


def test_material_document_groups_per_movement_type_and_plant() -> None:
    result = adapt(fixture("material_document_created.json"))
    by_id = {event.event_id: event for event in result.events}
    base = "sap:6f1b2c3d-0006-4a5b-9c8d-000000000006"
    assert set(by_id) == {f"{base}#101/1710", f"{base}#101/1720", f"{base}#701/1710", f"{base}#702/1710",
                          f"{base}#551/1710"}  # fmt: skip
    gr = by_id[f"{base}#101/1710"]
    assert gr.event_type == EventType.GOODS_RECEIVED
    assert (gr.site, gr.reason_code) == ("1710", "101")
    assert gr.lines == (Line(sku="TG11", quantity=100.0, uom="EA"), Line(sku="TG12", quantity=20.0, uom="KG"))
    assert gr.attributes == {"material_document": "4900000101", "material_document_year": "2024"}
    assert gr.occurred_at == datetime(2024, 7, 31, 9, 59, 30, tzinfo=UTC)
    assert by_id[f"{base}#101/1720"].lines == (Line(sku="TG11", quantity=5.0, uom="EA"),)
    assert by_id[f"{base}#701/1710"].event_type == EventType.INVENTORY_ADJUSTED
    assert by_id[f"{base}#701/1710"].lines[0].quantity == 3.0
    assert by_id[f"{base}#702/1710"].lines == (Line(sku="TG12", quantity=-1.5, uom="KG"),)
    assert by_id[f"{base}#551/1710"].lines == (Line(sku="TG13", quantity=-2.0, uom="EA"),)
    # the 601 item (delivery goods issue) is in no event
    assert all(event.reason_code != "601" for event in result.events)
    assert result.warnings == ()


def test_material_document_unknown_movement_type_is_skipped_with_a_warning() -> None:
    doc = fixture("material_document_created.json")
    doc["data"]["items"][1]["GoodsMovementType"] = "311"  # transfer posting: not mapped
    result = adapt(doc)
    assert len(result.events) == 5
    assert all("TG12" not in [line.sku for line in e.lines] for e in result.events if e.reason_code == "101")
    assert [str(w) for w in result.warnings] == ["skipped: material document 4900000101: movement types 311 skipped"]


def test_material_document_single_event_has_no_discriminator() -> None:
    doc = fixture("material_document_created.json")
    doc["data"]["items"] = doc["data"]["items"][:2]  # two 101 items at one plant
    (event,) = adapt(doc).events
    assert event.event_id == "sap:6f1b2c3d-0006-4a5b-9c8d-000000000006"
    assert len(event.lines) == 2


def test_material_document_sums_repeated_material() -> None:
    doc = fixture("material_document_created.json")
    doc["data"]["items"] = [doc["data"]["items"][0], doc["data"]["items"][0]]
    (event,) = adapt(doc).events
    assert event.lines == (Line(sku="TG11", quantity=200.0, uom="EA"),)


def test_material_document_with_only_goods_issue_is_ignored() -> None:
    result = adapt(fixture("material_document_goods_issue_only.json"))
    assert result.outcome == "ignored"
    assert result.ignored_reason == "material document 4900000102 has no inventory movements (types 311, 601)"


def test_thin_material_document_is_ignored() -> None:
    doc = fixture("material_document_created.json")
    doc["data"] = {"MaterialDocument": "4900000103", "MaterialDocumentYear": "2024"}
    result = adapt(doc)
    assert result.outcome == "ignored"
    assert "no items" in (result.ignored_reason or "")


def test_material_document_plant_mapping() -> None:
    result = adapt(fixture("material_document_created.json"), MASTER)
    sites = {event.site for event in result.events}
    assert sites == {"1710", "UNMAPPED:1720"}
    assert "mapping: site '1720' (data.items[2].Plant) not in the site master" in [str(w) for w in result.warnings]


def test_customer_namespace_prefix_is_tolerated() -> None:
    doc = fixture("salesorder_created.json")
    doc["type"] = "ce.acme." + doc["type"]
    assert adapt(doc).events[0].event_type == EventType.ORDER_CREATED


def test_redelivery_gives_the_same_event_ids() -> None:
    doc = fixture("material_document_created.json")
    first = adapt_sap(raw_message(json.dumps(doc), offset=1), EMPTY_MASTER)
    again = adapt_sap(raw_message(json.dumps(doc), offset=2), EMPTY_MASTER)
    assert [e.event_id for e in first.events] == [e.event_id for e in again.events]
    assert [with_changes(e, raw_ref="") for e in first.events] == [with_changes(e, raw_ref="") for e in again.events]


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["specversion", "type", "source", "id", "time"])
def test_missing_envelope_field_is_a_schema_error_naming_it(field: str) -> None:
    doc = fixture("salesorder_created.json")
    del doc[field]
    assert field in dead_error(adapt(doc))


@pytest.mark.parametrize(
    ("field", "value"),
    [("type", 5), ("source", ""), ("id", None), ("time", "2024-07-30T08:15:02"), ("time", "yesterday"),
     ("specversion", 1.0)],
)  # fmt: skip
def test_mistyped_envelope_field_is_a_schema_error(field: str, value: object) -> None:
    doc = fixture("salesorder_created.json")
    doc[field] = value
    assert field in dead_error(adapt(doc))


def test_other_specversion_is_unsupported() -> None:
    doc = fixture("salesorder_created.json")
    doc["specversion"] = "0.3"
    assert "0.3" in dead_error(adapt(doc), DeadLetterReason.UNSUPPORTED)


def _item(doc: dict[str, Any], index: int) -> dict[str, Any]:
    item: dict[str, Any] = doc["data"]["to_DeliveryDocumentItem"][index]
    return item


@pytest.mark.parametrize(
    ("name", "mutate", "expected"),
    [
        ("salesorder_created.json", lambda d: d["data"].pop("SalesOrder"), "data.SalesOrder"),
        ("salesorder_created.json", lambda d: d.pop("data"), "data: expected an object"),
        ("salesorder_created.json", lambda d: d.update(data="SalesOrder=1"), "data: expected an object"),
        ("salesorder_created.json", lambda d: d["data"].update(CreationDateTime="/Date(abc)/"), "CreationDateTime"),
        ("delivery_created.json", lambda d: d["data"].pop("OutboundDelivery"), "data.OutboundDelivery"),
        ("delivery_created.json", lambda d: d["data"].update(to_DeliveryDocumentItem="x"), "to_DeliveryDocumentItem"),
        ("delivery_created.json", lambda d: _item(d, 1).update(ActualDeliveryQuantity="ten"),
         "to_DeliveryDocumentItem[1].ActualDeliveryQuantity"),
        ("delivery_created.json", lambda d: _item(d, 0).update(ActualDeliveryQuantity=True),
         "ActualDeliveryQuantity"),
        ("delivery_created.json", lambda d: _item(d, 0).update(ActualDeliveryQuantity="NaN"),
         "ActualDeliveryQuantity"),
        ("delivery_created.json", lambda d: _item(d, 0).pop("Material"),
         "to_DeliveryDocumentItem[0].Material"),
        ("delivery_created.json", lambda d: _item(d, 0).pop("DeliveryQuantityUnit"),
         "DeliveryQuantityUnit"),
        ("billing_created.json", lambda d: d["data"].update(BillingDocument=None), "data.BillingDocument"),
        ("material_document_created.json", lambda d: d["data"]["items"][2].pop("Plant"), "data.items[2].Plant"),
        ("material_document_created.json", lambda d: d["data"]["items"][3].pop("GoodsMovementType"),
         "data.items[3].GoodsMovementType"),
        ("material_document_created.json", lambda d: d["data"]["items"][0].update(QuantityInEntryUnit="1,5"),
         "QuantityInEntryUnit"),
        ("material_document_created.json", lambda d: d["data"]["items"].append(7), "data.items[7]"),
    ],
)  # fmt: skip
def test_bad_data_is_a_schema_error_naming_the_field(name: str, mutate: Any, expected: str) -> None:
    doc = fixture(name)
    mutate(doc)
    assert expected in dead_error(adapt(doc))


def test_decode_and_parse_errors() -> None:
    assert dead_error(adapt(b"\xff\xfe{}"), DeadLetterReason.DECODE_ERROR)
    assert dead_error(adapt((SAP / "billing_created.json").read_text()[:80]), DeadLetterReason.PARSE_ERROR)
    assert "JSON object" in dead_error(adapt("[1, 2]"))


# --- never raises -----------------------------------------------------------------------------

_VALID = [(SAP / path.name).read_bytes() for path in sorted(SAP.glob("*.json"))]


def _check_one_outcome(result: AdapterResult) -> None:
    outcomes = [bool(result.events), result.dead_letter is not None, result.ignored_reason is not None]
    assert outcomes.count(True) == 1
    if result.dead_letter is not None:
        assert result.dead_letter.error


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.tuples(st.sampled_from(_VALID), st.integers(0, 3000)).map(lambda p: p[0][: p[1]]),
        st.tuples(st.sampled_from(_VALID), st.integers(0, 3000), st.binary(min_size=1, max_size=3)).map(
            lambda p: p[0][: p[1]] + p[2] + p[0][p[1] + len(p[2]) :]
        ),
    )
)
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    _check_one_outcome(adapt_sap(raw_message(payload), MASTER))


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_FIELDS = ["SalesOrder", "OutboundDelivery", "ShippingPoint", "CreationDateTime", "to_DeliveryDocumentItem",
           "OverallGoodsMovementStatus", "ActualGoodsMovementDateTime", "items", "MaterialDocument",
           "BillingDocument", "Material", "Plant", "GoodsMovementType", "QuantityInEntryUnit",
           "ActualDeliveryQuantity", "specversion", "time", "data", "results"]  # fmt: skip


def _replace_fields(node: Any, field: str, value: Any) -> Any:
    if isinstance(node, dict):
        return {k: value if k == field else _replace_fields(v, field, value) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_fields(v, field, value) for v in node]
    return node


@settings(max_examples=250, deadline=None)
@given(st.sampled_from(_VALID), st.sampled_from(_FIELDS), _JSON_VALUES)
def test_mistyped_fields_never_raise(payload: bytes, field: str, value: Any) -> None:
    doc = _replace_fields(json.loads(payload), field, value)
    _check_one_outcome(adapt_sap(raw_message(json.dumps(doc)), MASTER))

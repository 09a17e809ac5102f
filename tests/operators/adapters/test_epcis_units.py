"""EPCIS counts of trade items are in the product's unit (EPCIS 2.0 7.3.3.3; issue 11 item 5): a
quantity element without `uom` and an instance-level EPC count items of their GTIN, so a
case-level GTIN counts cases, as the ERP does: one inventory position per sku, not EA and CA."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.adapters.epcis import adapt_epcis
from operators.adapters.snapshot import adapt_snapshot
from operators.master import EMPTY_MASTER, MasterData, Product, Site
from operators.model import EventType, Line
from tests.conftest import FIXTURES, raw_message

CASES = (FIXTURES / "epcis" / "case_level_counts.jsonld").read_bytes()
CASE_GTIN = "10614141073464"  # urn:epc:id:sgtin:0614141.107346.* : indicator digit 1, a case
MASTER = MasterData(
    products=(
        Product(sku="MAT-100-CS", gtin=CASE_GTIN, uom="CA"),
        Product(sku="MAT-200", gtin="04012345123456", uom="KGM"),
    ),
    sites=(Site(site="1010", gln="0614141073467", timezone="America/Chicago"),),
)


def test_case_level_gtin_counts_cases() -> None:
    result = adapt_epcis(raw_message(CASES, topic="wms.epcis"), MASTER)
    shipped, received = result.events
    assert shipped.event_type is EventType.SHIPMENT_DISPATCHED
    # 3 case SGTINs + 4 of the case class without uom: 7 cases; the SSCC is a container, not a line.
    assert shipped.lines == (Line("MAT-100-CS", 7.0, "CA"), Line("MAT-200", 12.5, "KGM"))
    assert received.event_type is EventType.GOODS_RECEIVED
    assert received.lines == (Line("MAT-100-CS", 20.0, "CA"),)
    assert shipped.site == received.site == "1010"
    assert result.warnings == ()


def test_without_the_product_the_count_stays_each() -> None:
    result = adapt_epcis(raw_message(CASES, topic="wms.epcis"), EMPTY_MASTER)
    assert result.events[0].lines == (Line(CASE_GTIN, 7.0, "EA"), Line("04012345123456", 12.5, "KGM"))
    unknown = MasterData(products=(Product(sku="OTHER", gtin="00000000000017", uom="CA"),))
    unmapped = adapt_epcis(raw_message(CASES, topic="wms.epcis"), unknown)
    assert unmapped.events[1].lines == (Line(f"UNMAPPED:{CASE_GTIN}", 20.0, "EA"),)


def test_epcis_and_erp_counts_of_one_sku_share_a_unit() -> None:
    snapshot = (
        b'{"snapshot_id": "erp-1010-0603", "system": "erp", "source_system": "S4", "as_of": "2024-06-03T00:00:00Z",'
        b' "site": "1010", "lines": [{"sku": "MAT-100-CS", "quantity": 140, "uom": "CA"}]}'
    )
    erp = adapt_snapshot(raw_message(snapshot, topic="stock.snapshots"), MASTER).events[0]
    wms = adapt_epcis(raw_message(CASES, topic="wms.epcis"), MASTER).events[1]
    assert {(line.sku, line.uom) for line in erp.lines} == {(line.sku, line.uom) for line in wms.lines}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab1:/ ")), max_size=20))
def test_business_id_is_the_last_non_empty_token(value: str) -> None:
    from operators.adapters.epcis_fields import business_id_of

    tokens = [token for token in re.split(r"[:/]", value) if token]
    assert business_id_of(value) == (tokens[-1] if tokens else value)

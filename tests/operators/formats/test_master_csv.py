"""Master-data CSV parsing (operators.formats.master_csv) and loading from a directory (sources.master_files)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.formats.master_csv import MasterDataError, parse_master, parse_products, parse_sites
from operators.master import Product, Site
from sources.master_files import load_master
from tests.conftest import FIXTURES

MASTER_DIR = FIXTURES / "master"
PRODUCTS_HEADER = "sku,gtin,uom,description\n"
SITES_HEADER = "site,gln,epcis_location,edi_warehouse_id,timezone\n"


def test_fixture_directory_loads() -> None:
    master = load_master(MASTER_DIR)
    assert master.products[0] == Product(
        sku="MAT-100",
        gtin="10614141073464",
        uom="EA",
        description="Item of GS1 TDS example SGTIN 0614141.107346",
        conversions=(("CS", 12.0), ("PL", 480.0)),
    )
    # GTIN-13 normalized to 14 digits; quoted description with a comma; empty gtin allowed.
    assert master.product("MAT-200") == Product(
        "MAT-200", "04012345123456", "KGM", "Bulk powder, LGTIN class 4012345.012345"
    )
    assert master.product("MAT-400") == Product("MAT-400", "", "EA", "Service item without GTIN")
    assert master.sku_for_gtin("4012345123456") == "MAT-200"
    assert master.sites[0] == Site("1000", "0614141073467", "", "WH1000", "America/Chicago")
    assert master.site_for("WH2000") == "2000"
    assert master.site_for("urn:epc:id:sgln:0614141.00888.0") == "2000"
    assert master.site_for("0012345111112") == "3000"
    assert master.timezone_of("3000") == "UTC"  # empty timezone -> UTC


def test_columns_in_any_order_extra_columns_ignored_bom_and_blank_lines() -> None:
    products = "\ufeffuom , Description,SKU,notes,gtin\r\nEA,Widget,W-1,ignored,96385074\r\n\r\n,,,,\r\n"
    assert parse_products(products) == (Product("W-1", "00000096385074", "EA", "Widget"),)
    sites = "timezone,site,edi_warehouse_id,gln,epcis_location\nEurope/Berlin,1000,WH1,,\n"
    assert parse_sites(sites) == (Site("1000", "", "", "WH1", "Europe/Berlin"),)


def test_gtin_lengths_normalized() -> None:
    text = PRODUCTS_HEADER + "A,96385074,EA,\nB,036000291452,EA,\nC,4006381333931,EA,\nD,10614141073464,CS,\n"
    assert [p.gtin for p in parse_products(text)] == [
        "00000096385074",
        "00036000291452",
        "04006381333931",
        "10614141073464",
    ]


def test_conversions_parsed() -> None:
    header = "sku,gtin,uom,description,conversions\n"
    (product,) = parse_products(header + "A,,EA,x, CS = 12 ; PL=480.5 ;\n")
    assert product.conversions == (("CS", 12.0), ("PL", 480.5))
    (plain,) = parse_products(header + "A,,EA,x,\n")
    assert plain.conversions == ()


@pytest.mark.parametrize(
    ("products", "message"),
    [
        ("sku,gtin,description\nA,,x\n", "products.csv line 1: missing column(s) uom"),
        ("", "products.csv: empty file, expected header sku,gtin,uom,description"),
        (PRODUCTS_HEADER + "A,4006381333932,EA,x\n", "products.csv line 2, column gtin: GTIN '4006381333932' has"),
        (PRODUCTS_HEADER + "A,12345,EA,x\n", "products.csv line 2, column gtin: GTIN '12345' must be 8, 12, 13"),
        (PRODUCTS_HEADER + "A,,EA,x\n\nA,,EA,y\n", "products.csv line 4, column sku: duplicate sku 'A' (line 2)"),
        (PRODUCTS_HEADER + ",,EA,x\n", "products.csv line 2, column sku: value is empty"),
        (PRODUCTS_HEADER + "A,,,x\n", "products.csv line 2, column uom: value is empty"),
        (PRODUCTS_HEADER + "A,,EA\n", "products.csv line 2: expected 4 fields, got 3"),
        (PRODUCTS_HEADER + "A,,EA,x,y\n", "products.csv line 2: expected 4 fields, got 5"),
        (PRODUCTS_HEADER + 'A,,EA,"unterminated\n', "products.csv line 2: malformed CSV"),
        (
            PRODUCTS_HEADER + "A,96385074,EA,x\nB,00000096385074,EA,y\n",
            "products.csv line 3, column gtin: GTIN 00000096385074 also used by sku 'A'",
        ),
        ("sku,sku,gtin,uom,description\n", "products.csv line 1: duplicate column(s) sku"),
    ],
)
def test_products_errors_name_file_line_column(products: str, message: str) -> None:
    with pytest.raises(MasterDataError) as caught:
        parse_master(products, SITES_HEADER)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("conversions", "message"),
    [
        ("CS12", "'CS12' is not UNIT=FACTOR"),
        ("=12", "'=12' is not UNIT=FACTOR"),
        ("CS=twelve", "factor 'twelve' of CS is not a number"),
        ("CS=0", "factor of CS must be a positive number"),
        ("CS=-1", "factor of CS must be a positive number"),
        ("CS=nan", "factor of CS must be a positive number"),
        ("CS=12;CS=10", "unit CS is the base unit or listed twice"),
        ("EA=1", "unit EA is the base unit or listed twice"),
    ],
)
def test_bad_conversions(conversions: str, message: str) -> None:
    text = f"sku,gtin,uom,description,conversions\nA,,EA,x,{conversions}\n"
    with pytest.raises(MasterDataError) as caught:
        parse_products(text)
    assert f"products.csv line 2, column conversions: {message}" in str(caught.value)


@pytest.mark.parametrize(
    ("sites", "message"),
    [
        ("site,gln\n1000,\n", "sites.csv line 1: missing column(s) epcis_location, edi_warehouse_id, timezone"),
        (SITES_HEADER + "1000,,,,Mars/Olympus\n", "sites.csv line 2, column timezone: unknown IANA time zone"),
        (SITES_HEADER + "1000,,,,America\n", "sites.csv line 2, column timezone: unknown IANA time zone"),
        (SITES_HEADER + "1000,,,,../etc/passwd\n", "sites.csv line 2, column timezone: unknown IANA time zone"),
        (SITES_HEADER + "1000,,,,UTC\n1000,,,,UTC\n", "sites.csv line 3, column site: duplicate site '1000'"),
        (SITES_HEADER + "1000,0614141007777,,,\n", "sites.csv line 2, column gln: GLN '0614141007777' has"),
        (SITES_HEADER + "1000,,,WH1,\n2000,,,WH1,\n", "sites.csv line 3, column edi_warehouse_id: 'WH1' already"),
        (SITES_HEADER + ",,,,\n1000", "sites.csv line 3: expected 5 fields, got 1"),
    ],
)
def test_sites_errors_name_file_line_column(sites: str, message: str) -> None:
    with pytest.raises(MasterDataError) as caught:
        parse_master(PRODUCTS_HEADER, sites)
    assert message in str(caught.value)


def test_header_only_files_give_empty_master() -> None:
    master = parse_master(PRODUCTS_HEADER, SITES_HEADER)
    assert master.empty


def test_quoted_field_spanning_lines_reports_its_end_line() -> None:
    text = PRODUCTS_HEADER + 'A,,EA,"two\nlines"\nB,1,EA,x\n'
    with pytest.raises(MasterDataError, match=re.escape("products.csv line 4, column gtin")):
        parse_products(text)


def test_load_master_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(MasterDataError, match=re.escape(f"directory {missing} does not exist")):
        load_master(missing)


@pytest.mark.parametrize("present", ["products.csv", "sites.csv"])
def test_load_master_missing_file(tmp_path: Path, present: str) -> None:
    (tmp_path / present).write_text(PRODUCTS_HEADER if present == "products.csv" else SITES_HEADER)
    absent = "sites.csv" if present == "products.csv" else "products.csv"
    with pytest.raises(MasterDataError, match=re.escape(f"file {tmp_path / absent} is missing")):
        load_master(tmp_path)


def test_load_master_errors_name_the_path(tmp_path: Path) -> None:
    (tmp_path / "products.csv").write_text(PRODUCTS_HEADER + "A,4006381333932,EA,x\n")
    (tmp_path / "sites.csv").write_text(SITES_HEADER)
    with pytest.raises(MasterDataError, match=re.escape(f"{tmp_path / 'products.csv'} line 2, column gtin")):
        load_master(tmp_path)


def test_load_master_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "products.csv").write_bytes(PRODUCTS_HEADER.encode() + b"A,,EA,caf\xe9\n")
    (tmp_path / "sites.csv").write_text(SITES_HEADER)
    with pytest.raises(MasterDataError, match=re.escape("products.csv is not UTF-8")):
        load_master(tmp_path)


def test_load_master_accepts_bom(tmp_path: Path) -> None:
    (tmp_path / "products.csv").write_bytes(b"\xef\xbb\xbf" + PRODUCTS_HEADER.encode() + b"A,,EA,x\n")
    (tmp_path / "sites.csv").write_text(SITES_HEADER)
    assert load_master(tmp_path).product("A") == Product("A", "", "EA", "x")


CSV_TOKENS = [*',"\n\r;=\ufeff ', "sku", "gtin", "uom", "EA", "96385074", "x", "\x00"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(CSV_TOKENS), max_size=40).map("".join))
def test_arbitrary_text_parses_or_raises_master_data_error(body: str) -> None:
    for products in (body, PRODUCTS_HEADER + body, "sku,gtin,uom,description,conversions\n" + body):
        try:
            master = parse_master(products, SITES_HEADER + body)
        except MasterDataError as exc:
            assert str(exc)
        else:
            assert all(product.sku and product.uom for product in master.products)

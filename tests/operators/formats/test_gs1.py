"""GS1 identifier helpers: check digits, EPC URNs, Digital Link, CBV vocabulary spellings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.formats.gs1 import (
    GS1Error,
    ProductRef,
    cbv_term,
    check_digit,
    gln_from_location,
    gtin_from_epc_parts,
    instance_gtin,
    is_valid_gtin,
    normalize_gln,
    normalize_gtin,
    parse_digital_link,
    parse_product_id,
    sscc_from_id,
)

# The GS1 Tag Data Standard's running example: SGTIN 0614141.107346.2017 is GTIN 10614141073464.
TDS_GTIN = "10614141073464"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("1061414107346", "4"),  # TDS example GTIN-14
        ("400638133393", "1"),  # GTIN-13 4006381333931
        ("03600029145", "2"),  # UPC-A 036000291452
        ("9638507", "4"),  # GTIN-8 96385074
        ("000000000000", "0"),  # (10 - 0 % 10) % 10: a sum of 0 gives 0, not 10
    ],
)
def test_check_digit(body: str, expected: str) -> None:
    assert check_digit(body) == expected


def test_check_digit_refuses_non_digits() -> None:
    with pytest.raises(GS1Error, match="not all digits"):
        check_digit("12a4")


@pytest.mark.parametrize(
    ("value", "gtin14"),
    [
        ("96385074", "00000096385074"),
        ("036000291452", "00036000291452"),
        ("4006381333931", "04006381333931"),
        (TDS_GTIN, TDS_GTIN),
        (" 4006381333931 ", "04006381333931"),
    ],
)
def test_normalize_gtin_pads_to_14(value: str, gtin14: str) -> None:
    assert normalize_gtin(value) == gtin14
    assert is_valid_gtin(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("4006381333932", "check digit 2, expected 1"),
        ("40063813339311", "check digit 1, expected 4"),
        ("12345", "must be 8, 12, 13 or 14 digits"),
        ("4006381333a31", "must be 8, 12, 13 or 14 digits"),
        ("", "must be 8, 12, 13 or 14 digits"),
        ("٤٠٠٦٣٨١٣٣٣٩٣١", "must be 8, 12, 13 or 14 digits"),  # Arabic-Indic digits are not GS1 digits
    ],
)
def test_normalize_gtin_rejects(value: str, message: str) -> None:
    with pytest.raises(GS1Error) as caught:
        normalize_gtin(value)
    assert message in str(caught.value)
    assert not is_valid_gtin(value)


def test_normalize_gln() -> None:
    assert normalize_gln("0614141007776") == "0614141007776"
    with pytest.raises(GS1Error, match="expected 6"):
        normalize_gln("0614141007777")
    with pytest.raises(GS1Error, match="13 digits"):
        normalize_gln("061414100777")


def test_gtin_from_epc_parts_moves_indicator_to_front() -> None:
    assert gtin_from_epc_parts("0614141", "107346") == TDS_GTIN
    assert gtin_from_epc_parts("0614141", "10734") is None  # 12 digits, not 13
    assert gtin_from_epc_parts("06141", "10734600") is None  # company prefix shorter than 6


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("urn:epc:id:sgtin:0614141.107346.2017", ProductRef(TDS_GTIN, serial="2017")),
        ("URN:EPC:ID:SGTIN:0614141.107346.2017", ProductRef(TDS_GTIN, serial="2017")),
        ("urn:epc:id:sgtin:0614141.107346.AB%2FC.1", ProductRef(TDS_GTIN, serial="AB/C.1")),
        ("urn:epc:class:lgtin:4012345.012345.998877", ProductRef("04012345123456", lot="998877")),
        ("urn:epc:idpat:sgtin:4012345.098765.*", ProductRef("04012345987652")),
        ("https://id.gs1.org/01/10614141073464/21/2017", ProductRef(TDS_GTIN, serial="2017")),
        ("https://example.com/01/10614141073464/21/2017?linkType=all#x", ProductRef(TDS_GTIN, serial="2017")),
        ("https://brand.example/a/b/01/10614141073464/21/S%2F1", ProductRef(TDS_GTIN, serial="S/1")),
        ("https://id.gs1.org/01/04012345123456/10/LOT7", ProductRef("04012345123456", lot="LOT7")),
        ("https://id.gs1.org/01/4012345123456", ProductRef("04012345123456")),  # GTIN-13 in the path
        ("https://id.gs1.org/gtin/10614141073464/ser/9", ProductRef(TDS_GTIN, serial="9")),  # DL 1.0 names
    ],
)
def test_parse_product_id(uri: str, expected: ProductRef) -> None:
    assert parse_product_id(uri) == expected


def test_instance_only_with_serial() -> None:
    assert parse_product_id("urn:epc:id:sgtin:0614141.107346.2017").is_instance  # type: ignore[union-attr]
    assert not parse_product_id("urn:epc:class:lgtin:4012345.012345.1").is_instance  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "uri",
    [
        "urn:epc:idpat:sgtin:4012345.*.*",  # no single GTIN
        "urn:epc:id:sscc:0614141.1234567890",
        "urn:epc:id:sgtin:0614141.107346",  # serial missing
        "urn:epc:id:sgtin:0614141.10734.1",  # 12 digits
        "urn:epc:id:grai:0614141.12345.400",
        "https://id.gs1.org/01/10614141073465/21/1",  # bad check digit
        "https://id.gs1.org/00/106141412345678908",
        "https://example.com/products/42",
        "not a uri",
        "",
    ],
)
def test_parse_product_id_rejects(uri: str) -> None:
    assert parse_product_id(uri) is None


def test_sscc() -> None:
    # TDS example: urn:epc:id:sscc:0614141.1234567890 is SSCC 106141412345678908.
    assert sscc_from_id("urn:epc:id:sscc:0614141.1234567890") == "106141412345678908"
    assert sscc_from_id("https://id.gs1.org/00/106141412345678908") == "106141412345678908"
    assert sscc_from_id("https://id.gs1.org/00/106141412345678909") is None
    assert sscc_from_id("urn:epc:id:sgtin:0614141.107346.2017") is None


def test_gln_from_location() -> None:
    # TDS example: urn:epc:id:sgln:0614141.00777.0 is GLN 0614141007776.
    assert gln_from_location("urn:epc:id:sgln:0614141.00777.0") == "0614141007776"
    assert gln_from_location("urn:epc:id:sgln:0614141.07346.1234") == "0614141073467"
    assert gln_from_location("https://id.gs1.org/414/0614141007776/254/12") == "0614141007776"
    assert gln_from_location("https://id.gs1.org/414/0614141007775") is None
    assert gln_from_location("urn:epc:id:sgln:0614141.0077.0") is None
    assert gln_from_location("WH1") is None


def test_parse_digital_link_elements() -> None:
    assert parse_digital_link("https://id.gs1.org/01/10614141073464/10/L1/21/S1") == {
        "01": TDS_GTIN,
        "10": "L1",
        "21": "S1",
    }
    assert parse_digital_link("urn:epc:id:sgtin:0614141.107346.2017") is None
    assert parse_digital_link("http://[bad") is None


@pytest.mark.parametrize(
    "value",
    ["shipping", "Shipping", "https://ref.gs1.org/cbv/BizStep-shipping", "urn:epcglobal:cbv:bizstep:shipping"],
)
def test_cbv_term_three_spellings(value: str) -> None:
    assert cbv_term(value) == "shipping"


def test_cbv_term_other_vocabularies() -> None:
    assert cbv_term("https://ref.gs1.org/cbv/Disp-in_transit") == "in_transit"
    assert cbv_term("urn:epcglobal:cbv:disp:in_transit") == "in_transit"
    assert cbv_term("https://ref.gs1.org/cbv/BTT-desadv") == "desadv"
    assert cbv_term("urn:epcglobal:cbv:btt:po") == "po"
    assert cbv_term("urn:epcglobal:cbv:er:incorrect_data") == "incorrect_data"
    user_vocab = "http://epcis.example.org/hc/bizstep/summarising_discharge"
    assert cbv_term(user_vocab) == user_vocab


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789", min_size=7, max_size=13).filter(lambda b: len(b) in (7, 11, 12, 13)))
def test_any_body_with_its_check_digit_is_a_valid_gtin(body: str) -> None:
    gtin = body + check_digit(body)
    assert normalize_gtin(gtin) == gtin.zfill(14)
    wrong = gtin[:-1] + str((int(gtin[-1]) + 1) % 10)
    assert not is_valid_gtin(wrong)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_parsers_never_raise(text: str) -> None:
    for candidate in (text, "urn:epc:id:sgtin:" + text, "https://id.gs1.org/01/" + text):
        ref = parse_product_id(candidate)
        assert ref is None or (len(ref.gtin) == 14 and is_valid_gtin(ref.gtin))
        sscc_from_id(candidate)
        gln_from_location(candidate)
        assert isinstance(cbv_term(candidate), str)


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("0123456789.*% a\n")), max_size=24),
    st.sampled_from(["urn:epc:id:sgtin:", "URN:EPC:ID:SGTIN:", " urn:epc:id:sgtin:", "urn:epc:class:lgtin:"]),
)
def test_instance_gtin_agrees_with_parse_product_id(rest: str, prefix: str) -> None:
    uri = prefix + rest
    ref = parse_product_id(uri)
    assert instance_gtin(uri) == (ref.gtin if ref is not None and ref.is_instance else None)
    assert instance_gtin("urn:epc:id:sgtin:0614141.107346.2018") == "10614141073464"

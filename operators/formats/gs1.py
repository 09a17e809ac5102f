"""GS1 identifiers: GTIN / GLN check digits and the EPC URN and Digital Link forms that carry them.

Pure string functions (no I/O). The EPC URI forms follow the GS1 EPC Tag Data Standard (TDS):
`urn:epc:id:sgtin:<CompanyPrefix>.<Indicator+ItemRef>.<Serial>` has no check digit, so the
GTIN-14 is rebuilt as indicator + company prefix + item ref + a computed check digit. GS1 Digital
Link URIs (`https://<any host>/[prefix/]01/<gtin>/21/<serial>`) carry the GTIN with its check digit.
Also here: CBV vocabulary values (bizStep, disposition, BTT) in their three spellings -> the bare word.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

GTIN_LENGTHS = (8, 12, 13, 14)


class GS1Error(ValueError):
    """An identifier that is not a valid GS1 key; the message names the value."""


def check_digit(body: str) -> str:
    """The GS1 mod-10 check digit for `body` (all digits, without the check digit).

    Weights alternate 3, 1, 3, ... starting from the rightmost body digit (GS1 General
    Specifications 7.9.1), which makes the result independent of left zero-padding.
    """
    if not body.isascii() or not body.isdigit():
        raise GS1Error(f"check digit: {body!r} is not all digits")
    reversed_body = body[::-1]
    total = 3 * sum(map(int, reversed_body[0::2])) + sum(map(int, reversed_body[1::2]))
    return str((10 - total % 10) % 10)


def normalize_gtin(value: str) -> str:
    """A GTIN-8/12/13/14 -> the 14-digit form, after checking its check digit."""
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) not in GTIN_LENGTHS:
        raise GS1Error(f"GTIN {value!r} must be 8, 12, 13 or 14 digits")
    expected = check_digit(text[:-1])
    if text[-1] != expected:
        raise GS1Error(f"GTIN {value!r} has check digit {text[-1]}, expected {expected}")
    return text.zfill(14)


def normalize_gln(value: str) -> str:
    """A GLN (13 digits) after checking its check digit."""
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) != 13:
        raise GS1Error(f"GLN {value!r} must be 13 digits")
    expected = check_digit(text[:-1])
    if text[-1] != expected:
        raise GS1Error(f"GLN {value!r} has check digit {text[-1]}, expected {expected}")
    return text


def is_valid_gtin(value: str) -> bool:
    try:
        normalize_gtin(value)
    except GS1Error:
        return False
    return True


def gtin_from_epc_parts(company_prefix: str, indicator_item_ref: str) -> str | None:
    """TDS SGTIN/LGTIN fields -> GTIN-14, or None when the fields are not a valid split.

    The company prefix is 6-12 digits and the two fields together are 13 digits; the first
    digit of the second field is the GTIN indicator digit (TDS 6.3.1).
    """
    return _gtin_from_epc_parts(company_prefix, indicator_item_ref)


# EPCIS events list one EPC per item: many serials of few products. The GTIN of a product's
# fields is pure and asked for again and again, so remember recent ones.
@functools.lru_cache(maxsize=4096)
def _gtin_from_epc_parts(company_prefix: str, indicator_item_ref: str) -> str | None:
    digits = company_prefix + indicator_item_ref
    if not (digits.isascii() and digits.isdigit()) or len(digits) != 13:
        return None
    if not 6 <= len(company_prefix) <= 12:
        return None
    body = indicator_item_ref[0] + company_prefix + indicator_item_ref[1:]
    return body + check_digit(body)


@dataclass(frozen=True, slots=True)
class ProductRef:
    """A product identified by an EPC / EPC class: its GTIN-14, and serial or lot if any."""

    gtin: str
    serial: str | None = None
    lot: str | None = None

    @property
    def is_instance(self) -> bool:
        """One physical item (SGTIN, or a Digital Link with AI 21): counts as 1 EA."""
        return self.serial is not None


_EPC_URN = re.compile(r"^urn:epc:(id|class|idpat):([a-z0-9-]+):(.*)$", re.IGNORECASE)

# Digital Link primary-key AIs and their legacy short names (DL 1.0 allowed `gtin`, `ser`, ...).
_DL_ALIASES = {"gtin": "01", "ser": "21", "lot": "10", "sscc": "00", "gln": "414", "glnx": "254"}
_DL_KEYS = {"00", "01", "414", "8004", "8003", "253"}  # primary keys that start the key path
_DL_KNOWN_AIS = {"00", "01", "10", "21", "22", "235", "254", "414", "8004", "8003", "253"}


def _split_epc_urn(uri: str, fields: int) -> tuple[str, str, list[str]] | None:
    """(form, scheme, fields): the last field keeps any further dots (TDS serials may hold them)."""
    match = _EPC_URN.match(uri.strip())
    if not match:
        return None
    return match.group(1).lower(), match.group(2).lower(), match.group(3).split(".", fields - 1)


def parse_digital_link(uri: str) -> dict[str, str] | None:
    """A GS1 Digital Link URI -> {AI: value} from its path, or None if it is not one.

    Any host and any path prefix are allowed (DL 1.2 section 4); the key path starts at the
    first segment that is a known AI followed by a value. Query and fragment are dropped.
    """
    text = uri.strip()
    if not text.lower().startswith(("http://", "https://")):
        return None
    try:
        path = urlsplit(text).path
    except ValueError:
        return None
    segments = [segment for segment in path.split("/") if segment]
    start = next(
        (index for index, segment in enumerate(segments) if _DL_ALIASES.get(segment.lower(), segment) in _DL_KEYS),
        None,
    )
    if start is None:
        return None
    pairs = segments[start:]
    elements: dict[str, str] = {}
    for index in range(0, len(pairs) - 1, 2):
        ai = _DL_ALIASES.get(pairs[index].lower(), pairs[index])
        if ai not in _DL_KNOWN_AIS:
            break
        elements[ai] = unquote(pairs[index + 1])
    return elements or None


def parse_product_id(uri: str) -> ProductRef | None:
    """SGTIN / LGTIN / SGTIN idpat URN or a Digital Link with AI 01 -> ProductRef, else None.

    `urn:epc:idpat:sgtin:4012345.098765.*` is a class pattern (all serials of one GTIN);
    a pattern that wildcards the item reference names no single GTIN and yields None.
    """
    return _parse_product_id(uri)


# Quantity lists name the same product classes (LGTIN, idpat) on event after event; the parse
# is pure and its result immutable, so remember recent ones.
@functools.lru_cache(maxsize=4096)
def _parse_product_id(uri: str) -> ProductRef | None:
    parts = _split_epc_urn(uri, 3)
    if parts is not None:
        form, scheme, fields = parts
        if len(fields) != 3:
            return None
        gtin = gtin_from_epc_parts(fields[0], fields[1])
        if gtin is None:
            return None
        if form == "id" and scheme == "sgtin" and fields[2] and fields[2] != "*":
            return ProductRef(gtin=gtin, serial=unquote(fields[2]))
        if form == "class" and scheme == "lgtin" and fields[2]:
            return ProductRef(gtin=gtin, lot=unquote(fields[2]))
        if form == "idpat" and scheme == "sgtin" and fields[2] == "*":
            return ProductRef(gtin=gtin)
        return None
    elements = parse_digital_link(uri)
    if not elements or "01" not in elements:
        return None
    try:
        gtin = normalize_gtin(elements["01"])
    except GS1Error:
        return None
    return ProductRef(gtin=gtin, serial=elements.get("21") or None, lot=elements.get("10") or None)


_SGTIN_ID = "urn:epc:id:sgtin:"


def instance_gtin(uri: str) -> str | None:
    """The GTIN-14 of an instance-level EPC (one trade item: an SGTIN, a Digital Link with a
    serial), else None. The same answer as `parse_product_id(uri)` with `is_instance`.

    EPC lists name one serial per item, so a cache of whole URIs always misses: the plain SGTIN
    URN is split here and only its class part (company prefix, item reference) is looked up.
    """
    if uri.startswith(_SGTIN_ID):
        fields = uri[len(_SGTIN_ID) :].split(".", 2)
        serial = fields[-1]
        # (A serial ending in a blank or holding a newline goes the general way, as the URN
        # pattern reads those differently.)
        if len(fields) == 3 and serial and serial != "*" and not serial[-1].isspace() and "\n" not in serial:
            return gtin_from_epc_parts(fields[0], fields[1])
    ref = parse_product_id(uri)
    return ref.gtin if ref is not None and ref.is_instance else None


def sscc_from_id(uri: str) -> str | None:
    """An SSCC URN (`urn:epc:id:sscc:0614141.1234567890`) or Digital Link (/00/) -> SSCC-18."""
    parts = _split_epc_urn(uri, 2)
    if parts is not None:
        form, scheme, fields = parts
        if form != "id" or scheme != "sscc" or len(fields) != 2:
            return None
        company_prefix, serial_ref = fields
        digits = company_prefix + serial_ref
        if not (digits.isascii() and digits.isdigit()) or len(digits) != 17 or not serial_ref:
            return None
        # TDS 6.3.2: the extension digit leads the serial reference and moves to the front.
        body = serial_ref[0] + company_prefix + serial_ref[1:]
        return body + check_digit(body)
    elements = parse_digital_link(uri)
    sscc = elements.get("00") if elements else None
    if sscc is None or not (sscc.isascii() and sscc.isdigit()) or len(sscc) != 18:
        return None
    return sscc if check_digit(sscc[:-1]) == sscc[-1] else None


def gln_from_location(uri: str) -> str | None:
    """An SGLN URN (`urn:epc:id:sgln:0614141.00777.0`) or Digital Link (/414/) -> GLN-13.

    The SGLN extension (third field) names a sub-location; the GLN is the first two fields
    plus a computed check digit (TDS 6.3.3).
    """
    parts = _split_epc_urn(uri, 3)
    if parts is not None:
        form, scheme, fields = parts
        if form != "id" or scheme != "sgln" or len(fields) != 3:
            return None
        body = fields[0] + fields[1]
        if not (body.isascii() and body.isdigit()) or len(body) != 12:
            return None
        return body + check_digit(body)
    elements = parse_digital_link(uri)
    gln = elements.get("414") if elements else None
    if gln is None:
        return None
    try:
        return normalize_gln(gln)
    except GS1Error:
        return None


# CBV 2.0 vocabulary spellings (domain-notes 1.7): the JSON-LD bare word, the GS1 web URI
# `https://ref.gs1.org/cbv/BizStep-shipping` and the EPCIS 1.x URN `urn:epcglobal:cbv:bizstep:shipping`.
_CBV_URI = re.compile(r"^https?://ref\.gs1\.org/cbv/([A-Za-z]+)-(.+)$")
_CBV_URN = re.compile(r"^urn:epcglobal:cbv:([a-z]+):(.+)$", re.IGNORECASE)


def cbv_term(value: str) -> str:
    """A CBV vocabulary value in any of its three spellings -> the bare CBV word.

    `BizStep-`, `Disp-`, `BTT-`, `ER-` (and their URN forms) all reduce to the word after the
    prefix; a bare word is lower-cased (CBV words are lower-case); any other URI (a user
    vocabulary, `vocab-other-uri`) is returned unchanged.
    """
    return _cbv_term(value)


@functools.lru_cache(maxsize=1024)  # a handful of vocabulary values, on every event
def _cbv_term(value: str) -> str:
    text = value.strip()
    match = _CBV_URI.match(text) or _CBV_URN.match(text)
    if match:
        return match.group(2).lower()
    if ":" in text or "/" in text:
        return text
    return text.lower()

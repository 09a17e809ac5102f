"""Parse the master-data CSV files (design.md 2.4) into `MasterData`. Pure: text in, data out.

products.csv: `sku,gtin,uom,description` and an optional `conversions` (`CS=12;PL=480`: one CS
is 12 base units). sites.csv: `site,gln,epcis_location,edi_warehouse_id,timezone` and an optional
`name` (how partners name the site in X12 N102, for local times).
Every documented column must be in the header (any order; `conversions`, `name` may be absent); unknown
extra columns are ignored (ERP exports carry more). A malformed file is refused as
a whole with a `MasterDataError` naming the file, line and column: loading half a master would
turn every id it misses into an UNMAPPED mapping warning, which is harder to diagnose.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from operators.formats.gs1 import GS1Error, normalize_gln, normalize_gtin
from operators.master import MasterData, Product, Site

PRODUCT_COLUMNS = ("sku", "gtin", "uom", "description")
PRODUCT_OPTIONAL = ("conversions",)
SITE_COLUMNS = ("site", "gln", "epcis_location", "edi_warehouse_id", "timezone")


class MasterDataError(ValueError):
    """A master-data file that cannot be used; the message names file, line and column."""


def parse_master(
    products_csv: str,
    sites_csv: str,
    *,
    products_name: str = "products.csv",
    sites_name: str = "sites.csv",
) -> MasterData:
    """Both files' text -> MasterData. `*_name` is what error messages call the file."""
    return MasterData(
        products=parse_products(products_csv, name=products_name),
        sites=parse_sites(sites_csv, name=sites_name),
    )


def parse_products(text: str, *, name: str = "products.csv") -> tuple[Product, ...]:
    products: list[Product] = []
    sku_lines: dict[str, int] = {}
    gtin_owner: dict[str, str] = {}
    for line, row in _records(text, name, PRODUCT_COLUMNS):
        sku = _required(row, "sku", name, line)
        if sku in sku_lines:
            raise MasterDataError(f"{name} line {line}, column sku: duplicate sku {sku!r} (line {sku_lines[sku]})")
        sku_lines[sku] = line
        gtin = ""
        if row["gtin"]:
            try:
                gtin = normalize_gtin(row["gtin"])
            except GS1Error as exc:
                raise MasterDataError(f"{name} line {line}, column gtin: {exc}") from exc
            # Two skus with one GTIN would make GTIN -> sku mapping ambiguous.
            if gtin in gtin_owner:
                raise MasterDataError(
                    f"{name} line {line}, column gtin: GTIN {gtin} also used by sku {gtin_owner[gtin]!r}"
                )
            gtin_owner[gtin] = sku
        uom = _required(row, "uom", name, line)
        conversions = _conversions(row.get("conversions", ""), uom, name, line)
        products.append(Product(sku=sku, gtin=gtin, uom=uom, description=row["description"], conversions=conversions))
    return tuple(products)


def parse_sites(text: str, *, name: str = "sites.csv") -> tuple[Site, ...]:
    sites: list[Site] = []
    site_lines: dict[str, int] = {}
    alias_owner: dict[str, str] = {}
    for line, row in _records(text, name, SITE_COLUMNS):
        site = _required(row, "site", name, line)
        if site in site_lines:
            raise MasterDataError(f"{name} line {line}, column site: duplicate site {site!r} (line {site_lines[site]})")
        site_lines[site] = line
        gln = row["gln"]
        if gln:
            try:
                gln = normalize_gln(gln)
            except GS1Error as exc:
                raise MasterDataError(f"{name} line {line}, column gln: {exc}") from exc
        # An alias (GLN, EPCIS location, EDI warehouse id) naming two sites is ambiguous.
        for column in ("gln", "epcis_location", "edi_warehouse_id"):
            alias = gln if column == "gln" else row[column]
            if not alias:
                continue
            owner = alias_owner.get(alias)
            if owner is not None and owner != site:
                raise MasterDataError(
                    f"{name} line {line}, column {column}: {alias!r} already identifies site {owner!r}"
                )
            alias_owner[alias] = site
        sites.append(
            Site(
                site=site,
                gln=gln,
                epcis_location=row["epcis_location"],
                edi_warehouse_id=row["edi_warehouse_id"],
                timezone=_timezone(row["timezone"], name, line),
                name=row.get("name", ""),
            )
        )
    return tuple(sites)


def _records(text: str, name: str, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: stripped value}) per data row; blank lines are skipped."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    try:
        header_row = next(reader, None)
        if header_row is None:
            raise MasterDataError(f"{name}: empty file, expected header {','.join(required)}")
        header = [column.strip().lower() for column in header_row]
        missing = [column for column in required if column not in header]
        if missing:
            raise MasterDataError(
                f"{name} line 1: missing column(s) {', '.join(missing)}; header is {','.join(header)}"
            )
        duplicated = sorted({column for column in header if column and header.count(column) > 1})
        if duplicated:
            raise MasterDataError(f"{name} line 1: duplicate column(s) {', '.join(duplicated)}")
        for fields in reader:
            if not fields or all(not value.strip() for value in fields):
                continue
            if len(fields) != len(header):
                raise MasterDataError(
                    f"{name} line {reader.line_num}: expected {len(header)} fields, got {len(fields)}"
                )
            yield (
                reader.line_num,
                {column: value.strip() for column, value in zip(header, fields, strict=True) if column},
            )
    except csv.Error as exc:
        raise MasterDataError(f"{name} line {reader.line_num}: malformed CSV: {exc}") from exc


def _required(row: dict[str, str], column: str, name: str, line: int) -> str:
    value = row[column]
    if not value:
        raise MasterDataError(f"{name} line {line}, column {column}: value is empty")
    return value


def _conversions(text: str, uom: str, name: str, line: int) -> tuple[tuple[str, float], ...]:
    """`CS=12;PL=480` -> (("CS", 12.0), ("PL", 480.0)): how many base units one alt unit is."""
    conversions: list[tuple[str, float]] = []
    for item in text.split(";"):
        if not item.strip():
            continue
        unit, sep, factor_text = (part.strip() for part in item.partition("="))
        where = f"{name} line {line}, column conversions"
        if not sep or not unit:
            raise MasterDataError(f"{where}: {item.strip()!r} is not UNIT=FACTOR")
        try:
            factor = float(factor_text)
        except ValueError:
            raise MasterDataError(f"{where}: factor {factor_text!r} of {unit} is not a number") from None
        if not math.isfinite(factor) or factor <= 0:
            raise MasterDataError(f"{where}: factor of {unit} must be a positive number, got {factor_text!r}")
        if unit == uom or any(unit == known for known, _ in conversions):
            raise MasterDataError(f"{where}: unit {unit} is the base unit or listed twice")
        conversions.append((unit, factor))
    return tuple(conversions)


def _timezone(value: str, name: str, line: int) -> str:
    """An IANA zone name; empty -> UTC (the documented default of Site.timezone)."""
    if not value:
        return "UTC"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a directory such as "America"
        raise MasterDataError(f"{name} line {line}, column timezone: unknown IANA time zone {value!r}") from exc
    return value

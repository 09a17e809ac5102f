"""What an EPCIS event carries besides its kind and time: business transactions, the location
that is its site, and the objects that are its lines (design.md 2.3; EPCIS 2.0 sections 7.3, 7.4).
Also the context and the field readers the EPCIS adapter shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from operators.adapters.mapping import MasterMapping
from operators.formats.gs1 import cbv_term, gln_from_location, instance_gtin, parse_product_id, sscc_from_id
from operators.formats.timeparse import TimeParseError, parse_iso
from operators.model import Line, RawMessage, TimePrecision, WarningKind

_BTT_FIELD = {"desadv": "delivery_id", "po": "order_id", "bol": "shipment_ref"}


class EpcisSchemaError(Exception):
    """A well-formed document with a missing or mistyped field; the message names the field."""


@dataclass
class EpcisContext:
    mapping: MasterMapping
    raw: RawMessage
    source_system: str
    creation_date: datetime | None


def read_biz_transactions(epcis_event: dict[str, Any], path: str) -> tuple[dict[str, str], list[str]]:
    """bizTransactionList -> canonical reference fields and all `type=id` pairs.

    The business id is the last `:`- or `/`-separated token of the value: CBV URNs
    (`urn:epcglobal:cbv:bt:<gln>:<id>`), HTTP URIs and plain ids all reduce to it.
    The first value of a type wins; all of them stay in the `biz_transactions` attribute.
    """
    entries = epcis_event.get("bizTransactionList", [])
    where = f"{path}.bizTransactionList"
    if not isinstance(entries, list):
        raise EpcisSchemaError(f"{where}: expected an array, got {kind_of(entries)}")
    refs: dict[str, str] = {}
    pairs: list[str] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise EpcisSchemaError(f"{where}[{index}]: expected an object, got {kind_of(entry)}")
        value, type_raw = entry.get("bizTransaction"), entry.get("type")
        if type(value) is str and (type_raw is None or type(type_raw) is str):  # the usual case
            value, type_raw = value.strip() or None, type_raw.strip() or None if type_raw is not None else None
        else:
            value = field_str(entry, "bizTransaction", f"{where}[{index}]")
            type_raw = field_str(entry, "type", f"{where}[{index}]")
        if not value:
            raise EpcisSchemaError(f"{where}[{index}].bizTransaction: missing")
        btt = cbv_term(type_raw) if type_raw else ""
        business_id = business_id_of(value)
        pairs.append(f"{btt}={business_id}" if btt else business_id)
        canonical_field = _BTT_FIELD.get(btt)
        if canonical_field and canonical_field not in refs:
            refs[canonical_field] = business_id
    return refs, pairs


def business_id_of(value: str) -> str:
    """The last `:`- or `/`-separated token that is not empty; the value itself if none is."""
    trimmed = value.rstrip(":/")
    return trimmed[max(trimmed.rfind(":"), trimmed.rfind("/")) + 1 :] if trimmed else value


def event_site(epcis_event: dict[str, Any], path: str, ctx: EpcisContext, attributes: dict[str, str]) -> str | None:
    """bizLocation.id (else readPoint.id) -> site via the site master; the SGLN's GLN as fallback."""
    location_ids: dict[str, str] = {}
    for key, attribute in (("bizLocation", "biz_location"), ("readPoint", "read_point")):
        holder = epcis_event.get(key)
        if holder is None:
            continue
        if not isinstance(holder, dict):
            raise EpcisSchemaError(f"{path}.{key}: expected an object with an id, got {kind_of(holder)}")
        location_id = field_str(holder, "id", f"{path}.{key}")
        if not location_id:
            raise EpcisSchemaError(f"{path}.{key}.id: missing")
        location_ids[key] = attributes[attribute] = location_id
    key = "bizLocation" if "bizLocation" in location_ids else "readPoint"
    raw_id = location_ids.get(key)
    if raw_id is None:
        return None
    return ctx.mapping.site(raw_id, f"{path}.{key}.id", alias=gln_from_location)


def event_lines(
    epcis_event: dict[str, Any], path: str, instance_key: str, quantity_key: str, ctx: EpcisContext
) -> tuple[Line, ...]:
    """Instance EPCs and quantity elements -> lines summed per (sku, uom).

    An instance EPC is one trade item of its GTIN, and a quantity without `uom` is a count of
    them (EPCIS 2.0 7.3.3.3): their unit is the product's unit in the master (a case-level GTIN
    counts cases), `EA` when the product is unknown. SSCCs (pallets / cases by logistic unit)
    are containers, not products: they are not lines.
    """
    totals: dict[tuple[str, str], float] = {}
    trade_items: dict[str, tuple[str, str]] = {}  # GTIN -> (sku, unit): EPCs repeat a few GTINs

    def trade_item(gtin: str, key: str) -> tuple[str, str]:
        found = trade_items.get(gtin)
        if found is None:
            found = trade_items[gtin] = trade_item_of(gtin, f"{path}.{key}", ctx)
        return found

    instances = epcis_event.get(instance_key, [])
    if not isinstance(instances, list):
        raise EpcisSchemaError(f"{path}.{instance_key}: expected an array, got {kind_of(instances)}")
    for index, epc in enumerate(instances):
        if not isinstance(epc, str):
            raise EpcisSchemaError(f"{path}.{instance_key}[{index}]: expected a string, got {kind_of(epc)}")
        gtin = instance_gtin(epc)
        if gtin is not None:
            key = trade_item(gtin, instance_key)
            totals[key] = totals.get(key, 0.0) + 1.0
        elif sscc_from_id(epc) is None:
            where = f"{path}.{instance_key}[{index}]"
            ctx.mapping.warn(WarningKind.SKIPPED, f"{where} {epc[:100]!r} is not a serialized GTIN; not counted")
    quantities = epcis_event.get(quantity_key, [])
    if not isinstance(quantities, list):
        raise EpcisSchemaError(f"{path}.{quantity_key}: expected an array, got {kind_of(quantities)}")
    for index, element in enumerate(quantities):
        if not isinstance(element, dict):
            raise EpcisSchemaError(f"{path}.{quantity_key}[{index}]: expected an object, got {kind_of(element)}")
        epc_class, uom = element.get("epcClass"), element.get("uom")
        if type(epc_class) is str and (uom is None or type(uom) is str):  # the usual case, no path built
            epc_class, uom = epc_class.strip() or None, uom.strip() or None if uom is not None else None
        else:
            where = f"{path}.{quantity_key}[{index}]"
            epc_class, uom = field_str(element, "epcClass", where), field_str(element, "uom", where)
        if not epc_class:
            raise EpcisSchemaError(f"{path}.{quantity_key}[{index}].epcClass: missing")
        quantity = element.get("quantity")
        if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, int | float)):
            raise EpcisSchemaError(
                f"{path}.{quantity_key}[{index}].quantity: expected a number, got {kind_of(quantity)}"
            )
        ref = parse_product_id(epc_class)
        if ref is None:
            what = f"{path}.{quantity_key}[{index}].epcClass {epc_class[:100]!r}"
            ctx.mapping.warn(WarningKind.SKIPPED, f"{what} names no single GTIN; not counted")
        elif quantity is None:
            ctx.mapping.warn(WarningKind.SKIPPED, f"{path}.{quantity_key}[{index}] has no quantity; not counted")
        else:
            sku, count_unit = trade_item(ref.gtin, quantity_key)
            key = (sku, uom or count_unit)  # no uom: a count of trade items
            totals[key] = totals.get(key, 0.0) + float(quantity)
    return tuple(Line(sku=sku, quantity=quantity, uom=uom) for (sku, uom), quantity in totals.items())


def trade_item_of(gtin: str, where: str, ctx: EpcisContext) -> tuple[str, str]:
    """(sku, unit of one trade item of this GTIN): the product's unit, else `EA`."""
    sku, product = ctx.mapping.product_for_gtin(gtin, where)
    return sku, product.uom if product is not None else "EA"


def field_str(holder: dict[str, Any], key: str, path: str) -> str | None:
    value = holder.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EpcisSchemaError(f"{path}.{key}: expected a string, got {kind_of(value)}")
    return value.strip() or None


def field_time(holder: dict[str, Any], key: str, path: str) -> tuple[datetime | None, TimePrecision | None]:
    value = field_str(holder, key, path)
    if value is None:
        return None, None
    try:
        return parse_iso(value, field_name=f"{path}.{key}")
    except TimeParseError as exc:
        raise EpcisSchemaError(str(exc)) from None


def required_object(holder: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = holder.get(key)
    if not isinstance(value, dict):
        where = f"{path}.{key}" if path else key
        raise EpcisSchemaError(f"{where}: expected an object, got {kind_of(value)}")
    return value


def kind_of(value: object) -> str:
    return "nothing" if value is None else type(value).__name__

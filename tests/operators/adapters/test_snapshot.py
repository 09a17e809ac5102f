"""Stock snapshot adapter: the contract, strict validation, master-data mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from operators.adapters.snapshot import StockSnapshot, adapt_snapshot
from operators.master import EMPTY_MASTER, MasterData, Product, Site
from operators.model import AdapterResult, DeadLetterReason, EventType, Line, SourceKind, TimePrecision
from tests.conftest import FIXTURES, RECEIVED, raw_message

SNAPSHOT = FIXTURES / "snapshot"
MASTER = MasterData(products=(Product("TG11", "", "EA"), Product("TG12", "", "KG")), sites=(Site("1710"),))


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SNAPSHOT / name).read_text())
    return loaded


def adapt(doc: object, master: MasterData = EMPTY_MASTER) -> AdapterResult:
    payload = doc if isinstance(doc, (str, bytes)) else json.dumps(doc)
    return adapt_snapshot(raw_message(payload, topic="stock.snapshots", offset=11), master)


def dead_error(result: AdapterResult, reason: DeadLetterReason = DeadLetterReason.SCHEMA_ERROR) -> str:
    assert result.dead_letter is not None, result
    assert result.dead_letter.reason == reason
    assert result.dead_letter.adapter == "snapshot"
    return result.dead_letter.error


def test_erp_snapshot_becomes_one_inventory_snapshot() -> None:
    result = adapt(load("erp_1710.json"))
    (event,) = result.events
    assert event.event_id == "snapshot:erp-1710-20240801T0000Z"
    assert event.event_type == EventType.INVENTORY_SNAPSHOT
    assert event.source_kind == SourceKind.SNAPSHOT
    assert event.source_system == "S4HCLNT100"
    assert event.occurred_at == event.recorded_at == datetime(2024, 8, 1, tzinfo=UTC)
    assert event.received_at == RECEIVED
    assert event.raw_ref == "stock.snapshots:0:11"
    assert event.time_precision == TimePrecision.S
    assert event.site == "1710"
    assert event.attributes == {"system": "erp"}
    assert event.lines == (
        Line(sku="TG11", quantity=120.0, uom="EA"),
        Line(sku="TG12", quantity=35.5, uom="KG"),
        Line(sku="TG13", quantity=-2.0, uom="EA"),  # negative stock is a real ERP state
    )
    assert result.warnings == ()


def test_empty_wms_snapshot_is_valid_and_extra_keys_are_ignored() -> None:
    (event,) = adapt(load("wms_1710_empty.json")).events
    assert event.lines == ()
    assert event.attributes == {"system": "wms"}
    assert event.occurred_at == datetime(2024, 8, 1, 0, 5, tzinfo=UTC)  # +02:00 converted to UTC
    assert event.site == "1710"


def test_master_data_keeps_unknown_skus_with_a_warning() -> None:
    result = adapt(load("erp_1710.json"), MASTER)
    (event,) = result.events
    assert [line.sku for line in event.lines] == ["TG11", "TG12", "TG13"]
    assert event.site == "1710"
    assert [str(w) for w in result.warnings] == ["mapping: sku 'TG13' (lines[2].sku) not in the product master"]


def test_unknown_site_is_unmapped_with_a_warning() -> None:
    doc = load("erp_1710.json")
    doc["site"] = "9999"
    doc["lines"] = doc["lines"][:2]
    result = adapt(doc, MASTER)
    assert result.events[0].site == "UNMAPPED:9999"
    assert [str(w) for w in result.warnings] == ["mapping: site '9999' (site) not in the site master"]
    assert adapt(doc).events[0].site == "9999"  # no master: raw id, no warning
    assert adapt(doc).warnings == ()


def test_site_alias_maps_to_the_plant() -> None:
    doc = load("erp_1710.json")
    doc["site"] = "0614141000005"
    master = MasterData(sites=(Site("1710", gln="0614141000005"),))
    assert adapt(doc, master).events[0].site == "1710"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.pop("snapshot_id"), "snapshot: snapshot_id: Field required"),
        (lambda d: d.update(snapshot_id=""), "snapshot: snapshot_id: String should have at least 1 character"),
        (lambda d: d.update(snapshot_id=42), "snapshot: snapshot_id: Input should be a valid string"),
        (lambda d: d.update(system="tms"), "snapshot: system: Input should be 'erp' or 'wms'"),
        (lambda d: d.pop("source_system"), "snapshot: source_system: Field required"),
        (lambda d: d.update(as_of="2024-08-01T00:00:00"), "snapshot: as_of: timestamp '2024-08-01T00:00:00' has no"),
        (lambda d: d.update(as_of=1722470400), "snapshot: as_of: expected an ISO 8601 string"),
        (lambda d: d.update(as_of="9999-12-31T23:00:00-05:00"), "snapshot: as_of: out-of-range timestamp"),
        (lambda d: d.update(site=None), "snapshot: site: Input should be a valid string"),
        (lambda d: d.update(lines=None), "snapshot: lines: Input should be a valid list"),
        (
            lambda d: d["lines"][1].update(quantity="35.5"),
            "snapshot: lines[1].quantity: Input should be a valid number",
        ),
        (lambda d: d["lines"][0].update(quantity=True), "snapshot: lines[0].quantity: Input should be a valid number"),
        (lambda d: d["lines"][2].pop("uom"), "snapshot: lines[2].uom: Field required"),
        (lambda d: d["lines"].append("TG14"), "snapshot: lines[3]: Input should be a valid dictionary"),
        (lambda d: d["lines"].append(dict(d["lines"][0])), "snapshot: lines[3].sku: duplicate sku 'TG11'"),
        (lambda d: d.update(system=None, site=None), "(+1 more)"),
    ],
)
def test_violations_are_one_line_schema_errors(mutate: Any, expected: str) -> None:
    doc = load("erp_1710.json")
    mutate(doc)
    error = dead_error(adapt(doc))
    assert error.startswith(expected) or expected in error, error
    assert "\n" not in error


def test_infinite_quantity_is_refused_by_the_model() -> None:
    # orjson already refuses 1e400 (parse_error); the model guards other callers too.
    doc = load("erp_1710.json")
    doc["lines"][0]["quantity"] = float("inf")
    with pytest.raises(ValidationError, match="finite number"):
        StockSnapshot.model_validate(doc)
    assert dead_error(adapt('{"quantity": 1e400}'), DeadLetterReason.PARSE_ERROR)


def test_decode_and_parse_errors_and_non_objects() -> None:
    assert dead_error(adapt(b"\x80abc"), DeadLetterReason.DECODE_ERROR)
    assert dead_error(adapt('{"snapshot_id": "x",'), DeadLetterReason.PARSE_ERROR)
    assert dead_error(adapt("[]")).startswith("snapshot: <document>: Input should be a valid dictionary")


def test_same_snapshot_twice_gives_the_same_event() -> None:
    doc = load("erp_1710.json")
    first, again = adapt(doc).events[0], adapt(doc).events[0]
    assert first == again


# --- never raises -----------------------------------------------------------------------------

_VALID = [path.read_bytes() for path in sorted(SNAPSHOT.glob("*.json"))]


def _check_one_outcome(result: AdapterResult) -> None:
    outcomes = [bool(result.events), result.dead_letter is not None, result.ignored_reason is not None]
    assert outcomes.count(True) == 1
    if result.dead_letter is not None:
        assert result.dead_letter.error


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.tuples(st.sampled_from(_VALID), st.integers(0, 400)).map(lambda p: p[0][: p[1]]),
        st.tuples(st.sampled_from(_VALID), st.integers(0, 400), st.binary(min_size=1, max_size=3)).map(
            lambda p: p[0][: p[1]] + p[2] + p[0][p[1] + len(p[2]) :]
        ),
    )
)
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    _check_one_outcome(adapt_snapshot(raw_message(payload), MASTER))


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=250, deadline=None)
@given(
    st.sampled_from(_VALID),
    st.sampled_from(["snapshot_id", "system", "source_system", "as_of", "site", "lines", "sku", "quantity", "uom"]),
    _JSON_VALUES,
)
def test_mistyped_fields_never_raise(payload: bytes, field: str, value: Any) -> None:
    doc = json.loads(payload)
    if field in doc:
        doc[field] = value
    else:
        for line in doc["lines"]:
            line[field] = value
    _check_one_outcome(adapt_snapshot(raw_message(json.dumps(doc)), MASTER))

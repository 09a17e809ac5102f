"""Every panel query against the replayed store equals an independent answer from the base tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.web.conftest import ORPHAN_TRACKING, WebStore
from tests.web.expected import EXPECTED
from tests.web.oracle import Base, Filters
from web import queries
from web.params import query_values
from web.querylib import run_query

pytestmark = pytest.mark.clickhouse

KEYS: dict[str, tuple[str, ...]] = {
    "in_flight_by_status": ("status",),
    "open_alerts_by_rule": ("rule",),
    "failure_rate_by_feed": ("topic",),
    "order_cycle_time": ("site",),
    "exception_queue": ("alert_id",),
    "resolution_time_by_rule": ("day", "rule"),
    "order_aging": ("age", "status"),
    "oldest_in_flight": ("delivery_id",),
    "latency_vs_sla": ("handoff",),
    "latency_over_time": ("hour", "handoff"),
    "latency_by_site": ("handoff", "site"),
    "latency_by_partner": ("handoff", "partner"),
    "partner_performance": ("kind", "partner"),
    "partner_breaches": ("partner", "handoff"),
    "partner_volume_over_time": ("hour", "partner"),
    "ira_by_site": ("site",),
    "unexplained_positions": ("site", "sku", "uom"),
    "goods_in_flight": ("site",),
    "ira_over_time": ("hour", "site"),
    "pipeline_by_topic": ("topic",),
    "pipeline_over_time": ("hour", "topic"),
    "warnings_by_kind": ("topic", "kind"),
    "input_partitions": ("source",),
    "dead_letters_by_reason": ("reason",),
    "pipeline_status": (),
    "sites": ("site",),
    "handoffs": ("handoff",),
    "partners": ("partner", "kind"),
    "delivery_search": ("delivery_id",),
    "delivery_timeline": ("event_id",),
    "delivery_facts": ("handoff",),
    "delivery_alerts": ("alert_id",),
}
# Queries with their own tests (test_web_app.py): the clock, the header row, watermarks.
OWN_TESTS = {"data_as_of", "delivery_header", "watermark_lag"}
FILTER_SETS: dict[str, dict[str, str]] = {
    "all": {},
    "site": {"site": "1010"},
    "carrier": {"partner": "UPS"},
    "3pl": {"partner": "TPL1020"},
    "handoff": {"handoff": "ship_to_erp"},
    "last 24h": {"range": "24h"},
    "combined": {"range": "7d", "site": "1020", "handoff": "dispatch_to_pickup", "partner": "FedEx"},
}


@pytest.fixture(scope="module")
def base(web_store: WebStore) -> Base:
    return Base.load(web_store.client, web_store.store.database)


def _tolerance(column: str) -> float:
    # the panels round: ratios to 4 decimals, minutes and hours to 1 or 2
    return 1e-4 if column.endswith(("_rate", "_share", "ira")) else 0.051


def _same(column: str, actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and not isinstance(actual, bool):
        return actual is not None and abs(float(actual) - expected) <= _tolerance(column)
    return bool(actual == expected)


def compare(web_store: WebStore, base: Base, name: str, args: dict[str, str]) -> int:
    values = query_values(args, web_store.clock)
    result = run_query(web_store.client, queries.get(name), web_store.store.database, values)
    keys = KEYS[name]
    actual = {}
    for record in result.records():
        key = tuple(record[k] for k in keys)
        actual[key[0] if len(keys) == 1 else key] = record
    expected = EXPECTED[name](base, Filters(base, values))
    assert set(actual) == set(expected), f"{name} {args}: keys differ"
    for key, columns in expected.items():
        for column, value in columns.items():
            assert _same(column, actual[key][column], value), (
                f"{name} {args} {key} {column}: query {actual[key][column]!r} != independent {value!r}"
            )
    return len(actual)


def test_every_query_has_an_independent_answer() -> None:
    assert set(queries.QUERIES) == set(KEYS) | OWN_TESTS
    assert set(EXPECTED) == set(KEYS)


@pytest.mark.parametrize("filters", list(FILTER_SETS), ids=list(FILTER_SETS))
@pytest.mark.parametrize("name", [n for n in KEYS if not n.startswith("delivery_")])
def test_panel_query_equals_independent_sql(
    web_store: WebStore, base: Base, name: str, filters: str, request: pytest.FixtureRequest
) -> None:
    rows = compare(web_store, base, name, FILTER_SETS[filters])
    if filters == "all":
        assert rows > 0, f"{name} returned no rows on the replayed store: the comparison would prove nothing"


LINK_KINDS = ("event", "tracking_number", "shipment_ref", "order_id", "unresolved_reference")


def _delivery_linked_via(base: Base, via: str) -> str:
    for delivery in sorted(base.status):
        if via in base.members(delivery).values():
            return delivery
    raise AssertionError(f"no delivery with an event linked via {via} in the replay")


def _timeline(web_store: WebStore, delivery: str) -> list[dict[str, Any]]:
    values = query_values({"delivery": delivery}, web_store.clock)
    return run_query(web_store.client, queries.get("delivery_timeline"), web_store.store.database, values).records()


@pytest.mark.parametrize("via", LINK_KINDS[1:])
def test_delivery_queries_equal_independent_sql(web_store: WebStore, base: Base, via: str) -> None:
    """A delivery with events attached by each kind of reference (event_links), and the delivery
    whose tracking number was learned after its orphaned tracker (an unresolved reference)."""
    delivery = _delivery_linked_via(base, via)
    for name in ("delivery_timeline", "delivery_facts", "delivery_alerts"):
        compare(web_store, base, name, {"delivery": delivery})
    rows = _timeline(web_store, delivery)
    assert {"event", via} <= {row["linked_via"] for row in rows} <= set(LINK_KINDS)
    occurred = [row["occurred_at"] for row in rows]
    assert occurred == sorted(occurred)


def test_an_unresolved_reference_is_shown_but_belongs_to_no_delivery(web_store: WebStore, base: Base) -> None:
    """The planted tracker learned too late: orphaned, its alert resolved, attached to nothing."""
    (alert,) = [a for a in base.alerts if a["rule"] == "orphan_carrier_event" and a["state"] == "resolved"]
    delivery, tracking = json.loads(alert["details"])["delivery_id"], alert["entity"].removeprefix("ref:")
    rows = _timeline(web_store, delivery)
    unresolved = [row for row in rows if row["linked_via"] == "unresolved_reference"]
    assert [row["tracking_number"] for row in unresolved] == [tracking]
    assert not any(link["event_id"] == unresolved[0]["event_id"] for link in base.links)
    # a delivery's partners are those of its own events: the orphan's carrier is not one of them
    assert unresolved[0]["partner"] not in base.delivery_partners()[delivery]


def test_delivery_partners_include_every_partner_of_its_handoff_facts(base: Base) -> None:
    """The facts' events are the delivery's events, so the partner filter need not read the facts."""
    partners = base.delivery_partners()
    for fact in base.facts.values():
        partner, kind = base.fact_partner(fact)
        if kind != "erp":
            assert partner in partners[fact["delivery_id"]], fact


def test_delivery_search_by_every_kind_of_reference(web_store: WebStore, base: Base) -> None:
    dispatch = next(e for e in base.events if e["event_type"] == "SHIPMENT_DISPATCHED" and e["tracking_number"])
    bol = next(e for e in base.events if e["delivery_id"] and e["shipment_ref"])
    status = base.status[dispatch["delivery_id"]]
    # a PRO that only the carrier's 214 carries: resolution attached the 214 by its BOL
    named = {ref for e in base.events if e["delivery_id"] for ref in (e["tracking_number"], e["shipment_ref"])}
    pro_link, pro = next(
        (link, base.by_id[link["event_id"]]["tracking_number"])
        for link in base.links
        if link["via"] == "shipment_ref" and base.by_id[link["event_id"]]["tracking_number"] not in named | {""}
    )
    for q, how, delivery in (
        (status["delivery_id"], "delivery", status["delivery_id"]),
        (status["order_id"], "order", status["delivery_id"]),
        (dispatch["tracking_number"].lower(), "tracking_number", status["delivery_id"]),  # case does not matter
        (f"  {bol['shipment_ref']} ", "shipment_ref", bol["delivery_id"]),
        (pro, "tracking_number", pro_link["delivery_id"]),
        (ORPHAN_TRACKING, None, None),  # an orphan's tracking number belongs to no delivery
        ("", None, None),
    ):
        found = compare(web_store, base, "delivery_search", {"q": q})
        if how is None:
            assert found == 0, q
            continue
        values = query_values({"q": q}, web_store.clock)
        rows = run_query(web_store.client, queries.get("delivery_search"), web_store.store.database, values).records()
        assert delivery in {r["delivery_id"] for r in rows}, q
        assert all(how in r["matched_on"] for r in rows), (q, rows)


def test_the_injected_exceptions_reach_the_panels(web_store: WebStore, base: Base) -> None:
    """The replay's two planted problems: an orphan carrier event and an unexplained inventory delta."""
    orphans = {a["entity"]: a["state"] for a in base.alerts if a["rule"] == "orphan_carrier_event"}
    assert orphans.pop(f"ref:{ORPHAN_TRACKING}") == "open"
    assert list(orphans.values()) == ["resolved"]  # the reference learned too late
    values = query_values({}, web_store.clock)
    performance = run_query(web_store.client, queries.get("partner_performance"), web_store.store.database, values)
    assert sum(row["orphan_events"] for row in performance.records()) >= 1
    assert any(p["unexplained_delta"] == 7 for p in base.positions)
    assert any(a["rule"] == "inventory_mismatch" and a["state"] == "open" for a in base.alerts)
    assert web_store.clock.as_of == max(e["received_at"] for e in base.events).replace(tzinfo=UTC)
    assert web_store.clock.as_of < datetime(2100, 1, 1, tzinfo=UTC)


def test_volumes_over_time_add_up_to_the_accounting(web_store: WebStore) -> None:
    """Two sources, one truth: hourly volumes from the stored rows and the pipeline's block counts."""
    values = query_values({}, web_store.clock)

    def records(name: str) -> list[dict[str, Any]]:
        return run_query(web_store.client, queries.get(name), web_store.store.database, values).records()

    hourly: dict[str, list[int]] = {}
    for row in records("pipeline_over_time"):
        sums = hourly.setdefault(row["topic"], [0, 0, 0])
        for index, column in enumerate(("messages", "events_out", "dead_lettered")):
            sums[index] += row[column]
    accounting = {
        row["topic"]: [row["normalized"], row["events_out"], row["dead_lettered"]]
        for row in records("pipeline_by_topic")
        if row["normalized"] or row["dead_lettered"]
    }
    assert hourly == accounting

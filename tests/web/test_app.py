"""The web app over the replayed store: pages, JSON API, bad parameters, /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from sinks.store import query_rows
from tests.web.conftest import WebStore
from web import queries
from web.app import create_app
from web.pages import PAGES
from web.params import query_values
from web.querylib import run_query

pytestmark = pytest.mark.clickhouse


@pytest.fixture(scope="module")
def http(web_store: WebStore) -> Iterator[TestClient]:
    with TestClient(create_app(web_store.client, web_store.store.database)) as client:
        yield client


@pytest.mark.parametrize("page", PAGES, ids=[p.slug for p in PAGES])
def test_every_page_renders_its_panels_and_the_data_clock(http: TestClient, web_store: WebStore, page: Any) -> None:
    response = http.get(f"/{page.slug}")
    assert response.status_code == 200
    assert response.text.count('class="panel ') == len(page.panels)
    assert "data as of" in response.text
    assert web_store.clock.as_json()["as_of"] in response.text
    assert "/static/chart.umd.min.js" in response.text


def test_api_query_returns_the_query_rows_as_json(http: TestClient, web_store: WebStore) -> None:
    response = http.get("/api/query/latency_by_site", params={"site": "1010", "range": "7d"})
    assert response.status_code == 200
    body = response.json()
    values = query_values({"site": "1010", "range": "7d"}, web_store.clock)
    expected = run_query(web_store.client, queries.get("latency_by_site"), web_store.store.database, values)
    assert body["columns"] == expected.columns
    assert body["rows"] == [list(row) for row in expected.rows] and body["rows"]
    assert {row[1] for row in body["rows"]} == {"1010"}
    assert body["clock"]["as_of"].endswith("Z") and body["params"]["site"] == "1010"


def test_times_are_iso_utc(http: TestClient) -> None:
    rows = http.get("/api/query/exception_queue").json()["rows"]
    assert rows and all(str(row[8]).endswith("Z") for row in rows)


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/query/latency_vs_sla?range=bogus", 400, "parameter range: 'bogus' is not one of"),
        ("/api/query/latency_vs_sla?start=yesterday", 400, "parameter start: 'yesterday' is not an ISO 8601 time"),
        ("/api/query/latency_vs_sla?start=2026-02-01&end=2026-01-01", 400, "must be before end"),
        ("/api/query/latency_vs_sla?sql=DROP", 400, "unknown parameter(s) sql"),
        ("/api/query/latency_vs_sla?site=" + "x" * 201, 400, "parameter site: longer than 200"),
        ("/api/query/latency_vs_sla?site=%01", 400, "parameter site: contains control characters"),
        ("/api/query/no_such_query", 404, "no query named 'no_such_query'"),
    ],
)
def test_bad_parameters_are_a_400_with_a_message(http: TestClient, path: str, status: int, message: str) -> None:
    response = http.get(path)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_bad_page_parameters_are_a_400_page(http: TestClient) -> None:
    response = http.get("/latency?refresh=soon")
    assert response.status_code == 400
    assert "parameter refresh" in response.text
    assert http.get("/nowhere").status_code == 404


def test_request_text_is_bound_never_spliced(http: TestClient) -> None:
    response = http.get("/api/query/in_flight_by_status", params={"site": "1010' OR '1'='1"})
    assert response.status_code == 200 and response.json()["rows"] == []
    search = http.get("/api/query/delivery_search", params={"q": "x') UNION ALL SELECT name FROM system.tables --"})
    assert search.status_code == 200 and search.json()["rows"] == []


def test_read_only_routes(http: TestClient) -> None:
    assert http.post("/api/query/latency_vs_sla").status_code == 405
    assert http.delete("/").status_code == 405


def test_timeline_search_finds_a_delivery_and_shows_its_events(http: TestClient, web_store: WebStore) -> None:
    ((delivery, order),) = query_rows(
        web_store.client,
        f"SELECT delivery_id, order_id FROM {web_store.store.database}.delivery_status FINAL "
        "WHERE status = 'IN_TRANSIT' ORDER BY delivery_id LIMIT 1",
    )
    found = http.get("/timeline", params={"q": order}, follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"].endswith(f"delivery={delivery}")
    page = http.get(found.headers["location"])
    assert page.status_code == 200
    assert f"Delivery {delivery}" in page.text and "ORDER_RELEASED" in page.text and "SHIPMENT_DISPATCHED" in page.text
    missing = http.get("/timeline", params={"q": "NO-SUCH-REF"})
    assert missing.status_code == 200 and "No delivery matches" in missing.text


def _scrape(http: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_equal_the_runs_accounting(http: TestClient, web_store: WebStore) -> None:
    scraped = _scrape(http)
    db, run_id = web_store.store.database, web_store.run.run_id

    def gained(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return scraped.get(key, 0.0) - web_store.metrics_before.get(key, 0.0)

    rows = query_rows(
        web_store.client,
        f"SELECT topic, sum(raw_in), sum(normalized), sum(duplicates), sum(dead_lettered), sum(ignored), "
        f"sum(events_out), sumMap(dead_by_reason) FROM {db}.ingest_stats FINAL WHERE run_id = %(run)s GROUP BY topic",
        {"run": run_id},
    )
    assert rows
    for topic, raw_in, normalized, duplicates, dead, ignored, events_out, reasons in rows:
        assert gained("logisync_messages_in_total", topic=topic) == raw_in
        assert gained("logisync_message_outcomes_total", topic=topic, outcome="normalized") == normalized
        assert gained("logisync_message_outcomes_total", topic=topic, outcome="duplicate") == duplicates
        assert gained("logisync_message_outcomes_total", topic=topic, outcome="dead_lettered") == dead
        assert gained("logisync_message_outcomes_total", topic=topic, outcome="ignored") == ignored
        assert gained("logisync_duplicates_total", topic=topic) == duplicates
        assert gained("logisync_events_out_total", topic=topic) == events_out
        for reason, count in reasons.items():
            assert gained("logisync_dead_letters_total", topic=topic, reason=reason) == count
    for table, inserted in web_store.run.sink.per_table.items():
        assert gained("logisync_clickhouse_insert_rows_total", table=table) == inserted
        assert gained("logisync_clickhouse_insert_seconds_count", table=table) >= 1


def test_business_metrics_are_read_from_the_store(http: TestClient, web_store: WebStore) -> None:
    scraped = _scrape(http)
    db = web_store.store.database
    open_alerts = dict(
        query_rows(web_store.client, f"SELECT rule, count() FROM {db}.alerts FINAL WHERE state = 'open' GROUP BY rule")
    )
    assert open_alerts
    for rule, count in open_alerts.items():
        assert scraped[("logisync_open_alerts", (("rule", rule),))] == count
    for handoff, breaches in query_rows(
        web_store.client, f"SELECT handoff, countIf(breached) FROM {db}.sync_latency FINAL GROUP BY handoff"
    ):
        assert scraped[("logisync_handoff_breaches", (("handoff", handoff),))] == breaches


def test_watermark_lag_and_clock_follow_stage_watermarks(store: Any) -> None:
    """A stage's W is the min over its buckets; the clock is the latest run's slowest stage."""
    from datetime import UTC, datetime

    from sinks.store import connect
    from web.params import read_clock

    def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
        return datetime(2026, 2, 1, hour, minute, second, tzinfo=UTC)

    client = connect(store)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert read_clock(client, store.database, now).as_of == now  # an empty store: the wall clock
    assert run_query(client, queries.get("watermark_lag"), store.database, {}).rows == []
    client.insert(
        f"{store.database}.stage_watermarks",
        [
            ["old", "lifecycle", 0, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 5, tzinfo=UTC)],
            ["new", "dedup", 0, at(10, 1), at(10, 1, 30)],
            ["new", "dedup", 1, at(10, 1), at(10, 1, 30)],
            ["new", "lifecycle", 0, at(10, 0), at(10, 0, 30)],
            ["new", "lifecycle", 1, at(9, 58), at(9, 58, 20)],  # the slow bucket: its W stopped earlier
            ["new", "lifecycle", 1, at(9, 57), at(9, 57, 20)],  # an older version of that bucket's row
            ["new", "inventory", 3, at(9, 59), at(10, 0, 30)],
        ],
        column_names=["run_id", "stage", "bucket", "watermark", "updated_at"],
    )
    clock = read_clock(client, store.database, now)
    assert clock.as_of == at(9, 58) == clock.watermark
    lag = run_query(client, queries.get("watermark_lag"), store.database, {}).records()
    assert [(r["stage"], r["buckets"], r["slowest_bucket"], r["lag_s"]) for r in lag] == [
        ("dedup", 2, 0, 30.0),
        ("lifecycle", 2, 1, 150.0),  # W 09:58 (bucket 1), last recorded 10:00:30 (bucket 0)
        ("inventory", 1, 3, 90.0),
    ]


def test_the_replay_records_every_stage_up_to_its_last_message(http: TestClient, web_store: WebStore) -> None:
    rows = http.get("/api/query/watermark_lag").json()
    lag = [dict(zip(rows["columns"], row, strict=True)) for row in rows["rows"]]
    assert [r["stage"] for r in lag] == ["dedup", "resolution", "arbiter", "lifecycle", "inventory", "health"]
    # at the end of a replay W = the last received_at, in every bucket (8 by default; health 2)
    last = web_store.clock.last_received_at
    assert last is not None and web_store.clock.watermark == last
    as_of = web_store.clock.as_json()["as_of"]
    assert {(r["stage"], r["buckets"], r["watermark"]) for r in lag} == {
        (r["stage"], 2 if r["stage"] == "health" else 8, as_of) for r in lag
    }

"""The provisioned Grafana dashboards: generated from the query layer, valid, and runnable."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.web.conftest import WebStore
from web import grafana, queries
from web.params import query_values
from web.querylib import run_query

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "deploy/grafana/dashboards"
PROVISIONING = REPO / "deploy/grafana/provisioning"


def _committed() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARDS.glob("*.json"))}


def _panels() -> list[tuple[str, dict[str, Any]]]:
    return [(name, panel) for name, board in _committed().items() for panel in board["panels"]]


def test_committed_dashboards_are_what_the_query_layer_generates() -> None:
    generated = json.loads(json.dumps(grafana.all_dashboards()))
    assert _committed() == generated, "run: .venv/bin/python -m web.grafana deploy/grafana/dashboards"


def test_every_panel_uses_the_provisioned_data_source() -> None:
    source = yaml.safe_load((PROVISIONING / "datasources/clickhouse.yml").read_text(encoding="utf-8"))
    uid = source["datasources"][0]["uid"]
    for name, board in _committed().items():
        assert board["uid"] and board["panels"], name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == uid, (name, panel["title"])
            assert [t["datasource"]["uid"] for t in panel["targets"]] == [uid], (name, panel["title"])
        for variable in board["templating"]["list"]:
            assert variable["type"] == "textbox" or variable["datasource"]["uid"] == uid, (name, variable["name"])


def test_dashboards_are_provisioned_where_compose_mounts_them() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards/logisync.yml").read_text(encoding="utf-8"))["providers"][0]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    mount = f"./deploy/grafana/dashboards:{provider['options']['path']}:ro"
    assert mount in compose["services"]["grafana"]["volumes"]
    assert {
        "overview.json",
        "exceptions.json",
        "latency.json",
        "partners.json",
        "aging.json",
        "inventory.json",
        "pipeline.json",
        "timeline.json",
    } <= set(_committed())


def substitute(sql: str, database: str, start: datetime, end: datetime, **variables: str) -> str:
    """What the ClickHouse plugin and Grafana send for this panel (macros and variables)."""
    sql = sql.replace("$__fromTime_ms", f"fromUnixTimestamp64Milli({int(start.timestamp() * 1000)})")
    sql = sql.replace("$__toTime_ms", f"fromUnixTimestamp64Milli({int(end.timestamp() * 1000)})")
    for name in ("site", "handoff", "partner", "delivery", "q"):
        value = variables.get(name, "")
        sql = sql.replace("${" + name + ":sqlstring}", "'" + value.replace("'", "''") + "'" if value else "''")
    assert "$" not in sql, sql
    return re.sub(r"\blogisync\.", f"{database}.", sql)


@pytest.mark.clickhouse
@pytest.mark.parametrize(("board", "panel"), _panels(), ids=[f"{b}:{p['title']}" for b, p in _panels()])
def test_panel_sql_runs_on_chdb_and_matches_the_web_query(
    web_store: WebStore, board: str, panel: dict[str, Any]
) -> None:
    db, client = web_store.store.database, web_store.client
    end = web_store.clock.as_of + timedelta(milliseconds=1)
    start = datetime(1970, 1, 1, tzinfo=UTC)
    variables = {"delivery": "", "q": ""}
    sql = substitute(panel["targets"][0]["rawSql"], db, start, end, **variables)
    result = client.query(sql)
    # the same rows as the web page's query for the same parameters, on the columns the panel keeps
    matching = [q for q in queries.QUERIES.values() if grafana.grafana_sql(q) in panel["targets"][0]["rawSql"]]
    name = max(matching, key=lambda q: len(q.sql)).name
    values = query_values({"start": start.isoformat(), "end": end.isoformat()}, web_store.clock)
    web = run_query(client, queries.get(name), db, {**values, "as_of": end})
    kept = [web.columns.index(column) for column in result.column_names]
    assert [list(row) for row in result.result_rows] == [[row[i] for i in kept] for row in web.rows]


@pytest.mark.clickhouse
def test_variables_filter_like_the_web_page(web_store: WebStore) -> None:
    db, client = web_store.store.database, web_store.client
    end = web_store.clock.as_of + timedelta(milliseconds=1)
    start = end - timedelta(days=30)
    board = _committed()["latency.json"]
    (panel,) = [p for p in board["panels"] if p["title"] == "Per handoff: percentiles, SLA and breaches"]
    sql = substitute(panel["targets"][0]["rawSql"], db, start, end, site="1010", partner="UPS")
    values = query_values(
        {"start": start.isoformat(), "end": end.isoformat(), "site": "1010", "partner": "UPS"}, web_store.clock
    )
    web = run_query(client, queries.get("latency_vs_sla"), db, values)
    assert [list(row) for row in client.query(sql).result_rows] == web.rows
    assert web.rows

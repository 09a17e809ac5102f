"""Grafana dashboards generated from the same pages and queries as the built-in web page.

`python -m web.grafana deploy/grafana/dashboards` writes one dashboard JSON per page; a test
checks the committed files are what this generates, so the two can never drift. A query's
server-side parameters become Grafana macros and variables: the range is the dashboard's time
picker (`$__fromTime_ms` .. `$__toTime_ms`), ages are measured to its end, and site / handoff /
partner are dashboard variables ("All" is the empty string, as on the web page).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from web import queries
from web.pages import PAGES, Page, Panel
from web.querylib import PARAM_TYPES, Chart, Query

DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "logisync-clickhouse"}
DATABASE = "logisync"  # the compose stack's database (LOGISYNC_DATABASE)
FORMAT_TIMESERIES, FORMAT_TABLE = 0, 1
MACROS = {
    "start": "$__fromTime_ms",
    "end": "$__toTime_ms",
    "as_of": "$__toTime_ms",
    "site": "${site:sqlstring}",
    "handoff": "${handoff:sqlstring}",
    "partner": "${partner:sqlstring}",
    "delivery": "${delivery:sqlstring}",
    "q": "${q:sqlstring}",
}
VARIABLE_QUERIES = {"site": "sites", "handoff": "handoffs", "partner": "partners"}


def grafana_sql(query: Query) -> str:
    """The query's SQL with Grafana macros in place of its server-side parameters."""
    sql = query.render(DATABASE)
    for name in sorted(query.params):
        sql = sql.replace("{" + f"{name}:{PARAM_TYPES[name]}" + "}", MACROS[name])
    return sql


def _target(query: Query, chart: Chart) -> dict[str, Any]:
    time_series = chart.kind == "line"
    sql = grafana_sql(query)
    if chart.kind in ("bar", "line"):
        # only the columns the chart draws: Grafana plots every numeric column it is given
        columns = ", ".join(name for name in (chart.x, chart.series, *chart.y) if name)
        sql = f"SELECT {columns} FROM (\n{sql}\n)"
    return {
        "refId": "A",
        "datasource": DATASOURCE,
        "editorType": "sql",
        "queryType": "timeseries" if time_series else "table",
        "format": FORMAT_TIMESERIES if time_series else FORMAT_TABLE,
        "rawSql": sql,
    }


def _panel(panel: Panel, index: int, position: dict[str, int]) -> dict[str, Any]:
    chart = panel.chart
    query = queries.get(panel.query)
    kinds = {"bar": "barchart", "line": "timeseries", "table": "table", "stat": "stat"}
    out: dict[str, Any] = {
        "id": index + 1,
        "type": kinds[chart.kind],
        "title": panel.title,
        "description": query.description,
        "datasource": DATASOURCE,
        "gridPos": position,
        "targets": [_target(query, chart)],
        "fieldConfig": {"defaults": {"unit": {"ratio": "percentunit", "min": "m", "h": "h"}.get(chart.unit, "")}},
        "options": {},
    }
    if chart.kind == "bar":
        out["options"] = {
            "xField": chart.x,
            "stacking": "normal" if chart.stacked else "none",
            "legend": {"showLegend": True},
        }
        if chart.series:
            # long rows (x, series, y) -> one column per series value, as the web page draws them
            out["transformations"] = [
                {
                    "id": "groupingToMatrix",
                    "options": {"columnField": chart.series, "rowField": chart.x, "valueField": chart.y[0]},
                }
            ]
    return out


def _variable(name: str) -> dict[str, Any]:
    if name in VARIABLE_QUERIES:
        sql = queries.get(VARIABLE_QUERIES[name]).render(DATABASE)
        return {
            "name": name,
            "label": name,
            "type": "query",
            "datasource": DATASOURCE,
            "query": sql,
            "definition": sql,
            "refresh": 1,
            "includeAll": True,
            "allValue": "''",  # "all" is the empty string; a custom all value is not formatted
            "multi": False,
            "current": {"text": "All", "value": "$__all"},
        }
    return {"name": name, "label": name, "type": "textbox", "query": "", "current": {"text": "", "value": ""}}


def dashboard(page: Page) -> dict[str, Any]:
    panels, x, y, row_height = [], 0, 0, 9
    for index, panel in enumerate(page.panels):
        width = panel.width * 2  # the web page has 12 grid columns, Grafana 24
        if x + width > 24:
            x, y = 0, y + row_height
        panels.append(_panel(panel, index, {"x": x, "y": y, "w": width, "h": row_height}))
        x += width
    used = sorted({name for panel in page.panels for name in queries.get(panel.query).params} & MACROS.keys())
    variables = [_variable(name) for name in used if name not in ("start", "end", "as_of")]
    return {
        "uid": f"logisync-{page.slug}",
        "title": f"logisync · {page.title}",
        "tags": ["logisync"],
        "timezone": "utc",
        "editable": True,
        "refresh": "30s",
        "schemaVersion": 39,
        "time": {"from": "now-7d", "to": "now"},
        "templating": {"list": variables},
        "links": [{"type": "dashboards", "tags": ["logisync"], "asDropdown": False, "title": "logisync"}],
        "panels": panels,
    }


def timeline_page() -> Page:
    return Page(
        "timeline",
        "Delivery timeline",
        (
            Panel("delivery_search", "Deliveries matching $q", Chart("table")),
            Panel("delivery_header", "Delivery $delivery", Chart("table")),
            Panel("delivery_facts", "Handoff facts", Chart("table"), 12),
            Panel("delivery_alerts", "Alerts", Chart("table"), 12),
            Panel("delivery_timeline", "Events in the order they happened", Chart("table"), 12),
        ),
        filters=(),
    )


def all_dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON, for every page and the delivery timeline."""
    return {f"{page.slug}.json": dashboard(page) for page in (*PAGES, timeline_page())}


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, board in all_dashboards().items():
        path = directory / name
        path.write_text(json.dumps(board, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "deploy/grafana/dashboards")):
        print(path)

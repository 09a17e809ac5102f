"""The pages and their panels: which query each panel shows and how it is drawn.

The web page and the Grafana generator (`web.grafana`) both read these, so a panel is defined
once: its query (from `web.queries`) and its `Chart`.
"""

from __future__ import annotations

from dataclasses import dataclass

from web.querylib import Chart


@dataclass(frozen=True)
class Panel:
    query: str
    title: str
    chart: Chart
    width: int = 6  # of 12 grid columns


@dataclass(frozen=True)
class Page:
    slug: str
    title: str
    panels: tuple[Panel, ...]
    filters: tuple[str, ...] = ("range", "site", "handoff", "partner")


def _table(link: str = "") -> Chart:
    return Chart("table", link=link)


PAGES: tuple[Page, ...] = (
    Page(
        "overview",
        "Overview",
        (
            Panel("in_flight_by_status", "Deliveries in flight", Chart("bar", "status", ("deliveries",))),
            Panel("open_alerts_by_rule", "Open exceptions by rule", Chart("bar", "rule", ("open_alerts", "critical"))),
            Panel(
                "latency_vs_sla",
                "Sync latency p95 vs SLA (minutes)",
                Chart("bar", "handoff", ("p95_min", "sla_min"), unit="min"),
            ),
            Panel(
                "failure_rate_by_feed",
                "Integration failure rate (dead letters / raw messages)",
                Chart("bar", "topic", ("failure_rate",), unit="ratio"),
            ),
            Panel("ira_by_site", "Inventory record accuracy", Chart("bar", "site", ("ira",), unit="ratio")),
            Panel(
                "order_cycle_time",
                "Order cycle time, created to delivered (hours)",
                Chart("bar", "site", ("p50_h", "p95_h"), unit="h"),
            ),
        ),
    ),
    Page(
        "exceptions",
        "Exception queue",
        (
            Panel("exception_queue", "Open exceptions, most overdue first", _table(link="delivery_id"), 12),
            Panel(
                "resolution_time_by_rule",
                "Resolution time per rule (p95 minutes, by day resolved)",
                Chart("line", "day", ("p50_min", "p95_min"), series="rule", unit="min"),
                12,
            ),
        ),
    ),
    Page(
        "latency",
        "Synchronization latency",
        (
            Panel(
                "latency_over_time",
                "p95 per handoff over time, against its SLA (dashed), minutes",
                Chart("line", "hour", ("p95_min", "sla_min"), series="handoff", unit="min"),
                12,
            ),
            Panel(
                "latency_over_time",
                "p50 / p95 / p99 over time (choose a handoff to read one), minutes",
                Chart("line", "hour", ("p50_min", "p95_min", "p99_min"), series="handoff", unit="min"),
                12,
            ),
            Panel(
                "latency_over_time",
                "Breaches per handoff over time",
                Chart("bar", "hour", ("breaches",), series="handoff", stacked=True),
                12,
            ),
            Panel("latency_vs_sla", "Per handoff: percentiles, SLA and breaches", _table()),
            Panel("latency_by_site", "By site (p95 minutes)", Chart("bar", "site", ("p95_min",), series="handoff")),
            Panel("latency_by_site", "By handoff and site", _table()),
            Panel(
                "latency_by_partner",
                "By partner (p95 minutes)",
                Chart("bar", "partner", ("p95_min",), series="handoff"),
            ),
            Panel("latency_by_partner", "By handoff and partner", _table(), 12),
        ),
    ),
    Page(
        "partners",
        "Partner performance",
        (
            Panel("partner_performance", "Carriers and 3PL / WMS", _table(), 12),
            Panel(
                "partner_breaches",
                "Breach rate on their handoffs",
                Chart("bar", "partner", ("breach_rate",), series="handoff", unit="ratio"),
            ),
            Panel(
                "partner_volume_over_time",
                "Events per partner over time",
                Chart("line", "hour", ("events",), series="partner"),
            ),
        ),
        filters=("range", "handoff", "partner"),
    ),
    Page(
        "aging",
        "Order aging",
        (
            Panel(
                "order_aging",
                "Released, not delivered: deliveries by age and status",
                Chart("bar", "age", ("deliveries",), series="status", stacked=True),
                12,
            ),
            Panel("oldest_in_flight", "Oldest deliveries in flight", _table(link="delivery_id"), 12),
        ),
        filters=("site", "partner"),
    ),
    Page(
        "inventory",
        "Inventory",
        (
            Panel(
                "ira_over_time",
                "IRA per site over time",
                Chart("line", "hour", ("ira",), series="site", unit="ratio"),
                12,
            ),
            Panel("goods_in_flight", "Goods in flight per site", Chart("bar", "site", ("in_flight_total",))),
            Panel("ira_by_site", "IRA per site now", Chart("bar", "site", ("ira",), unit="ratio")),
            Panel("unexplained_positions", "Positions with unexplained deltas, largest first", _table(), 12),
        ),
        filters=("range", "site"),
    ),
    Page(
        "pipeline",
        "Pipeline health",
        (
            Panel("pipeline_status", "Status", Chart("stat"), 12),
            Panel(
                "pipeline_over_time",
                "Messages with new events per topic (per hour received)",
                Chart("line", "hour", ("messages",), series="topic"),
            ),
            Panel(
                "pipeline_over_time",
                "Dead letters per topic (per hour received)",
                Chart("line", "hour", ("dead_lettered",), series="topic"),
            ),
            Panel(
                "pipeline_by_topic",
                "Events, duplicates and dead letters per topic",
                Chart("bar", "topic", ("events_out", "duplicates", "dead_lettered")),
            ),
            Panel(
                "warnings_by_kind",
                "Adapter warnings per topic, by kind",
                Chart("bar", "topic", ("warnings",), series="kind", stacked=True),
            ),
            Panel("pipeline_by_topic", "Accounting per topic", _table(), 12),
            Panel("dead_letters_by_reason", "Dead letters by reason", _table()),
            Panel("failure_rate_by_feed", "Failure rate per feed", _table()),
            Panel("input_partitions", "Input partitions", _table()),
            Panel("watermark_lag", "Watermark lag per stage", _table()),
        ),
        filters=("range",),
    ),
)

TIMELINE_QUERIES = ("delivery_header", "delivery_facts", "delivery_alerts", "delivery_timeline")
PAGE_BY_SLUG = {page.slug: page for page in PAGES}

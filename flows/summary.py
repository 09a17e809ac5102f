"""The run summary: read back from ClickHouse what one run wrote, and print it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sinks.store import StoreConfig, connect, query_rows

COUNT_COLUMNS = (
    "raw_in",
    "normalized",
    "duplicates",
    "dead_lettered",
    "ignored",
    "events_out",
    "mapping_warnings",
    "replayed",
)


@dataclass
class RunSummary:
    run_id: str
    seconds: float
    per_topic: dict[str, dict[str, int]] = field(default_factory=dict)
    events_by_type: dict[str, int] = field(default_factory=dict)
    dead_by_reason: dict[str, int] = field(default_factory=dict)
    # handoff -> (facts, completed, p50_ms, p95_ms, p99_ms, breached)
    latency: dict[str, tuple[int, int, float | None, float | None, float | None, int]] = field(default_factory=dict)
    open_alerts: dict[str, int] = field(default_factory=dict)
    accuracy: dict[str, tuple[int, float]] = field(default_factory=dict)  # site -> (positions, IRA)
    largest_deltas: list[tuple[str, str, str, float, float, float, float]] = field(default_factory=list)

    def total(self, column: str) -> int:
        return sum(counts[column] for counts in self.per_topic.values())

    @property
    def balanced(self) -> bool:
        """The accounting invariant of design.md section 4, per topic; a replayed dead letter counts
        in its outcome and in `replayed`, not in raw_in (operators/ingest/accounting.py)."""
        return all(
            c["raw_in"] == c["normalized"] + c["duplicates"] + c["dead_lettered"] + c["ignored"] - c["replayed"]
            for c in self.per_topic.values()
        )


def read_summary(store: StoreConfig, run_id: str, seconds: float, *, domain: bool = True) -> RunSummary:
    client: Any = connect(store)
    db = store.database
    sums = ", ".join(f"sum({column})" for column in COUNT_COLUMNS)
    summary = RunSummary(run_id, seconds)
    rows = query_rows(
        client,
        f"SELECT topic, {sums} FROM {db}.ingest_stats FINAL WHERE run_id = %(run)s GROUP BY topic ORDER BY topic",
        {"run": run_id},
    )
    for topic, *counts in rows:
        summary.per_topic[topic] = dict(zip(COUNT_COLUMNS, (int(c) for c in counts), strict=True))
    maps = query_rows(
        client,
        f"SELECT sumMap(events_by_type), sumMap(dead_by_reason) FROM {db}.ingest_stats FINAL WHERE run_id = %(run)s",
        {"run": run_id},
    )
    if maps:
        summary.events_by_type = {str(k): int(v) for k, v in sorted(maps[0][0].items())}
        summary.dead_by_reason = {str(k): int(v) for k, v in sorted(maps[0][1].items())}
    if domain:
        _read_domain(client, db, summary)
    return summary


def _read_domain(client: Any, db: str, summary: RunSummary) -> None:
    """Latency, alerts and inventory as they stand in the store (latest versions, FINAL)."""
    for handoff, facts, done, p50, p95, p99, breached in query_rows(
        client,
        "SELECT handoff, count(), countIf(done), quantileExactIf(0.5)(ms, done), quantileExactIf(0.95)(ms, done), "
        "quantileExactIf(0.99)(ms, done), countIf(breached) "
        f"FROM (SELECT *, latency_ms IS NOT NULL AS done, ifNull(latency_ms, 0) AS ms FROM {db}.sync_latency FINAL) "
        "GROUP BY handoff ORDER BY handoff",
    ):
        quantiles = [None if done == 0 else float(q) for q in (p50, p95, p99)]
        summary.latency[handoff] = (int(facts), int(done), quantiles[0], quantiles[1], quantiles[2], int(breached))
    summary.open_alerts = {
        str(rule): int(count)
        for rule, count in query_rows(
            client, f"SELECT rule, count() FROM {db}.alerts FINAL WHERE state = 'open' GROUP BY rule ORDER BY rule"
        )
    }
    summary.accuracy = {
        str(site): (int(n), float(ira))
        for site, n, ira in query_rows(
            client,
            f"SELECT site, count(), countIf(unexplained_delta = 0) / count() FROM {db}.inventory_positions FINAL "
            "GROUP BY site ORDER BY site",
        )
    }
    summary.largest_deltas = [
        (str(site), str(sku), str(uom), float(erp), float(wms), float(flight), float(unexplained))
        for site, sku, uom, erp, wms, flight, unexplained in query_rows(
            client,
            f"SELECT site, sku, uom, erp_qty, wms_qty, in_flight_qty, unexplained_delta "
            f"FROM {db}.inventory_positions FINAL WHERE unexplained_delta != 0 "
            "ORDER BY abs(unexplained_delta) DESC, site, sku LIMIT 5",
        )
    ]


def format_summary(summary: RunSummary) -> str:
    raw_in = summary.total("raw_in")
    rate = raw_in / summary.seconds if summary.seconds > 0 else 0.0
    lines = [f"logisync run {summary.run_id}: {raw_in:,} raw messages in {summary.seconds:.1f} s ({rate:,.0f} msg/s)"]
    lines.extend(format_accounting(summary))
    lines.extend(_format_domain(summary))
    return "\n".join(lines)


_COLUMNS = (
    ("raw_in", "raw_in", 9),
    ("replayed", "replayed", 10),
    ("normalized", "normalized", 12),
    ("duplicates", "duplicates", 12),
    ("dead_lettered", "dead", 8),
    ("ignored", "ignored", 9),
    ("events_out", "events", 9),
)


def format_accounting(summary: RunSummary) -> list[str]:
    """The per-topic accounting, its totals and whether the invariant holds. The `replayed`
    column (dead letters fed through again) shows only when there were replays."""
    replays = summary.total("replayed") > 0
    columns = [column for column in _COLUMNS if replays or column[0] != "replayed"]
    lines = ["", "  " + f"{'topic':<22}" + "".join(f"{title:>{width}}" for _, title, width in columns)]
    for topic, c in summary.per_topic.items():
        lines.append(f"  {topic:<22}" + "".join(f"{c[name]:>{width},}" for name, _, width in columns))
    lines.append(f"  {'total':<22}" + "".join(f"{summary.total(name):>{width},}" for name, _, width in columns))
    lines.append("")
    lines.append("  events by type: " + (_pairs(summary.events_by_type) or "none"))
    lines.append("  dead letters by reason: " + (_pairs(summary.dead_by_reason) or "none"))
    warnings = summary.total("mapping_warnings")
    if warnings:
        lines.append(f"  mapping warnings (UNMAPPED ids kept): {warnings:,}")
    verdict = "holds" if summary.balanced else "BROKEN"
    formula = "normalized + duplicates + dead + ignored" + (" - replayed" if replays else "")
    lines.append(f"  accounting raw_in = {formula}: {verdict}")
    return lines


def _minutes(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 60000:,.1f}"


def _format_domain(summary: RunSummary) -> list[str]:
    lines: list[str] = []
    if summary.latency:
        lines += ["", "  synchronization latency (minutes, latest version of every fact in the store)"]
        lines.append(f"  {'handoff':<22}{'facts':>8}{'done':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'breached':>10}")
        for handoff, (facts, done, p50, p95, p99, breached) in summary.latency.items():
            quantiles = "".join(f"{_minutes(q):>9}" for q in (p50, p95, p99))
            lines.append(f"  {handoff:<22}{facts:>8,}{done:>8,}{quantiles}{breached:>10,}")
    lines.append("")
    lines.append("  open alerts: " + (_pairs(summary.open_alerts) or "none"))
    if summary.accuracy:
        lines.append(
            "  inventory record accuracy: "
            + ", ".join(f"{site} {ira:.0%} of {n}" for site, (n, ira) in summary.accuracy.items())
        )
    if summary.largest_deltas:
        lines.append("  largest unexplained inventory deltas (site/sku: erp, wms, in flight -> unexplained):")
        for site, sku, uom, erp, wms, flight, unexplained in summary.largest_deltas:
            lines.append(f"    {site}/{sku}: {erp:g}, {wms:g}, {flight:g} -> {unexplained:+g} {uom}")
    return lines


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value:,}" for key, value in counts.items())

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
)


@dataclass
class RunSummary:
    run_id: str
    seconds: float
    per_topic: dict[str, dict[str, int]] = field(default_factory=dict)
    events_by_type: dict[str, int] = field(default_factory=dict)
    dead_by_reason: dict[str, int] = field(default_factory=dict)

    def total(self, column: str) -> int:
        return sum(counts[column] for counts in self.per_topic.values())

    @property
    def balanced(self) -> bool:
        """The accounting invariant of design.md section 4, per topic."""
        return all(
            c["raw_in"] == c["normalized"] + c["duplicates"] + c["dead_lettered"] + c["ignored"]
            for c in self.per_topic.values()
        )


def read_summary(store: StoreConfig, run_id: str, seconds: float) -> RunSummary:
    client: Any = connect(store)
    db = store.database
    sums = ", ".join(f"sum({column})" for column in COUNT_COLUMNS)
    summary = RunSummary(run_id, seconds)
    rows = query_rows(
        client,
        f"SELECT topic, {sums} FROM {db}.ingest_stats WHERE run_id = %(run)s GROUP BY topic ORDER BY topic",
        {"run": run_id},
    )
    for topic, *counts in rows:
        summary.per_topic[topic] = dict(zip(COUNT_COLUMNS, (int(c) for c in counts), strict=True))
    maps = query_rows(
        client,
        f"SELECT sumMap(events_by_type), sumMap(dead_by_reason) FROM {db}.ingest_stats WHERE run_id = %(run)s",
        {"run": run_id},
    )
    if maps:
        summary.events_by_type = {str(k): int(v) for k, v in sorted(maps[0][0].items())}
        summary.dead_by_reason = {str(k): int(v) for k, v in sorted(maps[0][1].items())}
    return summary


def format_summary(summary: RunSummary) -> str:
    raw_in = summary.total("raw_in")
    rate = raw_in / summary.seconds if summary.seconds > 0 else 0.0
    lines = [
        f"logisync run {summary.run_id}: {raw_in:,} raw messages in {summary.seconds:.1f} s ({rate:,.0f} msg/s)",
        "",
        f"  {'topic':<22}{'raw_in':>9}{'normalized':>12}{'duplicates':>12}{'dead':>8}{'ignored':>9}{'events':>9}",
    ]
    for topic, c in summary.per_topic.items():
        lines.append(
            f"  {topic:<22}{c['raw_in']:>9,}{c['normalized']:>12,}{c['duplicates']:>12,}"
            f"{c['dead_lettered']:>8,}{c['ignored']:>9,}{c['events_out']:>9,}"
        )
    lines.append(
        f"  {'total':<22}{raw_in:>9,}{summary.total('normalized'):>12,}{summary.total('duplicates'):>12,}"
        f"{summary.total('dead_lettered'):>8,}{summary.total('ignored'):>9,}{summary.total('events_out'):>9,}"
    )
    lines.append("")
    lines.append("  events by type: " + _pairs(summary.events_by_type))
    lines.append("  dead letters by reason: " + (_pairs(summary.dead_by_reason) or "none"))
    warnings = summary.total("mapping_warnings")
    if warnings:
        lines.append(f"  mapping warnings (UNMAPPED ids kept): {warnings:,}")
    verdict = "holds" if summary.balanced else "BROKEN"
    lines.append(f"  accounting raw_in = normalized + duplicates + dead + ignored: {verdict}")
    return "\n".join(lines)


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value:,}" for key, value in counts.items())

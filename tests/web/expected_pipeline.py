"""The oracle's answer for the pipeline-health queries (see `expected`).

`ingest_stats` rows are the latest version of each (source, block, topic) block (`oracle.Base`);
a range selects blocks by their last write (`flushed_at`). Volumes over time are counted from the
stored events and dead letters by received_at.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from tests.web.oracle import Base, Filters

Answer = dict[Any, dict[str, Any]]

_STAT_COLUMNS = ("raw_in", "normalized", "events_out", "duplicates", "dead_lettered", "ignored", "mapping_warnings")


def _topic(raw_ref: str) -> str:
    return raw_ref.rsplit(":", 2)[0]


def failure_rate_by_feed(b: Base, f: Filters) -> Answer:
    raw: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    for s in b.stats:
        if f.in_range(s["flushed_at"]):
            raw[s["topic"]] += s["raw_in"]
            dead[s["topic"]] += s["dead_lettered"]
    return {
        t: {"raw_messages": raw[t], "dead_letters": dead[t], "failure_rate": dead[t] / raw[t] if raw[t] else 0}
        for t in raw
    }


def pipeline_by_topic(b: Base, f: Filters) -> Answer:
    out: dict[str, dict[str, Any]] = defaultdict(lambda: dict.fromkeys((*_STAT_COLUMNS, "warnings"), 0))
    for s in b.stats:
        if f.in_range(s["flushed_at"]):
            for column in _STAT_COLUMNS:
                out[s["topic"]][column] += s[column]
            out[s["topic"]]["warnings"] += sum(s["warnings_by_kind"].values())
    return dict(out)


def pipeline_over_time(b: Base, f: Filters) -> Answer:
    messages: dict[tuple[datetime, str], set[str]] = defaultdict(set)
    out: dict[tuple[datetime, str], dict[str, Any]] = defaultdict(
        lambda: {"messages": 0, "events_out": 0, "dead_lettered": 0}
    )
    for e in b.events:
        if f.in_range(e["received_at"]):
            key = (e["received_at"].replace(minute=0, second=0, microsecond=0), _topic(e["raw_ref"]))
            messages[key].add(e["raw_ref"])
            out[key]["events_out"] += 1
    for key, refs in messages.items():
        out[key]["messages"] = len(refs)
    for d in b.dead:
        if f.in_range(d["received_at"]):
            out[(d["received_at"].replace(minute=0, second=0, microsecond=0), d["topic"])]["dead_lettered"] += 1
    return dict(out)


def warnings_by_kind(b: Base, f: Filters) -> Answer:
    counts: Counter[tuple[str, str]] = Counter()
    for s in b.stats:
        if f.in_range(s["flushed_at"]):
            for kind, count in s["warnings_by_kind"].items():
                counts[(s["topic"], kind)] += count
    return {key: {"warnings": n} for key, n in counts.items()}


def dead_letters_by_reason(b: Base, f: Filters) -> Answer:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in b.dead:
        if f.in_range(d["received_at"]):
            groups[d["reason"]].append(d)
    return {
        reason: {"dead_letters": len(rows), "topics": ", ".join(sorted({r["topic"] for r in rows}))}
        for reason, rows in groups.items()
    }


def pipeline_status(b: Base, f: Filters) -> Answer:
    last = max(b.stats, key=lambda s: s["flushed_at"])
    return {
        (): {
            "last_flush_at": last["flushed_at"],
            "last_run": last["run_id"],
            "runs": len({w["run_id"] for w in b.watermarks}),
            "input_partitions": len({s["source"] for s in b.stats}),
            "raw_messages": sum(s["raw_in"] for s in b.stats),
            "dead_letters": sum(s["dead_lettered"] for s in b.stats),
            "warnings": sum(sum(s["warnings_by_kind"].values()) for s in b.stats),
        }
    }


def input_partitions(b: Base, f: Filters) -> Answer:
    blocks: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for s in b.stats:
        blocks[s["source"]][s["block"]] = s  # every topic row of a block has its message count
    out = {}
    for source, rows in blocks.items():
        last = max(rows.values(), key=lambda s: s["flushed_at"])
        out[source] = {
            "blocks": len(rows),
            "messages": sum(s["messages"] for s in rows.values()),
            "latest_block": max(rows),
            "last_write_at": last["flushed_at"],
            "last_run": last["run_id"],
        }
    return out

"""/metrics from the stored ingest_stats rows: a replayed dead letter grows its outcome and
`logisync_replayed_total`, never `logisync_messages_in_total` (which stays sum(raw_in))."""

from __future__ import annotations

import uuid

from operators.ingest.accounting import IngestStats
from sinks.clickhouse import _Accounting
from sinks.rows import TABLES
from web.metrics import PIPELINE_REGISTRY

TABLE = TABLES[IngestStats]


def row(topic: str, messages: int, **counts: int) -> list[object]:
    values = {"raw_in": 0, "normalized": 0, "events_out": 0, "dead_lettered": 0, "duplicates": 0, "ignored": 0}
    values |= counts
    replayed = values.pop("replayed", 0)
    dead = {"mapping_error": values["dead_lettered"]} if values["dead_lettered"] else {}
    stats = IngestStats(
        "src",
        0,
        topic,
        "run",
        messages,
        **values,
        mapping_warnings=0,
        events_by_type={},
        dead_by_reason=dead,
        warnings_by_kind={},
        replayed=replayed,
    )
    return list(TABLE.to_row(stats))


def sample(name: str, topic: str, **labels: str) -> float:
    return PIPELINE_REGISTRY.get_sample_value(name, {"topic": topic, **labels}) or 0.0


def test_replays_grow_outcomes_and_replayed_but_not_messages_in() -> None:
    topic = f"t-{uuid.uuid4().hex[:8]}"
    accounting = _Accounting()
    accounting.record(TABLE, [row(topic, 3, raw_in=3, normalized=2, events_out=2, dead_lettered=1)])
    assert sample("logisync_messages_in_total", topic) == 3
    # The letter is replayed in this block (Kafka mode): normalized now, and once more still dead.
    accounting.record(TABLE, [row(topic, 5, raw_in=3, replayed=2, normalized=3, events_out=3, dead_lettered=2)])
    assert sample("logisync_messages_in_total", topic) == 3
    assert sample("logisync_replayed_total", topic) == 2
    assert sample("logisync_message_outcomes_total", topic, outcome="normalized") == 3
    assert sample("logisync_message_outcomes_total", topic, outcome="dead_lettered") == 2
    assert sample("logisync_events_out_total", topic) == 3
    # The same row again (a replayed epoch) adds nothing.
    accounting.record(TABLE, [row(topic, 5, raw_in=3, replayed=2, normalized=3, events_out=3, dead_lettered=2)])
    assert sample("logisync_messages_in_total", topic) == 3 and sample("logisync_replayed_total", topic) == 2

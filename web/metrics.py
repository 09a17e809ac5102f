"""Prometheus metrics: what the pipeline records as it runs, and business gauges read at scrape.

The pipeline calls the `record_*` / `set_*` / `observe_*` functions below (they are cheap and
thread-safe; prometheus-client guards each sample): the ClickHouse sink records outcomes (from
the `ingest_stats` rows it stores), inserts and stage watermarks, the Kafka source consumer lag.
Their samples live in `PIPELINE_REGISTRY`, one per process, so a `logisync run --serve` exposes
the run it is part of. Business gauges (open alerts per rule, handoff breaches) are not counted
in the pipeline: a `StoreCollector` asks the store at scrape time, so they are right whoever
wrote the rows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sinks.store import query_rows

log = logging.getLogger(__name__)

PIPELINE_REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES_IN = PromCounter(
    "logisync_messages_in", "Raw messages accounted for, per topic", ["topic"], registry=PIPELINE_REGISTRY
)
OUTCOMES = PromCounter(
    "logisync_message_outcomes",
    "Raw messages per topic and outcome (normalized, duplicate, dead_lettered, ignored)",
    ["topic", "outcome"],
    registry=PIPELINE_REGISTRY,
)
EVENTS_OUT = PromCounter(
    "logisync_events_out", "New canonical events, per source topic", ["topic"], registry=PIPELINE_REGISTRY
)
DEAD_LETTERS = PromCounter(
    "logisync_dead_letters",
    "Dead-lettered raw messages per topic and reason",
    ["topic", "reason"],
    registry=PIPELINE_REGISTRY,
)
REPLAYED = PromCounter(
    "logisync_replayed",
    "Dead letters replayed, per topic (counted again in their outcome, not in messages_in)",
    ["topic"],
    registry=PIPELINE_REGISTRY,
)
DUPLICATES = PromCounter(
    "logisync_duplicates",
    "Raw messages whose every event was already seen, per topic",
    ["topic"],
    registry=PIPELINE_REGISTRY,
)
INSERT_ROWS = PromCounter(
    "logisync_clickhouse_insert_rows", "Rows inserted into ClickHouse per table", ["table"], registry=PIPELINE_REGISTRY
)
INSERT_SECONDS = Histogram(
    "logisync_clickhouse_insert_seconds",
    "Duration of one ClickHouse insert (with its retries), per table",
    ["table"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=PIPELINE_REGISTRY,
)
WATERMARK = Gauge(
    "logisync_watermark_seconds",
    "The stage's watermark W (event time, Unix seconds)",
    ["stage"],
    registry=PIPELINE_REGISTRY,
)
WATERMARK_LAG = Gauge(
    "logisync_watermark_lag_seconds", "Wall clock minus the stage's watermark W", ["stage"], registry=PIPELINE_REGISTRY
)
CONSUMER_LAG = Gauge(
    "logisync_kafka_consumer_lag",
    "Kafka messages behind the partition's high watermark",
    ["topic", "partition"],
    registry=PIPELINE_REGISTRY,
)
INGEST_LATENCY = Histogram(
    "logisync_ingest_latency_seconds",
    "From the Kafka timestamp (received_at) of an event to its insert into ClickHouse",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0),
    registry=PIPELINE_REGISTRY,
)


def record_outcome(
    topic: str, outcome: str, dead_reason: str = "", events: int = 0, messages: int = 1, replayed: int = 0
) -> None:
    """`messages` raw messages of `topic` ended as `outcome`, yielding `events` new events;
    `replayed` of them were replayed dead letters, not new raw messages."""
    MESSAGES_IN.labels(topic).inc(messages - replayed)
    if replayed:
        REPLAYED.labels(topic).inc(replayed)
    OUTCOMES.labels(topic, outcome).inc(messages)
    if events:
        EVENTS_OUT.labels(topic).inc(events)
    if outcome == "duplicate":
        DUPLICATES.labels(topic).inc(messages)
    if outcome == "dead_lettered":
        DEAD_LETTERS.labels(topic, dead_reason or "unknown").inc(messages)


def record_insert(table: str, rows: int, seconds: float) -> None:
    """One insert of `rows` rows into `table` took `seconds`."""
    INSERT_ROWS.labels(table).inc(rows)
    INSERT_SECONDS.labels(table).observe(seconds)


def set_watermark(stage: str, watermark_ms: int, now_ms: int) -> None:
    """The stage's watermark W and the wall clock when it was read (both Unix milliseconds)."""
    WATERMARK.labels(stage).set(watermark_ms / 1000)
    WATERMARK_LAG.labels(stage).set((now_ms - watermark_ms) / 1000)


class _StageWatermarks:
    """W of every (stage, bucket) the sink partitions of this process stored, for the latest run.

    A sink partition stores the rows of some buckets only (the packets are keyed by sender), so a
    stage's W, the min over its buckets, is taken here, where the partitions meet. Discarded when:
    a row of another run arrives (one pipeline per process; a test process runs several)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._run_id = ""
        self._buckets: dict[tuple[str, int], int] = {}

    def update(self, rows: Iterable[Sequence[Any]]) -> dict[str, int]:
        """The W of every stage, after storing the rows."""
        with self._lock:
            for run_id, stage, bucket, watermark in rows:
                if run_id != self._run_id:
                    self._run_id, self._buckets = str(run_id), {}
                key = (str(stage), int(bucket))
                self._buckets[key] = max(int(watermark), self._buckets.get(key, int(watermark)))
            stages: dict[str, int] = {}
            for (stage, _), watermark in self._buckets.items():
                stages[stage] = min(watermark, stages.get(stage, watermark))
            return stages


_STAGE_WATERMARKS = _StageWatermarks()


def record_stage_watermarks(rows: Iterable[Sequence[Any]], now_ms: int) -> None:
    """Stored `stage_watermarks` rows (run_id, stage, bucket, watermark ms): every stage's W, the
    min over its buckets, and its lag behind the wall clock `now_ms` (a stalled stage's lag grows
    as the others store theirs)."""
    for stage, watermark in _STAGE_WATERMARKS.update(rows).items():
        set_watermark(stage, watermark, now_ms)


def set_consumer_lag(topic: str, partition: int, lag: int) -> None:
    """Messages between the consumed position and the partition's high watermark."""
    CONSUMER_LAG.labels(topic, str(partition)).set(lag)


def observe_ingest_latency(seconds: float) -> None:
    """Kafka timestamp to ClickHouse insert for one event (a pipeline-latency metric, design.md 3.1)."""
    INGEST_LATENCY.observe(seconds)


class StoreCollector(Collector):
    """Business gauges read from the store at scrape time (latest versions, FINAL)."""

    def __init__(self, client: Any, database: str) -> None:
        self._client = client
        self._database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        db = self._database
        open_alerts = GaugeMetricFamily("logisync_open_alerts", "Open alerts per rule", labels=["rule"])
        facts = GaugeMetricFamily(
            "logisync_handoff_facts", "Handoff facts (deliveries) per handoff", labels=["handoff"]
        )
        breaches = GaugeMetricFamily(
            "logisync_handoff_breaches", "Handoff facts over their SLA per handoff", labels=["handoff"]
        )
        try:
            for rule, count in query_rows(
                self._client, f"SELECT rule, count() FROM {db}.alerts FINAL WHERE state = 'open' GROUP BY rule"
            ):
                open_alerts.add_metric([str(rule)], float(count))
            for handoff, total, breached in query_rows(
                self._client,
                f"SELECT handoff, count(), countIf(breached) FROM {db}.sync_latency FINAL GROUP BY handoff",
            ):
                facts.add_metric([str(handoff)], float(total))
                breaches.add_metric([str(handoff)], float(breached))
        except ClickHouseError as exc:  # a scrape must answer even when the store does not
            log.warning("business metrics: reading %s failed: %s", db, exc)
        yield open_alerts
        yield facts
        yield breaches


def business_registry(client: Any, database: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(client, database))
    return registry


def exposition(business: CollectorRegistry | None) -> bytes:
    """The text of /metrics: the pipeline's samples, then the business gauges."""
    text = generate_latest(PIPELINE_REGISTRY)
    return text + generate_latest(business) if business is not None else text

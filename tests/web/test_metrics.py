"""The stage watermark gauges on /metrics: a stage's W is the min over all its buckets, whichever
sink partition of the process stored them."""

from __future__ import annotations

import time

import pytest

from flows.packets import SinkPacket
from sinks.clickhouse import ClickHousePartition, SinkConfig, SinkCounters
from sinks.store import StoreConfig, query_rows
from web import metrics

pytestmark = pytest.mark.clickhouse

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms


def _gauge(name: str, stage: str) -> float | None:
    return metrics.PIPELINE_REGISTRY.get_sample_value(name, {"stage": stage})


def _store(partition: ClickHousePartition, run_id: str, *rows: tuple[str, int, int]) -> None:
    partition.write_batch([SinkPacket({"stage_watermarks": [(run_id, stage, bucket, w) for stage, bucket, w in rows]})])
    partition.flush_if_due(float("inf"))


def test_a_stage_watermark_is_the_min_over_the_buckets_of_every_partition(store: StoreConfig) -> None:
    config = SinkConfig(store, "run-a", partitions=2, flush_interval_s=0.01)
    fast, slow = (ClickHousePartition(config, f"ch-{i}", SinkCounters(), time.monotonic) for i in range(2))
    try:
        _store(fast, "run-a", ("lifecycle", 0, T0 + 60_000), ("dedup", 0, T0 + 90_000))
        _store(slow, "run-a", ("lifecycle", 1, T0 + 10_000))
        # the partition with the fast bucket stores again: the slow bucket still holds the stage back
        _store(fast, "run-a", ("lifecycle", 0, T0 + 120_000), ("dedup", 0, T0 + 150_000))
        assert _gauge("logisync_watermark_seconds", "lifecycle") == (T0 + 10_000) / 1000
        assert _gauge("logisync_watermark_seconds", "dedup") == (T0 + 150_000) / 1000
        lag = _gauge("logisync_watermark_lag_seconds", "lifecycle")
        assert lag is not None and abs(lag - (time.time() * 1000 - T0 - 10_000) / 1000) < 60
        # the store holds every bucket, and the web clock reads the same min
        ((slowest,),) = query_rows(
            fast._client, f"SELECT toUnixTimestamp64Milli(min(watermark)) FROM {store.database}.stage_watermarks FINAL"
        )
        assert slowest == T0 + 10_000
        # a new run in this process starts over
        _store(slow, "run-b", ("lifecycle", 1, T0 + 200_000))
        assert _gauge("logisync_watermark_seconds", "lifecycle") == (T0 + 200_000) / 1000
    finally:
        fast.close()
        slow.close()

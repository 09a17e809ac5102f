"""flows.topology: where bytewax runs a stateful key (checked against bytewax itself), the bucket
keys that spread each stage evenly over the workers, and who sends to whom."""

from __future__ import annotations

import threading
from collections import Counter

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, cluster_main
from typing_extensions import override

from flows.topology import (
    ARBITER,
    DEDUP,
    HEALTH,
    INVENTORY,
    LIFECYCLE,
    ORDERED_STAGES,
    RESOLUTION,
    Topology,
    balanced_key,
    siphash13,
    worker_of,
)

KEYS = [f"key-{index}" for index in range(24)] + ["", "lifecycle-0", "inventory-7", "ü", "a" * 8, "b" * 15, "0", "7"]


class _Placement(StatelessSinkPartition[str]):
    def __init__(self, worker: int, seen: dict[str, set[int]], lock: threading.Lock) -> None:
        self.worker, self.seen, self.lock = worker, seen, lock

    @override
    def write_batch(self, items: list[str]) -> None:
        with self.lock:
            for key in items:
                self.seen.setdefault(key, set()).add(self.worker)


class PlacementSink(DynamicSink[str]):
    """Records which worker wrote each key: a stateful step's output stays on the worker that ran
    the key, so this is where bytewax placed it."""

    def __init__(self) -> None:
        self.seen: dict[str, set[int]] = {}
        self.lock = threading.Lock()

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Placement:
        return _Placement(worker_index, self.seen, self.lock)


def bytewax_placement(keys: list[str], workers: int) -> dict[str, int]:
    flow = Dataflow("placement")
    keyed = op.key_on("key", op.input("in", flow, TestingSource(keys)), lambda key: key)
    ran = op.stateful_map("run", keyed, lambda state, key: (state, key))
    sink = PlacementSink()
    op.output("out", op.map("unkey", ran, lambda pair: pair[1]), sink)
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    assert set(sink.seen) == set(keys)
    assert all(len(places) == 1 for places in sink.seen.values()), sink.seen
    return {key: places.pop() for key, places in sink.seen.items()}


@pytest.mark.parametrize("workers", [2, 3])
def test_worker_of_agrees_with_where_bytewax_runs_keys(workers: int) -> None:
    assert len(KEYS) == 32
    placement = bytewax_placement(KEYS, workers)
    assert placement == {key: worker_of(key, workers) for key in KEYS}
    assert len(set(placement.values())) == workers  # the check is not vacuous: every worker ran keys


def test_siphash13_is_pinned() -> None:
    # Pinned values (the test above checks them against bytewax): a change here would move every
    # bucket to another worker, and recovery snapshots with them.
    assert siphash13(b"") == 0xD1FBA762150C532C
    # ... and why buckets get balanced keys: the plain names crowd three workers and leave four idle
    assert [worker_of(f"lifecycle-{bucket}", 8) for bucket in range(8)] == [2, 3, 0, 2, 7, 6, 0, 2]
    assert worker_of("anything", 1) == 0


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("buckets", [1, 4, 8, 13])
def test_balanced_keys_spread_buckets_evenly(workers: int, buckets: int) -> None:
    keys = [balanced_key(LIFECYCLE, bucket, workers) for bucket in range(buckets)]
    assert [worker_of(key, workers) for key in keys] == [bucket % workers for bucket in range(buckets)]
    per_worker = Counter(worker_of(key, workers) for key in keys)
    assert max(per_worker.values()) - min(per_worker.get(w, 0) for w in range(workers)) <= 1
    assert len(set(keys)) == buckets and all(key.startswith(f"{LIFECYCLE}-") for key in keys)


def test_balanced_keys_spread_evenly_where_bytewax_runs_them() -> None:
    topology = Topology(sources=("p0",), workers=3)
    keys = [topology.key(stage, bucket) for stage in ORDERED_STAGES for bucket in range(topology.count(stage))]
    placement = bytewax_placement(keys, 3)
    # 8 buckets per stage (3 + 3 + 2 each) and 2 of health (1 + 1)
    assert Counter(placement.values()) == {0: 13, 1: 13, 2: 8}


def test_topology_senders_and_keys() -> None:
    topology = Topology(sources=("erp.sap.events:0", "wms.epcis:0"), workers=2, buckets={
        DEDUP: 2, RESOLUTION: 3, ARBITER: 2, LIFECYCLE: 4, INVENTORY: 1, HEALTH: 1})  # fmt: skip
    assert topology.senders(HEALTH) == ("erp.sap.events:0", "wms.epcis:0")  # the inputs, as dedup
    assert topology.senders(DEDUP) == ("erp.sap.events:0", "wms.epcis:0")
    assert topology.senders(RESOLUTION) == ("dedup/0", "dedup/1")
    assert topology.senders(ARBITER) == ("dedup/0", "dedup/1", "resolution/0", "resolution/1", "resolution/2")
    assert topology.senders(INVENTORY) == (
        "dedup/0",
        "dedup/1",
        "lifecycle/0",
        "lifecycle/1",
        "lifecycle/2",
        "lifecycle/3",
    )
    for stage in (DEDUP, *ORDERED_STAGES):
        for bucket in range(topology.count(stage)):
            key = topology.key(stage, bucket)
            assert topology.bucket_of_key(key) == (stage, bucket)
            assert worker_of(key, 2) == bucket % 2

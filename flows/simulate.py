"""`logisync simulate`: write the simulator's scenario as a replay file (and its master data)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path

import orjson

from operators.formats.timeparse import to_epoch_ms
from simulator.scenario import SimConfig, simulate
from sources.kafka_client import client_config
from sources.replay import write_replay


def write_scenario(out: Path, master_out: Path | None, *, seed: int, deliveries: int) -> int:
    """Simulate and write `out` (JSON Lines), `<out>.expected.json`, and master CSVs; returns the count."""
    scenario = simulate(SimConfig(seed=seed, deliveries=deliveries))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as handle:
        count = write_replay(handle, ((r.topic, r.key, r.received_at, r.value) for r in scenario.records))
    expected = out.with_name(out.name + ".expected.json")
    expected.write_bytes(orjson.dumps(dataclasses.asdict(scenario.expected), option=orjson.OPT_INDENT_2))
    if master_out is not None:
        master_out.mkdir(parents=True, exist_ok=True)
        (master_out / "products.csv").write_text(scenario.products_csv, encoding="utf-8")
        (master_out / "sites.csv").write_text(scenario.sites_csv, encoding="utf-8")
    return count


def produce_scenario(
    bootstrap: str,
    *,
    seed: int,
    deliveries: int,
    partitions: int,
    config: Mapping[str, str],
    progress: bool = True,
) -> int:
    """Produce the scenario onto its topics, keyed so one delivery's messages share a partition.

    The Kafka timestamp of each message is its `received_at`, so a Kafka replay and a file replay
    of the same scenario compute the same results. Those timestamps lie in the past, so the topics
    it creates keep messages forever (`retention.ms=-1`): with a broker's default 7-day retention
    the scenario would be deleted within a minute of being produced.
    """
    from confluent_kafka import Producer

    from sinks.kafka_out import ALERTS_TOPIC, DEAD_LETTER_TOPIC
    from sources.kafka import ensure_topics

    scenario = simulate(SimConfig(seed=seed, deliveries=deliveries))
    topics = {record.topic: partitions for record in scenario.records}
    topics.update({DEAD_LETTER_TOPIC: partitions, ALERTS_TOPIC: partitions})
    created = ensure_topics(bootstrap, topics, config, topic_config={"retention.ms": "-1"})
    kept = sorted(set(topics) - set(created))
    if kept:
        print(
            f"note: topics {', '.join(kept)} existed already; their retention decides how long the scenario "
            "(timestamped in the past) stays",
            file=sys.stderr,
        )
    producer = Producer(client_config(bootstrap, {"linger.ms": "20", "compression.type": "lz4", **config}))
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    total = len(scenario.records)
    for index, record in enumerate(scenario.records, 1):
        while True:
            try:
                producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key.encode() if record.key is not None else None,
                    timestamp=to_epoch_ms(record.received_at),
                    on_delivery=delivered,
                )
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: let deliveries drain
        if progress and (index % 5000 == 0 or index == total):
            bar = "#" * (30 * index // total)
            sys.stderr.write(f"\r  produced [{bar:<30}] {index:,}/{total:,}")
            sys.stderr.flush()
        producer.poll(0)
    remaining = producer.flush(60)
    if progress:
        sys.stderr.write("\n")
    if remaining or failures:
        raise RuntimeError(f"{remaining + len(failures)} messages not delivered to {bootstrap}: {failures[:3]}")
    return total

"""Composition root for `logisync run`: settings -> store, master data, source, flow -> summary."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax.inputs import Source
from bytewax.outputs import DynamicSink, Sink, StatelessSinkPartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main
from typing_extensions import override

from flows.domain_config import build_domain_config
from flows.pipeline import FlowConfig, build_flow
from flows.settings import Settings, SettingsError
from flows.topology import ARBITER, DEDUP, HEALTH, INVENTORY, LIFECYCLE, RESOLUTION, Topology
from operators.domain.alerts import Alert
from operators.ingest.normalize import Normalizer
from operators.master import EMPTY_MASTER, MasterData
from sinks.clickhouse import ClickHouseSink, SinkConfig, SinkCounters
from sinks.kafka_out import (
    DEAD_LETTER_MAX_BYTES,
    KafkaTopicSink,
    TopicSinkConfig,
    alert_message,
    dead_letter_max_bytes,
)
from sinks.store import StoreConfig, connect, migrate
from sinks.webhook import WebhookConfig, WebhookCounters, WebhookSink
from sources.batch import RawBatch
from sources.dead_letters import DeadLetterSource, LetterRef, replay_source
from sources.file_source import FileProgress, ReplayFileSource
from sources.master_files import load_master
from sources.stop import STOP, given_up

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    seconds: float
    sink: SinkCounters
    store: StoreConfig
    webhook: WebhookCounters | None = None
    web: Any = None  # web.server.BackgroundServer when the run serves the page (`--serve`)


class _AlertsToKafka(DynamicSink[Alert]):
    """Alerts keyed by alert id onto the alerts topic."""

    def __init__(self, sink: TopicSinkConfig) -> None:
        self._inner = KafkaTopicSink(sink)

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition[Alert]:
        return _MappedPartition(self._inner.build(step_id, worker_index, worker_count))


class _MappedPartition(StatelessSinkPartition[Alert]):
    def __init__(self, inner: StatelessSinkPartition[Any]) -> None:
        self._inner = inner

    @override
    def write_batch(self, items: list[Alert]) -> None:
        self._inner.write_batch([alert_message(alert) for alert in items])

    @override
    def close(self) -> None:
        self._inner.close()


def recovery_config(settings: Settings) -> RecoveryConfig | None:
    """bytewax recovery store (SQLite partitions), created on first use.

    State (dedup ids, pending carrier events, SLA deadlines, inventory positions) and input
    offsets are snapshotted at every epoch; a restart resumes from the last complete epoch and
    re-sends that epoch's rows, which the ReplacingMergeTree tables collapse.
    """
    directory = settings.recovery_dir
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    if not any(directory.glob("part-*.sqlite3")):
        init_db_dir(directory, settings.recovery_partitions)  # type: ignore[no-untyped-call]
        log.info("initialized %d recovery partitions in %s", settings.recovery_partitions, directory)
    return RecoveryConfig(str(directory))  # type: ignore[no-untyped-call]


def load_master_data(settings: Settings) -> MasterData:
    if settings.master_dir is None:
        return EMPTY_MASTER
    return load_master(settings.master_dir)


def _progress_printer() -> tuple[object, list[float]]:
    started = [time.monotonic()]

    def report(progress: FileProgress) -> None:
        elapsed = max(time.monotonic() - started[0], 1e-9)
        share = 100.0 * progress.bytes_read / progress.bytes_total if progress.bytes_total else 100.0
        sys.stderr.write(
            f"\r  read {progress.messages:,} messages ({share:5.1f}%) {progress.messages / elapsed:,.0f} msg/s   "
        )
        if progress.bytes_read >= progress.bytes_total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return report, started


def _message_counter() -> Callable[[int], None]:
    """Progress for sources without a known end (Kafka): messages consumed, about once a second."""
    started = last = time.monotonic()
    total = 0

    def count(messages: int) -> None:
        nonlocal last, total
        total += messages
        now = time.monotonic()
        if now - last >= 1.0:
            last = now
            sys.stderr.write(f"\r  consumed {total:,} messages ({total / (now - started):,.0f} msg/s)   ")
            sys.stderr.flush()

    return count


# A replay file's batches per round for a lane on a process other than the embedded store's
# single writer (process 0 inserts every row, so it normalizes fewer batches).
_LANE_WEIGHT_BESIDE_WRITER = int(os.environ.get("LOGISYNC_LANE_WEIGHT", "2"))


def lane_weights(settings: Settings, processes: int) -> tuple[int, ...]:
    """How a replay file is dealt to the lanes (one per worker; lane i is on process
    i // workers): evenly, except that with an embedded store the writer's lanes get less."""
    if processes <= 1 or not StoreConfig(dsn=settings.clickhouse).embedded:
        return ()
    return tuple(
        1 if lane // settings.workers == 0 else _LANE_WEIGHT_BESIDE_WRITER
        for lane in range(settings.workers * processes)
    )


def build_source(
    settings: Settings, progress: bool, lanes: int, weights: tuple[int, ...] = ()
) -> tuple[Source[RawBatch], tuple[str, ...]]:
    """The source, and its input partitions (every sender the watermark must hear from)."""
    path = settings.replay_path
    if path is not None:
        if not path.is_file():
            raise SettingsError(f"replay file {path} does not exist")
        report = _progress_printer()[0] if progress else None
        replay = ReplayFileSource(
            path,
            batch_size=settings.batch_size,
            progress=report,  # type: ignore[arg-type]
            lanes=lanes,
            lane_weights=weights if lanes > 1 else (),
        )
        return replay, replay.senders
    if settings.source == "kafka":
        from sources.kafka import build_kafka_source

        kafka = build_kafka_source(settings, _message_counter() if progress else None)
        return kafka, kafka.senders
    raise SettingsError(f"source {settings.source!r} must be resolved to a file or kafka before running")


@dataclass(frozen=True)
class ClusterPlace:
    """Where this process sits in a bytewax cluster (one process: the defaults)."""

    process_id: int | None = None
    addresses: tuple[str, ...] = ()

    @property
    def processes(self) -> int:
        return max(len(self.addresses), 1)

    @property
    def is_first(self) -> bool:
        return not self.process_id


def run_pipeline(
    settings: Settings,
    *,
    progress: bool = True,
    place: ClusterPlace | None = None,
    serve: tuple[str, int] | None = None,
    letters: Sequence[LetterRef] | None = None,
) -> RunResult:
    """Run the flow to the end of its input (replay, `--until-end`) and return what it wrote.

    With `letters` (stored dead letters, `logisync dlq replay`) the input is those letters, one
    input partition `dlq:<run_id>`, through the same normalize, dedup, accounting and sinks, without
    the domain stages (FlowConfig.domain_stages); one process, no recovery store.

    With `settings.processes` > 1 this process starts the others (flows/cluster.py) and is
    process 0 of the cluster; with `process_id`/`addresses` it is one process of a cluster
    started elsewhere (several machines). With `serve` (host, port) the web page runs on a
    background thread over the same store client (chDB admits one process), from before the first
    insert; it is left running.
    """
    if letters is not None and (settings.processes > 1 or settings.recovery_dir is not None or place is not None):
        raise SettingsError("a dead-letter replay runs in one process without a recovery store")
    if place is None and settings.processes > 1:
        from flows.cluster import run_local_cluster

        return run_local_cluster(settings, progress=progress, serve=serve)
    place = place or _place_of(settings)
    store = StoreConfig(settings.clickhouse, settings.database)
    web = None
    if place.is_first:
        client = connect(store)
        migrate(client, store.database)  # once per cluster, before the others start work
        if serve is not None:
            from web.server import start_background

            web = start_background(client, store.database, *serve)
            print(f"serving the dashboards at {web.url} (live)", file=sys.stderr)
    master = load_master_data(settings)
    normalizer = Normalizer(settings.topic_adapters, master, settings.unmapped)
    run_id = settings.run_id or uuid.uuid4().hex[:12]
    workers = settings.workers * place.processes
    lanes = workers if workers > 1 else 1
    source: Source[RawBatch]
    stored: frozenset[str] = frozenset()
    if letters is not None:
        from flows.dlq import stored_events

        replay = DeadLetterSource(store, letters, replay_source(run_id), settings.batch_size)
        source, senders, lanes = replay, replay.senders, 1
        stored = stored_events(connect(store), store.database, normalizer, letters, settings.batch_size)
    else:
        source, senders = build_source(
            settings, progress and place.is_first, lanes, lane_weights(settings, place.processes)
        )
    buckets = max(settings.buckets, 1)
    topology = Topology(
        sources=senders,
        workers=workers,
        buckets={
            DEDUP: buckets,
            RESOLUTION: buckets,
            ARBITER: buckets,
            LIFECYCLE: buckets,
            INVENTORY: buckets,
            HEALTH: max(1, min(buckets, 2)),  # a handful of topics
        },
    )
    live = settings.source == "kafka" and not settings.until_end and letters is None
    counters = SinkCounters()
    if live:  # Kafka timestamp -> stored row, for /metrics (meaningless for a replay of old data)
        counters.on_events = _observe_ingest_latency
    sink = ClickHouseSink(
        SinkConfig(
            store=store,
            run_id=run_id,
            # An embedded store admits one process: its one partition lives on process 0.
            partitions=1 if store.embedded else workers,
            max_rows=settings.sink_max_rows,
            # A replay or backfill has no reader waiting for each second: larger inserts, fewer parts
            # to merge; every epoch end still flushes (the sink's barrier).
            flush_interval_s=settings.sink_flush_interval_s if live else max(settings.sink_flush_interval_s, 5.0),
            writer_process=0 if store.embedded else None,
            process_id=place.process_id or 0,
        ),
        counters,
    )
    dead_letter_sink = None
    dead_letter_bytes = DEAD_LETTER_MAX_BYTES
    alert_sinks: list[tuple[str, Sink[Any]]] = []
    if settings.source == "kafka" and settings.bootstrap and letters is None:
        give_up_s = settings.kafka_give_up_s if settings.until_end else None
        dead_letter_sink = KafkaTopicSink(
            TopicSinkConfig(settings.bootstrap, settings.dead_letter_topic, settings.kafka_config, give_up_s)
        )
        dead_letter_bytes = dead_letter_max_bytes(settings.bootstrap, settings.dead_letter_topic, settings.kafka_config)
        alert_sinks.append(
            (
                "kafka_alerts",
                _AlertsToKafka(
                    TopicSinkConfig(settings.bootstrap, settings.alerts_topic, settings.kafka_config, give_up_s)
                ),
            )
        )
    webhook = None
    if settings.alert_webhook and letters is None:
        webhook = WebhookSink(WebhookConfig(settings.alert_webhook, drain_s=settings.alert_webhook_drain_s))
        alert_sinks.append(("alert_webhook", webhook))
    config = FlowConfig(
        topology=topology,
        run_id=run_id,
        domain=build_domain_config(settings),
        master=master,
        recovery=settings.recovery_dir is not None,
        lanes=lanes if settings.replay_path is not None else 1,
        domain_stages=letters is None,
        stored_events=stored,
        dead_letter_max_bytes=dead_letter_bytes,
    )
    flow = build_flow(source, normalizer, sink, config, dead_letter_sink=dead_letter_sink, alert_sinks=alert_sinks)
    started = time.perf_counter()
    with tamed_gc(), stop_on_signals():
        cli_main(  # type: ignore[no-untyped-call]
            flow,
            workers_per_process=settings.workers,
            process_id=place.process_id,
            addresses=list(place.addresses) or None,
            epoch_interval=timedelta(seconds=settings.epoch_interval_s),
            recovery_config=recovery_config(settings),
        )
    seconds = time.perf_counter() - started
    error = given_up()
    if error is not None:
        raise error  # one line from the CLI (a broker away longer than kafka_give_up_s)
    if STOP.is_set():
        raise KeyboardInterrupt  # the CLI says "interrupted" (exit 130); everything read so far is stored
    if settings.source == "kafka" and settings.until_end and place.is_first and letters is None:
        _warn_if_nothing_read(store, run_id, settings)
    return RunResult(run_id, seconds, counters, store, webhook.counters if webhook else None, web)


def _observe_ingest_latency(received_ms: list[int], stored_ms: int) -> None:
    from web import metrics

    for received in received_ms:
        metrics.observe_ingest_latency((stored_ms - received) / 1000)


def _warn_if_nothing_read(store: StoreConfig, run_id: str, settings: Settings) -> None:
    """An `--until-end` run that consumed nothing says so (empty, deleted or mistyped topics)."""
    from sinks.store import query_rows

    rows = query_rows(
        connect(store),
        f"SELECT count() FROM {store.database}.ingest_stats FINAL WHERE run_id = %(run)s",
        {"run": run_id},
    )
    if rows and int(rows[0][0]) == 0:
        topics = ", ".join(sorted(settings.topic_adapters))
        print(
            f"warning: read no message from {settings.bootstrap} (topics {topics}): they are empty, or their "
            "retention deleted the messages (a simulated scenario is timestamped in the past)",
            file=sys.stderr,
        )


def _place_of(settings: Settings) -> ClusterPlace:
    if settings.addresses is None and settings.process_id is None:
        return ClusterPlace()
    if settings.addresses is None or settings.process_id is None:
        raise SettingsError("a cluster process needs both --process-id and --addresses")
    addresses = tuple(address.strip() for address in settings.addresses.split(";") if address.strip())
    if settings.process_id >= len(addresses):
        raise SettingsError(f"process_id {settings.process_id} is not an index of the {len(addresses)} addresses")
    return ClusterPlace(settings.process_id, addresses)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Ctrl-C / SIGTERM stop the sources (sources/stop.py) and let the flow drain; a second
    Ctrl-C aborts. Only the main thread can install signal handlers (tests run flows elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(signum: int, _frame: Any) -> None:
        if STOP.is_set():
            raise KeyboardInterrupt
        STOP.set()
        print("\nstopping: draining what is in flight (Ctrl-C again to abort)", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def tamed_gc() -> Iterator[None]:
    """The garbage collector, tamed for the run: what start-up built (modules, master data, the
    flow) is frozen out of every collection, and young collections run ten times less often.
    The hot path makes no reference cycles (events and packets are msgspec Structs the collector
    does not track), so full collections found nothing and cost a quarter of the run."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def resolve_simulator(settings: Settings, workdir: Path) -> Settings:
    """`logisync run` without a source: simulate a scenario into `workdir`, then replay it."""
    from flows.simulate import write_scenario

    replay = workdir / "scenario.jsonl"
    master_dir = workdir / "master"
    count = write_scenario(replay, master_dir, seed=settings.sim_seed, deliveries=settings.sim_deliveries)
    log.info("simulated %d messages into %s", count, replay)
    return settings.replace(source=f"file:{replay}", master_dir=settings.master_dir or master_dir)

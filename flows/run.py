"""Composition root for `logisync run`: settings -> store, master data, source, flow -> summary."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax.connectors.kafka import KafkaSink
from bytewax.inputs import Source
from bytewax.outputs import DynamicSink, Sink, StatelessSinkPartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main
from typing_extensions import override

from flows.core_config import build_core_config
from flows.pipeline import build_flow, kafka_partition, replay_stream
from flows.settings import Settings, SettingsError
from operators.domain.alerts import Alert
from operators.ingest.normalize import Normalizer
from operators.master import EMPTY_MASTER, MasterData
from operators.model import RawMessage
from sinks.clickhouse import ClickHouseSink, SinkConfig, SinkCounters
from sinks.kafka_out import alert_message, kafka_sink
from sinks.store import StoreConfig, connect, migrate
from sinks.webhook import WebhookConfig, WebhookCounters, WebhookSink
from sources.file_source import FileProgress, ReplayFileSource
from sources.master_files import load_master

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
    """Alerts keyed by alert id onto the alerts topic (through bytewax's KafkaSink)."""

    def __init__(self, bootstrap: str, topic: str, config: Mapping[str, str]) -> None:
        self._inner: KafkaSink = kafka_sink(bootstrap, topic, config)

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


def build_source(settings: Settings, progress: bool) -> Source[RawMessage]:
    path = settings.replay_path
    if path is not None:
        if not path.is_file():
            raise SettingsError(f"replay file {path} does not exist")
        report = _progress_printer()[0] if progress else None
        return ReplayFileSource(path, batch_size=settings.batch_size, progress=report)  # type: ignore[arg-type]
    if settings.source == "kafka":
        from sources.kafka import build_kafka_source

        return build_kafka_source(settings)
    raise SettingsError(f"source {settings.source!r} must be resolved to a file or kafka before running")


def run_pipeline(settings: Settings, *, progress: bool = True, serve: tuple[str, int] | None = None) -> RunResult:
    """Run the ingest flow to the end of its input (replay) and return what it wrote.

    With `serve` (host, port) the web page runs on a background thread over the same store
    client (chDB admits one process), from before the first insert; it is left running.
    """
    store = StoreConfig(settings.clickhouse, settings.database)
    client = connect(store)
    migrate(client, store.database)
    web = None
    if serve is not None:
        from web.server import start_background

        web = start_background(client, store.database, *serve)
        print(f"serving the dashboards at {web.url} (live)", file=sys.stderr)
    master = load_master_data(settings)
    normalizer = Normalizer(settings.topic_adapters, master)
    run_id = uuid.uuid4().hex[:12]
    counters = SinkCounters()
    sink = ClickHouseSink(
        SinkConfig(
            store=store,
            run_id=run_id,
            partitions=1 if store.embedded else max(settings.workers, 1),
            max_rows=settings.sink_max_rows,
            flush_interval_s=settings.sink_flush_interval_s,
        ),
        counters,
    )
    source = build_source(settings, progress)
    dead_letter_sink = None
    alert_sinks: list[tuple[str, Sink[Any]]] = []
    live = settings.source == "kafka" and not settings.until_end
    if settings.source == "kafka" and settings.bootstrap:
        dead_letter_sink = kafka_sink(settings.bootstrap, settings.dead_letter_topic, settings.kafka_config)
        alert_sinks.append(
            ("kafka_alerts", _AlertsToKafka(settings.bootstrap, settings.alerts_topic, settings.kafka_config))
        )
    webhook = None
    if settings.alert_webhook:
        webhook = WebhookSink(WebhookConfig(settings.alert_webhook, drain_s=settings.alert_webhook_drain_s))
        alert_sinks.append(("alert_webhook", webhook))
    flow = build_flow(
        source,
        normalizer,
        sink,
        dedup_ttl_ms=int(settings.dedup_ttl_days * 86_400_000),
        dead_letter_sink=dead_letter_sink,
        core=build_core_config(settings),
        master=master,
        alert_sinks=alert_sinks,
        idle_timeout=timedelta(seconds=settings.idle_timeout_s) if live else None,
        recovery=settings.recovery_dir is not None,
        progress=_message_counter() if progress and settings.source == "kafka" else None,
        source_of=kafka_partition if settings.source == "kafka" else replay_stream,
    )
    started = time.perf_counter()
    cli_main(  # type: ignore[no-untyped-call]
        flow,
        workers_per_process=settings.workers,
        epoch_interval=timedelta(seconds=settings.epoch_interval_s),
        recovery_config=recovery_config(settings),
    )
    return RunResult(run_id, time.perf_counter() - started, counters, store, webhook.counters if webhook else None, web)


def resolve_simulator(settings: Settings, workdir: Path) -> Settings:
    """`logisync run` without a source: simulate a scenario into `workdir`, then replay it."""
    from dataclasses import replace

    from flows.simulate import write_scenario

    replay = workdir / "scenario.jsonl"
    master_dir = workdir / "master"
    count = write_scenario(replay, master_dir, seed=settings.sim_seed, deliveries=settings.sim_deliveries)
    log.info("simulated %d messages into %s", count, replay)
    return replace(settings, source=f"file:{replay}", master_dir=settings.master_dir or master_dir)

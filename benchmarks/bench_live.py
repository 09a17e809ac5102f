"""`make bench-live`: how long the live path takes, from Kafka to a stored row and from a
deadline to its alert on the alerts topic.

What it does:
 1. starts the local broker (`scripts/kafka-local`, a state dir of its own, stopped at the end,
    also on an error or Ctrl-C) unless `--bootstrap` names one, and creates the pipeline's input
    topics (the default topic map) and its output topics with 3 partitions each;
 2. starts `logisync run --source kafka` live (no `--until-end`) in a subprocess: one worker, a
    fresh embedded store in a temp dir, the settings' defaults except a config file with a small
    `allowed_lateness_s` and small handoff SLAs (`--lateness`, `--sla`), so that deadlines fall
    and alerts fire within the run;
 3. simulates a scenario (the `simulator` package) and produces `--messages` of it at `--rate`
    messages/s in a paced loop (confluent-kafka, linger 5 ms), each with the current time as its
    Kafka timestamp and every business time in its payload moved by the same offset
    (`simulator.timeshift`): the stream looks like it happens now, its events keep their own
    source and transport lags, and the story is compressed into the run. A trickle of warm-up
    messages first waits until the pipeline consumes;
 4. after the stream: 3 s of silence, then a few idle-probe messages that nothing follows (only
    the sink's timer can store their rows), then silence for `idle_timeout_s` + lateness + 3 s,
    so that the caught-up partitions' clock promises (README "Time") let W pass the last deadlines;
 5. consumes the alerts topic throughout (the consume time of an alert is when an operator's
    consumer sees it), stops the pipeline with SIGINT (it drains and exits 130), then reads the
    store.

Why the store is read after the run: the embedded store admits one process and the running
pipeline holds it. Reading later changes nothing measured: `events.ingested_at` is the wall clock
when the sink starts the insert, written into the row. Rows inserted by the stop's final flush
would show as late rows; the bench counts them ("stored at stop") and checks that the store
accounts for every produced message. `--serve` is not used: its scrapes query the store under
the same lock as the inserts, and users' runs do not have it.

Definitions (all wall clock, one machine):
- row latency = `events.ingested_at - events.received_at` (received_at is the Kafka timestamp =
  the produce time), over the events of the messages produced in the steady part of the stream:
  from 3 s after its first message (the step from a trickle to the full rate is a burst the flow
  absorbs in a second or two; shown on its own line) to its last; the idle probe separately.
- alert latency, for `handoff_missing` alerts (the rule whose deadlines fall within a run; the
  first version seen with state open): T = the later of its `due_at` and the arrival of the event
  that set the deadline (a deadline already past on arrival is decided when W passes that
  event). W = min over the input partitions of their promise, minus the allowed lateness; from the
  produced timestamps, W passes T when every partition has a message stamped at or after
  T + lateness, or, when it has none by then, at T + lateness + idle_timeout_s (a caught-up
  partition promises the clock minus idle_timeout_s). Reported: seen - (W passes T) (the
  pipeline's own delay, including a caught-up partition's heartbeat, at most 250 ms), and
  seen - (T + lateness), the earliest an alert can exist when every partition is active.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import itertools
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.live_processes import (  # noqa: E402
    PARTITIONS,
    AlertWatch,
    Pipeline,
    config_file,
    local_broker,
    now_ms,
    require_empty,
)
from flows.settings import Settings  # noqa: E402
from operators.formats.timeparse import to_epoch_ms  # noqa: E402
from simulator.scenario import SimConfig, SimRecord, simulate  # noqa: E402
from simulator.timeshift import shift  # noqa: E402

RAMP_S = 3.0  # the first seconds of the stream, from a trickle to the full rate: not the steady part
IDLE_GAP_S = 3.0
PROBES = 5
DEADLINE_RULES = ("handoff_missing",)


@dataclass
class Produced:
    """Where and when every message went: per partition the Kafka timestamps, in order."""

    stamps: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    count: int = 0

    def delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self.failures.append(str(error))
            return
        self.count += 1
        self.stamps.setdefault((message.topic(), message.partition()), []).append(message.timestamp()[1])


def produce(producer: Any, produced: Produced, batch: list[tuple[SimRecord, bytes]], rate: float) -> tuple[int, int]:
    """Produce at `rate` messages/s, each stamped with the current time; (first, last) stamp."""
    started = time.monotonic()
    first = last = 0
    for index, (record, value) in enumerate(batch):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stamp = now_ms()
        first = first or stamp
        last = stamp
        key = record.key.encode() if record.key is not None else None
        while True:
            try:
                producer.produce(record.topic, value, key, timestamp=stamp, on_delivery=produced.delivered)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    return first, last


def shifted(records: list[SimRecord], start_ms: int, rate: float) -> list[tuple[SimRecord, bytes]]:
    """Each payload moved so that its received time is when it is planned to be produced."""
    return [
        (record, shift(record.value, start_ms + round(index * 1000 / rate) - to_epoch_ms(record.received_at)))
        for index, record in enumerate(records)
    ]


def w_passes(produced: Produced, partitions: list[tuple[str, int]], at_ms: int, lateness_ms: int, idle_ms: int) -> int:
    """When W (from the produced stamps) first reaches `at_ms`: every partition has promised
    at_ms + lateness, by a message or, caught up, by the clock minus the idle timeout."""
    needed = at_ms + lateness_ms
    passes = needed
    for partition in partitions:
        stamps = produced.stamps.get(partition, [])
        index = bisect.bisect_left(stamps, needed)
        by_message = stamps[index] if index < len(stamps) else None
        by_clock = needed + idle_ms
        passes = max(passes, min(by_message, by_clock) if by_message is not None else by_clock)
    return passes


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)

    def pick(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return f"{pick(0.5):7.3f} {pick(0.95):7.3f} {pick(0.99):7.3f} {ordered[-1]:7.3f}"


def interrupted(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages per second (default 1000)")
    parser.add_argument("--messages", type=int, default=20_000, help="messages in the stream (default 20000)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--lateness", type=float, default=1.0, help="allowed_lateness_s of the run (default 1)")
    parser.add_argument("--sla", type=float, default=10.0, help="every handoff's SLA, seconds (default 10)")
    parser.add_argument(
        "--bootstrap", help="use this broker (its pipeline topics empty or missing) instead of scripts/kafka-local"
    )
    args = parser.parse_args()
    if args.rate <= 0 or args.messages < args.rate * (RAMP_S + 2):
        parser.error(f"--messages must last at least {RAMP_S + 2:g} s at --rate (the first {RAMP_S:g} s are the ramp)")
    signal.signal(signal.SIGTERM, interrupted)  # a SIGTERM cleans up like Ctrl-C
    defaults = Settings()
    topics = sorted(defaults.topic_adapters)
    with tempfile.TemporaryDirectory(prefix="logisync-bench-live-") as workdir, contextlib.ExitStack() as stack:
        work = Path(workdir)
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            print("starting the local Kafka broker ...", file=sys.stderr)
            bootstrap = stack.enter_context(local_broker(work / "kafka"))
        return measure(args, defaults, topics, bootstrap, work)


def measure(args: argparse.Namespace, defaults: Settings, topics: list[str], bootstrap: str, work: Path) -> int:
    from confluent_kafka import Producer

    from sinks.store import StoreConfig, connect, query_rows
    from sources.kafka import ensure_topics

    outputs = [defaults.dead_letter_topic, defaults.alerts_topic]
    ensure_topics(bootstrap, dict.fromkeys(topics + outputs, PARTITIONS), {})
    require_empty(bootstrap, topics + outputs)
    partitions = [(topic, index) for topic in topics for index in range(PARTITIONS)]
    wanted = args.messages + PROBES + 20
    scenario = simulate(SimConfig(seed=args.seed, deliveries=max(50, wanted // 12)))
    records = [record for record in scenario.records if record.topic in defaults.topic_adapters][:wanted]
    if len(records) < wanted:
        raise SystemExit(f"the scenario has only {len(records)} messages; lower --messages")
    warmup, stream, probes = records[:20], records[20 : 20 + args.messages], records[20 + args.messages :]
    lateness_ms, idle_ms = round(args.lateness * 1000), round(defaults.idle_timeout_s * 1000)

    alerts = AlertWatch(bootstrap, defaults.alerts_topic)
    store = work / "store"
    pipeline = Pipeline(bootstrap, store, config_file(work / "bench.toml", args.lateness, args.sla), work / "run.log")
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    produced = Produced()
    try:
        # Warm-up trickle until the pipeline consumes (its start-up is not part of the measure).
        deadline = time.monotonic() + 120
        for index in itertools.count():
            if pipeline.consuming.is_set() or pipeline.process.poll() is not None or time.monotonic() > deadline:
                break
            record = warmup[index % len(warmup)]
            value = shift(record.value, now_ms() - to_epoch_ms(record.received_at))
            produce(producer, produced, [(record, value)], 1.0)
            producer.flush(5)
            pipeline.consuming.wait(0.5)
        if pipeline.consuming_at is None:
            raise SystemExit(f"the pipeline did not start consuming; see its log {work / 'run.log'}")
        start_ms = now_ms() + 500 + args.messages // 20  # the payloads are shifted before it (~50 us each)
        batch = shifted(stream, start_ms, args.rate)
        time.sleep(max(0.0, (start_ms - now_ms()) / 1000))
        print(f"producing {len(batch):,} messages at {args.rate:,.0f} msg/s ...", file=sys.stderr)
        cpu_before, load_before = pipeline.cpu_s(), Path("/proc/loadavg").read_text().split()[0]
        first, last = produce(producer, produced, batch, args.rate)
        producer.flush(30)
        cpu = (pipeline.cpu_s() - cpu_before) / max((last - first) / 1000, 1e-9)
        achieved = (len(batch) - 1) / max((last - first) / 1000, 1e-9)
        time.sleep(IDLE_GAP_S)
        probe_from = now_ms()
        produce(producer, produced, shifted(probes, probe_from, 1000.0), 1000.0)
        producer.flush(10)
        tail_s = defaults.idle_timeout_s + args.lateness + 3.0
        print(f"idle probe sent; waiting {tail_s:.0f} s for the last deadlines to pass W ...", file=sys.stderr)
        time.sleep(tail_s)
        stop_at = now_ms()
        code, stop_s = pipeline.stop()
    except BaseException:
        pipeline.kill()
        raise
    finally:
        alerts.close()
    if code != 130:
        print(f"warning: the pipeline exited {code} (expected 130 after SIGINT); log {work / 'run.log'}")
    if produced.failures:
        raise SystemExit(f"{len(produced.failures)} messages not delivered: {produced.failures[:3]}")

    client = connect(StoreConfig(f"chdb://{store}", defaults.database))
    db = defaults.database
    rows = query_rows(
        client,
        f"SELECT event_id, toUnixTimestamp64Milli(received_at), toUnixTimestamp64Milli(ingested_at) FROM {db}.events",
    )
    stored = int(query_rows(client, f"SELECT sum(raw_in) FROM {db}.ingest_stats FINAL")[0][0])
    received = {str(event_id): int(r) for event_id, r, _ in rows}
    steady_from = first + round(RAMP_S * 1000)
    ramp = [(i - r) / 1000 for _, r, i in rows if first <= r < steady_from]
    steady = [(i - r) / 1000 for _, r, i in rows if steady_from <= r <= last]
    probe = [(i - r) / 1000 for _, r, i in rows if r >= probe_from]
    at_stop = sum(1 for _, r, i in rows if i >= stop_at and r <= last)

    opened: dict[str, tuple[int, dict[str, Any]]] = {}
    for seen, alert in alerts.seen:
        if alert["rule"] in DEADLINE_RULES and alert["state"] == "open" and alert["alert_id"] not in opened:
            opened[alert["alert_id"]] = (seen, alert)
    after_w: list[float] = []
    after_earliest: list[float] = []
    by_clock = 0
    for seen, alert in opened.values():
        due = to_epoch_ms(datetime.fromisoformat(alert["due_at"]))
        details = orjson.loads(alert["details"])
        trigger = max(due, received.get(str(details.get("from_event_id")), due))
        passes = w_passes(produced, partitions, trigger, lateness_ms, idle_ms)
        by_clock += passes >= trigger + lateness_ms + idle_ms
        after_w.append((seen - passes) / 1000)
        after_earliest.append((seen - trigger - lateness_ms) / 1000)

    load = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"\n`make bench-live` {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"load average {load_before} at the stream's start, {load} at the end: "
        f"{len(batch):,} messages at {args.rate:,.0f} msg/s (achieved {achieved:,.0f}), 1 worker, settings defaults "
        f"+ allowed_lateness_s {args.lateness:g}, handoff SLAs {args.sla:g} s; idle_timeout_s "
        f"{defaults.idle_timeout_s:g}, sink_flush_interval_s {defaults.sink_flush_interval_s:g}"
    )
    table = [
        ("Kafka timestamp -> stored row (steady part)", steady),
        (f"Kafka timestamp -> stored row (first {RAMP_S:g} s of the stream)", ramp),
        ("Kafka timestamp -> stored row (idle probe, nothing after)", probe),
        ("alert on the topic - W passes its deadline", after_w),
        ("alert on the topic - (deadline + allowed lateness)", after_earliest),
    ]
    print(f"{'seconds':<58} {'n':>6} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}")
    for label, values in table:
        print(f"{label:<58} {len(values):>6} {percentiles(values)}")
    print(
        f"W passed {by_clock} of {len(after_w)} deadlines by a caught-up partition's clock promise "
        f"(a partition without a message stamped after deadline + lateness). Stored "
        f"{stored:,} of {produced.count:,} produced messages; {at_stop} events stored only at the stop; "
        f"stop (SIGINT -> exit {code}) took {stop_s:.1f} s. The pipeline used {cpu:.2f} CPU "
        "seconds per second of the stream."
    )
    if stored != produced.count:
        print("ERROR: the store does not account for every produced message", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

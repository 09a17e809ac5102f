"""Broker outages (issue 10), against the real `logisync run` process and a broker of its own
that the tests halt and resume (`scripts/kafka-local halt|resume`: same address, same data):

- a live run waits out an outage with a bounded log (one line when it starts, one when it ends)
  and goes on reading when the broker is back; Ctrl-C then ends it with one "interrupted" line
  and exit 130, and what it read is stored;
- an `--until-end` run whose broker goes away gives up after `kafka_give_up_s` with one line
  and exit 2 (before: it hung, printing ~330 log lines a second).

The tests wait for what the run does (a dead letter on its topic, a line on its stderr), each
with a deadline; nothing waits for a fixed time.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.cli_runs import LOGISYNC, child_env, read_store, write_run_config
from tests.kafka_broker import _broker_unavailable, _run_kafka_local, _tail, create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

DEADLINE_S = 90.0


@dataclass
class Broker:
    state_dir: Path
    bootstrap: str

    def halt(self) -> None:
        done = _run_kafka_local(self.state_dir, "halt", 120)
        assert done.returncode == 0, done.stderr

    def resume(self) -> None:
        done = _run_kafka_local(self.state_dir, "resume", 300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == self.bootstrap


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker of this module only: halting the session's broker would fail other tests."""
    state_dir = tmp_path_factory.mktemp("kafka-outage")
    started = _run_kafka_local(state_dir, "start", 900)
    if started.returncode == 3:
        _broker_unavailable(_tail(started.stderr, 1) or "java or mvn is missing")
    assert started.returncode == 0, _tail(started.stderr)
    try:
        yield Broker(state_dir, started.stdout.strip().splitlines()[-1])
    finally:
        _run_kafka_local(state_dir, "stop", 120)


@dataclass
class Run:
    """A `logisync run` process whose stderr lines are collected as they come."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, wanted: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if wanted(line):
                return line
        raise AssertionError(f"no stderr line {what} within {DEADLINE_S:.0f} s; got:\n" + "\n".join(self.lines[-40:]))

    def finish(self) -> int:
        code = self.process.wait(timeout=DEADLINE_S)
        while (line := self._queue.get(timeout=DEADLINE_S)) is not None:
            self.lines.append(line)
        return code


def start_run(broker: Broker, config: Path, store: Path, *extra: str) -> Run:
    command = [str(LOGISYNC), "-v", "run", "--source", "kafka", "--bootstrap", broker.bootstrap,
               "--config", str(config), "--clickhouse", f"chdb://{store}", "--quiet", *extra]  # fmt: skip
    env = {**child_env(), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    return Run(process)


def produce(bootstrap: str, topic: str, *values: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0


def wait_for_dead_letter(bootstrap: str, topic: str, value: bytes) -> None:
    """Read the dead-letter topic from the start until `value` is on it (or fail at the deadline)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and not message.error() and message.value() == value:
                return
    finally:
        consumer.close()
    raise AssertionError(f"{value!r} did not reach {topic} within {DEADLINE_S:.0f} s")


def test_a_live_run_waits_out_a_broker_outage_and_ctrl_c_ends_it_with_130(broker: Broker, tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, {f"{prefix}.carrier.edi": 1, f"{prefix}.dlq": 1, f"{prefix}.alerts": 1})
    config = write_run_config(
        tmp_path / "logisync.toml", prefix, {f"{prefix}.carrier.edi": "x12"}, epoch_interval_s=1.0
    )
    store = tmp_path / "store"
    run = start_run(broker, config, store)
    try:
        produce(broker.bootstrap, f"{prefix}.carrier.edi", b"BEFORE*THE*OUTAGE~")
        wait_for_dead_letter(broker.bootstrap, f"{prefix}.dlq", b"BEFORE*THE*OUTAGE~")

        broker.halt()
        run.wait_for_line(lambda line: "unreachable" in line and "retrying with back-off" in line, "on the outage")
        during = len(run.lines)
        broker.resume()
        run.wait_for_line(lambda line: "is back after" in line, "on the broker's return")
        outage_lines = run.lines[during - 1 :]
        produce(broker.bootstrap, f"{prefix}.carrier.edi", b"AFTER*THE*OUTAGE~")
        wait_for_dead_letter(broker.bootstrap, f"{prefix}.dlq", b"AFTER*THE*OUTAGE~")
    finally:
        run.process.send_signal(signal.SIGINT)
    code = run.finish()

    assert code == 130, "\n".join(run.lines[-30:])
    assert run.lines[-1] == "logisync run: interrupted"
    assert not [line for line in run.lines if "Traceback" in line or "panicked" in line]
    # The outage is a few lines from logisync (start, at most one every 30 s, end), not hundreds
    # of librdkafka's (it logs through Python's logging, bounded, see sources/kafka.py).
    ours = [line for line in outage_lines if "sources.kafka" in line]
    assert 2 <= len(ours) <= 4 and len(outage_lines) < 60, "\n".join(outage_lines)
    letters = read_store(store, {"letters": "SELECT payload, reason FROM {db}.dead_letters FINAL ORDER BY payload"})
    assert letters["letters"] == [["AFTER*THE*OUTAGE~", "parse_error"], ["BEFORE*THE*OUTAGE~", "parse_error"]]


def test_an_until_end_run_gives_up_after_kafka_give_up_s_with_one_line(broker: Broker, tmp_path: Path) -> None:
    """One message per poll and per epoch, 8 s epochs: the run reads the first message, then waits for its
    epoch to end before reading on; the broker goes away in between."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.carrier.edi"
    create_topics(broker.bootstrap, {topic: 1, f"{prefix}.dlq": 1, f"{prefix}.alerts": 1})
    produce(broker.bootstrap, topic, b"READ*BEFORE*THE*OUTAGE~", b"NEVER*READ~")
    config = write_run_config(
        tmp_path / "logisync.toml",
        prefix,
        {topic: "x12"},
        epoch_interval_s=8.0,
        epoch_max_messages=1,
        batch_size=1,
        kafka_give_up_s=3.0,
    )
    store = tmp_path / "store"
    run = start_run(broker, config, store, "--until-end")
    try:
        wait_for_dead_letter(broker.bootstrap, f"{prefix}.dlq", b"READ*BEFORE*THE*OUTAGE~")
        broker.halt()
        code = run.finish()
    finally:
        if run.process.poll() is None:
            run.process.kill()
        broker.resume()  # for the tests after this one

    assert code == 2, "\n".join(run.lines[-30:])
    # whichever noticed first: the source reading the topic, or the sink writing the dead letter
    doing = f"(reading {re.escape(topic)}:0|writing {re.escape(prefix)}.dlq)"
    assert re.fullmatch(
        f"logisync run: Kafka at {re.escape(broker.bootstrap)} unreachable for [0-9]+ s \\({doing}\\); "
        "giving up \\(kafka_give_up_s = 3\\)",
        run.lines[-1],
    ), run.lines[-1]
    assert not [line for line in run.lines if "Traceback" in line or "panicked" in line]

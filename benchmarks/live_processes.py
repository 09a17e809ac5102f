"""`make bench-live`'s processes: the local broker, the pipeline under test (a subprocess), and
a consumer of the alerts topic; the bench's settings file and its empty-topic check."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from operators.domain.handoffs import DEFAULT_HANDOFFS

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 3


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@contextlib.contextmanager
def local_broker(state: Path) -> Iterator[str]:
    """scripts/kafka-local with its own state dir; stopped on the way out, whatever happens."""
    env = {**os.environ, "LOGISYNC_KAFKA_STATE": str(state), "LOGISYNC_KAFKA_WATCH_PID": str(os.getpid())}
    script = str(REPO / "scripts" / "kafka-local")
    try:
        started = subprocess.run([script, "start"], env=env, capture_output=True, text=True, check=False)
        if started.returncode != 0:
            raise SystemExit(f"scripts/kafka-local start failed ({started.returncode}):\n{started.stderr[-2000:]}")
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True, check=False)


def require_empty(bootstrap: str, topics: list[str]) -> None:
    """The pipeline reads its topics from the start: older messages would be a backlog."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-live-check"})
    try:
        for topic in topics:
            for index in range(PARTITIONS):
                for attempt in range(100):  # a new topic's partitions need a moment for their leader
                    try:
                        low, high = consumer.get_watermark_offsets(TopicPartition(topic, index), timeout=10)
                        break
                    except KafkaException:
                        if attempt == 99:
                            raise
                        time.sleep(0.2)
                if high > low:
                    raise SystemExit(f"{topic} at {bootstrap} holds messages already; the bench needs empty topics")
    finally:
        consumer.close()


def config_file(path: Path, lateness_s: float, sla_s: float) -> Path:
    """The bench's settings file: the default handoffs with a small SLA, a small lateness."""
    lines = [f"allowed_lateness_s = {lateness_s}"]
    for handoff in DEFAULT_HANDOFFS:
        lines += ["", "[[handoffs]]", f'name = "{handoff.name}"']
        for key, values in (
            ("from", handoff.from_types),
            ("from_kinds", handoff.from_kinds),
            ("from_milestones", handoff.from_milestones),
            ("to", handoff.to_types),
            ("to_kinds", handoff.to_kinds),
            ("to_milestones", handoff.to_milestones),
        ):
            if values:
                lines.append(f"{key} = {orjson.dumps(sorted(str(v.value) for v in values)).decode()}")
        lines += [f'from_time = "{handoff.from_time}"', f'to_time = "{handoff.to_time}"', f'sla = "{sla_s:g}s"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Pipeline:
    """`logisync run --source kafka` in a subprocess; its stderr is logged and watched."""

    def __init__(self, bootstrap: str, store: Path, config: Path, log: Path) -> None:
        command = [str(Path(sys.executable).parent / "logisync"), "run", "--source", "kafka"]
        command += ["--bootstrap", bootstrap, "--clickhouse", f"chdb://{store}", "--config", str(config)]
        env = {name: value for name, value in os.environ.items() if not name.startswith("LOGISYNC_")}
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.consuming_at: float | None = None  # wall clock (s) of the first "consumed" progress line
        self.consuming = threading.Event()
        self._log = log.open("wb")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        while chunk := os.read(self.process.stderr.fileno(), 65536):
            self._log.write(chunk)
            if not self.consuming.is_set() and b"consumed" in chunk:
                self.consuming_at = time.time()
                self.consuming.set()

    def stop(self, timeout_s: float = 90.0) -> tuple[int, float]:
        """SIGINT (drain and exit 130); the exit code and how long the stop took."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(5)
        self._log.close()
        return code, time.monotonic() - started

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the pipeline process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class AlertWatch:
    """Consumes the alerts topic from the start; the wall clock (ms) each alert was seen."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import Consumer

        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"bench-live-{os.getpid()}", "auto.offset.reset": "earliest"}
        )
        self._consumer.subscribe([topic])
        self.seen: list[tuple[int, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(100, 0.05):
                if message.error() is None and message.value():
                    self.seen.append((now_ms(), orjson.loads(message.value())))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()

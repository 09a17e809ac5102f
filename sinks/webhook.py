"""Alerts to an HTTP webhook: JSON POST, retried with backoff, never stopping the flow.

Each POST carries `Idempotency-Key: <alert_id>:<version>`, so a receiver can drop the repeats
that a retry or a crash replay sends (design.md 3.5). Posting happens on a background thread fed
by a bounded queue, so a slow or dead webhook never holds up the dataflow. A webhook that keeps
failing is logged and counted; the alert is still in ClickHouse and on the Kafka alerts topic.
At the end of a run the queue is drained for at most `drain_s`; what is left is counted as
abandoned.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from typing_extensions import override

from operators.domain.alerts import Alert
from sinks.kafka_out import alert_payload

log = logging.getLogger(__name__)


@dataclass
class WebhookCounters:
    delivered: int = 0
    failed: int = 0  # gave up after every attempt
    abandoned: int = 0  # never sent: the queue was full, or still queued when the run ended
    attempts: int = 0
    last_error: str = ""
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    attempts: int = 4
    backoff_s: float = 0.5  # doubles after each failed attempt
    timeout_s: float = 5.0
    queue_size: int = 10_000
    drain_s: float = 10.0


def post_alert(config: WebhookConfig, alert: Alert, counters: WebhookCounters, sleep: Callable[[float], None]) -> bool:
    """POST one alert version; True when the receiver accepted it (2xx)."""
    body = orjson.dumps(alert_payload(alert))
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": f"{alert.alert_id}:{alert.version}",
        "User-Agent": "logisync",
    }
    delay = config.backoff_s
    for attempt in range(1, config.attempts + 1):
        counters.attempts += 1
        request = urllib.request.Request(config.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=config.timeout_s) as response:
                if 200 <= response.status < 300:
                    counters.delivered += 1
                    return True
                error = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            error = str(getattr(exc, "reason", exc))
        counters.last_error = error
        log.warning("alert webhook attempt %d/%d for %s failed: %s", attempt, config.attempts, alert.alert_id, error)
        if attempt < config.attempts:
            sleep(delay)
            delay *= 2
    counters.failed += 1
    counters.failures.append(f"{alert.alert_id}:{alert.version}")
    return False


class _WebhookPartition(StatelessSinkPartition[Alert]):
    def __init__(self, config: WebhookConfig, counters: WebhookCounters) -> None:
        self._config = config
        self._counters = counters
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=config.queue_size)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._post_loop, name="alert-webhook", daemon=True)
        self._thread.start()

    def _post_loop(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            if self._stopping.is_set():
                self._counters.abandoned += 1  # past the drain deadline
                continue
            post_alert(self._config, alert, self._counters, self._sleep)

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)  # backoff that ends early when the run is over

    @override
    def write_batch(self, items: list[Alert]) -> None:
        for alert in items:
            try:
                self._queue.put_nowait(alert)
            except queue.Full:
                self._counters.abandoned += 1
                log.warning("alert webhook queue full; %s version %d not sent", alert.alert_id, alert.version)

    @override
    def close(self) -> None:
        deadline = time.monotonic() + self._config.drain_s
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.05)  # drain: wall-clock wait for the poster thread, not event time
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout=self._config.timeout_s + 1)


class WebhookSink(DynamicSink[Alert]):
    def __init__(self, config: WebhookConfig, counters: WebhookCounters | None = None) -> None:
        self.config = config
        self.counters = counters if counters is not None else WebhookCounters()

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _WebhookPartition:
        return _WebhookPartition(self.config, self.counters)

"""What every Kafka client of logisync shares (the source's consumers, the output producers, admin
clients): its configuration with a bounded log, and how a broker outage is waited out.

librdkafka's own log lines (connection failures, retries) go through Python logging, rate-limited:
every client passes `logger=LIBRDKAFKA_LOG` (`client_config`). Without it librdkafka writes to
stderr itself, a line per failed reconnect per client while a broker is down."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from tenacity import RetryCallState, Retrying, wait_exponential

from sources.stop import give_up

log = logging.getLogger(__name__)


class RateLimited(logging.Filter):
    """Lets one record per message text through every `period_s` (librdkafka repeats its
    connection failures many times a second while a broker is down)."""

    def __init__(self, period_s: float = 30.0) -> None:
        super().__init__()
        self.period_s = period_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        key = text.split("|", 3)[-1][:80]  # librdkafka: "%LEVEL|TIMESTAMP|FAC|text" -> the text
        now = time.monotonic()
        if now - self._last.get(key, -self.period_s) < self.period_s:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True


# librdkafka's own log lines (connection failures, retries) go through Python logging, rate-limited.
LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
LIBRDKAFKA_LOG.addFilter(RateLimited())


class KafkaUnavailableError(RuntimeError):
    """The broker cannot be reached or a topic is missing; one line for the CLI."""


def client_config(bootstrap: str, config: Mapping[str, str]) -> dict[str, Any]:
    """A librdkafka configuration: the bootstrap servers, the [kafka] table, a bounded log."""
    return {"bootstrap.servers": bootstrap, "logger": LIBRDKAFKA_LOG, **config}


class Outage:
    """One client's view of a broker outage (a source partition, or an output's producer):
    back-off between attempts (tenacity's exponential wait), a log line when it starts, at most
    one every `report_s` while it lasts, one when it ends, and, in `--until-end` mode, giving up
    after `give_up_s` (the flow stops; the run then raises the error: sources/stop.py)."""

    def __init__(
        self, source: str, bootstrap: str, give_up_s: float | None, report_s: float = 30.0, doing: str = "reading"
    ) -> None:
        self.source = source
        self.doing = doing
        self.bootstrap = bootstrap
        self.give_up_s = give_up_s
        self.report_s = report_s
        self.since: float | None = None
        self._attempt = 0
        self._reported = 0.0

    def failed(self, error: Any, now: float) -> float:
        """A transient error: the seconds to wait before polling again."""
        if self.since is None:
            self.since, self._reported, self._attempt = now, now, 0
            log.warning("%s: Kafka at %s unreachable (%s); retrying with back-off", self.source, self.bootstrap, error)
        elif now - self._reported >= self.report_s:
            self._reported = now
            log.warning("%s: Kafka at %s still unreachable after %.0f s", self.source, self.bootstrap, now - self.since)
        if self.give_up_s is not None and now - self.since >= self.give_up_s:
            # Raising here, inside bytewax, would end the process with a Rust panic: the flow is
            # stopped instead, and the run raises this after it drained (sources/stop.py).
            give_up(
                KafkaUnavailableError(
                    f"Kafka at {self.bootstrap} unreachable for {now - self.since:.0f} s "
                    f"({self.doing} {self.source}); giving up (kafka_give_up_s = {self.give_up_s:g})"
                )
            )
        self._attempt += 1
        return _backoff(self._attempt)

    def recovered(self, now: float) -> None:
        if self.since is not None:
            log.warning("%s: Kafka at %s is back after %.0f s", self.source, self.bootstrap, now - self.since)
            self.since = None
            self._attempt = 0


_BACKOFF = wait_exponential(multiplier=0.05, max=5.0)
_RETRYING = Retrying(wait=_BACKOFF)


def _backoff(attempt: int) -> float:
    """tenacity's exponential wait for the n-th attempt: 0.1 s, 0.2 s, ... at most 5 s."""
    state = RetryCallState(_RETRYING, None, (), {})
    state.attempt_number = attempt
    return float(_BACKOFF(state))

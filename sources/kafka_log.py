"""librdkafka's own log lines (connection failures, retries) go through Python logging, rate-limited:
every Kafka client of logisync (consumers, producers, admin clients) passes `logger=LIBRDKAFKA_LOG`.
Without it librdkafka writes to stderr itself, a line per failed reconnect per client while a
broker is down."""

from __future__ import annotations

import logging
import time


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

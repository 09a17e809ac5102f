"""Alerts to an HTTP webhook: JSON POST, retried with backoff, never stopping the flow.

Each POST carries `Idempotency-Key: <alert_id>:<version>`, so a receiver can drop the repeats
that a retry or a crash replay sends (design.md 3.5). Posting happens on a background thread fed
by a bounded queue, so a slow or dead webhook never holds up the dataflow. A webhook that keeps
failing is logged and counted; the alert is still in ClickHouse and on the Kafka alerts topic.
At the end of a run the queue is drained for at most `drain_s`; what is left is counted as
abandoned.

What is retried (tenacity, exponential backoff): 5xx, 408, 429 (after the receiver's
Retry-After, capped at `max_backoff_s`), connection errors and timeouts. Not retried: other 4xx
(the request itself is wrong; resending cannot help) and 3xx: a redirect is never followed (it
would re-send the alert and its credentials to a URL nobody configured), it is a failure logged
with its status. The URL is checked when the config is built (http/https, a host, no whitespace),
so a bad URL is a start-up error, not a dead sender thread. Credentials in the URL (`user:pass@`)
go in an `Authorization: Basic` header, never in the request line, the DNS query or a log line;
logs show only `scheme://host:port`, since a webhook's path is often a token too.
"""

from __future__ import annotations

import base64
import http.client
import logging
import queue
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from pydantic import SecretStr
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_result,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential,
)
from typing_extensions import override

from operators.domain.alerts import Alert
from sinks.kafka_out import alert_payload
from sinks.urls import HttpTarget, parse_http_url

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({408, 429})  # besides every 5xx


@dataclass
class WebhookCounters:
    delivered: int = 0
    failed: int = 0  # gave up: attempts exhausted, or an answer that retrying cannot change (3xx, 4xx)
    abandoned: int = 0  # never sent: the queue was full, or still queued when the run ended
    attempts: int = 0
    last_error: str = ""  # redacted: never a credential or the URL's path
    failures: list[str] = field(default_factory=list)  # alert_id:version of the failed ones


@dataclass(frozen=True)
class WebhookConfig:
    url: str | SecretStr = field(repr=False)
    attempts: int = 4
    backoff_s: float = 0.5  # doubles after each failed attempt
    max_backoff_s: float = 30.0  # cap for the backoff and for a receiver's Retry-After
    timeout_s: float = 5.0
    queue_size: int = 10_000
    drain_s: float = 10.0
    target: HttpTarget = field(init=False, repr=False)

    def __post_init__(self) -> None:
        url = self.url.get_secret_value() if isinstance(self.url, SecretStr) else self.url
        object.__setattr__(self, "target", parse_http_url(url, "alert webhook URL"))  # UrlError: one line
        if self.attempts < 1:
            raise ValueError(f"alert webhook attempts must be >= 1, got {self.attempts}")

    def headers(self, alert: Alert) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": f"{alert.alert_id}:{alert.version}",
            "User-Agent": "logisync",
        }
        target = self.target
        if target.username is not None:
            password = target.password.get_secret_value() if target.password is not None else ""
            token = base64.b64encode(f"{target.username}:{password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        return headers

    def scrub(self, text: str) -> str:
        """`text` without anything secret of the URL (credentials, path and query)."""
        secrets = list(self.target.credentials())
        path = self.target.url[len(self.target.origin) :]
        if len(path) > 1:
            secrets.append(path)
        for secret in secrets:
            text = text.replace(secret, "***")
        return text


@dataclass(frozen=True)
class _Outcome:
    """One POST: delivered, or why not and whether another attempt may help."""

    delivered: bool
    error: str = ""
    retryable: bool = False
    retry_after_s: float | None = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow: urllib then raises HTTPError with the 3xx status."""

    @override
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _retry_after(headers: Message[str, str] | None) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), or None."""
    value = str(headers.get("Retry-After", "") if headers is not None else "").strip()
    if value.isdigit():
        return float(value)
    try:
        return max((parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds(), 0.0) if value else None
    except (TypeError, ValueError):
        return None


def _answer(status: int, headers: Message[str, str] | None) -> _Outcome:
    if 200 <= status < 300:
        return _Outcome(delivered=True)
    if 300 <= status < 400:
        return _Outcome(False, f"HTTP {status}: redirect not followed")
    retryable = status >= 500 or status in _RETRYABLE_STATUS
    return _Outcome(False, f"HTTP {status}", retryable, _retry_after(headers) if retryable else None)


def _post_once(config: WebhookConfig, body: bytes, headers: dict[str, str]) -> _Outcome:
    request = urllib.request.Request(config.target.url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=config.timeout_s) as response:
            return _answer(response.status, response.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            return _answer(exc.code, exc.headers)
    except TimeoutError:
        return _Outcome(False, "timed out", retryable=True)
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return _Outcome(False, "timed out", retryable=True)
        if isinstance(reason, ssl.SSLCertVerificationError):
            return _Outcome(False, f"TLS certificate rejected: {reason.verify_message}")
        return _Outcome(False, f"connection failed: {reason}", retryable=True)
    except (OSError, http.client.HTTPException) as exc:  # reset, closed mid-answer, bad status line
        return _Outcome(False, f"connection failed: {type(exc).__name__}: {exc}", retryable=True)


def post_alert(
    config: WebhookConfig,
    alert: Alert,
    counters: WebhookCounters,
    sleep: Callable[[float], None],
    *,
    stopping: threading.Event | None = None,
) -> bool:
    """POST one alert version, retrying what may pass on another attempt; True when the receiver
    accepted it (2xx). `sleep` waits the backoff; `stopping` set ends the retries early."""
    body = orjson.dumps(alert_payload(alert))
    headers = config.headers(alert)
    version = f"{alert.alert_id}:{alert.version}"
    attempt = 0

    def post() -> _Outcome:
        nonlocal attempt
        attempt += 1
        counters.attempts += 1
        outcome = _post_once(config, body, headers)
        if not outcome.delivered:
            error = config.scrub(outcome.error)
            counters.last_error = error
            again = outcome.retryable and attempt < config.attempts
            log.warning(
                "alert webhook %s: attempt %d/%d for %s failed: %s%s",
                config.target.origin,
                attempt,
                config.attempts,
                version,
                error,
                "; will retry" if again else "",
            )
        return outcome

    backoff = wait_exponential(multiplier=config.backoff_s, max=config.max_backoff_s)

    def wait(state: RetryCallState) -> float:
        last = state.outcome.result() if state.outcome is not None and not state.outcome.failed else None
        if isinstance(last, _Outcome) and last.retry_after_s is not None:
            return min(last.retry_after_s, config.max_backoff_s)
        return float(backoff(state))

    stop = stop_after_attempt(config.attempts)
    retrying = Retrying(
        stop=stop | stop_when_event_set(stopping) if stopping is not None else stop,
        wait=wait,
        retry=retry_if_result(lambda outcome: not outcome.delivered and outcome.retryable),
        sleep=sleep,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome is not None else None,
    )
    outcome = retrying(post)
    if isinstance(outcome, _Outcome) and outcome.delivered:
        counters.delivered += 1
        return True
    counters.failed += 1
    counters.failures.append(version)
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
            try:
                post_alert(self._config, alert, self._counters, self._sleep, stopping=self._stopping)
            except Exception as exc:  # noqa: BLE001 - one alert must never end the poster thread
                self._counters.failed += 1
                self._counters.failures.append(f"{alert.alert_id}:{alert.version}")
                error = self._config.scrub(f"{type(exc).__name__}: {exc}")
                self._counters.last_error = error
                log.error("alert webhook %s: %s not sent: %s", self._config.target.origin, alert.alert_id, error)

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

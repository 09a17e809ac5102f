"""Alerts to a real HTTP endpoint on loopback: what is retried (5xx, 429, timeouts) and what is
not (4xx, redirects), idempotency keys, credentials kept out of the request line and the logs, and
a failing webhook that never stops the flow."""

from __future__ import annotations

import base64
import http.server
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import orjson
import pytest

import sinks.webhook
from flows.cli import main
from flows.run import run_pipeline
from flows.settings import Settings, SettingsError
from operators.domain.alerts import Alert, with_alert
from operators.formats.timeparse import to_epoch_ms
from simulator.scenario import SimConfig, simulate
from sinks.store import StoreConfig, connect, query_rows
from sinks.urls import UrlError
from sinks.webhook import WebhookConfig, WebhookCounters, WebhookSink, post_alert
from sources.replay import write_replay

T = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
T_MS = to_epoch_ms(T)
ALERT = Alert(
    "a1", "handoff_missing", "ship_to_erp", "critical", "D1", "D1", "1010", "", "open", T_MS, T_MS, None, "{}", 1
)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    payload: dict[str, object]


@dataclass
class Reply:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next scripted Reply (then 204) and records what it got."""

    replies: ClassVar[list[Reply]] = []
    seen: ClassVar[list[Seen]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        cls = type(self)
        reply = cls.replies.pop(0) if cls.replies else Reply()
        cls.seen.append(Seen(self.command, self.path, dict(self.headers), orjson.loads(body) if body else {}))
        time.sleep(reply.delay_s)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass  # the client gave up waiting (a timeout test)

    do_POST = _answer
    do_GET = _answer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence the test log
        return


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("Handler", (Receiver,), {"replies": [], "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", handler
    server.shutdown()
    server.server_close()


def test_5xx_is_retried_with_doubling_backoff_then_delivered(receiver: tuple[str, type[Receiver]]) -> None:
    url, handler = receiver
    handler.replies = [Reply(503), Reply(500)]
    slept: list[float] = []
    counters = WebhookCounters()
    assert post_alert(WebhookConfig(url, attempts=4, backoff_s=0.5), ALERT, counters, slept.append)
    assert slept == [0.5, 1.0]
    assert (counters.attempts, counters.delivered, counters.failed) == (3, 1, 0)
    assert [seen.headers["Idempotency-Key"] for seen in handler.seen] == ["a1:1"] * 3
    payload = handler.seen[-1].payload
    assert payload["rule"] == "handoff_missing" and payload["opened_at"] == "2026-01-05T08:00:00Z"


def test_429_waits_for_retry_after_capped(receiver: tuple[str, type[Receiver]]) -> None:
    url, handler = receiver
    handler.replies = [Reply(429, {"Retry-After": "7"}), Reply(429, {"Retry-After": "3600"})]
    slept: list[float] = []
    counters = WebhookCounters()
    assert post_alert(WebhookConfig(url, backoff_s=0.5, max_backoff_s=30), ALERT, counters, slept.append)
    assert slept == [7.0, 30.0]
    assert (counters.attempts, counters.delivered) == (3, 1)


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_4xx_is_not_retried(
    status: int, receiver: tuple[str, type[Receiver]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = receiver
    handler.replies = [Reply(status)]
    slept: list[float] = []
    counters = WebhookCounters()
    assert not post_alert(WebhookConfig(url, attempts=4), ALERT, counters, slept.append)
    assert (len(handler.seen), slept, counters.attempts, counters.failed) == (1, [], 1, 1)
    assert (counters.failures, counters.last_error) == (["a1:1"], f"HTTP {status}")
    assert f"attempt 1/4 for a1:1 failed: HTTP {status}" in caplog.text and "will retry" not in caplog.text


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failure_and_is_not_followed(
    status: int, receiver: tuple[str, type[Receiver]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = receiver
    elsewhere = url.replace("/alerts", "/elsewhere")
    handler.replies = [Reply(status, {"Location": elsewhere})]
    counters = WebhookCounters()
    with caplog.at_level(logging.WARNING, logger="sinks.webhook"):
        assert not post_alert(WebhookConfig(url), ALERT, counters, lambda _s: None)
    assert [(seen.method, seen.path) for seen in handler.seen] == [("POST", "/alerts")]
    assert (counters.attempts, counters.delivered, counters.failed) == (1, 0, 1)
    assert counters.last_error == f"HTTP {status}: redirect not followed"
    origin = url.removesuffix("/alerts")
    assert f"alert webhook {origin}: attempt 1/4 for a1:1 failed: HTTP {status}: redirect not followed" in caplog.text


def test_a_timeout_is_retried(receiver: tuple[str, type[Receiver]]) -> None:
    url, handler = receiver
    handler.replies = [Reply(204, delay_s=1.5)]
    counters = WebhookCounters()
    started = time.monotonic()
    assert post_alert(WebhookConfig(url, timeout_s=0.3, backoff_s=0.01), ALERT, counters, time.sleep)
    assert time.monotonic() - started < 1.4  # it did not wait for the slow answer
    assert (counters.attempts, counters.delivered, counters.last_error) == (2, 1, "timed out")
    assert len(handler.seen) == 2


def test_gives_up_after_the_last_attempt_without_raising() -> None:
    slept: list[float] = []
    counters = WebhookCounters()
    config = WebhookConfig("http://127.0.0.1:9/nothing-listens", attempts=3, backoff_s=0.1, timeout_s=1)
    assert not post_alert(config, ALERT, counters, slept.append)
    assert slept == [0.1, 0.2]
    assert (counters.attempts, counters.failed, counters.failures) == (3, 1, ["a1:1"])
    assert counters.last_error.startswith("connection failed:")


def test_credentials_go_in_a_header_never_in_the_request_line_or_logs(
    receiver: tuple[str, type[Receiver]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = receiver
    secret_url = url.replace("http://", "http://alice:hunter2@").replace("/alerts", "/hooks/T0KEN?sig=s1gn4ture")
    handler.replies = [Reply(500), Reply(500), Reply(500)]
    counters = WebhookCounters()
    config = WebhookConfig(secret_url, attempts=3)
    with caplog.at_level(logging.DEBUG):
        assert not post_alert(config, ALERT, counters, lambda _s: None)
    first = handler.seen[0]
    assert first.path == "/hooks/T0KEN?sig=s1gn4ture"
    assert first.headers["Authorization"] == "Basic " + base64.b64encode(b"alice:hunter2").decode()
    assert first.headers["Host"] == url.removeprefix("http://").removesuffix("/alerts")  # no user info
    shown = caplog.text + repr(config) + repr(counters)
    assert caplog.records and not [s for s in ("hunter2", "alice", "T0KEN", "s1gn4ture") if s in shown], shown


def test_a_bad_url_is_rejected_at_start(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("ftp://h/x", "http://", "http://h:99999/", "http://h/a b", "hooks.example/x", "http://h/\r\nX: y"):
        with pytest.raises(UrlError, match="alert webhook URL "):
            WebhookConfig(bad)
        with pytest.raises(SettingsError, match=r"^alert_webhook "):
            Settings(alert_webhook=bad)
    monkeypatch.setenv("LOGISYNC_ALERT_WEBHOOK", "ftp://u:hunter2@hooks.example/x")
    assert main(["run", "--quiet"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "logisync run: alert_webhook must be an http:// or https:// URL, got 'ftp://u:***@hooks.example/…' "
        "(from LOGISYNC_ALERT_WEBHOOK)"
    ]


def test_the_sender_thread_survives_a_failing_post(
    receiver: tuple[str, type[Receiver]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = receiver
    real = sinks.webhook._post_once
    calls = iter([RuntimeError("a bug"), None])

    def flaky(*args: object) -> object:
        failure = next(calls, None)
        if failure is not None:
            raise failure
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(sinks.webhook, "_post_once", flaky)
    sink = WebhookSink(WebhookConfig(url, drain_s=5))
    partition = sink.build("alerts", 0, 1)
    second = with_alert(ALERT, version=2)
    partition.write_batch([ALERT, second])
    partition.close()
    assert (sink.counters.failed, sink.counters.delivered, sink.counters.failures) == (1, 1, ["a1:1"])
    assert sink.counters.last_error == "RuntimeError: a bug"
    assert [seen.headers["Idempotency-Key"] for seen in handler.seen] == ["a1:2"]


@pytest.mark.clickhouse
def test_the_flow_posts_every_alert_version_and_survives_a_dead_webhook(
    receiver: tuple[str, type[Receiver]], tmp_path: Path, store: StoreConfig, chdb_dsn: str
) -> None:
    url, handler = receiver
    scenario = simulate(SimConfig(seed=13, deliveries=60))
    replay, master = tmp_path / "r.jsonl", tmp_path / "master"
    master.mkdir()
    (master / "products.csv").write_text(scenario.products_csv)
    (master / "sites.csv").write_text(scenario.sites_csv)
    with replay.open("wb") as out:
        write_replay(out, ((r.topic, r.key, r.received_at, r.value) for r in scenario.records))
    settings = Settings(
        source=f"file:{replay}", clickhouse=store.dsn, database=store.database, master_dir=master, alert_webhook=url
    )
    result = run_pipeline(settings, progress=False)
    stored = query_rows(
        connect(store), f"SELECT alert_id, version, state FROM {store.database}.alerts FINAL ORDER BY 1"
    )
    latest: dict[str, tuple[int, str]] = {}
    for payload in (seen.payload for seen in handler.seen):
        version = int(str(payload["version"]))
        if version >= latest.get(str(payload["alert_id"]), (0, ""))[0]:
            latest[str(payload["alert_id"])] = (version, str(payload["state"]))
    assert sorted((a, v, s) for a, (v, s) in latest.items()) == [(a, int(v), s) for a, v, s in stored] and stored
    keys = [seen.headers["Idempotency-Key"] for seen in handler.seen]
    assert len(keys) == len(set(keys))  # every version once
    assert result.webhook is not None
    assert (result.webhook.delivered, result.webhook.failed, result.webhook.abandoned) == (len(keys), 0, 0)

    # The same replay with a webhook nobody answers: the tables are written all the same.
    dead = StoreConfig(chdb_dsn, store.database + "_deadhook")
    from sinks.store import migrate

    migrate(connect(dead), dead.database)
    failing = Settings(
        source=f"file:{replay}",
        clickhouse=dead.dsn,
        database=dead.database,
        master_dir=master,
        alert_webhook="http://127.0.0.1:9/down",
        alert_webhook_drain_s=0.5,
    )
    outcome = run_pipeline(failing, progress=False)
    assert outcome.webhook is not None and outcome.webhook.delivered == 0
    assert outcome.webhook.failed + outcome.webhook.abandoned == len(keys)
    again = query_rows(connect(dead), f"SELECT alert_id, version, state FROM {dead.database}.alerts FINAL ORDER BY 1")
    assert again == stored

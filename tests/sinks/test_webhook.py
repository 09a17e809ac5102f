"""Alerts to a real HTTP endpoint on loopback: retries with backoff, idempotency keys, and a
failing webhook that never stops the flow."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import orjson
import pytest

from flows.run import run_pipeline
from flows.settings import Settings
from operators.domain.alerts import Alert
from simulator.scenario import SimConfig, simulate
from sinks.store import StoreConfig, connect, query_rows
from sinks.webhook import WebhookConfig, WebhookCounters, post_alert
from sources.replay import write_replay

T = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
ALERT = Alert("a1", "handoff_missing", "ship_to_erp", "critical", "D1", "D1", "1010", "", "open", T, T, None, "{}", 1)


class Receiver(http.server.BaseHTTPRequestHandler):
    fail_first: ClassVar[int] = 0
    received: ClassVar[list[tuple[str, dict[str, object]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        if cls.fail_first > 0:
            cls.fail_first -= 1
            self.send_response(503)
        else:
            cls.received.append((self.headers["Idempotency-Key"], orjson.loads(body)))
            self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence the test log
        return


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("Handler", (Receiver,), {"fail_first": 0, "received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", handler
    server.shutdown()
    server.server_close()


def test_retries_with_doubling_backoff_then_delivers(receiver: tuple[str, type[Receiver]]) -> None:
    url, handler = receiver
    handler.fail_first = 2
    slept: list[float] = []
    counters = WebhookCounters()
    assert post_alert(WebhookConfig(url, attempts=4, backoff_s=0.5), ALERT, counters, slept.append)
    assert slept == [0.5, 1.0]
    assert (counters.attempts, counters.delivered, counters.failed) == (3, 1, 0)
    ((key, payload),) = handler.received
    assert key == "a1:1"
    assert payload["rule"] == "handoff_missing" and payload["opened_at"] == "2026-01-05T08:00:00Z"


def test_gives_up_after_the_last_attempt_without_raising() -> None:
    slept: list[float] = []
    counters = WebhookCounters()
    config = WebhookConfig("http://127.0.0.1:9/nothing-listens", attempts=3, backoff_s=0.1, timeout_s=1)
    assert not post_alert(config, ALERT, counters, slept.append)
    assert slept == [0.1, 0.2]
    assert (counters.attempts, counters.failed, counters.failures) == (3, 1, ["a1:1"])


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
    for _, payload in handler.received:
        version = int(str(payload["version"]))
        if version >= latest.get(str(payload["alert_id"]), (0, ""))[0]:
            latest[str(payload["alert_id"])] = (version, str(payload["state"]))
    assert sorted((a, v, s) for a, (v, s) in latest.items()) == [(a, int(v), s) for a, v, s in stored] and stored
    keys = [key for key, _ in handler.received]
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

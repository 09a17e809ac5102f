"""One store for all web tests: a simulator replay cut mid-stream, run through the real pipeline.

Cutting the replay leaves deliveries in flight and handoffs open; three messages are added to
reach the panels the simulator's happy paths leave empty: an EasyPost tracker whose tracking
number nobody knows (an orphan once xref_ttl passes), one whose tracking number a delivery's own
events name only after xref_ttl (orphaned, never attached: the delivery timeline shows it as an
unresolved reference), and a WMS recount that disagrees with the ERP (an unexplained inventory
delta).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.run import RunResult, run_pipeline
from flows.settings import Settings
from flows.simulate import write_scenario
from sinks.store import StoreConfig, connect
from web import metrics
from web.params import DataClock, read_clock

CUT_SHARE = 0.68
ORPHAN_TRACKING = "9499ORPHAN0000000001"
XREF_TTL = timedelta(hours=6)


@dataclass(frozen=True)
class WebStore:
    store: StoreConfig
    client: Any
    run: RunResult
    clock: DataClock
    # pipeline metric samples before the fixture's run: (name, labels) -> value
    metrics_before: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    replay: Path


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _text(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _latest_learned(lines: list[dict[str, Any]], after: datetime) -> str:
    """The EasyPost tracking number whose first mention outside EasyPost is the latest, after `after`."""
    codes = {line["key"] for line in lines if line["topic"] == "carrier.webhooks" and line.get("key")}
    first: dict[str, datetime] = {}
    for line in lines:
        if line["topic"] != "carrier.webhooks" and "value" in line:
            for code in codes - first.keys():
                if code in line["value"]:
                    first[code] = _time(line["received_at"])
    code, learned = max(first.items(), key=lambda item: (item[1], item[0]))
    assert learned > after, f"no tracking number is learned after {after}"
    return code


def _cut_replay(source: Path, target: Path) -> None:
    lines = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    kept = lines[: int(len(lines) * CUT_SHARE)]
    end = _time(kept[-1]["received_at"])
    out = list(kept)
    # an orphan: the first EasyPost tracker, with a tracking number no delivery has
    webhook = next(line for line in kept if line["topic"] == "carrier.webhooks" and "value" in line)
    code = json.loads(webhook["value"])["result"]["tracking_code"]
    out.append({**webhook, "key": ORPHAN_TRACKING, "value": webhook["value"].replace(code, ORPHAN_TRACKING)})
    # the same tracker for the kept tracking number that the events naming its delivery mention
    # last: learned more than xref_ttl (+ lateness) after the planted tracker arrives
    late = _latest_learned(kept, _time(webhook["received_at"]) + XREF_TTL + timedelta(hours=1))
    out.append({**webhook, "key": late, "value": webhook["value"].replace(code, late)})
    # a WMS recount off by +7 on its first line, well before the end (the mismatch outlives grace)
    recount = [
        line
        for line in kept
        if line["topic"] == "stock.snapshots"
        and "value" in line
        and json.loads(line["value"])["system"] == "wms"
        and _time(line["received_at"]) < end - timedelta(hours=3)
    ][-1]
    snapshot = json.loads(recount["value"])
    snapshot["snapshot_id"] += "-recount"
    snapshot["as_of"] = _text(_time(snapshot["as_of"]) + timedelta(minutes=1))
    snapshot["lines"][0]["quantity"] += 7
    received = _text(_time(recount["received_at"]) + timedelta(minutes=1))
    out.append({**recount, "received_at": received, "value": json.dumps(snapshot)})
    out.sort(key=lambda line: line["received_at"])
    target.write_text("".join(json.dumps(line) + "\n" for line in out), encoding="utf-8")


def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in metrics.PIPELINE_REGISTRY.collect()
        for sample in family.samples
    }


@pytest.fixture(scope="session")
def web_store(tmp_path_factory: pytest.TempPathFactory, chdb_dsn: str) -> Iterator[WebStore]:
    work = tmp_path_factory.mktemp("web")
    full, replay, master = work / "full.jsonl", work / "replay.jsonl", work / "master"
    write_scenario(full, master, seed=11, deliveries=150)
    _cut_replay(full, replay)
    store = StoreConfig(chdb_dsn, "logisync_web")
    settings = Settings(
        source=f"file:{replay}",
        clickhouse=store.dsn,
        database=store.database,
        master_dir=master,
        xref_ttl_days=XREF_TTL / timedelta(days=1),  # the orphans are declared within the replay's span
    )
    before = samples()
    result = run_pipeline(settings, progress=False)
    client = connect(store)
    clock = read_clock(client, store.database, datetime.now().astimezone())
    yield WebStore(store, client, result, clock, before, replay)

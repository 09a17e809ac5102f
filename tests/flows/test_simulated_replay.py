"""The simulator's scenario through the whole flow: every message accounted for exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.run import run_pipeline
from flows.settings import Settings
from flows.simulate import write_scenario
from flows.summary import read_summary
from simulator.scenario import SimConfig, simulate
from sinks.store import StoreConfig, connect, query_rows

pytestmark = pytest.mark.clickhouse

COUNTS = ("raw_in", "normalized", "duplicates", "dead_lettered", "ignored")


@pytest.mark.parametrize("seed", [3, 29])
def test_accounting_matches_what_the_simulator_injected(tmp_path: Path, store: StoreConfig, seed: int) -> None:
    replay, master = tmp_path / "scenario.jsonl", tmp_path / "master"
    count = write_scenario(replay, master, seed=seed, deliveries=120)
    expected = simulate(SimConfig(seed=seed, deliveries=120)).expected
    settings = Settings(source=f"file:{replay}", clickhouse=store.dsn, database=store.database, master_dir=master)
    result = run_pipeline(settings, progress=False)
    summary = read_summary(result.store, result.run_id, result.seconds)

    assert summary.total("raw_in") == count
    assert {t: {k: c[k] for k in COUNTS} for t, c in summary.per_topic.items()} == expected.per_topic
    assert summary.dead_by_reason == expected.dead_letter_reasons
    assert summary.events_by_type == expected.events_by_type
    assert summary.total("mapping_warnings") == 0
    assert summary.balanced

    client = connect(store)
    (stored,) = query_rows(client, f"SELECT count() FROM {store.database}.events FINAL")
    assert stored[0] == sum(expected.events_by_type.values())
    (dead,) = query_rows(client, f"SELECT count() FROM {store.database}.dead_letters FINAL")
    assert dead[0] == sum(expected.dead_letter_reasons.values())

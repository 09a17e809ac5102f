"""`logisync simulate`: write the simulator's scenario as a replay file (and its master data)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
from sources.simulator import SimConfig, simulate

from sources.replay import write_replay


def write_scenario(out: Path, master_out: Path | None, *, seed: int, deliveries: int) -> int:
    """Simulate and write `out` (JSON Lines), `<out>.expected.json`, and master CSVs; returns the count."""
    scenario = simulate(SimConfig(seed=seed, deliveries=deliveries))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as handle:
        count = write_replay(handle, ((r.topic, r.key, r.received_at, r.value) for r in scenario.records))
    expected = out.with_name(out.name + ".expected.json")
    expected.write_bytes(orjson.dumps(dataclasses.asdict(scenario.expected), option=orjson.OPT_INDENT_2))
    if master_out is not None:
        master_out.mkdir(parents=True, exist_ok=True)
        (master_out / "products.csv").write_text(scenario.products_csv, encoding="utf-8")
        (master_out / "sites.csv").write_text(scenario.sites_csv, encoding="utf-8")
    return count

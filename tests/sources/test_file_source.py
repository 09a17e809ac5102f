"""The replay-file source: batches dealt to lanes, evenly or by weight, each lane ending once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sources.file_source import ReplayFileSource, deal_order
from sources.replay import write_replay


def test_deal_order_interleaves_lanes_by_weight() -> None:
    assert deal_order((1, 2)) == (0, 1, 1)
    assert deal_order((1, 1, 2, 2)) == (0, 1, 2, 3, 2, 3)
    assert deal_order((3, 1)) == (0, 1, 0, 0)


def test_weighted_lanes_get_their_share_of_batches_and_every_message_once(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    with path.open("wb") as out:
        write_replay(out, [("erp.sap.events", None, t0 + timedelta(seconds=i), b"{}") for i in range(90)])
    source = ReplayFileSource(path, batch_size=10, lanes=2, lane_weights=(1, 2))
    part = source.build_part("input", "replay", None)
    batches = []
    with pytest.raises(StopIteration):
        while True:
            batches.extend(part.next_batch())
    data = [b for b in batches if not b.done]
    assert [b.source for b in data] == ["file:r.jsonl#0", "file:r.jsonl#1", "file:r.jsonl#1"] * 3
    assert sorted(m.offset for b in data for m in b.messages) == list(range(90))
    assert sorted(b.source for b in batches if b.done) == ["file:r.jsonl#0", "file:r.jsonl#1"]


def test_lane_weights_must_name_every_lane(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="3 lane weights for 2 lanes"):
        ReplayFileSource(tmp_path / "r.jsonl", lanes=2, lane_weights=(1, 2, 2))

"""Adapters per format against their parse floor, and the whole read + normalize loop.

    .venv/bin/python benchmarks/bench_adapters.py [--deliveries 3000] [--seed 11]

Messages come from a simulator replay (cached under var/bench/). Per format it prints the CPU
microseconds per message of the adapter and of its parse floor (`orjson.loads` for JSON; for
X12 splitting the payload into segments and elements by the separators the ISA declares), each
the best of three passes over the format's messages in replay order (CPU time and the best pass:
the machine is shared; the adapters' small caches are warm after the first pass). The last row
is the loop of `make bench`'s ceiling: read the replay file, parse each line into a RawMessage
and normalize it.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_pipeline import ensure_replay  # noqa: E402
from operators.ingest.normalize import DEFAULT_TOPIC_ADAPTERS, Normalizer  # noqa: E402
from operators.master import MasterData  # noqa: E402
from operators.model import RawMessage  # noqa: E402
from sources.master_files import load_master  # noqa: E402
from sources.replay import parse_line  # noqa: E402

_JSON_FORMATS = {"erp.sap.events": "sap_ce", "wms.epcis": "epcis", "carrier.webhooks": "easypost"}


def format_of(raw: RawMessage) -> str:
    """The row a message is counted in: its adapter, X12 split by transaction set."""
    if raw.topic in _JSON_FORMATS:
        return _JSON_FORMATS[raw.topic]
    if raw.topic == "stock.snapshots":
        return "snapshot"
    if raw.topic in ("carrier.edi", "wms.edi"):
        head = raw.value[:400]
        if b"ST*214" in head:
            return "x12 214"
        return "x12 945/947"
    return "other"


def x12_floor(value: bytes) -> int:
    """Split an interchange into segments and elements by its declared separators."""
    try:
        text = value.decode("utf-8")
        element = text[3]
        terminator = text.split(element, 16)[16][1]
    except (UnicodeDecodeError, IndexError):  # the replay's malformed messages
        return 0
    return sum(len(segment.split(element)) for segment in text.split(terminator))


def json_floor(value: bytes) -> int:
    try:
        return len(orjson.loads(value))
    except orjson.JSONDecodeError:  # the replay's malformed messages
        return 0


def timed(function: Callable[[RawMessage], object], messages: Sequence[RawMessage]) -> float:
    """CPU seconds of one pass over the messages (CPU time: the machine is shared; gc on as in production)."""
    started = time.process_time()
    for raw in messages:
        function(raw)
    return time.process_time() - started


def per_format(replay: Path, master: MasterData) -> list[tuple[str, int, float, float]]:
    normalizer = Normalizer(DEFAULT_TOPIC_ADAPTERS, master)
    groups: dict[str, list[RawMessage]] = {}
    with replay.open("rb") as handle:
        for offset, line in enumerate(handle):
            raw = parse_line(line, offset)
            groups.setdefault(format_of(raw), []).append(raw)
    rows = []
    for name in ("sap_ce", "epcis", "x12 214", "x12 945/947", "easypost", "snapshot"):
        messages = groups.get(name, [])
        if not messages:
            continue
        floor_function: Callable[[RawMessage], object] = (
            (lambda raw: x12_floor(raw.value)) if name.startswith("x12") else (lambda raw: json_floor(raw.value))
        )
        gc.collect()
        adapter_s = min(timed(normalizer, messages) for _ in range(3))
        floor_s = min(timed(floor_function, messages) for _ in range(3))
        rows.append((name, len(messages), adapter_s / len(messages) * 1e6, floor_s / len(messages) * 1e6))
    return rows


def whole_loop(replay: Path, master: MasterData) -> tuple[int, float]:
    """`make bench`'s ceiling: read + parse_line + normalize every message."""
    normalizer = Normalizer(DEFAULT_TOPIC_ADAPTERS, master)
    gc.collect()
    started = time.process_time()
    count = 0
    with replay.open("rb") as handle:
        for offset, line in enumerate(handle):
            normalizer(parse_line(line, offset))
            count += 1
    return count, time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    replay, master_dir = ensure_replay(args.deliveries, args.seed)
    master = load_master(master_dir)
    rows = per_format(replay, master)
    count, seconds = whole_loop(replay, master)
    print(f"replay: {replay} ({count:,} messages)")
    print(f"{'format':<14}{'messages':>10}{'adapter µs':>12}{'floor µs':>10}{'ratio':>8}")
    for name, n, adapter_us, floor_us in rows:
        print(f"{name:<14}{n:>10,}{adapter_us:>12.1f}{floor_us:>10.1f}{adapter_us / floor_us:>8.1f}")
    print(f"read + normalize loop: {count / seconds:,.0f} msg/s ({seconds / count * 1e6:.1f} µs per message)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

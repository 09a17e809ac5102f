"""Dump what the adapters make of a fixed input set, to compare before/after a change.

Input: every public sample (`../shared/samples`), every test fixture, and the first N messages
of a simulator replay (default 60,000). Output: one JSON line per message with its outcome,
events, dead letter, ignore reason and warnings. Two dumps are compared with `--compare`:

    .venv/bin/python benchmarks/adapter_reference.py --out var/ref/before.jsonl
    ... change code ...
    .venv/bin/python benchmarks/adapter_reference.py --out var/ref/after.jsonl --compare var/ref/before.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLES = REPO.parent / "shared" / "samples"
FIXTURES = REPO / "tests" / "fixtures"
RECEIVED = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
# Which adapter reads a sample or fixture, by file name.
_BY_NAME = (("easypost", "easypost"), ("epcis", "epcis"), ("sap", "sap_ce"), ("snapshot", "snapshot"), ("x12", "x12"))


def _adapter_for(path: Path) -> str | None:
    text = str(path.relative_to(path.parents[1]))
    if path.suffix == ".edi":
        return "x12"
    for marker, adapter in _BY_NAME:
        if marker in text:
            return adapter
    return None


def file_messages() -> Iterator[tuple[str, str, bytes]]:
    """(label, adapter, payload) for every sample and fixture file an adapter reads."""
    files = sorted(SAMPLES.glob("*")) + sorted(p for p in FIXTURES.rglob("*") if p.is_file())
    for path in files:
        adapter = _adapter_for(path)
        if adapter is not None and "master" not in path.parts:
            yield str(path.relative_to(path.parents[1])), adapter, path.read_bytes()


def replay_messages(limit: int, deliveries: int, seed: int) -> tuple[Iterator[tuple[str, bytes]], Path]:
    """The first `limit` lines of a simulator replay (generated once under var/ref/)."""
    from flows.simulate import write_scenario

    workdir = REPO / "var" / "ref" / f"d{deliveries}-s{seed}"
    replay, master = workdir / "scenario.jsonl", workdir / "master"
    if not replay.exists():
        write_scenario(replay, master, seed=seed, deliveries=deliveries)
    handle = replay.open("rb")
    return ((str(offset), line) for offset, line in enumerate(itertools.islice(handle, limit))), master


def dump(out: Path, limit: int, deliveries: int, seed: int) -> int:
    from operators.ingest.normalize import ADAPTERS, DEFAULT_TOPIC_ADAPTERS, Normalizer
    from operators.model import RawMessage
    from sources.master_files import load_master
    from sources.replay import parse_line

    encoder = msgspec.json.Encoder()
    test_master = load_master(FIXTURES / "master")
    lines, sim_master_dir = replay_messages(limit, deliveries, seed)
    normalizer = Normalizer(DEFAULT_TOPIC_ADAPTERS, load_master(sim_master_dir))
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with out.open("wb") as handle:

        def write(label: str, result: object) -> None:
            handle.write(encoder.encode({"label": label, "result": _plain(result)}) + b"\n")

        for label, adapter, payload in file_messages():
            raw = RawMessage("file", 0, 0, None, payload, RECEIVED)
            for master_name, master in (("no-master", None), ("master", test_master)):
                from operators.master import EMPTY_MASTER

                write(f"{label} [{master_name}]", ADAPTERS[adapter](raw, master or EMPTY_MASTER))
                count += 1
        for offset, line in lines:
            write(f"replay:{offset}", normalizer(parse_line(line, int(offset))))
            count += 1
    return count


def _plain(result: object) -> object:
    """The result as plain data; warnings as their text (`str(warning)`)."""
    data = msgspec.to_builtins(result, str_keys=True)
    assert isinstance(data, dict)
    data["warnings"] = [str(warning) for warning in getattr(result, "warnings", ())]
    return data


def compare(new: Path, old: Path) -> int:
    """Print the first differences (by label); the number of labels whose result differs.

    Labels only in the new dump (fixtures added since) are listed, not counted.
    """
    decoder = msgspec.json.Decoder()

    def load(path: Path) -> dict[str, bytes]:
        with path.open("rb") as handle:
            return {decoder.decode(line)["label"]: line for line in handle}

    before, after = load(old), load(new)
    differing = 0
    for label, line_old in before.items():
        line_new = after.get(label)
        if line_new != line_old:
            differing += 1
            if differing <= 5:
                print(f"- {line_old.decode()[:1500]}\n+ {(line_new or b'(missing)').decode()[:1500]}")
    added = sorted(set(after) - set(before))
    if added:
        print(f"{len(added)} new labels: {', '.join(added[:10])}")
    print(f"{differing} differing results")
    return differing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, help="an earlier dump to compare with")
    parser.add_argument("--limit", type=int, default=60_000, help="replay messages (default 60000)")
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    count = dump(args.out, args.limit, args.deliveries, args.seed)
    print(f"{count:,} results -> {args.out}")
    if args.compare is not None:
        return 1 if compare(args.out, args.compare) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

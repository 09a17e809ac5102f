"""Helper for repeatable measurements on a shared machine: normalize a slice of a replay.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python \
        benchmarks/adapter_instructions.py var/bench/d25000-s11 100000 6000 [carrier.edi]

prints nothing itself; run it with N and with 0 messages and divide the difference of the
instruction counts (`Collected : ...` on stderr) by N. For one topic (4th argument), run it
again with `read` as 5th argument (same lines read and parsed, not normalized) and divide the
difference by N: the adapter's own instructions per message. Wall and CPU time on a shared 2-core
machine move by 30 % between runs; instruction counts do not.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from operators.ingest.normalize import DEFAULT_TOPIC_ADAPTERS, Normalizer  # noqa: E402
from sources.master_files import load_master  # noqa: E402
from sources.replay import parse_line  # noqa: E402


def main() -> int:
    directory, start, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    topic = sys.argv[4].encode() if len(sys.argv) > 4 else b""  # only lines of this topic
    # `read` as 5th argument: read and parse the same lines without normalizing them, to subtract.
    normalize = len(sys.argv) <= 5 or sys.argv[5] != "read"
    normalizer = Normalizer(DEFAULT_TOPIC_ADAPTERS, load_master(directory / "master"))
    normalizer(
        parse_line(
            b'{"topic": "carrier.edi", "key": null, "received_at": "2024-01-01T00:00:00Z", '
            b'"value": "ISA*00*  *00*  *ZZ*A *ZZ*B *240101*1200*U*00401*1*0*P*>~'
            b'ST*214*1~B10*P*B*S~LX*1~AT7*X1*NS***20240101*1200*LT~MS1*GARY*IN*US~SE*5*1~"}',
            0,
        )
    )
    with (directory / "scenario.jsonl").open("rb") as handle:
        for _ in itertools.islice(handle, start):
            pass  # skipped the same way whatever the count: the difference is the messages only
        lines = (line for line in handle if topic in line[:40])
        for offset, line in enumerate(itertools.islice(lines, count), start):
            raw = parse_line(line, offset)
            if normalize:
                normalizer(raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())

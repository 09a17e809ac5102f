"""Helpers for tests that run the real `logisync` CLI in a subprocess against the test broker:
its environment, a TOML config that consumes only the test's topics, and reading its store.

The store of such a run belongs to another process: chDB admits one engine path per process, and
the test session holds one (`chdb_dsn`), so it is read through `tests/store_reader.py` in a
process of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from operators.ingest.normalize import DEFAULT_TOPIC_ADAPTERS

BIN = Path(sys.executable).parent
LOGISYNC = BIN / "logisync"
REPO = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    """This environment without LOGISYNC_* variables: the command line and --config alone
    configure the runs (and LOGISYNC_SOAK, not a setting, would be refused as one)."""
    return {name: value for name, value in os.environ.items() if not name.upper().startswith("LOGISYNC_")}


def write_run_config(path: Path, prefix: str, topics: Mapping[str, str], **settings: float) -> Path:
    """The run's TOML: only the test's topics (the default ones `off`: they do not exist on the
    test broker), its output topics `<prefix>.dlq` and `<prefix>.alerts`, and numeric settings."""
    mapping = dict.fromkeys(DEFAULT_TOPIC_ADAPTERS, "off") | dict(topics)
    lines = [
        f'dead_letter_topic = "{prefix}.dlq"',
        f'alerts_topic = "{prefix}.alerts"',
        *(f"{name} = {value}" for name, value in settings.items()),
        "",
        "[topics]",
        *(f'"{topic}" = "{adapter}"' for topic, adapter in sorted(mapping.items())),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_store(store: Path, queries: Mapping[str, str], database: str = "logisync") -> dict[str, Any]:
    """Rows of the queries (`{db}` = the database) on the embedded store at `store`."""
    sql = {name: query.format(db=database) for name, query in queries.items()}
    done = subprocess.run(
        [sys.executable, "-m", "tests.store_reader", f"chdb://{store}"],
        input=orjson.dumps(sql),
        capture_output=True,
        env=child_env(),
        cwd=REPO,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    answers: dict[str, Any] = orjson.loads(done.stdout)
    return answers

"""Shared test fixtures: the public samples, raw-message builders."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from operators.model import RawMessage
from sinks.store import StoreConfig, connect, migrate

pytest_plugins = ["tests.kafka_broker"]

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
RECEIVED = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """`../shared/samples` (CI has it beside the clone). Missing is a failure under CI."""
    if not SAMPLES.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have the public samples at {SAMPLES}")
        pytest.skip(f"public samples not found at {SAMPLES}")
    return SAMPLES


def raw_message(
    value: bytes | str,
    topic: str = "test.topic",
    offset: int = 0,
    received_at: datetime = RECEIVED,
    key: str | None = None,
) -> RawMessage:
    """A RawMessage for adapter tests."""
    payload = value.encode("utf-8") if isinstance(value, str) else value
    return RawMessage(topic=topic, partition=0, offset=offset, key=key, value=payload, received_at=received_at)


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One embedded ClickHouse (chDB) per test session: chDB allows one engine path per process."""
    return f"chdb://{tmp_path_factory.mktemp('clickhouse')}"


_databases = iter(range(1_000_000))


@pytest.fixture
def store(chdb_dsn: str) -> StoreConfig:
    """A fresh, migrated database in the session's embedded ClickHouse."""
    config = StoreConfig(chdb_dsn, f"logisync_test_{next(_databases)}")
    migrate(connect(config), config.database)
    return config

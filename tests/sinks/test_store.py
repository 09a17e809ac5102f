"""Store connection and migrations against the real ClickHouse engine (chDB)."""

from __future__ import annotations

import pytest

from sinks.store import (
    StoreConfig,
    StoreError,
    connect,
    migrate,
    migration_files,
    query_rows,
    split_statements,
)

pytestmark = pytest.mark.clickhouse


def test_migrations_create_the_tables_once(store: StoreConfig) -> None:
    client = connect(store)
    tables = {row[0] for row in query_rows(client, f"SHOW TABLES FROM {store.database}")}
    assert {"events", "dead_letters", "ingest_stats", "schema_migrations"} <= tables
    assert migrate(client, store.database) == []  # already applied: nothing to do
    versions = query_rows(client, f"SELECT version, name FROM {store.database}.schema_migrations FINAL")
    assert sorted(versions) == [(v, n) for v, n, _ in migration_files()]


def test_events_table_keeps_nested_lines_and_alias_lags(store: StoreConfig) -> None:
    client = connect(store)
    columns = dict(
        query_rows(
            client,
            f"SELECT name, type FROM system.columns WHERE database = '{store.database}' AND table = 'events'",
        )
    )
    assert columns["lines.sku"] == "Array(String)"
    assert columns["lines.quantity"] == "Array(Float64)"
    assert columns["occurred_at"] == "DateTime64(3, 'UTC')"
    assert columns["source_lag_ms"] == "Nullable(Int64)"


def test_split_statements_ignores_comments() -> None:
    sql = "-- a comment; with a semicolon\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\nSELECT 1;\n"
    assert split_statements(sql) == ["CREATE TABLE a (x UInt8) ENGINE = Memory", "SELECT 1"]


def test_bad_dsn_and_database_are_one_line_errors() -> None:
    with pytest.raises(StoreError, match=r"ClickHouse DSN must be chdb://PATH or http\(s\)://.*, got 'mysql://x'"):
        StoreConfig("mysql://x")
    with pytest.raises(StoreError, match=r"database must be a name of letters, digits and _ .*got 'a-b'"):
        StoreConfig("chdb://:memory:", "a-b")
    with pytest.raises(StoreError, match=r"ClickHouse DSN is not a valid URL \(port out of range\)"):
        StoreConfig("http://u:s3cret@h:99999")
    with pytest.raises(StoreError, match="ClickHouse DSN has no host"):
        StoreConfig("https://")


@pytest.mark.parametrize(
    "dsn", ["mysql://u:s3cret@h", "http://u:s3cret@h:99999", "http://u:s3cret@h x", "ftp://s3cret@h"]
)
def test_dsn_errors_and_reprs_never_show_the_password(dsn: str) -> None:
    with pytest.raises(StoreError) as error:
        StoreConfig(dsn)
    assert "s3cret" not in str(error.value)
    assert "s3cret" not in repr(StoreConfig("https://u:s3cret@h:8443"))


def test_unreachable_server_is_a_store_error() -> None:
    config = StoreConfig("http://127.0.0.1:9", "logisync")
    with pytest.raises(StoreError, match=r"cannot reach ClickHouse at http://127\.0\.0\.1:9"):
        connect(config)


def test_password_is_redacted() -> None:
    assert StoreConfig("https://u:s3cret@h:8443").redacted() == "https://u:***@h:8443"


def test_sync_latency_hourly_counts_a_fact_once_in_its_latest_version_s_hour(store: StoreConfig) -> None:
    """Issue 10: a later version of a fact moved from_at across an hour boundary (a better copy of
    the start event) and the rollup counted the fact in both hours. The latest version's hour,
    site and latency count, whichever version is inserted first."""
    client = connect(store)
    db = store.database
    columns = "handoff, delivery_id, order_id, site, from_event_id, to_event_id, from_at, to_at, latency_ms, sla_ms, "
    columns += "breached, clock_skew, version"
    insert = f"INSERT INTO {db}.sync_latency ({columns}) VALUES "

    def fact(delivery: str, site: str, start: str, end: str, latency_ms: int, version: int) -> str:
        times = f"'{start}', '{end}', {latency_ms}"
        return f"('ship_to_erp', '{delivery}', '', '{site}', 'e', 't', {times}, 3600000, 0, 0, {version})"

    later = fact("D1", "S2", "2024-06-03 10:05:00", "2024-06-03 10:35:00", 1_800_000, 2)
    earlier = fact("D1", "S1", "2024-06-03 09:55:00", "2024-06-03 10:35:00", 2_400_000, 1)
    other = fact("D2", "S1", "2024-06-03 09:10:00", "2024-06-03 09:20:00", 600_000, 1)
    client.command(insert + later)  # the newer version first: the rollup must not depend on the order
    client.command(insert + earlier)
    client.command(insert + other)
    rows = query_rows(
        client,
        f"SELECT site, toString(hour), facts, p50_ms FROM {db}.sync_latency_percentiles "
        "WHERE handoff = 'ship_to_erp' ORDER BY hour, site",
    )
    assert rows == [("S1", "2024-06-03 09:00:00", 1, 600000), ("S2", "2024-06-03 10:00:00", 1, 1800000)]

-- 0005: exact counts after any crash series (issue 10 item 3).
--
-- ingest_stats: one row per (input partition, offset block, topic), written again as the block
-- fills: ReplacingMergeTree(messages) keeps the fullest version, so a replayed epoch (bytewax
-- recovery is at-least-once for outputs) re-sends the same row instead of adding to the counts.
-- Read it with FINAL. The per-flush rows of earlier versions stay in ingest_stats_v1.
RENAME TABLE {db}.ingest_stats TO {db}.ingest_stats_v1;
CREATE TABLE {db}.ingest_stats
(
    source           String,                  -- input partition: '<topic>:<partition>' or the replay file
    block            UInt64,                  -- first offset of the block (blocks of 10,000 offsets)
    topic            LowCardinality(String),
    run_id           String,                  -- the run that last wrote the row
    messages         UInt64,                  -- messages of the block counted so far, every topic (the version)
    raw_in           UInt64,
    normalized       UInt64,
    events_out       UInt64,
    dead_lettered    UInt64,
    duplicates       UInt64,
    ignored          UInt64,
    mapping_warnings UInt64,
    events_by_type   Map(String, UInt64),
    dead_by_reason   Map(String, UInt64),
    warnings_by_kind Map(String, UInt64),     -- adapter warnings by kind (mapping, control_number, ...)
    flushed_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(messages)
ORDER BY (source, block, topic)
SETTINGS non_replicated_deduplication_window = 1000;

-- sync_latency_hourly counted a fact in two hours when a later version moved from_at across an
-- hour boundary (it grouped by the hour of each version). It now keeps one aggregate per fact,
-- the latest version's hour, site, latency and breach, and the view groups by that hour.
DROP VIEW IF EXISTS {db}.sync_latency_percentiles;
DROP VIEW IF EXISTS {db}.sync_latency_hourly_mv;
DROP TABLE IF EXISTS {db}.sync_latency_hourly;
CREATE TABLE {db}.sync_latency_hourly
(
    handoff     LowCardinality(String),
    delivery_id String,
    site        AggregateFunction(argMax, String, UInt64),
    hour        AggregateFunction(argMax, DateTime('UTC'), UInt64),
    latency_ms  AggregateFunction(argMax, Nullable(Int64), UInt64),
    breached    AggregateFunction(argMax, Bool, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (handoff, delivery_id);
CREATE MATERIALIZED VIEW {db}.sync_latency_hourly_mv TO {db}.sync_latency_hourly AS
SELECT
    handoff,
    delivery_id,
    argMaxState(site, version) AS site,
    argMaxState(toStartOfHour(from_at), version) AS hour,
    argMaxState(latency_ms, version) AS latency_ms,
    argMaxState(breached, version) AS breached
FROM {db}.sync_latency
GROUP BY handoff, delivery_id;
INSERT INTO {db}.sync_latency_hourly
SELECT
    handoff,
    delivery_id,
    argMaxState(site, version),
    argMaxState(toStartOfHour(from_at), version),
    argMaxState(latency_ms, version),
    argMaxState(breached, version)
FROM {db}.sync_latency
GROUP BY handoff, delivery_id;
-- Percentiles per handoff, site and hour (of from_at) over the latest version of every completed fact.
CREATE VIEW {db}.sync_latency_percentiles AS
SELECT
    handoff,
    site,
    hour,
    count() AS facts,
    countIf(breached) AS breaches,
    quantileExact(0.5)(latency) AS p50_ms,
    quantileExact(0.95)(latency) AS p95_ms,
    quantileExact(0.99)(latency) AS p99_ms
FROM
(
    SELECT handoff, delivery_id, argMaxMerge(site) AS site, argMaxMerge(hour) AS hour,
           argMaxMerge(latency_ms) AS latency, argMaxMerge(breached) AS breached
    FROM {db}.sync_latency_hourly
    GROUP BY handoff, delivery_id
)
WHERE latency IS NOT NULL
GROUP BY handoff, site, hour;

-- 0001: canonical events, dead letters and ingest accounting (design.md section 4).
-- `{db}` is replaced by the configured database name; each statement ends with a semicolon line end.

CREATE TABLE IF NOT EXISTS {db}.events
(
    event_id        String,
    schema_version  UInt8,
    event_type      LowCardinality(String),
    source_kind     LowCardinality(String),
    source_format   LowCardinality(String),
    source_system   String,
    occurred_at     DateTime64(3, 'UTC'),
    recorded_at     Nullable(DateTime64(3, 'UTC')),
    received_at     DateTime64(3, 'UTC'),
    time_precision  LowCardinality(String),
    tz_assumed      Bool,
    delivery_id     String,
    order_id        String,
    shipment_ref    String,
    tracking_number String,
    carrier         String,
    site            String,
    milestone       LowCardinality(String),
    status_code     String,
    reason_code     String,
    location        String,
    lines           Nested(sku String, quantity Float64, uom LowCardinality(String)),
    raw_ref         String,
    attributes      Map(String, String),
    ingested_at     DateTime64(3, 'UTC'),
    -- Per-event feed lags (design.md 3.3): how long the source took to record the fact, and how
    -- long the record took to reach Kafka. NULL when the source gives no recorded_at.
    source_lag_ms    Nullable(Int64) ALIAS dateDiff('millisecond', occurred_at, recorded_at),
    transport_lag_ms Nullable(Int64) ALIAS dateDiff('millisecond', recorded_at, received_at)
)
ENGINE = ReplacingMergeTree
ORDER BY (event_type, event_id);
CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    raw_ref     String,
    topic       LowCardinality(String),
    partition   Int32,
    offset      Int64,
    key         String,
    received_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC'),
    reason      LowCardinality(String),
    adapter     LowCardinality(String),
    error       String,
    payload     String,
    payload_b64 Bool
)
ENGINE = ReplacingMergeTree
ORDER BY (topic, raw_ref);
CREATE TABLE IF NOT EXISTS {db}.ingest_stats
(
    run_id           String,
    worker           String,
    flush_seq        UInt32,
    flushed_at       DateTime64(3, 'UTC'),
    topic            LowCardinality(String),
    raw_in           UInt64,
    normalized       UInt64,
    events_out       UInt64,
    dead_lettered    UInt64,
    duplicates       UInt64,
    ignored          UInt64,
    mapping_warnings UInt64,
    events_by_type   Map(String, UInt64),
    dead_by_reason   Map(String, UInt64)
)
ENGINE = MergeTree
ORDER BY (run_id, topic, worker, flush_seq);

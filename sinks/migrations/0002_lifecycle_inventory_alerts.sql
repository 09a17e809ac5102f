-- 0002: delivery lifecycle, synchronization latency, inventory ledger and alerts (design.md 3, 4).
-- Rows evolve: every table is ReplacingMergeTree(version) keyed by its entity; read with FINAL.

CREATE TABLE IF NOT EXISTS {db}.delivery_status
(
    delivery_id     String,
    order_id        String,
    site            String,
    status          LowCardinality(String),
    released_at     Nullable(DateTime64(3, 'UTC')),
    first_wms_at    Nullable(DateTime64(3, 'UTC')),
    dispatched_at   Nullable(DateTime64(3, 'UTC')),
    gi_posted_at    Nullable(DateTime64(3, 'UTC')),
    picked_up_at    Nullable(DateTime64(3, 'UTC')),
    delivered_at    Nullable(DateTime64(3, 'UTC')),
    invoiced_at     Nullable(DateTime64(3, 'UTC')),
    out_of_sequence Bool,
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY delivery_id;

CREATE TABLE IF NOT EXISTS {db}.sync_latency
(
    handoff       LowCardinality(String),
    delivery_id   String,
    order_id      String,
    site          String,
    from_event_id String,
    to_event_id   String,
    from_at       DateTime64(3, 'UTC'),
    to_at         Nullable(DateTime64(3, 'UTC')),
    latency_ms    Nullable(Int64),
    sla_ms        Int64,
    breached      Bool,
    clock_skew    Bool,
    version       UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (handoff, delivery_id);

CREATE TABLE IF NOT EXISTS {db}.alerts
(
    alert_id    String,
    rule        LowCardinality(String),
    handoff     LowCardinality(String),
    severity    LowCardinality(String),
    entity      String,
    delivery_id String,
    site        String,
    sku         String,
    state       LowCardinality(String),
    due_at      Nullable(DateTime64(3, 'UTC')),
    opened_at   DateTime64(3, 'UTC'),
    resolved_at Nullable(DateTime64(3, 'UTC')),
    details     String,
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (rule, alert_id);

CREATE TABLE IF NOT EXISTS {db}.inventory_positions
(
    site              String,
    sku               String,
    uom               LowCardinality(String),
    erp_qty           Float64,
    wms_qty           Float64,
    delta             Float64,
    in_flight_qty     Float64,
    unexplained_delta Float64,
    erp_as_of         Nullable(DateTime64(3, 'UTC')),
    wms_as_of         Nullable(DateTime64(3, 'UTC')),
    unit_mismatch     Bool,
    version           UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (site, sku, uom);

-- One row per change of a position (for charts). Keyed by position and version, so a replay
-- re-inserting the same change collapses.
CREATE TABLE IF NOT EXISTS {db}.inventory_deltas
(
    at                DateTime64(3, 'UTC'),
    site              String,
    sku               String,
    uom               LowCardinality(String),
    erp_qty           Float64,
    wms_qty           Float64,
    delta             Float64,
    in_flight_qty     Float64,
    unexplained_delta Float64,
    erp_as_of         Nullable(DateTime64(3, 'UTC')),
    wms_as_of         Nullable(DateTime64(3, 'UTC')),
    unit_mismatch     Bool,
    version           UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (site, sku, uom, version);

-- Latency per handoff, site and hour of from_at, kept incrementally for dashboards. A fact is
-- re-emitted with a new version whenever a later event touches it, so quantile states over the
-- inserted rows would count a fact several times; instead the rollup keeps one argMax state per
-- fact (its latest version), and a query takes quantiles over those: exact, and cheap because
-- the rollup is already grouped by hour.
CREATE TABLE IF NOT EXISTS {db}.sync_latency_hourly
(
    handoff     LowCardinality(String),
    site        String,
    hour        DateTime('UTC'),
    delivery_id String,
    latency_ms  AggregateFunction(argMax, Nullable(Int64), UInt64),
    breached    AggregateFunction(argMax, Bool, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (handoff, site, hour, delivery_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.sync_latency_hourly_mv TO {db}.sync_latency_hourly AS
SELECT
    handoff,
    site,
    toStartOfHour(from_at) AS hour,
    delivery_id,
    argMaxState(latency_ms, version) AS latency_ms,
    argMaxState(breached, version) AS breached
FROM {db}.sync_latency
GROUP BY handoff, site, hour, delivery_id;

-- Percentiles per handoff, site and hour over the latest version of every completed fact.
CREATE VIEW IF NOT EXISTS {db}.sync_latency_percentiles AS
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
    SELECT handoff, site, hour, delivery_id, argMaxMerge(latency_ms) AS latency, argMaxMerge(breached) AS breached
    FROM {db}.sync_latency_hourly
    GROUP BY handoff, site, hour, delivery_id
)
WHERE latency IS NOT NULL
GROUP BY handoff, site, hour;

-- Inventory record accuracy per site and hour of change: share of positions changed in that
-- hour whose last state in the hour has no unexplained delta (tolerance 0).
CREATE VIEW IF NOT EXISTS {db}.inventory_accuracy_hourly AS
SELECT
    site,
    hour,
    count() AS positions,
    countIf(unexplained_delta = 0) AS accurate,
    countIf(unexplained_delta = 0) / count() AS ira
FROM
(
    SELECT site, sku, uom, toStartOfHour(at) AS hour, argMax(unexplained_delta, version) AS unexplained_delta
    FROM {db}.inventory_deltas FINAL
    GROUP BY site, sku, uom, hour
)
GROUP BY site, hour;

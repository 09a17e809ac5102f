-- 0003: inventory rollup per site and event-time hour, kept incrementally for dashboards.
-- One aggregate row per (site, hour, sku, uom) holding the position's last state in that hour
-- (argMax by version), so re-inserted rows after a crash replay do not change it.

CREATE TABLE IF NOT EXISTS {db}.inventory_site_hourly
(
    site              String,
    hour              DateTime('UTC'),
    sku               String,
    uom               LowCardinality(String),
    changes           AggregateFunction(count),
    unexplained_delta AggregateFunction(argMax, Float64, UInt64),
    in_flight_qty     AggregateFunction(argMax, Float64, UInt64),
    delta             AggregateFunction(argMax, Float64, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (site, hour, sku, uom);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.inventory_site_hourly_mv TO {db}.inventory_site_hourly AS
SELECT
    site,
    toStartOfHour(at) AS hour,
    sku,
    uom,
    countState() AS changes,
    argMaxState(unexplained_delta, version) AS unexplained_delta,
    argMaxState(in_flight_qty, version) AS in_flight_qty,
    argMaxState(delta, version) AS delta
FROM {db}.inventory_deltas
GROUP BY site, hour, sku, uom;

-- Per site and hour: positions that changed, how many ended the hour with an unexplained delta,
-- their accuracy, and the goods in flight.
CREATE VIEW IF NOT EXISTS {db}.inventory_site_hourly_summary AS
SELECT
    site,
    hour,
    count() AS positions_changed,
    countIf(unexplained != 0) AS positions_unexplained,
    countIf(unexplained = 0) / count() AS ira_changed,
    sum(abs(unexplained)) AS abs_unexplained,
    sum(in_flight) AS in_flight_qty
FROM
(
    SELECT site, hour, sku, uom,
           argMaxMerge(unexplained_delta) AS unexplained,
           argMaxMerge(in_flight_qty) AS in_flight
    FROM {db}.inventory_site_hourly
    GROUP BY site, hour, sku, uom
)
GROUP BY site, hour;

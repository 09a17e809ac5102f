"""Inventory, pipeline-health and filter-option queries."""

from __future__ import annotations

from web.fragments import EVENT_PARTNER, in_range, site_is
from web.querylib import Query, build

IRA_BY_SITE = build(
    "ira_by_site",
    "Inventory record accuracy per site",
    """
SELECT site, count() AS positions, countIf(unexplained_delta = 0) AS accurate, round(accurate / positions, 4) AS ira
FROM {db}.inventory_positions FINAL
WHERE $site
GROUP BY site
ORDER BY site
""",
    "Share of current (site, sku, unit) positions with no unexplained delta (tolerance 0).",
    site=site_is("site"),
)

UNEXPLAINED_POSITIONS = build(
    "unexplained_positions",
    "Positions with unexplained deltas, largest first",
    """
SELECT site, sku, uom, erp_qty, wms_qty, in_flight_qty, delta, unexplained_delta, unit_mismatch, erp_as_of, wms_as_of
FROM {db}.inventory_positions FINAL
WHERE unexplained_delta != 0 AND $site
ORDER BY abs(unexplained_delta) DESC, site, sku, uom
LIMIT 200
""",
    site=site_is("site"),
)

GOODS_IN_FLIGHT = build(
    "goods_in_flight",
    "Goods in flight per site (dispatched, goods issue not posted yet)",
    """
SELECT site, count() AS positions, sum(in_flight_qty) AS in_flight_total
FROM {db}.inventory_positions FINAL
WHERE in_flight_qty != 0 AND $site
GROUP BY site
ORDER BY site
""",
    site=site_is("site"),
)

IRA_OVER_TIME = build(
    "ira_over_time",
    "Inventory record accuracy per site over time (positions changed in each hour)",
    """
SELECT hour, site, positions, accurate, round(ira, 4) AS ira
FROM {db}.inventory_accuracy_hourly
WHERE $hour_range AND $site
ORDER BY hour, site
""",
    "From the inventory_accuracy_hourly view: of the positions that changed in an hour, the share "
    "whose last state in that hour had no unexplained delta.",
    hour_range=in_range("hour"),
    site=site_is("site"),
)

PIPELINE_BY_TOPIC = build(
    "pipeline_by_topic",
    "Messages per topic (pipeline accounting)",
    """
SELECT topic, sum(raw_in) AS raw_in, sum(normalized) AS normalized, sum(events_out) AS events_out,
       sum(duplicates) AS duplicates, sum(dead_lettered) AS dead_lettered, sum(ignored) AS ignored,
       sum(mapping_warnings) AS mapping_warnings, sum(replayed) AS replayed
FROM {db}.ingest_stats FINAL
WHERE $flushed
GROUP BY topic
ORDER BY topic
""",
    "Sums of ingest_stats over the flushes in the range (processing time). A replayed dead letter "
    "counts in its outcome and in replayed, not in raw_in: raw_in = normalized + duplicates + "
    "dead_lettered + ignored - replayed.",
    flushed=in_range("flushed_at"),
)

PIPELINE_OVER_TIME = build(
    "pipeline_over_time",
    "Messages per topic over time (minute of flush)",
    """
SELECT toStartOfMinute(flushed_at) AS minute, topic, sum(raw_in) AS raw_in, sum(events_out) AS events_out,
       sum(duplicates) AS duplicates, sum(dead_lettered) AS dead_lettered
FROM {db}.ingest_stats FINAL
WHERE $flushed
GROUP BY minute, topic
ORDER BY minute, topic
""",
    flushed=in_range("flushed_at"),
)

DEAD_LETTERS_BY_REASON = build(
    "dead_letters_by_reason",
    "Dead letters by reason, with one example error",
    """
SELECT reason, count() AS dead_letters, arrayStringConcat(arraySort(groupUniqArray(topic)), ', ') AS topics,
       any(error) AS example_error
FROM {db}.dead_letter_status
WHERE pending AND $received
GROUP BY reason
ORDER BY dead_letters DESC, reason
""",
    "Letters still to deal with: never replayed, or still dead after their last replay (`logisync dlq list`).",
    received=in_range("received_at"),
)

PIPELINE_STATUS = build(
    "pipeline_status",
    "Pipeline status",
    """
SELECT max(flushed_at) AS last_flush_at, uniqExact(run_id) AS runs, argMax(run_id, flushed_at) AS last_run,
       sum(raw_in) AS raw_messages, sum(dead_lettered) - sum(replayed) AS dead_letters
FROM {db}.ingest_stats FINAL
""",
)

WATERMARK_LAG = build(
    "watermark_lag",
    "Watermark lag per stage (latest run)",
    """
SELECT stage, watermark, updated_at, round(dateDiff('millisecond', watermark, updated_at) / 1000, 1) AS lag_s
FROM {db}.stage_watermarks FINAL
WHERE run_id = (SELECT argMax(run_id, updated_at) FROM {db}.stage_watermarks)
ORDER BY stage
""",
    "Wall clock at the sink flush minus the stage's watermark W; empty until the pipeline records it.",
)

SITES = build(
    "sites",
    "Sites",
    """
SELECT DISTINCT site FROM
(
    SELECT site FROM {db}.delivery_status FINAL
    UNION ALL
    SELECT site FROM {db}.inventory_positions FINAL
)
WHERE site != ''
ORDER BY site
""",
)

HANDOFFS = build(
    "handoffs",
    "Handoffs",
    "SELECT DISTINCT handoff FROM {db}.sync_latency ORDER BY handoff",
)

PARTNERS = build(
    "partners",
    "Partners",
    f"""
SELECT DISTINCT {EVENT_PARTNER} AS partner, source_kind AS kind
FROM {{db}}.events
WHERE source_kind IN ('wms', 'carrier')
ORDER BY kind, partner
""",
)

QUERIES: tuple[Query, ...] = (
    IRA_BY_SITE,
    UNEXPLAINED_POSITIONS,
    GOODS_IN_FLIGHT,
    IRA_OVER_TIME,
    PIPELINE_BY_TOPIC,
    PIPELINE_OVER_TIME,
    DEAD_LETTERS_BY_REASON,
    PIPELINE_STATUS,
    WATERMARK_LAG,
    SITES,
    HANDOFFS,
    PARTNERS,
)

"""Operations queries: deliveries in flight, exceptions, order aging, cycle time, failure rate."""

from __future__ import annotations

from web.fragments import DELIVERY_PARTNERS, TERMINAL, handoff_is, in_range, partner_of_delivery, site_is
from web.querylib import Query, build

DATA_AS_OF = build(
    "data_as_of",
    "Data as of",
    """
SELECT
    (SELECT max(received_at) FROM {db}.events) AS last_received_at,
    (SELECT min(received_at) FROM {db}.events) AS first_received_at,
    -- the slowest stage of the latest run: a stage's W is the min over its buckets, so the min
    -- over all the run's (stage, bucket) rows
    (SELECT min(watermark) FROM {db}.stage_watermarks FINAL
     WHERE run_id = (SELECT argMax(run_id, updated_at) FROM {db}.stage_watermarks)) AS watermark,
    (SELECT max(flushed_at) FROM {db}.ingest_stats) AS last_flush_at
""",
    "The store's clock: the slowest stage watermark of the latest run when the pipeline records "
    "it, else the newest received_at (a replay ends with W there). Ages are measured to it.",
)

IN_FLIGHT_BY_STATUS = build(
    "in_flight_by_status",
    "Deliveries in flight by status",
    """
SELECT status, count() AS deliveries
FROM {db}.delivery_status FINAL
WHERE status NOT IN $terminal AND $site AND $partner
GROUP BY status
ORDER BY deliveries DESC, status
""",
    "Released deliveries that are not delivered, returned or cancelled, by their furthest milestone.",
    terminal=TERMINAL,
    site=site_is("site"),
    partner=partner_of_delivery("delivery_id"),
)

OPEN_ALERTS_BY_RULE = build(
    "open_alerts_by_rule",
    "Open exceptions by rule",
    """
SELECT rule, count() AS open_alerts, countIf(severity = 'critical') AS critical
FROM {db}.alerts FINAL
WHERE state = 'open' AND $site AND $handoff AND $partner
GROUP BY rule
ORDER BY open_alerts DESC, rule
""",
    site=site_is("site"),
    handoff=handoff_is("handoff"),
    partner=partner_of_delivery("delivery_id"),
)

FAILURE_RATE_BY_FEED = build(
    "failure_rate_by_feed",
    "Integration failure rate per feed",
    """
SELECT topic, sum(raw_in) AS raw_messages, greatest(sum(dead_lettered) - sum(replayed), 0) AS dead_letters,
       round(if(raw_messages = 0, 0, dead_letters / raw_messages), 4) AS failure_rate
FROM {db}.ingest_stats FINAL
WHERE $flushed
GROUP BY topic
ORDER BY failure_rate DESC, topic
""",
    "Dead letters / raw messages per topic, from the pipeline's exact accounting (ingest_stats: the range "
    "selects offset blocks of 10,000 messages of an input partition by their last write, each whole).",
    flushed=in_range("flushed_at"),
)

ORDER_CYCLE_TIME = build(
    "order_cycle_time",
    "Order cycle time (order created to delivered)",
    """
SELECT if(grouping(s) = 1, 'all sites', s) AS site, count() AS deliveries,
       round(quantileExact(0.5)(cycle_ms) / 3600000, 2) AS p50_h,
       round(quantileExact(0.95)(cycle_ms) / 3600000, 2) AS p95_h
FROM
(
    SELECT d.site AS s, dateDiff('millisecond', o.created_at, d.delivered) AS cycle_ms
    FROM
    (
        -- a new alias: ClickHouse resolves WHERE names to SELECT aliases first
        SELECT delivery_id, order_id, site, assumeNotNull(delivered_at) AS delivered
        FROM {db}.delivery_status FINAL
        WHERE delivered_at IS NOT NULL AND order_id != ''
    ) AS d
    INNER JOIN
    (
        -- by order id, not event_links: resolution attaches an ORDER_CREATED only while it waits
        -- (xref_ttl), so an order released later than that is never linked, and those are the
        -- long cycles. Its time needs no placing (SAP CloudEvents carry UTC).
        SELECT order_id, min(occurred_at) AS created_at
        FROM {db}.events FINAL
        WHERE event_type = 'ORDER_CREATED' AND order_id != ''
        GROUP BY order_id
    ) AS o ON o.order_id = d.order_id
    WHERE $delivered AND $site AND $partner
)
GROUP BY ROLLUP(s)
ORDER BY grouping(s), s
""",
    "Per site and for all sites: the first ORDER_CREATED of the order to the delivery's delivered_at, "
    "for deliveries delivered in the range.",
    delivered=in_range("d.delivered"),
    site=site_is("d.site"),
    partner=partner_of_delivery("d.delivery_id"),
)

EXCEPTION_QUEUE = build(
    "exception_queue",
    "Open exceptions, most overdue first",
    """
SELECT a.alert_id AS alert_id, a.rule AS rule, a.handoff AS handoff, a.severity AS severity,
       a.entity AS entity, a.delivery_id AS delivery_id, a.site AS site, p.partners AS partners,
       a.opened_at AS opened_at, a.due_at AS due_at,
       round(dateDiff('millisecond', a.opened_at, {as_of:DateTime64(3, 'UTC')}) / 60000, 1) AS age_min,
       round(dateDiff('millisecond', a.due_at, {as_of:DateTime64(3, 'UTC')}) / 60000, 1) AS overdue_min,
       JSONExtractString(a.details, 'summary') AS summary
FROM (SELECT * FROM {db}.alerts FINAL WHERE state = 'open') AS a
LEFT JOIN
(
    SELECT delivery_id, arrayStringConcat(arraySort(groupArray(partner)), ', ') AS partners
    FROM ($delivery_partners)
    GROUP BY delivery_id
) AS p ON p.delivery_id = a.delivery_id
WHERE $site AND $handoff AND $partner
ORDER BY a.due_at IS NULL, a.due_at, a.opened_at, a.alert_id
LIMIT 500
""",
    "Age is measured from opening, overdue from the due time, both to the data's clock.",
    delivery_partners=DELIVERY_PARTNERS,
    site=site_is("a.site"),
    handoff=handoff_is("a.handoff"),
    partner=partner_of_delivery("a.delivery_id"),
)

RESOLUTION_TIME = build(
    "resolution_time_by_rule",
    "Resolution time per rule (opened to resolved), by day of resolution",
    """
SELECT toStartOfDay(assumeNotNull(resolved_at)) AS day, rule, count() AS resolved,
       round(quantileExact(0.5)(dateDiff('millisecond', opened_at, assumeNotNull(resolved_at))) / 60000, 1) AS p50_min,
       round(quantileExact(0.95)(dateDiff('millisecond', opened_at, assumeNotNull(resolved_at))) / 60000, 1) AS p95_min
FROM {db}.alerts FINAL
WHERE state = 'resolved' AND resolved_at IS NOT NULL AND $resolved AND $site AND $handoff AND $partner
GROUP BY day, rule
ORDER BY day, rule
""",
    resolved=in_range("resolved_at"),
    site=site_is("site"),
    handoff=handoff_is("handoff"),
    partner=partner_of_delivery("delivery_id"),
)

_AGE_BUCKET = """multiIf(age_ms < 4 * 3600000, 1, age_ms < 86400000, 2, age_ms < 3 * 86400000, 3,
                age_ms < 7 * 86400000, 4, 5)"""

ORDER_AGING = build(
    "order_aging",
    "Order aging: released, not delivered, by status and age",
    """
SELECT bucket_no, ['0-4h', '4-24h', '1-3d', '3-7d', '7d+'][bucket_no] AS age, status, count() AS deliveries
FROM
(
    SELECT status, dateDiff('millisecond', assumeNotNull(released_at), {as_of:DateTime64(3, 'UTC')}) AS age_ms,
           $bucket AS bucket_no
    FROM {db}.delivery_status FINAL
    WHERE released_at IS NOT NULL AND status NOT IN $terminal AND $site AND $partner
)
GROUP BY bucket_no, status
ORDER BY bucket_no, status
""",
    bucket=_AGE_BUCKET,
    terminal=TERMINAL,
    site=site_is("site"),
    partner=partner_of_delivery("delivery_id"),
)

OLDEST_IN_FLIGHT = build(
    "oldest_in_flight",
    "Oldest deliveries in flight",
    """
SELECT delivery_id, order_id, site, status, released_at,
       round(dateDiff('millisecond', assumeNotNull(released_at), {as_of:DateTime64(3, 'UTC')}) / 3600000, 1) AS age_h
FROM {db}.delivery_status FINAL
WHERE released_at IS NOT NULL AND status NOT IN $terminal AND $site AND $partner
ORDER BY released_at, delivery_id
LIMIT 200
""",
    terminal=TERMINAL,
    site=site_is("site"),
    partner=partner_of_delivery("delivery_id"),
)

QUERIES: tuple[Query, ...] = (
    DATA_AS_OF,
    IN_FLIGHT_BY_STATUS,
    OPEN_ALERTS_BY_RULE,
    FAILURE_RATE_BY_FEED,
    ORDER_CYCLE_TIME,
    EXCEPTION_QUEUE,
    RESOLUTION_TIME,
    ORDER_AGING,
    OLDEST_IN_FLIGHT,
)

-- 0004: which delivery an event belongs to when the event itself did not say (design.md 3.2), and
-- how far each stage's watermark has come (pipeline health).

-- One row per (delivery, event) that reference resolution attached to the delivery: a carrier
-- status that carried only a tracking number / PRO / BOL, an order-level ERP event. Events that
-- name their delivery themselves (events.delivery_id) are not repeated here.
CREATE TABLE IF NOT EXISTS {db}.event_links
(
    delivery_id String,
    event_id    String,
    order_id    String,
    via         LowCardinality(String),  -- the reference kind that matched: tracking_number, shipment_ref, order_id
    ref         String,                  -- the reference value that matched (normalized: trimmed, upper case)
    event_type  LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),        -- the time the lifecycle used (see tz_rule)
    tz_rule     LowCardinality(String),      -- 'delivery_site': a local time placed in the delivery's site zone
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (delivery_id, event_id);

-- via 'event' rows: the event named its delivery itself, and only its time was placed (tz_rule).

-- Everything known about one delivery, whether the event named it or resolution linked it:
--   SELECT * FROM logisync.delivery_events(delivery = '80001234') ORDER BY occurred_at
CREATE VIEW IF NOT EXISTS {db}.delivery_events AS
SELECT e.*, if(e.delivery_id != '', 'event', l.via) AS linked_via
FROM {db}.events AS e FINAL
LEFT JOIN
(
    SELECT event_id, argMax(via, version) AS via
    FROM {db}.event_links
    WHERE delivery_id = {delivery:String}
    GROUP BY event_id
) AS l ON e.event_id = l.event_id
WHERE e.delivery_id = {delivery:String}
   OR e.event_id IN (SELECT event_id FROM {db}.event_links WHERE delivery_id = {delivery:String});

-- The watermark W of each stage (design.md 3.1) when the sink last flushed: how far event time has
-- come through the pipeline. lag = updated_at - watermark (wall clock minus event time).
-- One row per bucket of each stage; a stage's W is the min over its buckets.
CREATE TABLE IF NOT EXISTS {db}.stage_watermarks
(
    run_id     String,
    stage      LowCardinality(String),
    bucket     UInt16,
    watermark  DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (run_id, stage, bucket);

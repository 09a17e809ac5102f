-- 0006: dead-letter replay (design.md 5, `logisync dlq replay`).
--
-- A replayed dead letter is not a new raw message: ingest_stats counts it in its outcome and in
-- `replayed`, not in raw_in, so per topic raw_in = normalized + duplicates + ignored + dead_lettered
-- - replayed, and "dead letters left" is dead_lettered - replayed.
ALTER TABLE {db}.ingest_stats ADD COLUMN IF NOT EXISTS replayed UInt64 DEFAULT 0 AFTER warnings_by_kind;

-- What each replay of a letter came to: normalized, duplicate, ignored, dead_lettered (still dead),
-- or produced (put back onto its Kafka topic; the live flow then writes the outcome). Written by
-- the flow's accounting in the same flush as the counts. The latest replay of a letter wins.
CREATE TABLE IF NOT EXISTS {db}.dead_letter_replays
(
    raw_ref     String,
    topic       LowCardinality(String),
    outcome     LowCardinality(String),
    run_id      String,
    replayed_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(replayed_at)
ORDER BY (topic, raw_ref);

-- Every dead letter with its last replay and whether it is pending: never replayed since it was
-- dead-lettered (a raw_ref dead-lettered again later, by another file or run, is pending again),
-- or its last replay left it dead. `logisync dlq list` and `dlq replay` select from here.
CREATE VIEW IF NOT EXISTS {db}.dead_letter_status AS
SELECT
    d.raw_ref AS raw_ref, d.topic AS topic, d.partition AS partition, d.offset AS offset, d.key AS key,
    d.received_at AS received_at, d.ingested_at AS ingested_at, d.reason AS reason, d.adapter AS adapter,
    d.error AS error, d.payload AS payload, d.payload_b64 AS payload_b64,
    r.last_outcome AS last_outcome, r.last_run_id AS last_run_id, r.last_replayed_at AS last_replayed_at,
    r.last_outcome IN ('', 'dead_lettered') OR d.ingested_at > r.last_replayed_at AS pending
FROM {db}.dead_letters AS d FINAL
LEFT JOIN
(
    SELECT topic, raw_ref, argMax(outcome, replayed_at) AS last_outcome, argMax(run_id, replayed_at) AS last_run_id,
           max(replayed_at) AS last_replayed_at
    FROM {db}.dead_letter_replays
    GROUP BY topic, raw_ref
) AS r ON d.topic = r.topic AND d.raw_ref = r.raw_ref
SETTINGS join_use_nulls = 0;

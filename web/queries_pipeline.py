"""Pipeline-health queries: the accounting, volumes over time, dead letters, warnings, watermarks.

`ingest_stats` holds one row per (input partition, offset block of 10,000, topic) whose counts
grow as the block fills (ReplacingMergeTree(messages), read with FINAL): exact totals, but no
time series, since a row's `flushed_at` is only when the block was last written. Volumes over
time therefore come from the rows the messages left, by `received_at` (the Kafka timestamp).
"""

from __future__ import annotations

from web.fragments import in_range
from web.querylib import Query, build

# The blocks whose last write is in the range; a block is counted whole (so is one still filling).
_BLOCKS_NOTE = (
    "From the pipeline's exact accounting (ingest_stats FINAL: one row per offset block of 10,000 of "
    "an input partition and topic). The range selects blocks by their last write and counts each "
    "whole, so a range edge falls on block boundaries; the whole store is exact."
)
# The topic of a stored message: raw_ref is '<topic>:<partition>:<offset>'.
_TOPIC_OF_REF = "arrayStringConcat(arraySlice(splitByChar(':', raw_ref), 1, -2), ':')"

PIPELINE_BY_TOPIC = build(
    "pipeline_by_topic",
    "Messages per topic (pipeline accounting)",
    """
SELECT topic, sum(raw_in) AS raw_in, sum(normalized) AS normalized, sum(events_out) AS events_out,
       sum(duplicates) AS duplicates, sum(dead_lettered) AS dead_lettered, sum(ignored) AS ignored,
       sum(mapping_warnings) AS mapping_warnings, sum(arraySum(mapValues(warnings_by_kind))) AS warnings,
       sum(replayed) AS replayed
FROM {db}.ingest_stats FINAL
WHERE $flushed
GROUP BY topic
ORDER BY topic
""",
    _BLOCKS_NOTE + " A replayed dead letter counts in its outcome and in replayed, not in raw_in: "
    "raw_in = normalized + duplicates + dead_lettered + ignored - replayed.",
    flushed=in_range("flushed_at"),
)

PIPELINE_OVER_TIME = build(
    "pipeline_over_time",
    "Messages per topic over time (hour received)",
    f"""
SELECT hour, topic, sum(m) AS messages, sum(e) AS events_out, sum(d) AS dead_lettered
FROM
(
    SELECT toStartOfHour(received_at) AS hour, {_TOPIC_OF_REF} AS topic, uniqExact(raw_ref) AS m, count() AS e,
           0 AS d
    FROM {{db}}.events FINAL
    WHERE $received
    GROUP BY hour, topic
    UNION ALL
    SELECT toStartOfHour(received_at) AS hour, topic, 0, 0, count()
    FROM {{db}}.dead_letters FINAL
    WHERE $received
    GROUP BY hour, topic
)
GROUP BY hour, topic
ORDER BY hour, topic
""",
    "Per hour of received_at (the Kafka timestamp): messages that yielded new events and those events "
    "(events), dead letters (dead_letters). Duplicate and ignored messages leave no row: they are only "
    "in the accounting totals.",
    received=in_range("received_at"),
)

WARNINGS_BY_KIND = build(
    "warnings_by_kind",
    "Adapter warnings per topic and kind",
    """
SELECT topic, kind, sum(count) AS warnings
FROM {db}.ingest_stats FINAL
ARRAY JOIN mapKeys(warnings_by_kind) AS kind, mapValues(warnings_by_kind) AS count
WHERE $flushed
GROUP BY topic, kind
ORDER BY topic, kind
""",
    "Warnings the adapters gave about messages they still read, by the adapter's kind (e.g. mapping: an "
    "id kept as UNMAPPED:<raw>; control: an X12 envelope's control numbers). " + _BLOCKS_NOTE,
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
SELECT (SELECT max(flushed_at) FROM {db}.ingest_stats) AS last_flush_at,
       (SELECT argMax(run_id, flushed_at) FROM {db}.ingest_stats) AS last_run,
       (SELECT uniqExact(run_id) FROM {db}.stage_watermarks) AS runs,
       uniqExact(source) AS input_partitions, sum(raw_in) AS raw_messages,
       sum(dead_lettered) - sum(replayed) AS dead_letters,
       sum(arraySum(mapValues(warnings_by_kind))) AS warnings
FROM {db}.ingest_stats FINAL
""",
    "The whole store: when the pipeline last wrote its accounting and which run did; runs that "
    "recorded stage watermarks; messages, dead letters and adapter warnings accounted for.",
)

INPUT_PARTITIONS = build(
    "input_partitions",
    "Input partitions",
    """
SELECT source, count() AS blocks, sum(messages) AS messages, max(block) AS latest_block,
       max(last_write) AS last_write_at, argMax(run, last_write) AS last_run
FROM
(
    SELECT source, block, max(messages) AS messages, max(flushed_at) AS last_write, argMax(run_id, flushed_at) AS run
    FROM {db}.ingest_stats FINAL
    GROUP BY source, block
)
GROUP BY source
ORDER BY source
""",
    "Per input partition ('<topic>:<partition>', or the replay file): offset blocks counted, messages, "
    "the latest block and when its accounting was last written, by which run. A partition whose last "
    "write lags the others has stopped receiving (or being read).",
)

# The stages in pipeline order (flows.stages), for reading the table top to bottom.
_STAGE_ORDER = "indexOf(['dedup', 'resolution', 'arbiter', 'lifecycle', 'inventory', 'health'], stage), stage"

WATERMARK_LAG = build(
    "watermark_lag",
    "Watermark lag per stage (latest run)",
    f"""
SELECT stage, buckets, w AS watermark, slowest_bucket, last_update AS updated_at,
       round(dateDiff('millisecond', w, last_update) / 1000, 1) AS lag_s
FROM
(
    SELECT stage, count() AS buckets, min(watermark) AS w, argMin(bucket, watermark) AS slowest_bucket,
           max(updated_at) AS last_update
    FROM {{db}}.stage_watermarks FINAL
    WHERE run_id = (SELECT argMax(run_id, updated_at) FROM {{db}}.stage_watermarks)
    GROUP BY stage
)
ORDER BY {_STAGE_ORDER}
""",
    "A stage's watermark W is the slowest of its buckets (the latest run's rows of stage_watermarks); "
    "lag = the wall clock when the stage last recorded a watermark minus W. A replay's lag is large "
    "(its event time is in the past); a live one's is about the allowed lateness. Empty until the "
    "pipeline records watermarks.",
)

QUERIES: tuple[Query, ...] = (
    PIPELINE_STATUS,
    PIPELINE_BY_TOPIC,
    PIPELINE_OVER_TIME,
    WARNINGS_BY_KIND,
    DEAD_LETTERS_BY_REASON,
    INPUT_PARTITIONS,
    WATERMARK_LAG,
)

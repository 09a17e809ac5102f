"""Composition root for `logisync dlq list` and `logisync dlq replay` (design.md 5).

Dead letters are a consumer with a policy: replaying them is the same flow reading another
source. The store keeps every letter whole; a letter is *pending* until a replay takes it out of
the dead letters (dead_letter_status, migration 0006). `replay` feeds the pending letters that a
filter selects through the same adapters and flow, after the master data or an adapter was fixed:

- locally (the default): a run of the flow whose source is the letters (sources/dead_letters.py),
  same normalize, dedup, accounting, events and dead_letters sinks, without the domain stages
  (FlowConfig.domain_stages: a replay run has none of the live state);
- in Kafka mode (`--bootstrap`, or source = kafka): each letter is produced back onto its own
  topic with the header `logisync.replay_of`, and the running pipeline, with all its state,
  processes it like any message and records the outcome.

Either way a replayed message keeps its raw_ref and the accounting moves it from dead-lettered to
its new outcome: raw_in = normalized + duplicates + ignored + dead_lettered - replayed, per topic.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from flows.settings import Settings
from operators.ingest.accounting import PRODUCED
from operators.ingest.normalize import Normalizer
from operators.model import RawMessage
from sinks.store import StoreConfig, StoreError, chdb_lock, connect, migrate, query_rows
from sources.dead_letters import LetterFilter, LetterInfo, LetterRef, describe_letters, load_messages

SHOWN_REFS = 5  # raw_refs a dry run names


def open_store(settings: Settings) -> tuple[StoreConfig, Any]:
    """The store, migrated (the replay tables may be new), or a one-line error if another process
    holds an embedded one (chDB admits one process: a running pipeline)."""
    store = StoreConfig(settings.clickhouse, settings.database)
    from web.server import chdb_holder

    holder = chdb_holder(store)
    if holder is not None:
        raise StoreError(
            f"the embedded store {store.chdb_path} is in use by {holder} (a running pipeline?): chDB admits one "
            "process; stop the run first, or keep the store in a ClickHouse server"
        )
    client = connect(store)
    migrate(client, store.database)
    return store, client


def kafka_mode(settings: Settings, bootstrap_flag: str | None) -> bool:
    """Replay through Kafka when asked for a broker on the command line or when the configured
    source is Kafka (a live pipeline reads the topics); else locally."""
    return bool(bootstrap_flag) or settings.source == "kafka"


# -- list ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    letters: list[LetterInfo]  # the first `limit`
    matching: int  # letters the filter selects
    pending: int  # ... of which pending
    by_reason: dict[str, int]
    by_topic: dict[str, int]


def list_letters(client: Any, database: str, letters: LetterFilter, limit: int) -> Listing:
    where, parameters = letters.where()
    counts = query_rows(
        client,
        f"SELECT topic, reason, count(), countIf(pending) FROM {database}.dead_letter_status WHERE {where} "
        "GROUP BY topic, reason ORDER BY topic, reason",
        parameters,
    )
    by_reason: Counter[str] = Counter()
    by_topic: Counter[str] = Counter()
    for topic, reason, count, _ in counts:
        by_reason[str(reason)] += int(count)
        by_topic[str(topic)] += int(count)
    return Listing(
        describe_letters(client, database, letters, limit),
        sum(int(row[2]) for row in counts),
        sum(int(row[3]) for row in counts),
        dict(by_reason.most_common()),
        dict(by_topic.most_common()),
    )


def format_listing(listing: Listing, letters: LetterFilter, as_json: bool) -> str:
    if as_json:
        document = {
            "matching": listing.matching,
            "pending": listing.pending,
            "by_reason": listing.by_reason,
            "by_topic": listing.by_topic,
            "letters": [asdict(letter) for letter in listing.letters],
        }
        return orjson.dumps(document, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC).decode()
    what = "dead letters" if letters.every else "dead letters pending replay"
    lines = [f"{what}: {listing.matching:,}" + ("" if not letters.every else f" ({listing.pending:,} pending)")]
    if listing.matching:
        lines.append("  by reason: " + _pairs(listing.by_reason))
        lines.append("  by topic: " + _pairs(listing.by_topic))
        lines.append("")
        names = ["raw_ref", "topic", "reason", "received_at", "last replay", "error"]
        cells = [
            [
                letter.raw_ref,
                letter.topic,
                letter.reason,
                letter.received_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
                _last_replay(letter),
                _short(letter.error, 90),
            ]
            for letter in listing.letters
        ]
        widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(names)]
        lines.append("  ".join(name.ljust(width) for name, width in zip(names, widths, strict=True)).rstrip())
        lines.append("  ".join("-" * width for width in widths))
        lines.extend("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells)
        if len(listing.letters) < listing.matching:
            lines.append(f"(the first {len(listing.letters):,} of {listing.matching:,}; --limit N shows more)")
    return "\n".join(lines)


def _last_replay(letter: LetterInfo) -> str:
    if not letter.last_outcome:
        return "-"
    outcome = "still dead" if letter.last_outcome == "dead_lettered" else letter.last_outcome
    if letter.last_replayed_at is not None and letter.last_outcome != "dead_lettered" and letter.pending:
        outcome += ", dead-lettered again since"
    return outcome


def _short(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value:,}" for key, value in counts.items())


# -- replay ----------------------------------------------------------------------------------


def format_plan(letters: Sequence[LetterRef], target: str) -> str:
    """What a replay would do (`--dry-run`): counts by topic and reason, the first raw_refs."""
    if not letters:
        return "nothing to replay: no pending dead letter matches"
    counts = Counter((letter.topic, letter.reason) for letter in letters)
    lines = [f"would replay {len(letters):,} dead letters {target}:"]
    lines.extend(f"  {topic:<24}{reason:<16}{count:>8,}" for (topic, reason), count in sorted(counts.items()))
    shown = ", ".join(letter.raw_ref for letter in letters[:SHOWN_REFS])
    more = f", ... ({len(letters) - SHOWN_REFS:,} more)" if len(letters) > SHOWN_REFS else ""
    lines.append(f"  first: {shown}{more}")
    lines.append("dry run: nothing was changed")
    return "\n".join(lines)


def new_replay_id() -> str:
    """Every replay gets a run id of its own, whatever `run_id` is set to (the live pipeline's):
    its accounting rows are keyed by its input partition `dlq:<run id>`, which must be new."""
    return f"dlq-{uuid.uuid4().hex[:12]}"


def replay_settings(settings: Settings) -> Settings:
    """A local replay run: one process, no recovery store, a new run id."""
    return settings.replace(processes=1, process_id=None, addresses=None, recovery_dir=None, run_id=new_replay_id())


@dataclass(frozen=True)
class KafkaReplay:
    produced: int
    failed: list[tuple[str, str]]  # (raw_ref, why)
    run_id: str


def replay_to_kafka(
    settings: Settings, client: Any, database: str, letters: Sequence[LetterRef], progress: bool
) -> KafkaReplay:
    """Produce the letters back onto their topics; record `produced` for those the broker took.

    The rows are stamped with the time before the first produce, so the outcome the live
    pipeline records when it reads a letter (later) is always the newer one."""
    from sinks.kafka_out import produce_replays
    from sources.kafka import partitions_of
    from sources.kafka_client import KafkaUnavailableError

    assert settings.bootstrap is not None
    run_id = new_replay_id()
    read = set(settings.topic_adapters)
    try:
        topics = sorted({letter.topic for letter in letters})
        existing = set(partitions_of(settings.bootstrap, topics, settings.kafka_config))
    except Exception as exc:  # librdkafka: the broker did not answer (KafkaException)
        raise KafkaUnavailableError(f"Kafka at {settings.bootstrap} did not answer: {exc}") from exc
    failed: list[tuple[str, str]] = []
    wanted: list[LetterRef] = []
    for letter in letters:
        if letter.topic not in read:
            failed.append(
                (letter.raw_ref, f"topic {letter.topic} is not in the topic map: the pipeline does not read it")
            )
        elif letter.topic not in existing:
            failed.append((letter.raw_ref, f"topic {letter.topic} does not exist at {settings.bootstrap}"))
        else:
            wanted.append(letter)
    started_ms = time.time_ns() // 1_000_000  # replayed_at of the `produced` rows: see above
    delivered: list[str] = []
    for start in range(0, len(wanted), settings.batch_size):
        chunk = wanted[start : start + settings.batch_size]
        messages: list[RawMessage] = load_messages(client, database, chunk, start)
        outcome = produce_replays(settings.bootstrap, messages, settings.kafka_config)
        delivered += outcome.delivered
        failed += outcome.failed
        missing = {m.raw_ref for m in messages} - set(outcome.delivered) - {ref for ref, _ in outcome.failed}
        failed += [(ref, "no delivery report from the broker") for ref in sorted(missing)]
        if progress:
            print(f"\r  produced {len(delivered):,} of {len(wanted):,}", end="", file=sys.stderr, flush=True)
    if progress and wanted:
        print(file=sys.stderr)
    topic_of = {letter.raw_ref: letter.topic for letter in wanted}
    rows = [[ref, topic_of[ref], PRODUCED, run_id, started_ms] for ref in delivered]
    if rows:
        with chdb_lock():
            client.insert(
                f"{database}.dead_letter_replays",
                rows,
                column_names=["raw_ref", "topic", "outcome", "run_id", "replayed_at"],
            )
    return KafkaReplay(len(delivered), failed, run_id)


def stored_events(
    client: Any, database: str, normalizer: Normalizer, letters: Sequence[LetterRef], batch_size: int
) -> frozenset[str]:
    """The event ids the letters yield now that the store already holds (another message brought
    them meanwhile, e.g. a retransmission read after the fix). A local replay starts with empty
    dedup state, like any run: it judges these duplicates instead of counting and storing them
    again (FlowConfig.stored_events). The live pipeline (Kafka mode) has its own dedup state."""
    known: set[str] = set()
    for start in range(0, len(letters), batch_size):
        messages = load_messages(client, database, letters[start : start + batch_size], start)
        ids = sorted({event.event_id for raw in messages for event in normalizer(raw).events})
        for first in range(0, len(ids), _IDS_PER_QUERY):
            rows = query_rows(
                client,
                f"SELECT DISTINCT event_id FROM {database}.events WHERE event_id IN %(ids)s",
                {"ids": tuple(ids[first : first + _IDS_PER_QUERY])},
            )
            known.update(str(row[0]) for row in rows)
    return frozenset(known)


_IDS_PER_QUERY = 1000  # ids are inlined in the query text: stay well under max_query_size


def pending_count(client: Any, database: str) -> int:
    rows = query_rows(client, f"SELECT count() FROM {database}.dead_letter_status WHERE pending")
    return int(rows[0][0]) if rows else 0

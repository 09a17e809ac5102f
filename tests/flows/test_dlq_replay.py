"""Dead-letter replay end to end through the CLI (issue 11 item 7, design.md 5).

A replay whose product master lacks a GTIN, with `unmapped = "dead_letter"`, dead-letters the
messages that name it (`mapping_error`); the master is fixed; `logisync dlq replay` feeds the
letters through the same flow: their events appear (exactly those a run with the fixed master
makes), ingest_stats balances per topic with `raw_in = normalized + duplicates + ignored +
dead_lettered - replayed`, the letters are no longer pending, and a second replay changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from flows.cli import main
from simulator.scenario import SimConfig, simulate
from sinks.store import StoreConfig, connect, migrate, query_rows
from sources.replay import write_replay

pytestmark = pytest.mark.clickhouse

GTIN = "00614141100019"  # TG10001 in the simulator's product master


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated replay file, its full master (`fixed/`) and one that lacks a GTIN (`master/`),
    and a settings file with the strict mapping policy."""
    root = tmp_path_factory.mktemp("dlq")
    sim = simulate(SimConfig(seed=11, deliveries=25))
    with (root / "replay.jsonl").open("wb") as out:
        write_replay(out, ((r.topic, r.key, r.received_at, r.value) for r in sim.records))
    for name, products in (("fixed", sim.products_csv), ("master", sim.products_csv.replace(f",{GTIN},", ",,"))):
        (root / name).mkdir()
        (root / name / "products.csv").write_text(products)
        (root / name / "sites.csv").write_text(sim.sites_csv)
    assert (root / "master" / "products.csv").read_text() != sim.products_csv
    (root / "strict.toml").write_text('unmapped = "dead_letter"\n')
    return root


def fresh(chdb_dsn: str, name: str) -> StoreConfig:
    config = StoreConfig(chdb_dsn, name)
    migrate(connect(config), config.database)
    return config


def flags(store: StoreConfig, scenario: Path) -> list[str]:
    return ["--clickhouse", store.dsn, "--database", store.database, "--config", str(scenario / "strict.toml")]


def run(scenario: Path, master: Path, store: StoreConfig) -> int:
    """`logisync run` of the scenario's replay file with this master, strict mapping."""
    replay = f"file:{scenario / 'replay.jsonl'}"
    return main(["run", "--source", replay, "--master", str(master), "--quiet", *flags(store, scenario)])


def rows(store: StoreConfig, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    return query_rows(connect(store), sql.format(db=store.database), parameters)


EVENTS = "SELECT * EXCEPT ingested_at FROM {db}.events FINAL ORDER BY event_id"
PER_TOPIC = (
    "SELECT topic, sum(raw_in), sum(normalized), sum(duplicates), sum(ignored), sum(dead_lettered), sum(replayed), "
    "sum(events_out) FROM {db}.ingest_stats FINAL GROUP BY topic ORDER BY topic"
)
PENDING = "SELECT reason, count() FROM {db}.dead_letter_status WHERE pending GROUP BY reason ORDER BY reason"
# Everything a replay may write, whole (wall-clock columns included: a second replay must not write at all).
TABLES = (
    "SELECT * FROM {db}.events ORDER BY event_id, ingested_at",
    "SELECT * FROM {db}.dead_letters ORDER BY raw_ref, ingested_at",
    "SELECT * FROM {db}.ingest_stats ORDER BY source, block, topic, messages",
    "SELECT * FROM {db}.dead_letter_replays ORDER BY raw_ref, replayed_at",
    "SELECT * FROM {db}.delivery_status ORDER BY delivery_id, version",
    "SELECT * FROM {db}.sync_latency ORDER BY handoff, delivery_id, version",
    "SELECT * FROM {db}.inventory_positions ORDER BY site, sku, uom, version",
    "SELECT * FROM {db}.alerts ORDER BY alert_id, version",
    "SELECT * FROM {db}.stage_watermarks ORDER BY run_id, stage, bucket, updated_at",
)


def everything(store: StoreConfig) -> list[list[tuple[Any, ...]]]:
    return [rows(store, sql) for sql in TABLES]


def balanced(per_topic: list[tuple[Any, ...]]) -> bool:
    return all(raw_in == n + d + i + dead - replayed for _, raw_in, n, d, i, dead, replayed, _ in per_topic)


def test_replay_after_the_master_is_fixed(
    scenario: Path, chdb_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = fresh(chdb_dsn, "dlq_reference")  # the same input with the fixed master
    assert run(scenario, scenario / "fixed", reference) == 0
    store = fresh(chdb_dsn, "dlq_store")
    master = tmp_path / "master"  # the deployment's master directory, fixed in place below
    master.mkdir()
    for name in ("products.csv", "sites.csv"):
        (master / name).write_text((scenario / "master" / name).read_text())
    assert run(scenario, master, store) == 0
    capsys.readouterr()

    # The GTIN's messages are mapping_error letters naming it; everything else as in the reference.
    reference_pending = dict(rows(reference, PENDING))
    pending = dict(rows(store, PENDING))
    letters = pending.pop("mapping_error")
    assert letters > 0 and "mapping_error" not in reference_pending and pending == reference_pending
    errors = rows(store, "SELECT DISTINCT error FROM {db}.dead_letters FINAL WHERE reason = 'mapping_error'")
    assert errors and all(GTIN in error and "not in the product master" in error for (error,) in errors)
    reference_events = rows(reference, EVENTS)
    assert len(rows(store, EVENTS)) < len(reference_events)
    domain_before = everything(store)[4:]

    # list: the pending letters, counted by reason.
    assert main(["dlq", "list", "--reason", "mapping_error", "--format", "json", *flags(store, scenario)]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert (listing["matching"], listing["pending"]) == (letters, letters)
    assert listing["by_reason"] == {"mapping_error": letters}

    # Fix the master (the GTIN is back) and replay the mapping errors.
    (master / "products.csv").write_text((scenario / "fixed" / "products.csv").read_text())
    replay = ["dlq", "replay", "--reason", "mapping_error", "--master", str(master), *flags(store, scenario)]
    assert main([*replay, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f": {letters:,} dead letters in " in out
    assert "accounting raw_in = normalized + duplicates + dead + ignored - replayed: holds" in out

    # The events appear: exactly the reference run's, raw_ref (the original) included.
    assert rows(store, EVENTS) == reference_events
    # The accounting balances per topic after the replay, and moved every letter out of dead_lettered.
    per_topic = rows(store, PER_TOPIC)
    assert balanced(per_topic)
    reference_topics = {topic: counts for topic, *counts in rows(reference, PER_TOPIC)}
    for topic, raw_in, normalized, duplicates, ignored, dead, replayed, events_out in per_topic:
        want = reference_topics[topic]
        assert raw_in == want[0]  # no replayed message counted as a new one
        assert dead - replayed == want[4]  # the letters left are those the reference has
        assert normalized + duplicates == want[1] + want[2] and ignored == want[3] and events_out == want[6]
    assert sum(row[6] for row in per_topic) == letters
    # Nothing counted twice: every stored event was counted once, over the run and the replay.
    assert sum(row[7] for row in per_topic) == len(reference_events)
    # No mapping error is pending any more; the replay rows say what each letter became.
    assert dict(rows(store, PENDING)) == reference_pending
    outcomes = rows(store, "SELECT outcome, count() FROM {db}.dead_letter_replays FINAL GROUP BY outcome")
    assert sum(count for _, count in outcomes) == letters
    assert {outcome for outcome, _ in outcomes} <= {"normalized", "duplicate"}
    # The replay left the domain tables and the watermarks alone (no domain stages in a replay run).
    assert everything(store)[4:] == domain_before

    # A second replay of the same letters: nothing to replay, nothing written.
    before = everything(store)
    assert main(replay) == 0
    assert capsys.readouterr().out.strip() == "nothing to replay: no pending dead letter matches"
    assert everything(store) == before


def test_letters_still_dead_stay_pending_and_the_accounting_holds_over_replays(
    scenario: Path, chdb_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Replaying letters no fix helps (parse errors, an unmapped topic): they stay dead and
    pending, each replay moves them out of dead_lettered and back in, and the letters left never
    change."""
    store = fresh(chdb_dsn, "dlq_still_dead")
    assert run(scenario, scenario / "fixed", store) == 0
    pending = dict(rows(store, PENDING))
    letters = sum(pending.values())
    assert letters > 0
    dead_rows = rows(store, "SELECT * EXCEPT ingested_at FROM {db}.dead_letters FINAL ORDER BY raw_ref")
    for replays in (1, 2):
        assert main(["dlq", "replay", "--quiet", *flags(store, scenario)]) == 0
        out = capsys.readouterr().out
        assert f"dead letters still pending: {letters:,}" in out
        per_topic = rows(store, PER_TOPIC)
        assert balanced(per_topic)
        assert sum(row[6] for row in per_topic) == letters * replays  # replayed
        assert sum(row[5] - row[6] for row in per_topic) == letters  # dead letters left
        assert dict(rows(store, PENDING)) == pending
        assert rows(store, "SELECT * EXCEPT ingested_at FROM {db}.dead_letters FINAL ORDER BY raw_ref") == dead_rows


def test_dry_run_and_filters_change_nothing(scenario: Path, chdb_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = fresh(chdb_dsn, "dlq_dry_run")
    assert run(scenario, scenario / "master", store) == 0
    capsys.readouterr()
    letters = rows(
        store,
        "SELECT raw_ref, topic, reason, toUnixTimestamp64Milli(received_at) AS ms FROM {db}.dead_letters FINAL "
        "ORDER BY ms, topic, partition, offset",
    )
    counts: dict[tuple[str, str], int] = {}
    for _, topic, reason, _ in letters:
        counts[(topic, reason)] = counts.get((topic, reason), 0) + 1
    before = everything(store)

    assert main(["dlq", "replay", "--dry-run", *flags(store, scenario)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"would replay {len(letters):,} dead letters through the flow in this process:"
    assert out[1 : 1 + len(counts)] == [f"  {t:<24}{r:<16}{n:>8,}" for (t, r), n in sorted(counts.items())]
    first = ", ".join(ref for ref, *_ in letters[:5])
    assert out[-2] == f"  first: {first}, ... ({len(letters) - 5:,} more)"
    assert out[-1] == "dry run: nothing was changed"
    assert everything(store) == before

    def listed(*filters: str) -> Any:
        assert main(["dlq", "list", "--format", "json", "--limit", "1000", *filters, *flags(store, scenario)]) == 0
        return json.loads(capsys.readouterr().out)

    every = listed()
    assert every["matching"] == every["pending"] == len(letters)
    assert [letter["raw_ref"] for letter in every["letters"]] == [ref for ref, *_ in letters]

    def total(topics: tuple[str, ...] = (), reasons: tuple[str, ...] = ()) -> int:
        return sum(n for (t, r), n in counts.items() if (not topics or t in topics) and (not reasons or r in reasons))

    by_topic = listed("--topic", "wms.epcis", "--topic", "wms.edi")
    assert by_topic["by_topic"] == {"wms.epcis": total(("wms.epcis",)), "wms.edi": total(("wms.edi",))}
    assert by_topic["matching"] == total(("wms.epcis", "wms.edi")) > 0
    middle = letters[len(letters) // 2][3]
    since = listed("--since", _iso(middle))
    until = listed("--until", _iso(middle))
    assert since["matching"] == sum(1 for *_, ms in letters if ms >= middle)
    assert until["matching"] == sum(1 for *_, ms in letters if ms < middle)
    assert since["matching"] + until["matching"] == len(letters)
    assert listed("--reason", "parse_error")["by_reason"] == {"parse_error": total(reasons=("parse_error",))}
    both = listed("--reason", "parse_error", "--topic", "stock.snapshots", "--until", _iso(letters[-1][3] + 1))
    assert both["matching"] == total(("stock.snapshots",), ("parse_error",)) > 0
    # The table: counts over every match, the oldest letters first, and how many are not shown.
    assert main(["dlq", "list", "--limit", "2", *flags(store, scenario)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == f"dead letters pending replay: {len(letters):,}"
    assert table[1] == "  by reason: " + ", ".join(
        f"{reason} {count:,}" for reason, count in sorted(every["by_reason"].items(), key=lambda kv: -kv[1])
    )
    assert table[4].split()[:6] == ["raw_ref", "topic", "reason", "received_at", "last", "replay"]
    assert [line.split()[0] for line in table[6:8]] == [ref for ref, *_ in letters[:2]]
    assert table[8] == f"(the first 2 of {len(letters):,}; --limit N shows more)"
    # A filtered dry run names only what the filter selects.
    assert main(["dlq", "replay", "--dry-run", "--topic", "wms.unknown_feed", *flags(store, scenario)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"would replay {counts[('wms.unknown_feed', 'unsupported')]} dead letters")
    assert everything(store) == before


def test_an_event_stored_meanwhile_makes_its_letter_a_duplicate(
    scenario: Path, chdb_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After the fix, a retransmission of one dead message arrives (another file) and is normalized;
    replaying the letter then finds its events stored: a duplicate, not counted or stored again."""
    store = fresh(chdb_dsn, "dlq_meanwhile")
    assert run(scenario, scenario / "master", store) == 0
    ((ref, topic, received, payload),) = rows(
        store,
        "SELECT raw_ref, topic, received_at, payload FROM {db}.dead_letters FINAL "
        "WHERE reason = 'mapping_error' AND topic = 'wms.epcis' ORDER BY received_at LIMIT 1",
    )
    later = tmp_path / "later.jsonl"
    received = received.replace(tzinfo=UTC)  # chDB returns naive UTC
    with later.open("wb") as out:  # 999 lines of nothing new first, so its raw_ref is its own
        filler = [("wms.unknown_feed", None, received, b"{}")] * 999
        write_replay(out, [*filler, (topic, None, received, payload.encode())])
    flags_ = flags(store, scenario)
    assert main(["run", "--source", f"file:{later}", "--master", str(scenario / "fixed"), "--quiet", *flags_]) == 0
    events = rows(store, "SELECT event_id FROM {db}.events FINAL WHERE raw_ref = 'wms.epcis:0:999'")
    assert events
    capsys.readouterr()
    assert main(["dlq", "replay", "--reason", "mapping_error", "--master", str(scenario / "fixed"), *flags_]) == 0
    assert "holds" in capsys.readouterr().out
    outcome = rows(store, "SELECT outcome FROM {db}.dead_letter_replays FINAL WHERE raw_ref = %(ref)s", {"ref": ref})
    assert outcome == [("duplicate",)]
    # The events keep the raw_ref of the message that brought them first; none is counted twice.
    ids = {"ids": tuple(event_id for (event_id,) in events)}
    refs = rows(store, "SELECT DISTINCT raw_ref FROM {db}.events FINAL WHERE event_id IN %(ids)s", ids)
    assert refs == [("wms.epcis:0:999",)]
    (events_out,) = rows(store, "SELECT sum(events_out) FROM {db}.ingest_stats FINAL")[0]
    assert events_out == rows(store, "SELECT count() FROM {db}.events FINAL")[0][0]


def _iso(ms: int) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["dlq", "list", "--since", "yesterday"], "logisync dlq: --since must be an ISO 8601 time"),
        (["dlq", "list", "--limit", "-1"], "logisync dlq: --limit must be >= 0, got -1"),
    ],
)
def test_bad_dlq_flags_are_one_line(
    argv: list[str], error: str, chdb_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--clickhouse", chdb_dsn]) == 2
    assert capsys.readouterr().err.strip().startswith(error)


def test_kafka_mode_without_a_broker_is_one_line_and_marks_nothing(
    scenario: Path, chdb_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = fresh(chdb_dsn, "dlq_no_broker")
    assert run(scenario, scenario / "master", store) == 0
    pending = rows(store, PENDING)
    capsys.readouterr()
    assert main(["dlq", "replay", "--bootstrap", "127.0.0.1:9", "--quiet", *flags(store, scenario)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("logisync dlq: Kafka at 127.0.0.1:9 did not answer")
    assert not any("Traceback" in line for line in err)
    assert rows(store, PENDING) == pending and rows(store, "SELECT count() FROM {db}.dead_letter_replays") == [(0,)]

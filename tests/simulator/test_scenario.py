"""The built-in simulator: determinism, ordering, coverage, exact accounting, valid master data,
and agreement with the real adapters and the inventory ledger rule (design.md 3.4, section 4)."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.formats.master_csv import parse_master
from operators.formats.timeparse import to_epoch_ms
from operators.ingest.accounting import EventDedup, IngestStats, SourceTally, split_result
from operators.ingest.normalize import DEFAULT_TOPIC_ADAPTERS, Normalizer
from operators.model import CanonicalEvent, RawMessage
from simulator.scenario import Scenario, SimConfig, SimRecord, iter_records, simulate

DESIGN_TOPICS = ("erp.sap.events", "wms.epcis", "wms.edi", "carrier.edi", "carrier.webhooks", "stock.snapshots")
JSON_TOPICS = ("erp.sap.events", "wms.epcis", "carrier.webhooks", "stock.snapshots", "wms.unknown_feed")
EDI_TOPICS = ("wms.edi", "carrier.edi")


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return simulate(SimConfig())


def _as_tuples(records: list[SimRecord]) -> list[tuple[str, str | None, datetime, bytes]]:
    return [(r.topic, r.key, r.received_at, r.value) for r in records]


def test_same_seed_gives_byte_identical_records(scenario: Scenario) -> None:
    again = simulate(SimConfig())
    assert _as_tuples(again.records) == _as_tuples(scenario.records)
    assert again.products_csv == scenario.products_csv
    assert again.sites_csv == scenario.sites_csv
    assert again.expected == scenario.expected


def test_different_seed_gives_different_records(scenario: Scenario) -> None:
    other = simulate(SimConfig(seed=8))
    assert _as_tuples(other.records) != _as_tuples(scenario.records)
    assert {r.value for r in other.records}.isdisjoint(
        r.value for r in scenario.records if r.topic != "stock.snapshots"
    )


def test_iter_records_yields_the_same_records(scenario: Scenario) -> None:
    assert _as_tuples(list(iter_records(SimConfig()))) == _as_tuples(scenario.records)


def test_records_are_sorted_by_received_at_and_aware(scenario: Scenario) -> None:
    times = [r.received_at for r in scenario.records]
    assert times == sorted(times)
    assert all(t.utcoffset() == timedelta(0) for t in times)
    assert times[0] >= SimConfig().start


def test_every_topic_is_present(scenario: Scenario) -> None:
    counts = Counter(r.topic for r in scenario.records)
    for topic in (*DESIGN_TOPICS, "wms.unknown_feed"):
        assert counts[topic] > 0, topic
    assert set(counts) == set(scenario.expected.per_topic)


def test_expected_counts_add_up(scenario: Scenario) -> None:
    expected = scenario.expected
    counts = Counter(r.topic for r in scenario.records)
    for topic, outcome in expected.per_topic.items():
        parts = outcome["normalized"] + outcome["duplicates"] + outcome["dead_lettered"] + outcome["ignored"]
        assert outcome["raw_in"] == parts == counts[topic], topic
    assert sum(o["dead_lettered"] for o in expected.per_topic.values()) == sum(expected.dead_letter_reasons.values())
    assert expected.per_topic["wms.unknown_feed"]["dead_lettered"] == expected.dead_letter_reasons["unsupported"]
    # Every kind of noise is in the default scenario.
    assert set(expected.dead_letter_reasons) == {"decode_error", "parse_error", "schema_error", "unsupported"}
    assert expected.per_topic["erp.sap.events"]["ignored"] > 0
    assert expected.per_topic["wms.epcis"]["ignored"] > 0
    for topic in DESIGN_TOPICS:
        assert expected.per_topic[topic]["duplicates"] > 0, topic
    deliveries = SimConfig().deliveries
    assert expected.events_by_type["ORDER_CREATED"] == expected.events_by_type["ORDER_RELEASED"] == deliveries
    assert expected.events_by_type["SHIPMENT_DISPATCHED"] == deliveries
    assert expected.events_by_type["GOODS_ISSUE_POSTED"] == deliveries - expected.facts["gi_never_posted"]
    assert expected.events_by_type["INVOICE_POSTED"] == expected.events_by_type["GOODS_ISSUE_POSTED"]
    assert expected.events_by_type["INVENTORY_SNAPSHOT"] == expected.facts["snapshots"]


def _gs1_valid(digits: str) -> bool:
    """Independent GS1 mod-10 check (weights 3, 1 alternating from the right of the body)."""
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (1 if i % 2 else 3) for i, d in enumerate(reversed(body)))
    return (total + check) % 10 == 0


def test_master_csvs_are_valid(scenario: Scenario) -> None:
    products = list(csv.DictReader(io.StringIO(scenario.products_csv)))
    assert list(products[0]) == ["sku", "gtin", "uom", "description", "conversions"]
    assert len(products) == SimConfig().skus
    for row in products:
        assert re.fullmatch(r"\d{14}", row["gtin"]) and _gs1_valid(row["gtin"]), row
        assert row["conversions"] == "" or re.fullmatch(r"CS=\d+", row["conversions"]), row
    sites = list(csv.DictReader(io.StringIO(scenario.sites_csv)))
    assert list(sites[0]) == ["site", "gln", "epcis_location", "edi_warehouse_id", "timezone"]
    assert len(sites) == SimConfig().sites
    for row in sites:
        assert re.fullmatch(r"\d{13}", row["gln"]) and _gs1_valid(row["gln"]), row
        urn = re.fullmatch(r"urn:epc:id:sgln:(\d+)\.(\d+)\.0", row["epcis_location"])
        assert urn is not None and urn.group(1) + urn.group(2) == row["gln"][:-1], row
        assert row["timezone"].startswith(("America/", "Europe/")) and ZoneInfo(row["timezone"])
    parse_master(scenario.products_csv, scenario.sites_csv)  # the loader accepts them


def test_payloads_parse_unless_deliberately_malformed(scenario: Scenario) -> None:
    unreadable = 0
    for record in scenario.records:
        try:
            text = record.value.decode("utf-8")
        except UnicodeDecodeError:
            unreadable += 1
            continue
        if record.topic in JSON_TOPICS:
            try:
                assert isinstance(orjson.loads(text), dict)
            except orjson.JSONDecodeError:
                unreadable += 1
        else:
            assert record.topic in EDI_TOPICS
            unreadable += 0 if text.startswith("ISA*") else 1  # a fragment has no envelope
    reasons = scenario.expected.dead_letter_reasons
    assert unreadable == reasons["decode_error"] + reasons["parse_error"]


def test_x12_retransmissions_change_only_control_numbers(scenario: Scenario) -> None:
    def content(value: bytes) -> str:
        text = value.decode("latin-1")  # the malformed copies with an ISO-8859-1 byte included
        text = re.sub(r"\*\d{9}\*0\*P\*", "*CTL*0*P*", text)  # ISA13
        text = re.sub(r"(GS\*(?:[^*]*\*){5})\d+", r"\1CTL", text)  # GS06
        text = re.sub(r"(ST\*\d{3}\*|SE\*\d+\*)\d+", r"\1CTL", text)  # ST02 / SE02
        return re.sub(r"(GE\*\d+\*|IEA\*1\*)\d+", r"\1CTL", text)

    by_content: dict[str, set[bytes]] = defaultdict(set)
    for record in scenario.records:
        if record.topic in EDI_TOPICS and record.value.startswith(b"ISA"):
            by_content[content(record.value)].add(record.value)
    assert any(len(values) > 1 for values in by_content.values())


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SimConfig(start=datetime(2026, 1, 5, 6, 0))
    with pytest.raises(ValueError, match="rates"):
        SimConfig(duplicate_rate=1.5)


def _replay(scenario: Scenario) -> tuple[list[IngestStats], dict[str, CanonicalEvent]]:
    """The scenario through the real adapters, dedup and the tally of its one input partition, as
    the flow runs them (design.md section 4): the final ingest_stats row of every (block, topic),
    and the distinct events."""
    master = parse_master(scenario.products_csv, scenario.sites_csv)
    normalize = Normalizer(DEFAULT_TOPIC_ADAPTERS, master)
    dedup, tally = EventDedup(ttl_ms=30 * 86_400_000), SourceTally("replay:0", "test")
    final: dict[tuple[int, str], IngestStats] = {}

    def collect() -> None:
        for row in tally.rows():
            previous = final.get((row.block, row.topic))
            assert previous is None or previous.messages < row.messages  # the version only grows
            final[(row.block, row.topic)] = row

    for offset, record in enumerate(scenario.records):
        raw = RawMessage(record.topic, 0, offset, record.key, record.value, record.received_at)
        claims, item = split_result(raw, "replay:0", normalize(raw), to_epoch_ms(record.received_at))
        tally.add(item)
        for claim in claims:
            dedup.offer(claim.event, "replay:0", claim.offset, claim.received_ms)
        collect()
    dedup.decide(None, everything=True)
    _, decided, verdicts = dedup.take()
    events = {copy.event.event_id: copy.event for copy in decided}
    for judged in verdicts.get("replay:0", []):
        tally.add(judged)
    collect()
    assert tally.open_count() == 0
    return list(final.values()), events


def _assert_matches_adapters(scenario: Scenario) -> dict[str, CanonicalEvent]:
    rows, events = _replay(scenario)
    per_topic: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    mapping_warnings = 0
    for row in rows:
        per_topic[row.topic].update(
            raw_in=row.raw_in,
            normalized=row.normalized,
            duplicates=row.duplicates,
            dead_lettered=row.dead_lettered,
            ignored=row.ignored,
        )
        reasons.update(row.dead_by_reason)
        by_type.update(row.events_by_type)
        mapping_warnings += row.mapping_warnings
    for topic, expected in scenario.expected.per_topic.items():
        assert {key: per_topic[topic][key] for key in expected} == expected, topic
    assert sum(row.raw_in for row in rows) == len(scenario.records)
    assert dict(reasons) == scenario.expected.dead_letter_reasons
    assert dict(by_type) == scenario.expected.events_by_type
    assert sum(by_type.values()) == len(events)
    assert mapping_warnings == 0  # every id in the scenario is in its master data
    return events


def _final_unexplained(events: dict[str, CanonicalEvent]) -> dict[str, dict[str, float]]:
    """design.md 3.4 at the end: latest snapshot + later movements per side; wms - erp + in-flight."""
    snapshots: dict[tuple[str, str | None], CanonicalEvent] = {}
    movements: list[tuple[str, CanonicalEvent, int]] = []
    goods_issued = {e.delivery_id for e in events.values() if e.event_type == "GOODS_ISSUE_POSTED"}
    for event in events.values():
        if event.event_type == "INVENTORY_SNAPSHOT":
            key = (event.attributes["system"], event.site)
            if key not in snapshots or snapshots[key].occurred_at < event.occurred_at:
                snapshots[key] = event
        elif event.event_type in ("GOODS_ISSUE_POSTED", "SHIPMENT_DISPATCHED"):
            movements.append((event.source_kind.value, event, -1))
        elif event.event_type in ("GOODS_RECEIVED", "INVENTORY_ADJUSTED"):
            movements.append((event.source_kind.value, event, 1))
    position: dict[tuple[str, str, str], float] = defaultdict(float)
    for (side, site), snapshot in snapshots.items():
        for line in snapshot.lines:
            position[(side, str(site), line.sku)] += line.quantity
    for side, event, sign in movements:
        if event.occurred_at > snapshots[(side, event.site)].occurred_at:
            for line in event.lines:
                position[(side, str(event.site), line.sku)] += sign * line.quantity
    unexplained: dict[tuple[str, str], float] = defaultdict(float)
    for (side, site, sku), quantity in position.items():
        unexplained[(site, sku)] += quantity if side == "wms" else -quantity
    for _, event, _ in movements:
        if event.event_type == "SHIPMENT_DISPATCHED" and event.delivery_id not in goods_issued:
            for line in event.lines:
                unexplained[(str(event.site), line.sku)] += line.quantity  # in flight explains it
    result: dict[str, dict[str, float]] = {}
    for (site, sku), value in sorted(unexplained.items()):
        if value:
            result.setdefault(site, {})[sku] = value
    return result


def test_expected_matches_the_real_adapters_and_ledger(scenario: Scenario) -> None:
    events = _assert_matches_adapters(scenario)
    assert _final_unexplained(events) == scenario.expected.inventory_unexplained


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    deliveries=st.integers(0, 40),
    sites=st.integers(1, 9),
    skus=st.integers(1, 20),
    rates=st.tuples(*(st.floats(0, 0.3) for _ in range(3))),
    every_hours=st.sampled_from([1, 3, 6, 12]),
)
def test_any_config_matches_the_adapters(
    seed: int, deliveries: int, sites: int, skus: int, rates: tuple[float, float, float], every_hours: int
) -> None:
    config = SimConfig(
        seed=seed,
        deliveries=deliveries,
        start=datetime(2026, 3, 7, 2, 0, tzinfo=UTC),  # across a US DST change
        sites=sites,
        skus=skus,
        duplicate_rate=rates[0],
        malformed_rate=rates[1],
        ignorable_rate=rates[2],
        snapshot_every=timedelta(hours=every_hours),
    )
    scenario = simulate(config)
    events = _assert_matches_adapters(scenario)
    assert _final_unexplained(events) == scenario.expected.inventory_unexplained

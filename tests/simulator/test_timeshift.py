"""simulator.timeshift: a shifted message reads, through the real adapters, as the original with
every event time moved by the offset (minute offsets exactly; others to X12's minute precision)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from operators.formats.master_csv import parse_master
from operators.ingest.normalize import DEFAULT_TOPIC_ADAPTERS, Normalizer
from operators.model import AdapterResult, CanonicalEvent, RawMessage
from simulator.scenario import SimConfig, SimRecord, simulate
from simulator.timeshift import shift

RECEIVED = datetime(2026, 3, 1, tzinfo=UTC)
# Fields that legitimately differ: X12 and EasyPost ids hash the content, which holds the times.
IDENTITY = ("event_id", "raw_ref", "occurred_at", "recorded_at", "received_at", "attributes")


SCENARIO = simulate(SimConfig(seed=5, deliveries=40))
NORMALIZE = Normalizer(DEFAULT_TOPIC_ADAPTERS, parse_master(SCENARIO.products_csv, SCENARIO.sites_csv))


@pytest.fixture(scope="module")
def records() -> list[SimRecord]:
    return SCENARIO.records


def adapt(record: SimRecord, value: bytes) -> AdapterResult:
    return NORMALIZE(RawMessage(record.topic, 0, 0, record.key, value, RECEIVED))


def rest(event: CanonicalEvent) -> dict[str, object]:
    fields = msgspec.structs.asdict(event)
    return {name: value for name, value in fields.items() if name not in IDENTITY}


@pytest.mark.parametrize(
    "delta",
    [timedelta(days=330, hours=3, minutes=25), -timedelta(days=2, minutes=7)],
    ids=["forward", "back"],
)
def test_every_event_time_moves_by_a_minute_offset_exactly(records: list[SimRecord], delta: timedelta) -> None:
    delta_ms = delta // timedelta(milliseconds=1)
    topics: set[str] = set()
    for record in records:
        before, after = adapt(record, record.value), adapt(record, shift(record.value, delta_ms))
        assert (before.dead_letter is None) == (after.dead_letter is None), record.value[:200]
        if before.dead_letter is not None and after.dead_letter is not None:
            assert after.dead_letter.reason == before.dead_letter.reason
            continue
        assert len(after.events) == len(before.events)
        for old, new in zip(before.events, after.events, strict=True):
            topics.add(record.topic)
            assert new.occurred_at - old.occurred_at == delta, (record.topic, old.event_type)
            if old.recorded_at is not None:
                assert new.recorded_at is not None
                assert new.recorded_at - old.recorded_at == delta, (record.topic, old.event_type)
            assert rest(new) == rest(old)
    assert topics == {"erp.sap.events", "wms.epcis", "wms.edi", "carrier.edi", "carrier.webhooks", "stock.snapshots"}


def test_an_offset_within_a_minute_keeps_x12_minute_precision(records: list[SimRecord]) -> None:
    delta = timedelta(seconds=90, milliseconds=250)
    edi = [record for record in records if record.value.startswith(b"ISA")]
    assert edi
    for record in edi:
        before, after = adapt(record, record.value), adapt(record, shift(record.value, 90_250))
        for old, new in zip(before.events, after.events, strict=True):
            assert timedelta(seconds=30) < new.occurred_at - old.occurred_at <= delta
            assert new.occurred_at.second == 0


def test_json_times_keep_their_format() -> None:
    value = b'{"a":"2026-01-05T02:05:31.756-06:00","b":"2026-01-05T08:53:35Z","c":"/Date(1000)/","d":"2026-01-05"}'
    assert shift(value, 86_400_000 + 1_000) == (
        b'{"a":"2026-01-06T02:05:32.756-06:00","b":"2026-01-06T08:53:36Z","c":"/Date(86402000)/","d":"2026-01-06"}'
    )

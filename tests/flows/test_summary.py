"""The run summary's accounting: the invariant with replayed dead letters, and what it prints."""

from __future__ import annotations

from flows.summary import COUNT_COLUMNS, RunSummary, format_accounting


def counts(**values: int) -> dict[str, int]:
    return {column: values.get(column, 0) for column in COUNT_COLUMNS}


def test_replayed_letters_balance_against_their_outcomes_not_raw_in() -> None:
    summary = RunSummary("r", 1.0)
    summary.per_topic["wms.epcis"] = counts(replayed=3, normalized=2, dead_lettered=1, events_out=4)
    summary.per_topic["wms.edi"] = counts(raw_in=5, normalized=4, dead_lettered=1, events_out=4)
    assert summary.balanced
    summary.per_topic["wms.epcis"]["replayed"] = 2  # a replay counted as a new message would show
    assert not summary.balanced


def test_the_replayed_column_and_formula_show_only_when_there_were_replays() -> None:
    plain = RunSummary("r", 1.0, per_topic={"wms.edi": counts(raw_in=2, normalized=1, ignored=1, events_out=1)})
    text = "\n".join(format_accounting(plain))
    assert "replayed" not in text
    assert "accounting raw_in = normalized + duplicates + dead + ignored: holds" in text
    replay = RunSummary(
        "r", 1.0, per_topic={"wms.epcis": counts(replayed=3, normalized=2, dead_lettered=1, events_out=2)}
    )
    lines = format_accounting(replay)
    assert lines[1].split() == ["topic", "raw_in", "replayed", "normalized", "duplicates", "dead", "ignored", "events"]
    assert lines[2].split() == ["wms.epcis", "0", "3", "2", "0", "1", "0", "2"]
    assert "  accounting raw_in = normalized + duplicates + dead + ignored - replayed: holds" in lines

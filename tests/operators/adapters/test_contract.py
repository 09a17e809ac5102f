"""One adapter contract (style.md): every adapter, on every sample and fixture, adapts the same
message twice to the same result, with exactly one outcome and structured warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.ingest.normalize import ADAPTERS
from operators.master import EMPTY_MASTER, MasterData
from operators.model import AdapterResult, AdapterWarning, WarningKind
from sources.master_files import load_master
from tests.conftest import FIXTURES, SAMPLES, raw_message

# Which adapter reads a file, by the word its name or folder starts with.
_ADAPTER_OF = {"easypost": "easypost", "epcis": "epcis", "epcis2": "epcis", "sap": "sap_ce", "snapshot": "snapshot"}


def _adapter_of(path: Path) -> str | None:
    if path.suffix == ".edi":
        return "x12"
    return _ADAPTER_OF.get(path.parent.name) or _ADAPTER_OF.get(path.name.split("_")[0])


def _inputs() -> list[tuple[str, Path]]:
    files = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.parent.name != "master")
    files += sorted(SAMPLES.glob("*")) if SAMPLES.is_dir() else []
    return [(adapter, path) for path in files if (adapter := _adapter_of(path)) is not None]


INPUTS = _inputs()
MASTERS = {"no master": EMPTY_MASTER, "fixture master": load_master(FIXTURES / "master")}


def test_every_adapter_has_inputs() -> None:
    assert {adapter for adapter, _ in INPUTS} == set(ADAPTERS)


@pytest.mark.parametrize("master_name", sorted(MASTERS))
@pytest.mark.parametrize(("adapter", "path"), INPUTS, ids=[f"{a}:{p.name}" for a, p in INPUTS])
def test_adapt_twice_same_result(adapter: str, path: Path, master_name: str) -> None:
    master: MasterData = MASTERS[master_name]
    raw = raw_message(path.read_bytes(), topic="contract", offset=1)
    first: AdapterResult = ADAPTERS[adapter](raw, master)
    second: AdapterResult = ADAPTERS[adapter](raw, master)
    assert first == second
    outcomes = [bool(first.events), first.dead_letter is not None, first.ignored_reason is not None]
    assert sum(outcomes) == 1, first
    assert all(isinstance(w, AdapterWarning) and isinstance(w.kind, WarningKind) for w in first.warnings)
    assert all(str(w) == f"{w.kind.value}: {w.message}" for w in first.warnings)

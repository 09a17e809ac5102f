"""Dispatch a raw message to its adapter: by topic (configuration), else by sniffing the content.

Nothing is lost here: a topic without an adapter is a dead letter `unsupported`, bytes that are
not UTF-8 are `decode_error`, and an adapter that raises (a bug) becomes a `parse_error` dead
letter naming the exception instead of stopping the pipeline.

The mapping policy is applied here, once for every adapter: an id the master data cannot map is
kept as `UNMAPPED:<raw>` with a mapping warning (`warn`, design.md 2.4), or, with `dead_letter`,
the whole message becomes a `mapping_error` dead letter naming the ids, so that it can be
replayed once the master data is fixed (`logisync dlq replay`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import msgspec

from operators.adapters.easypost import adapt_easypost
from operators.adapters.epcis import adapt_epcis
from operators.adapters.sap import adapt_sap
from operators.adapters.snapshot import adapt_snapshot
from operators.adapters.x12 import adapt_x12
from operators.ingest.accounting import count_mapping_warnings
from operators.ingest.sanity import quantity_problem
from operators.master import MasterData
from operators.model import AdapterResult, DeadLetter, DeadLetterReason, RawMessage, WarningKind, dead, with_changes

Adapter = Callable[[RawMessage, MasterData], AdapterResult]

ADAPTERS: Mapping[str, Adapter] = MappingProxyType(
    {
        "sap_ce": adapt_sap,
        "epcis": adapt_epcis,
        "x12": adapt_x12,
        "easypost": adapt_easypost,
        "snapshot": adapt_snapshot,
    }
)

# design.md 2.1: the default topic -> adapter map (configurable).
DEFAULT_TOPIC_ADAPTERS: Mapping[str, str] = MappingProxyType(
    {
        "erp.sap.events": "sap_ce",
        "wms.epcis": "epcis",
        "wms.edi": "x12",
        "carrier.edi": "x12",
        "carrier.webhooks": "easypost",
        "stock.snapshots": "snapshot",
    }
)

SNIFF = "sniff"  # a topic mapped to "sniff" picks the adapter from the content
NONE = "none"  # a topic consumed on purpose without an adapter yet: its messages are dead-lettered `unsupported`

# What becomes of a message with an id the master data cannot map (setting `unmapped`).
WARN = "warn"  # events keep `UNMAPPED:<raw>`, the warning is counted (design.md 2.4)
DEAD_LETTER = "dead_letter"  # the message is a `mapping_error` dead letter, to replay after a fix
UNMAPPED_POLICIES = (WARN, DEAD_LETTER)


def sniff_adapter(value: bytes) -> str | None:
    """Guess the adapter from the first bytes (design.md 2.1), or None."""
    head = value[:4096].lstrip()
    if head.startswith((b"ISA", b"ST*", b"GS*")):
        return "x12"
    if b'"specversion"' in head:
        return "sap_ce"
    if b'"epcisBody"' in head or b'"@context"' in head:
        return "epcis"
    if b'"object"' in head and (b'"Event"' in head or b'"Tracker"' in head):
        return "easypost"
    if b'"snapshot_id"' in head:
        return "snapshot"
    return None


class Normalizer:
    """Maps one raw message to one AdapterResult using the topic map and master data."""

    def __init__(self, topic_adapters: Mapping[str, str], master: MasterData, unmapped: str = WARN) -> None:
        unknown = sorted(set(topic_adapters.values()) - set(ADAPTERS) - {SNIFF, NONE})
        if unknown:
            raise ValueError(f"topic map names unknown adapters {unknown}; known: {sorted(ADAPTERS)}")
        if unmapped not in UNMAPPED_POLICIES:
            raise ValueError(f"unmapped policy must be one of {UNMAPPED_POLICIES}, got {unmapped!r}")
        self.topic_adapters = dict(topic_adapters)
        self.master = master
        self.strict = unmapped == DEAD_LETTER

    def adapter_name(self, raw: RawMessage) -> str | None:
        name = self.topic_adapters.get(raw.topic)
        if name == SNIFF:
            return sniff_adapter(raw.value)
        return None if name == NONE else name

    def __call__(self, raw: RawMessage) -> AdapterResult:
        name = self.adapter_name(raw)
        if name is None:
            return dead(
                raw,
                DeadLetterReason.UNSUPPORTED,
                "none",
                f"no adapter for topic {raw.topic!r}: map it to an adapter in the [topics] configuration",
            )
        if not raw.value.isascii():  # ASCII is UTF-8: only other payloads need the decode to check
            try:
                raw.value.decode("utf-8")
            except UnicodeDecodeError as exc:
                return dead(raw, DeadLetterReason.DECODE_ERROR, name, f"payload is not UTF-8: {exc}")
        try:
            result = ADAPTERS[name](raw, self.master)
        except Exception as exc:  # noqa: BLE001 - an adapter bug must not stop the pipeline
            return dead(raw, DeadLetterReason.PARSE_ERROR, name, f"adapter {name} failed: {type(exc).__name__}: {exc}")
        if result.events:
            problem = quantity_problem(result.events)
            if problem is not None:
                return dead(raw, DeadLetterReason.SCHEMA_ERROR, name, problem)
        if self.strict and result.dead_letter is None and count_mapping_warnings(result):
            result = mapping_error(raw, name, result)
        return with_warnings(result) if result.warnings else result


def with_warnings(result: AdapterResult) -> AdapterResult:
    """The result with its warnings written onto its events or its dead letter (kept in their
    rows: which events came from a message the adapter found something amiss in, and what)."""
    texts = tuple(str(warning) for warning in result.warnings)
    if result.dead_letter is not None:
        letter = msgspec.structs.replace(result.dead_letter, warnings=texts)
        return msgspec.structs.replace(result, dead_letter=letter)
    if not result.events:
        return result
    return msgspec.structs.replace(result, events=tuple(with_changes(e, warnings=texts) for e in result.events))


def mapping_error(raw: RawMessage, adapter: str, result: AdapterResult) -> AdapterResult:
    """The `dead_letter` policy: a message with unmapped ids is a `mapping_error` dead letter whose
    error names them; its other warnings (control numbers, ...) are still counted."""
    unmapped = [warning for warning in result.warnings if warning.kind is WarningKind.MAPPING]
    texts = list(dict.fromkeys(warning.message for warning in unmapped))
    error = f"{len(texts)} id(s) not in the master data (unmapped = dead_letter): " + "; ".join(texts)
    letter = DeadLetter(raw=raw, reason=DeadLetterReason.MAPPING_ERROR, adapter=adapter, error=error[:2000])
    others = tuple(warning for warning in result.warnings if warning.kind is not WarningKind.MAPPING)
    return AdapterResult(dead_letter=letter, warnings=others)

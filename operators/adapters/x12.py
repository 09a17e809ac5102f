"""The X12 adapter: one interchange (or a bare ST..SE snippet) -> canonical events.

Dispatch is per transaction set on ST01 (design.md 2.3): 214 (carrier status), 945 (shipping
advice), 947 (inventory adjustment). Acknowledgements (997, 999 sets and TA1 segments) are valid
traffic without logistics meaning: a message of only those is ignored. Other sets (856, 940, ...)
are dead letters `unsupported` when nothing we read is in the message (someone should look at
them), else they are skipped with an `unsupported_set` warning. Control-number and trailer
findings of the tokenizer are warnings, never a rejection. A set that cannot be read (a required
element missing or malformed) dead-letters the whole message as `schema_error`: the contract is
one outcome per raw message, and a partial load would hide the bad set; the dead-letter replay
re-sends the whole message and content-based ids collapse the sets already loaded.
"""

from __future__ import annotations

from collections.abc import Callable

from operators.adapters.mapping import MasterMapping
from operators.adapters.x12_214 import events_214
from operators.adapters.x12_support import SetContext, X12SchemaError
from operators.adapters.x12_warehouse import events_945, events_947
from operators.formats.x12 import TransactionSet, X12ParseError, parse_x12
from operators.formats.x12_time import X12TimeError, group_timestamp
from operators.master import MasterData
from operators.model import (
    AdapterResult,
    CanonicalEvent,
    DeadLetterReason,
    RawMessage,
    WarningKind,
    dead,
    ignored,
    ok,
)

ADAPTER = "x12"

_SET_ADAPTERS: dict[str, Callable[[SetContext], list[CanonicalEvent]]] = {
    "214": events_214,
    "945": events_945,
    "947": events_947,
}
# Acknowledgement sets: valid, read by nobody here.
ACKNOWLEDGEMENTS = {"997": "functional acknowledgment", "999": "implementation acknowledgment"}
# GS01 functional identifier expected for each set (domain-notes 2); a mismatch is a warning.
_FUNCTIONAL_IDS = {"214": "QM", "945": "SW", "947": "AW", "856": "SH", "940": "OW", "997": "FA", "999": "FA"}


def adapt_x12(raw: RawMessage, master: MasterData) -> AdapterResult:
    """X12 214 / 945 / 947 -> events; never raises (decode, parse, schema errors dead-letter)."""
    try:
        text = raw.value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return dead(raw, DeadLetterReason.DECODE_ERROR, ADAPTER, f"payload is not UTF-8: {exc}")
    try:
        document = parse_x12(text)
    except X12ParseError as exc:
        return dead(raw, DeadLetterReason.PARSE_ERROR, ADAPTER, f"X12 parse error: {exc}")
    mapping = MasterMapping(master)
    mapping.warnings.extend(document.warnings)
    supported = [tset for tset in document.transaction_sets if tset.set_id in _SET_ADAPTERS]
    others = [
        tset
        for tset in document.transaction_sets
        if tset.set_id not in _SET_ADAPTERS and tset.set_id not in ACKNOWLEDGEMENTS
    ]
    if not supported:
        if others:
            set_ids = ", ".join(sorted({tset.set_id for tset in others}))
            error = f"X12 transaction set(s) {set_ids} not supported"
            return dead(raw, DeadLetterReason.UNSUPPORTED, ADAPTER, error, mapping.warnings)
        reason = _acknowledgements(document.transaction_sets, document.interchange_acknowledgments)
        return ignored(reason, mapping.warnings)
    for tset in others:
        mapping.warn(WarningKind.UNSUPPORTED_SET, f"X12 {tset.describe()} skipped (no adapter for {tset.set_id})")
    events: list[CanonicalEvent] = []
    for tset in supported:
        expected = _FUNCTIONAL_IDS.get(tset.set_id)
        functional_id = tset.envelope.functional_id
        if functional_id is not None and functional_id != expected:
            mapping.warn(
                WarningKind.CONTROL_NUMBER, f"GS01={functional_id!r} for {tset.describe()}, expected {expected!r}"
            )
        try:
            recorded_at = group_timestamp(tset.envelope.group_date, tset.envelope.group_time)
        except X12TimeError as exc:
            mapping.warn(WarningKind.BAD_VALUE, f"recorded_at unknown, {exc}")
            recorded_at = None
        context = SetContext(raw=raw, mapping=mapping, tset=tset, recorded_at=recorded_at)
        try:
            events.extend(_SET_ADAPTERS[tset.set_id](context))
        except X12SchemaError as exc:
            return dead(raw, DeadLetterReason.SCHEMA_ERROR, ADAPTER, str(exc), mapping.warnings)
    if not events:
        kinds = ", ".join(sorted({tset.set_id for tset in supported}))
        return ignored(f"X12 {kinds} without status or item detail", mapping.warnings)
    return ok(events, mapping.warnings)


def _acknowledgements(sets: tuple[TransactionSet, ...], ta1_count: int) -> str:
    """The ignore reason of a message of acknowledgements only."""
    names = sorted({f"{tset.set_id} ({ACKNOWLEDGEMENTS[tset.set_id]})" for tset in sets})
    if ta1_count:
        names.append("TA1 (interchange acknowledgment)")
    return f"X12 acknowledgement without logistics meaning: {', '.join(names)}"

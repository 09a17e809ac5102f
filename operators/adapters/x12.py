"""The X12 adapter: one interchange (or a bare ST..SE snippet) -> canonical events.

Dispatch is per transaction set on ST01 (design.md 2.3): 214 (carrier status), 945 (shipping
advice), 947 (inventory adjustment). Other sets (856, 940, ...) are `unsupported` when nothing
else is in the message, else they are skipped with a warning. Control-number mismatches found by
the tokenizer are warnings, never a rejection. A set that cannot be read (a required element
missing or malformed) dead-letters the whole message as `schema_error`: the contract is one
outcome per raw message, and a partial load would hide the bad set; the dead-letter replay
re-sends the whole message and content-based ids collapse the sets already loaded.
"""

from __future__ import annotations

from collections.abc import Callable

from operators.adapters.x12_214 import events_214
from operators.adapters.x12_support import SetContext, X12SchemaError
from operators.adapters.x12_warehouse import events_945, events_947
from operators.formats.x12 import X12ParseError, parse_x12
from operators.formats.x12_time import X12TimeError, group_timestamp
from operators.master import MasterData
from operators.model import AdapterResult, CanonicalEvent, DeadLetterReason, RawMessage, dead, ignored, ok

ADAPTER = "x12"

_SET_ADAPTERS: dict[str, Callable[[SetContext], list[CanonicalEvent]]] = {
    "214": events_214,
    "945": events_945,
    "947": events_947,
}
# GS01 functional identifier expected for each set (domain-notes 2); a mismatch is a warning.
_FUNCTIONAL_IDS = {"214": "QM", "945": "SW", "947": "AW", "856": "SH", "940": "OW"}


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
    warnings = list(document.warnings)
    supported = [tset for tset in document.transaction_sets if tset.set_id in _SET_ADAPTERS]
    others = [tset for tset in document.transaction_sets if tset.set_id not in _SET_ADAPTERS]
    if not supported:
        set_ids = ", ".join(sorted({tset.set_id for tset in others}))
        return dead(raw, DeadLetterReason.UNSUPPORTED, ADAPTER, f"X12 transaction set(s) {set_ids} not supported")
    for tset in others:
        warnings.append(f"unsupported: X12 {tset.describe()} skipped (no adapter for {tset.set_id})")
    events: list[CanonicalEvent] = []
    for tset in supported:
        expected = _FUNCTIONAL_IDS.get(tset.set_id)
        functional_id = tset.envelope.functional_id
        if functional_id is not None and functional_id != expected:
            warnings.append(f"control: GS01={functional_id!r} for {tset.describe()}, expected {expected!r}")
        try:
            recorded_at = group_timestamp(tset.envelope.group_date, tset.envelope.group_time)
        except X12TimeError as exc:
            warnings.append(f"x12: recorded_at unknown, {exc}")
            recorded_at = None
        context = SetContext(raw=raw, master=master, tset=tset, recorded_at=recorded_at)
        try:
            events.extend(_SET_ADAPTERS[tset.set_id](context))
        except X12SchemaError as exc:
            return dead(raw, DeadLetterReason.SCHEMA_ERROR, ADAPTER, str(exc))
        warnings.extend(context.warnings)
    if not events:
        kinds = ", ".join(sorted({tset.set_id for tset in supported}))
        return ignored(f"X12 {kinds} without status or item detail", warnings)
    return ok(events, warnings)

"""logisync stock snapshots -> one INVENTORY_SNAPSHOT event (design.md 2.3).

`{"snapshot_id", "system": "erp"|"wms", "source_system", "as_of", "site",
"lines": [{"sku", "quantity", "uom"}]}`. It is our own contract, so it is validated strictly
(a quantity must be a JSON number, not a string or a bool) and any violation is a schema_error
with the first pydantic error in one line. A snapshot is complete for its site: an empty
`lines` is valid and means the site holds nothing on that side.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from operators.adapters.common import decode_json, schema_error
from operators.adapters.mapping import MasterMapping
from operators.formats.timeparse import parse_iso
from operators.master import MasterData
from operators.model import (
    AdapterResult,
    CanonicalEvent,
    EventType,
    Line,
    RawMessage,
    SourceKind,
    TimePrecision,
    ok,
)

ADAPTER = "snapshot"
SOURCE_FORMAT = "snapshot"


def _as_of(value: object) -> datetime:
    # parse_iso refuses offset-less timestamps; its TimeParseError (a ValueError) becomes a
    # pydantic error on `as_of`. OverflowError (year 9999 shifted past UTC) is reported the same way.
    try:
        return parse_iso(value, field_name="as_of")[0]
    except OverflowError as exc:
        raise ValueError(f"as_of: out of range {value!r}") from exc


_NonEmpty = Annotated[str, Field(min_length=1)]


class SnapshotLine(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, allow_inf_nan=False)

    sku: _NonEmpty
    quantity: float  # strict: int or float, never a bool or a numeric string
    uom: _NonEmpty


class StockSnapshot(BaseModel):
    """The snapshot contract. Extra keys are ignored so producers can add fields."""

    model_config = ConfigDict(strict=True, frozen=True)

    snapshot_id: _NonEmpty
    system: Literal["erp", "wms"]
    source_system: _NonEmpty
    as_of: Annotated[datetime, BeforeValidator(_as_of)]
    site: _NonEmpty
    lines: list[SnapshotLine]


def adapt_snapshot(raw: RawMessage, master: MasterData) -> AdapterResult:
    """One stock snapshot -> one INVENTORY_SNAPSHOT event, or a schema_error dead letter."""
    doc, failure = decode_json(raw, ADAPTER)
    if failure is not None:
        return failure
    try:
        snapshot = StockSnapshot.model_validate(doc)
    except ValidationError as exc:
        return schema_error(raw, ADAPTER, f"snapshot: {summarize(exc)}")
    seen: set[str] = set()
    for index, line in enumerate(snapshot.lines):
        if line.sku in seen:
            # Two quantities for one sku leave the position ambiguous: reject, don't guess.
            return schema_error(raw, ADAPTER, f"snapshot: lines[{index}].sku: duplicate sku {line.sku!r}")
        seen.add(line.sku)

    mapping = MasterMapping(master)
    site = mapping.site(snapshot.site, "site")
    for index, line in enumerate(snapshot.lines):
        # skus are ERP material numbers already; only an unknown one needs its path (hundreds of lines)
        if master.product(line.sku) is None:
            mapping.sku(line.sku, f"lines[{index}].sku")
    event = CanonicalEvent(
        event_id=f"snapshot:{snapshot.snapshot_id}",
        event_type=EventType.INVENTORY_SNAPSHOT,
        source_kind=SourceKind.SNAPSHOT,
        source_format=SOURCE_FORMAT,
        source_system=snapshot.source_system,
        occurred_at=snapshot.as_of,
        recorded_at=snapshot.as_of,
        received_at=raw.received_at,
        time_precision=_precision(doc),
        site=site,
        lines=tuple(Line(sku=line.sku, quantity=line.quantity, uom=line.uom) for line in snapshot.lines),
        raw_ref=raw.raw_ref,
        attributes={"system": snapshot.system},
    )
    return ok([event], mapping.warnings)


def _precision(doc: object) -> TimePrecision:
    # Validation succeeded, so `as_of` is a string parse_iso accepts.
    as_of = doc.get("as_of") if isinstance(doc, dict) else None
    return parse_iso(as_of, field_name="as_of")[1]


def summarize(error: ValidationError) -> str:
    """The first pydantic error as `path: message`, plus how many more there are."""
    errors = error.errors(include_url=False)
    first = errors[0]
    path = ""
    for part in first["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = first["msg"].removeprefix("Value error, ")
    # Our own validators already name the field ("as_of: ..."): don't say it twice.
    text = message if path and message.startswith(f"{path}:") else f"{path or '<document>'}: {message}"
    if len(errors) > 1:
        text += f" (+{len(errors) - 1} more)"
    return text

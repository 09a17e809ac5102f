"""What the X12 set adapters (214, 945, 947) share: the per-set context, master-data mapping of
products, numbers, and the schema error they raise for a set that cannot be read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from operators.adapters.mapping import MasterMapping
from operators.formats.x12 import Segment, TransactionSet
from operators.master import unmapped
from operators.model import RawMessage, WarningKind

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")

# Product/Service ID qualifiers (E235) that identify an item. GTIN-style ones map through the
# product master's GTIN index; the others are looked up as skus.
GTIN_QUALIFIERS = frozenset({"UK", "UP", "EN", "UA", "UC"})  # UC: the W1206 / W1904 U.P.C. case code
SKU_QUALIFIERS = frozenset({"VN", "VP", "BP", "SK", "IN", "PI", "CB", "MG", "MN", "PN"})
PRODUCT_QUALIFIERS = GTIN_QUALIFIERS | SKU_QUALIFIERS
# Without a master, which raw id to keep: the depositor's own item numbers first (they are the
# ERP material numbers in 940/945/947 practice), then GTINs.
_RAW_PREFERENCE = ("SK", "VN", "VP", "BP", "IN", "PI", "CB", "MG", "MN", "PN", "UK", "UP", "EN", "UA", "UC")


class X12SchemaError(ValueError):
    """A readable set missing a required element or carrying a wrong value (-> schema_error)."""


@dataclass
class SetContext:
    """One transaction set being adapted, with what it needs from the message around it: the
    message's master-data mapping collects the warnings of all its sets."""

    raw: RawMessage
    mapping: MasterMapping
    tset: TransactionSet
    recorded_at: datetime | None

    def warn(self, kind: WarningKind, message: str) -> None:
        self.mapping.warn(kind, message)

    def fail(self, segment: Segment | None, problem: str) -> X12SchemaError:
        where = f" {segment.describe()}" if segment is not None else ""
        return X12SchemaError(f"{self.tset.describe()}{where}: {problem}")

    @property
    def sender(self) -> str | None:
        """ISA06 sender id (else GS02) without its space padding."""
        envelope = self.tset.envelope
        return envelope.sender_id or envelope.group_sender


def parse_quantity(ctx: SetContext, segment: Segment, index: int, element: str) -> float:
    """An X12 R (decimal) element, signed; a missing or non-numeric value is a schema error."""
    text = segment.el(index)
    if not _DECIMAL.fullmatch(text):
        raise ctx.fail(segment, f"{element} quantity {text!r} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise ctx.fail(segment, f"{element} quantity {text!r} is out of range")
    return value


def product_ids(segment: Segment, pair_starts: Iterable[int], case_code: Sequence[int]) -> list[tuple[str, str]]:
    """(qualifier, id) pairs found at the given element positions (qualifier at i, id at i+1).

    `case_code` positions hold a bare U.P.C. case code (W1206, W1904), kept as qualifier `UC`.
    Positions that do not hold a known qualifier are skipped, which also absorbs the layout
    shift of the J.R. Simplot 945 sample (case code in W1207, `UK` in W1208, GTIN in W1209).
    """
    pairs: list[tuple[str, str]] = []
    for start in pair_starts:
        qualifier, value = segment.el(start).upper(), segment.el(start + 1)
        if qualifier in PRODUCT_QUALIFIERS and value and (qualifier, value) not in pairs:
            pairs.append((qualifier, value))
    for index in case_code:
        value = segment.el(index)
        if value.isascii() and value.isdigit() and 12 <= len(value) <= 14 and not any(value == v for _, v in pairs):
            pairs.append(("UC", value))
            break
    return pairs


def map_product(ctx: SetContext, segment: Segment, pairs: list[tuple[str, str]], element: str) -> str:
    """The sku of a line: GTINs through the GTIN index, item numbers as skus; else the raw id
    (no master) or `UNMAPPED:<raw>` with a mapping warning.
    """
    if not pairs:
        raise ctx.fail(segment, f"no product id ({element})")
    master = ctx.mapping.master
    by_qualifier = dict(reversed(pairs))  # the first id per qualifier wins
    preferred = next(
        (by_qualifier[q] for q in _RAW_PREFERENCE if q in by_qualifier),
        pairs[0][1],
    )
    if master.empty:
        return preferred
    for qualifier, value in pairs:
        if qualifier in GTIN_QUALIFIERS:
            sku = master.sku_for_gtin(value)
            if sku is not None:
                return sku
    for qualifier, value in pairs:
        if qualifier in SKU_QUALIFIERS and master.product(value) is not None:
            return value
    qualifier = next(q for q, v in pairs if v == preferred)
    where = f"{qualifier}, {segment.describe()}"
    ctx.warn(WarningKind.MAPPING, f"product {preferred!r} ({where}) not in the product master")
    return unmapped(preferred)

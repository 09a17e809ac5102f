"""The pieces of an X12 payload: separators, segments, sets and their envelope (design.md 2.3).

msgspec Structs rather than frozen dataclasses: a message makes one Segment per segment, and a
Struct is built several times faster (no `object.__setattr__`).
"""

from __future__ import annotations

import msgspec

from operators.model import AdapterWarning


class X12ParseError(ValueError):
    """Input that is not readable X12; the message names the segment and what was wrong."""


class Separators(msgspec.Struct, frozen=True, gc=False):
    element: str
    segment: str  # "\n" means: one segment per line
    component: str | None = None
    repetition: str | None = None


class Segment(msgspec.Struct, frozen=True, gc=False):
    """One segment. `fields[0]` is the tag as written, `fields[i]` element i (as in `AT705`),
    with its padding: `el()` strips it (the split list is kept as it is: no copy per segment)."""

    tag: str
    fields: list[str]
    position: int  # 1-based ordinal of the segment in the message, for error messages

    @property
    def elements(self) -> tuple[str, ...]:
        """Elements 01.. as written (padding kept)."""
        return tuple(self.fields[1:])

    def el(self, index: int) -> str:
        """Element `index` (1-based, as in `AT705`), stripped of space padding; "" if absent."""
        fields = self.fields
        if 0 < index < len(fields):
            return fields[index].strip()
        return ""

    def els(self, count: int) -> list[str]:
        """Elements 1..`count` as `el()` reads them (stripped, "" if absent), in one call."""
        values = [element.strip() for element in self.fields[1 : count + 1]]
        if len(values) < count:
            values += [""] * (count - len(values))
        return values

    def describe(self) -> str:
        return f"segment {self.position} ({self.tag})"


class Envelope(msgspec.Struct, frozen=True, gc=False):
    """The interchange (ISA) and functional group (GS) around a transaction set; None if absent."""

    sender_id: str | None = None  # ISA06
    receiver_id: str | None = None  # ISA08
    interchange_control: str | None = None  # ISA13
    functional_id: str | None = None  # GS01
    group_sender: str | None = None  # GS02
    group_date: str | None = None  # GS04 CCYYMMDD
    group_time: str | None = None  # GS05 HHMM[SS[D[D]]]
    group_control: str | None = None  # GS06
    version: str | None = None  # GS08


class TransactionSet(msgspec.Struct, frozen=True, gc=False):
    set_id: str  # ST01, e.g. "214"
    control_number: str  # ST02
    body: list[Segment]  # the segments between ST and SE
    envelope: Envelope
    position: int  # position of the ST segment

    def describe(self) -> str:
        return f"{self.set_id} set ST02={self.control_number}"


class X12Document(msgspec.Struct, frozen=True, gc=False):
    separators: Separators
    transaction_sets: tuple[TransactionSet, ...]
    warnings: tuple[AdapterWarning, ...] = ()
    # Interchange acknowledgments (TA1 segments): valid traffic outside any transaction set.
    interchange_acknowledgments: int = 0

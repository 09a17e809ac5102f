"""ANSI X12 tokenizer and envelope parser (design.md 2.3, domain-notes section 2).

Separators come from the ISA itself: element separator = the 4th character, component
separator = ISA16, segment terminator = the character after ISA16. The ISA is never sliced by
column: real files collapse its space padding. A bare `ST..SE` snippet (no ISA/GS, as in some
published samples) is accepted too, with the separators sniffed from the ST segment.

Control numbers and counts (SE01, SE02, GE01, GE02, IEA01, IEA02) are validated, but a mismatch
is only a warning: public samples get them wrong. So are missing or misplaced `GE` / `IEA`
trailers: every complete `ST..SE` set is read. Syntax that cannot be read (garbage, a set without
its `SE`, a truncated ISA) raises `X12ParseError` naming the segment and element.
"""

from __future__ import annotations

import re

from operators.formats.x12_envelope import EnvelopeReader
from operators.formats.x12_segments import (
    Envelope,
    Segment,
    Separators,
    TransactionSet,
    X12Document,
    X12ParseError,
)

__all__ = [
    "Envelope",
    "Segment",
    "Separators",
    "TransactionSet",
    "X12Document",
    "X12ParseError",
    "looks_like_x12",
    "parse_x12",
    "tokenize",
]

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{1,2}")
_NEWLINES = re.compile(r"\r\n|\r|\n")
# A payload is X12 when it starts with one of these envelope or set headers.
_STARTS = ("ISA", "GS", "ST")
_ISA_ELEMENTS = 16
_BLANKS = " \t\r\n"
# Segment ids seen in the sets we read, known to match `_SEGMENT_ID` (a set lookup is cheaper
# than the regex); any other tag is still checked by the regex.
_COMMON_TAGS = frozenset(
    "ISA IEA GS GE ST SE TA1 B10 L11 N1 N2 N3 N4 LX AT7 MS1 MS2 AT8 K1 Q7 W06 W12 W03 W27 G62 N9 W15 W19".split()
)
# Segments that may open the next segment after an ISA: where a truncated ISA ends.
_AFTER_ISA = ("GS", "ST", "TA1", "IEA")


def _is_delimiter(char: str) -> bool:
    """A usable separator: one character, not alphanumeric, not blank (control chars such as
    \x1c..\x1f are fine: some networks use them as separators)."""
    return len(char) == 1 and not char.isalnum() and char not in _BLANKS


def parse_x12(text: str) -> X12Document:
    """Tokenize and check the envelopes. Raises X12ParseError for unreadable input."""
    separators, segments = tokenize(text)
    return EnvelopeReader(separators).build(segments)


def looks_like_x12(text: str) -> bool:
    """True when the payload starts like an interchange or a bare transaction set (sniffing)."""
    head = text.lstrip("\ufeff \t\r\n")
    for tag in _STARTS:
        if head.startswith(tag) and len(head) > len(tag):
            delimiter = head[len(tag)]
            return _is_delimiter(delimiter)
    return False


def tokenize(text: str) -> tuple[Separators, list[Segment]]:
    """Split a payload into segments by the separators it declares (or that a bare set implies)."""
    body = text.lstrip("\ufeff \t\r\n")
    if not body:
        raise X12ParseError("empty payload")
    if body.startswith("ISA"):
        separators = _isa_separators(body)
    elif body.startswith(("GS", "ST")):
        separators = _sniff_separators(body)
    else:
        raise X12ParseError(f"not X12: payload starts with {body[:12]!r}, expected ISA, GS or ST")
    if separators.segment == "\n":
        pieces = _NEWLINES.split(body)
    else:
        # Segments may be wrapped across lines before the terminator (General Mills 940
        # sample): drop CR/LF entirely, then split on the declared terminator.
        pieces = body.replace("\r", "").replace("\n", "").split(separators.segment)
    element = separators.element
    segments: list[Segment] = []
    append = segments.append
    position = 0
    for piece in pieces:
        parts = piece.split(element)
        tag = parts[0]
        if tag not in _COMMON_TAGS:  # blanks around the segment, an empty piece, a rarer tag
            stripped = piece.strip(_BLANKS)
            if not stripped:
                continue
            parts = stripped.split(element)
            tag = parts[0].strip()
            if tag not in _COMMON_TAGS and not _SEGMENT_ID.fullmatch(tag):
                raise X12ParseError(f"segment {position + 1}: {tag[:20]!r} is not a segment id (in {stripped[:40]!r})")
        position += 1
        append(Segment(tag, parts, position))
    return separators, segments


def _isa_separators(body: str) -> Separators:
    element = body[3] if len(body) > 3 else ""
    if not _is_delimiter(element):
        raise X12ParseError(f"segment 1 (ISA): element separator {element!r} is not a delimiter")
    # ISA16 follows the 16th element separator; the terminator is the character after it.
    # `body` starts with "ISA", so body[3] is the first separator and fields are: "ISA",
    # ISA01..ISA15, then everything after the 16th separator (ISA16 onwards).
    fields = body.split(element, _ISA_ELEMENTS)
    if len(fields) <= _ISA_ELEMENTS:
        raise X12ParseError(
            f"segment 1 (ISA): truncated, {len(fields) - 1} elements, 16 expected (ISA{len(fields):02d}..ISA16 missing)"
        )
    rest = fields[_ISA_ELEMENTS]
    if len(rest) < 2:
        raise X12ParseError("segment 1 (ISA): truncated after ISA16, no segment terminator")
    component, terminator = rest[0], rest[1]
    if not _is_delimiter(component) or component == element:
        raise X12ParseError(
            _short_isa(body, element) or f"segment 1 (ISA): ISA16 component separator {component!r} is not a delimiter"
        )
    if terminator in "\r\n":
        terminator = "\n"
    elif not _is_delimiter(terminator) or terminator in (element, component):
        raise X12ParseError(f"segment 1 (ISA): segment terminator {terminator!r} is not a delimiter")
    isa11 = fields[11]
    # ISA11 is the repetition separator from 00402 on (a `U` before that).
    repetition = isa11 if len(isa11) == 1 and not isa11.isalnum() and isa11 != terminator else None
    return Separators(element=element, segment=terminator, component=component, repetition=repetition)


def _short_isa(body: str, element: str) -> str | None:
    """The error for an ISA that ends before its 16th element (the next segment starts early),
    else None. Without it, a truncated ISA is reported as an odd ISA16 taken from the GS."""
    starts = [index for tag in _AFTER_ISA if (index := body.find(tag + element, 4)) > 0]
    if not starts:
        return None
    next_tag = next(tag for tag in _AFTER_ISA if body.startswith(tag + element, min(starts)))
    header = body[: min(starts)].rstrip(_BLANKS)
    count = header.count(element)
    if count >= _ISA_ELEMENTS:
        return None
    return (
        f"segment 1 (ISA): truncated, {count} elements before the {next_tag} segment, 16 expected "
        f"(ISA{count + 1:02d}..ISA16 missing)"
    )


def _sniff_separators(body: str) -> Separators:
    """Separators of a bare `GS..`/`ST..` snippet: element = the char after the tag, segment =
    the first delimiter after the header that is neither the element separator nor alphanumeric.
    """
    tag_len = 2
    element = body[tag_len] if len(body) > tag_len else ""
    if not _is_delimiter(element):
        raise X12ParseError(f"segment 1 ({body[:2]}): element separator {element!r} is not a delimiter")
    for char in body[tag_len + 1 :]:
        if char.isalnum() or char in (element, " ", "-", ".", "_"):
            continue
        if char in "\r\n":
            return Separators(element=element, segment="\n")
        return Separators(element=element, segment=char)
    raise X12ParseError(f"segment 1 ({body[:2]}): truncated, no segment terminator")

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

import msgspec

from operators.model import AdapterWarning, WarningKind

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{1,2}")
_NEWLINES = re.compile(r"\r\n|\r|\n")
# Tags that open or close a set, group or interchange: inside a set, anything else is its body.
_ENVELOPE_TAGS = frozenset({"SE", "ST", "GS", "GE", "ISA", "IEA"})
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


class X12ParseError(ValueError):
    """Input that is not readable X12; the message names the segment and what was wrong."""


# The structures below are msgspec Structs rather than frozen dataclasses: a message makes one
# Segment per segment, and a Struct is built several times faster (no `object.__setattr__`).


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


def parse_x12(text: str) -> X12Document:
    """Tokenize and check the envelopes. Raises X12ParseError for unreadable input."""
    separators, segments = tokenize(text)
    return _Structure(separators).build(segments)


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


def _same_number(declared: str, actual: str | int) -> bool:
    """Control values compare as numbers when both are digits (`IEA*00001` = 1)."""
    if type(actual) is int:  # a count: SE01, GE01, IEA01
        return declared.isascii() and declared.isdigit() and int(declared) == actual
    if declared == actual:
        return True  # the usual case: the same text (el() values are stripped already)
    actual_text = str(actual).strip()
    declared = declared.strip()
    if declared.isascii() and declared.isdigit() and actual_text.isascii() and actual_text.isdigit():
        return int(declared) == int(actual_text)
    return declared == actual_text


class _Structure:
    """A small state machine over the segment stream: ISA > GS > ST..SE < GE < IEA.

    A set must be complete (`ST..SE`); a missing or misplaced `GE` / `IEA` is a `trailer`
    warning and a wrong count or control number a `control_number` warning, never an error.
    """

    def __init__(self, separators: Separators) -> None:
        self.separators = separators
        self.sets: list[TransactionSet] = []
        self.warnings: list[AdapterWarning] = []
        self.isa: Segment | None = None
        self.gs: Segment | None = None
        self.st: Segment | None = None
        self.body: list[Segment] = []
        self.groups_in_interchange = 0
        self.sets_in_group = 0
        self.seen_isa = False
        self.acknowledgments = 0
        self.envelope: Envelope | None = None  # of the current ISA and GS, made for their first set

    def build(self, segments: list[Segment]) -> X12Document:
        # Only envelope segments change the state: visit those, and take the body of a set as
        # one slice between its ST and the envelope segment after it.
        start = 0
        for index in [i for i, segment in enumerate(segments) if segment.tag in _ENVELOPE_TAGS]:
            if self.st is None:
                for other in segments[start:index]:
                    self._outside_set(other)  # not an envelope segment: an error, or a TA1
                self._outside_set(segments[index])
            else:
                self.body = segments[start:index]
                self._in_set(segments[index])
            start = index + 1
        if self.st is None:
            for other in segments[start:]:
                self._outside_set(other)
        else:
            self.body = segments[start:]
        if self.st is not None:
            raise X12ParseError(f"truncated: transaction set ST02={self.st.el(2)!r} ({self.st.describe()}) has no SE")
        if self.gs is not None:
            self._trailer(f"functional group GS06={self.gs.el(6)!r} ({self.gs.describe()}) has no GE")
        if self.isa is not None:
            self._trailer(f"interchange ISA13={self.isa.el(13)!r} has no IEA")
        if not self.sets and not self.acknowledgments:
            raise X12ParseError("no transaction set (ST) found")
        return X12Document(self.separators, tuple(self.sets), tuple(self.warnings), self.acknowledgments)

    def _control(self, message: str) -> None:
        self.warnings.append(AdapterWarning(WarningKind.CONTROL_NUMBER, message))

    def _trailer(self, message: str) -> None:
        self.warnings.append(AdapterWarning(WarningKind.TRAILER, message))

    def _in_set(self, segment: Segment) -> None:
        """An envelope segment after the set's body: its SE, else the SE is missing."""
        assert self.st is not None
        if segment.tag != "SE":
            raise X12ParseError(
                f"{segment.describe()}: transaction set ST02={self.st.el(2)!r} "
                f"({self.st.describe()}) has no SE before it"
            )
        self._close_set(segment)

    def _outside_set(self, segment: Segment) -> None:
        tag = segment.tag
        if tag != "ST":
            self.envelope = None  # an envelope segment: the next set's envelope may differ
        if tag == "ISA":
            if len(segment.fields) <= _ISA_ELEMENTS:
                count = len(segment.fields) - 1
                missing = f"ISA{count + 1:02d}..ISA16 missing"
                raise X12ParseError(f"{segment.describe()}: truncated, {count} elements, 16 expected ({missing})")
            if self.gs is not None:
                self._trailer(f"{segment.describe()}: group GS06={self.gs.el(6)!r} has no GE before the next ISA")
                self.gs = None
            if self.isa is not None:
                self._trailer(f"{segment.describe()}: interchange ISA13={self.isa.el(13)!r} has no IEA before it")
            self.isa, self.seen_isa, self.groups_in_interchange = segment, True, 0
        elif tag == "IEA":
            self._close_interchange(segment)
        elif tag == "GS":
            if self.gs is not None:
                self._trailer(f"{segment.describe()}: group GS06={self.gs.el(6)!r} has no GE before it")
            if self.seen_isa and self.isa is None:
                self._trailer(f"{segment.describe()}: GS outside an interchange (after its IEA)")
            self.gs, self.sets_in_group = segment, 0
            self.groups_in_interchange += 1
        elif tag == "GE":
            self._close_group(segment)
        elif tag == "ST":
            if not segment.el(1):
                raise X12ParseError(f"{segment.describe()}: ST01 transaction set id is empty")
            if self.seen_isa and self.isa is None:
                self._trailer(f"{segment.describe()}: ST outside an interchange (after its IEA)")
            elif self.isa is not None and self.gs is None:
                self._control(f"{segment.describe()} ST is not inside a GS group")
            self.st, self.body = segment, []
        elif tag == "TA1" and self.isa is not None:
            self.acknowledgments += 1  # an interchange acknowledgment: no set, no logistics meaning
        elif tag == "SE":
            raise X12ParseError(f"{segment.describe()}: SE without a matching ST")
        else:
            raise X12ParseError(f"{segment.describe()}: segment outside a transaction set")

    def _close_set(self, se: Segment) -> None:
        st = self.st
        assert st is not None
        count = len(self.body) + 2  # SE01 counts ST..SE inclusive
        st02, se01, se02 = st.el(2), se.el(1), se.el(2)
        if not _same_number(se01, count):
            self._control(f"SE01={se01!r} but set ST02={st02!r} has {count} segments")
        if se02 != st02:
            self._control(f"SE02={se02!r} does not match ST02={st02!r}")
        self.sets.append(
            TransactionSet(
                set_id=st.el(1),
                control_number=st02,
                body=self.body,
                envelope=self._current_envelope(),
                position=st.position,
            )
        )
        self.sets_in_group += 1
        self.st, self.body = None, []

    def _close_group(self, ge: Segment) -> None:
        if self.gs is None:
            self._trailer(f"{ge.describe()}: GE without a matching GS")
            return
        if not _same_number(ge.el(1), self.sets_in_group):
            self._control(f"GE01={ge.el(1)!r} but group GS06={self.gs.el(6)!r} has {self.sets_in_group} sets")
        if not _same_number(ge.el(2), self.gs.el(6)):
            self._control(f"GE02={ge.el(2)!r} does not match GS06={self.gs.el(6)!r}")
        self.gs = None

    def _close_interchange(self, iea: Segment) -> None:
        if self.gs is not None:
            self._trailer(f"{iea.describe()}: group GS06={self.gs.el(6)!r} has no GE before IEA")
            self.gs = None
        if self.isa is None:
            self._trailer(f"{iea.describe()}: IEA without a matching ISA")
            return
        if not _same_number(iea.el(1), self.groups_in_interchange):
            self._control(f"IEA01={iea.el(1)!r} but interchange has {self.groups_in_interchange} groups")
        if not _same_number(iea.el(2), self.isa.el(13)):
            self._control(f"IEA02={iea.el(2)!r} does not match ISA13={self.isa.el(13)!r}")
        self.isa = None

    def _current_envelope(self) -> Envelope:
        if self.envelope is None:
            self.envelope = self._envelope()
        return self.envelope

    def _envelope(self) -> Envelope:
        isa = self.isa.els(13) if self.isa is not None else [""] * 13
        gs = self.gs.els(8) if self.gs is not None else [""] * 8
        return Envelope(
            sender_id=isa[5] or None,
            receiver_id=isa[7] or None,
            interchange_control=isa[12] or None,
            functional_id=gs[0] or None,
            group_sender=gs[1] or None,
            group_date=gs[3] or None,
            group_time=gs[4] or None,
            group_control=gs[5] or None,
            version=gs[7] or None,
        )

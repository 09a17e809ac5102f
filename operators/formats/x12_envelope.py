"""The envelope state machine of an X12 payload: ISA > GS > ST..SE < GE < IEA (design.md 2.3).

A set must be complete (`ST..SE`) to be read; a missing or misplaced `GE` / `IEA` is a `trailer`
warning and a wrong count or control number a `control_number` warning, never an error (public
samples and real partners get them wrong).
"""

from __future__ import annotations

from operators.formats.x12_segments import (
    Envelope,
    Segment,
    Separators,
    TransactionSet,
    X12Document,
    X12ParseError,
)
from operators.model import AdapterWarning, WarningKind

# Tags that open or close a set, group or interchange: inside a set, anything else is its body.
ENVELOPE_TAGS = frozenset({"SE", "ST", "GS", "GE", "ISA", "IEA"})
_ISA_ELEMENTS = 16


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


class EnvelopeReader:
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
        for index in [i for i, segment in enumerate(segments) if segment.tag in ENVELOPE_TAGS]:
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

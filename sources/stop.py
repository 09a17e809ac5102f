"""A stop request shared by the sources of this process: Ctrl-C (SIGINT) or SIGTERM.

The flow is stopped at its sources: each partition ends its input at its next poll (without a
final `done` batch, so the watermark does not jump to the newest event and fire deadlines whose
answers may still be on their way), the stages drain what is in flight, and the sinks flush. With
a recovery store the run resumes from there. A second Ctrl-C aborts at once.

`give_up` stops the flow the same way for a fault the run cannot wait out (the broker away for
longer than `kafka_give_up_s` in an `--until-end` run): raising inside a bytewax source or sink
would end the process with a Rust panic and its backtrace; here the flow drains and the run then
raises the error, which the CLI prints as one line.
"""

from __future__ import annotations

import threading

STOP = threading.Event()
_GIVEN_UP: list[Exception] = []


def give_up(error: Exception) -> None:
    """Stop the flow because of `error` (the first one given is the one reported)."""
    if not _GIVEN_UP:
        _GIVEN_UP.append(error)
    STOP.set()


def given_up() -> Exception | None:
    """The error the flow stopped for, if any; clears it and the stop request."""
    if not _GIVEN_UP:
        return None
    error = _GIVEN_UP.pop()
    _GIVEN_UP.clear()
    STOP.clear()
    return error


def stop_requested() -> bool:
    return STOP.is_set()

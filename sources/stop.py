"""A stop request shared by the sources of this process: Ctrl-C (SIGINT) or SIGTERM.

The flow is stopped at its sources: each partition ends its input at its next poll (without a
final `done` batch, so the watermark does not jump to the newest event and fire deadlines whose
answers may still be on their way), the stages drain what is in flight, and the sinks flush. With
a recovery store the run resumes from there. A second Ctrl-C aborts at once.
"""

from __future__ import annotations

import threading

STOP = threading.Event()


def stop_requested() -> bool:
    return STOP.is_set()

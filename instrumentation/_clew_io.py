"""Whether clew itself is doing file I/O on this thread: its hooks then ignore what they see.

Apart from the recorder so that the file hook and the run-joining code, which read and set
it, need nothing else of the core."""

from __future__ import annotations

import threading


class _ClewIO(threading.local):
    """Set while clew itself does file I/O on a host thread."""

    active = False


clew_io = _ClewIO()

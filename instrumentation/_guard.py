"""Never harm the host: a failure inside clew is recorded and swallowed, and the program goes on.

Hooks, wrappers and clew's background threads run their own code under `guard`. A failure is
reported to this process's recorder (logged once per kind, kept on the process span), or
only logged where the lifecycle module is not loaded. The program's own call always runs outside the
guarded block, so an exception the program raises reaches it unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

from clew.semconv.redaction import redact_text

_logger = logging.getLogger(__name__)

Report = Callable[[str, BaseException], None]
"""What takes a failure: where it happened (what clew was doing) and the error."""

_report: Report | None = None


def report_to(failed: Report | None) -> None:
    """Send failures that name no recorder to `failed`: the lifecycle module sends them to
    this process's recorder."""
    global _report
    _report = failed


def log(where: str, error: BaseException) -> None:
    """Log a failure inside clew: for one that leaves no recorder to take it (the recorder's
    own close, or what runs after it)."""
    _logger.warning("clew: %s failed: %s (the program goes on)", where, redact_text(repr(error)))


def report(where: str, error: BaseException) -> None:
    """Record a failure inside clew, and return."""
    (_report or log)(where, error)


class guard:  # noqa: N801 - used as a function: `with guard("s3 request"):`
    """`with guard(where):` runs clew's own code: an `Exception` raised inside is reported
    (to `failed` when given, else as `report` does) and swallowed; `failed_here` then says
    so. KeyboardInterrupt and SystemExit pass through: they are the program's.

    A class rather than a @contextmanager generator: hooks enter it on the program's
    threads, and this costs a third as much."""

    __slots__ = ("where", "failed", "failed_here")

    def __init__(self, where: str, failed: Report | None = None) -> None:
        self.where = where
        self.failed = failed
        self.failed_here = False

    def __enter__(self) -> guard:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if not isinstance(error, Exception):
            return False
        self.failed_here = True
        if self.failed is not None:
            self.failed(self.where, error)
        else:
            report(self.where, error)
        return True

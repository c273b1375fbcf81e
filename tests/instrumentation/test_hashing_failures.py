"""A digest that cannot be made is a failure the recorder reports, never the program's."""

from __future__ import annotations

from clew.instrumentation import _hashing, _lifecycle


class _Recorder:
    def __init__(self) -> None:
        self.failures: list[tuple[str, BaseException]] = []

    def failed(self, where: str, error: BaseException) -> None:
        self.failures.append((where, error))


def test_the_lifecycle_module_hands_hashing_its_recorder():
    """The hashing thread reaches the recorder through the lookup the lifecycle module sets
    (the recorder imports hashing, so hashing does not import the lifecycle module)."""
    assert _hashing._current_recorder is _lifecycle.current_recorder


def test_a_chunk_that_cannot_be_hashed_is_reported_and_leaves_no_digest():
    recorder = _Recorder()
    previous = _hashing._current_recorder
    _hashing.report_failures_to(lambda: recorder)
    try:
        stream = _hashing.Stream()
        stream.update("text, not bytes")  # type: ignore[arg-type]
        assert stream.result() is None
    finally:
        _hashing.report_failures_to(previous)
    assert [where for where, _ in recorder.failures] == ["hashing"]
    assert isinstance(recorder.failures[0][1], TypeError)


def test_without_a_recorder_a_failure_is_logged(caplog):
    previous = _hashing._current_recorder
    _hashing.report_failures_to(lambda: None)
    try:
        _hashing.Stream().update("text, not bytes")  # type: ignore[arg-type]
    finally:
        _hashing.report_failures_to(previous)
    assert "clew: hashing failed" in caplog.text

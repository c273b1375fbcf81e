"""The spool: one file per process, whole lines only, torn and corrupt lines handled."""

from __future__ import annotations

import json
import os

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from clew.exporter.otlp_json import iter_spans
from clew.exporter.spool import SpoolProblems, SpoolSpanExporter, read_spool, spool_files


def _provider(directory):
    exporter = SpoolSpanExporter(directory)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_spans_round_trip_through_the_spool(tmp_path):
    provider, exporter = _provider(tmp_path)
    tracer = provider.get_tracer("clew")
    with tracer.start_as_current_span("run", attributes={"n": 7, "uris": ["a", "b"]}):
        tracer.start_span("read file").end()
    lines = list(read_spool(tmp_path))
    spans = [s for line in lines for s in iter_spans(line.data)]
    assert sorted(s.name for s in spans) == ["read file", "run"]
    run = next(s for s in spans if s.name == "run")
    assert run.attributes == {"n": 7, "uris": ["a", "b"]}
    child = next(s for s in spans if s.name == "read file")
    assert child.parent_span_id == run.span_id and child.trace_id == run.trace_id
    assert len(spool_files(tmp_path)) == 1 and exporter.path.parent == tmp_path


def test_a_forked_child_writes_its_own_file(tmp_path):
    provider, _ = _provider(tmp_path)
    tracer = provider.get_tracer("clew")
    tracer.start_span("parent").end()
    pid = os.fork()
    if pid == 0:
        tracer.start_span("child").end()
        os._exit(0)
    os.waitpid(pid, 0)
    files = spool_files(tmp_path)
    assert len(files) == 2
    names = sorted(
        s.name for f in files for line in f.read_text().splitlines()
        for s in iter_spans(json.loads(line))
    )
    assert names == ["child", "parent"]


def test_torn_last_line_is_skipped_and_corrupt_lines_are_counted(tmp_path):
    provider, exporter = _provider(tmp_path)
    provider.get_tracer("clew").start_span("whole").end()
    with open(exporter.path, "ab") as handle:
        handle.write(b"{not json}\n")
        handle.write(b'{"resourceSpans": [')  # a writer died mid-line
    problems = SpoolProblems(corrupt=[], torn=[])
    lines = list(read_spool(tmp_path, problems))
    assert [s.name for line in lines for s in iter_spans(line.data)] == ["whole"]
    assert len(problems.corrupt) == 1 and problems.torn == [exporter.path]


def test_export_failure_is_reported_not_raised(tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    exporter = SpoolSpanExporter(blocked / "spool")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("clew").start_span("x").end()  # must not raise
    assert exporter.path is None

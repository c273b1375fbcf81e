"""The spool: one file per process, whole lines only, torn and corrupt lines handled."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from clew.exporter.otlp_encode import unicode_json
from clew.exporter.otlp_json import iter_spans
from clew.exporter import spool as spool_module
from clew.exporter.spool import SpoolSpanExporter
from clew.exporter.spool_files import SpoolProblems, read_spool, spool_files
from clew.semconv import attributes as attr
from clew.semconv import environment
from clew.semconv import spans as span_names


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


def test_export_failure_is_reported_not_raised(tmp_path, capfd):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    exporter = SpoolSpanExporter(blocked / "spool")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("clew").start_span("x").end()  # must not raise
    provider.get_tracer("clew").start_span("y").end()
    assert exporter.path is None
    provider.shutdown()
    count, where, _ = _loss_report(capfd.readouterr().err)
    assert count == 2 and where == blocked / "spool"


# Real faults, not mocks. "size limit": the program limits the size of the files it writes
# (RLIMIT_FSIZE) to a little more than its spool file has, so clew's next spool write is cut
# short and later ones fail with EFBIG; SIGXFSZ is ignored, as a program running under such
# a limit does, or the kernel would kill it at the first write past it. "full disk": CLEW_HOME
# is a small tmpfs that the program fills (clew never records its own home), so spool writes
# fail with ENOSPC, after a short one into the last page's slack.
FILLS_UP = """
import os, resource, signal, sys, time
fault, outcome = sys.argv[1:]
home = os.environ["CLEW_HOME"]
spool = os.path.join(home, "spool")
mine = f"-{os.getpid()}-"

def spool_file():
    names = os.listdir(spool) if os.path.isdir(spool) else []
    return next((os.path.join(spool, n) for n in names if mine in n), None)

def write(name):
    with open(name, "w") as handle:
        handle.write(name)
    time.sleep(0.15)  # a few flushes apart: each file's record goes in a line of its own

def limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    limit = os.path.getsize(spool_file()) + 100  # less than any line: the next write is torn
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))

def fill_disk():
    filler = os.path.join(home, "filler")
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(bytes(4096))
        except OSError:
            pass
    return lambda: os.remove(filler)

for i in range(3):
    write(f"before-{i}.txt")
while spool_file() is None:
    time.sleep(0.05)
give_back = limit_file_size() if fault == "size limit" else fill_disk()
for i in range(8):
    write(f"full-{i}.txt")
with open(spool_file()) as handle:
    text = handle.read()
print("recorded while full:", sum(f"full-{i}.txt" in text for i in range(8)))
if outcome == "recovers":
    give_back()
    for i in range(3):
        write(f"after-{i}.txt")
"""

FULL = [f"full-{i}.txt" for i in range(8)]
_LOSS = re.compile(
    r"clew: (\d+) spans of provenance records could not be written to (\S+) and are lost: .+"
)


def _loss_report(stderr: str) -> tuple[int, Path, str]:
    """(count, spool file, the line) of the one loss report in `stderr`."""
    ((line, match),) = [(ln, m) for ln in stderr.splitlines() if (m := _LOSS.fullmatch(ln))]
    return int(match[1]), Path(match[2]), line


def _run_filling_up(run_instrumented, fault, outcome, **env):
    result = run_instrumented(
        FILLS_UP, fault, outcome, env={environment.CLEW_FLUSH_INTERVAL: "0.05", **env}
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split(":")[1]) < len(FULL), "the spool never filled up"
    return result


def _written(spool) -> list[str]:
    return sorted(
        Path(urlsplit(a.uri).path).name for run in spool.runs() for a in run.accesses
        if a.operation == "write"
    )


def _assert_all_recorded_after_recovery(result, spool) -> None:
    assert "could not be written" not in result.stderr, result.stderr
    assert "spool keeps" not in result.stderr
    spool.lines()  # no corrupt line, no torn one: nothing was glued to a fragment
    before, after = [f"before-{i}.txt" for i in range(3)], [f"after-{i}.txt" for i in range(3)]
    assert _written(spool) == sorted(before + FULL + after)
    assert spool.run().status == "ok"


def _assert_lost_spans_are_counted(result, spool) -> None:
    count, where, line = _loss_report(result.stderr)
    assert where.parent == spool.directory
    spool.lines()
    spans = [s for s in spool.spans() if s.name != span_names.SPAN_SPOOL_LOSS]
    assert {s.name for s in spans} <= {span_names.SPAN_RUN, span_names.SPAN_WRITE_FILE}
    # The program made one span per file it wrote and one for itself: the rest are missing.
    missing = (3 + len(FULL) + 1) - len(spans)
    assert missing > 0 and count == missing
    # Whatever the last page of the spool had room for: the loss is recorded there too.
    for loss in (s for s in spool.spans() if s.name == span_names.SPAN_SPOOL_LOSS):
        assert loss.attributes[attr.PROVENANCE_CAPTURE_LOST_SPANS] == missing
        assert loss.attributes[attr.PROVENANCE_CAPTURE_ERRORS] == [line]


@pytest.mark.integration
def test_a_spool_write_cut_short_leaves_whole_lines_and_is_retried(run_instrumented, spool):
    result = _run_filling_up(run_instrumented, "size limit", "recovers")
    _assert_all_recorded_after_recovery(result, spool)


@pytest.mark.integration
class TestOnAFullDisk:
    @pytest.fixture
    def clew_home(self, tmp_path):
        """CLEW_HOME on a tmpfs of 1 MiB, mounted for this test (it needs root)."""
        home = tmp_path / "small-disk"
        home.mkdir()
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(home)],
            capture_output=True, text=True, check=False,
        )
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
        yield home
        subprocess.run(["umount", str(home)], check=True)

    def test_the_spool_recovers_when_space_returns(self, run_instrumented, spool):
        result = _run_filling_up(run_instrumented, "full disk", "recovers")
        _assert_all_recorded_after_recovery(result, spool)

    def test_what_never_fit_is_counted(self, run_instrumented, spool):
        result = _run_filling_up(run_instrumented, "full disk", "stays full")
        _assert_lost_spans_are_counted(result, spool)


@pytest.mark.integration
def test_spans_that_could_never_be_written_are_counted_once(run_instrumented, spool):
    """The limit stays to the end: what waited is lost, and stderr says exactly how much."""
    result = _run_filling_up(run_instrumented, "size limit", "stays full")
    _assert_lost_spans_are_counted(result, spool)


@pytest.mark.integration
def test_past_the_memory_bound_spans_are_dropped_and_counted(run_instrumented, spool, clew_cli):
    """With room for no waiting line, every line that fails is dropped at once; lines
    after the space returns are written, and the loss is counted truthfully."""
    result = _run_filling_up(
        run_instrumented, "size limit", "recovers", **{environment.CLEW_SPOOL_PENDING_MAX_BYTES: "1"}
    )
    count, _, line = _loss_report(result.stderr)
    spool.lines()
    written = _written(spool)
    assert {f"after-{i}.txt" for i in range(3)} <= set(written)
    missing = (3 + len(FULL) + 3) - len(written)
    assert missing > 0 and count == missing
    # The space came back before the exit: the loss is in the spool too, under the run.
    spans = spool.spans()
    (loss,) = [s for s in spans if s.name == span_names.SPAN_SPOOL_LOSS]
    (run,) = [s for s in spans if s.name == span_names.SPAN_RUN]
    assert loss.attributes[attr.PROVENANCE_CAPTURE_LOST_SPANS] == missing
    assert loss.parent_span_id == run.span_id and loss.trace_id == run.trace_id
    assert loss.attributes[attr.PROVENANCE_CAPTURE_ERRORS] == [line]
    assert spool.run().capture_errors == [line]  # what `clew spool RUN` shows
    found = clew_cli("sql", "--format", "json", "SELECT SpanAttributes['"
                     f"{attr.PROVENANCE_CAPTURE_LOST_SPANS}'] AS lost FROM otel_traces "
                     f"WHERE SpanName = '{span_names.SPAN_SPOOL_LOSS}'")
    assert found.code == 0, found.err
    assert found.json()["rows"] == [{"lost": str(missing)}]


class _Text(str):
    """A str subclass: a piece the C copy leaves to Python."""


@pytest.mark.parametrize("in_c", [True, False], ids=["in C", "in Python"])
def test_a_line_reaches_the_file_as_its_pieces_joined(tmp_path, monkeypatch, in_c):
    """A line's pieces, copied to the file through the reused buffer in C (where it was
    built) or joined in Python: the same bytes, for pieces larger than the buffer, many small
    ones across its edges, and from a piece C leaves to Python on (not an exact str; lone
    surrogates, which the line has rewritten)."""
    if in_c and spool_module._ascii_into is None:
        pytest.skip("clew.exporter._line_chunks was not built")
    if not in_c:
        monkeypatch.setattr(spool_module, "_ascii_into", None)
    big = "u" * (3 * spool_module._CHUNK_SIZE + 17)
    small = [f'{{"n":{index}}},' for index in range(20_000)]
    lone = '{"s":"\\udc80 \\ud800"},'  # JSON text of lone surrogates: rewritten
    escaped = '{"s":"\\\\udc80"},'  # a backslash, then "udc80": as it is
    lines = [[big, "\n"], [*small, big, "\n"], [*small[:50], _Text("left to Python"), big, "\n"],
             [*small[:70], escaped, big, lone, *small[:9], "\n"]]
    exporter = SpoolSpanExporter(tmp_path)
    fd = exporter._open()
    for line in lines:
        exporter._write_line(fd, line)
    exporter.shutdown()
    expected = "".join(unicode_json("".join(line)) for line in lines)
    assert "\\\\x80" in expected and "\\\\udc80" in expected
    assert exporter.path.read_bytes() == expected.encode()


def _batched_spans() -> list:
    """Spans whose attribute arrays are written into the spool's buffer by C: many large
    ones across the buffer's edges, one with a value C leaves to Python (a str subclass), one
    with a lone surrogate (rewritten on the line), one with an int beyond 64 bits, and one
    too small to be deferred."""
    provider = TracerProvider()
    tracer = provider.get_tracer("test")
    uris = [f"file:///data/shard{index:05d}/sample%20{index}.bin" for index in range(3000)]
    values = [
        {"uris": uris, "sizes": list(range(3000)), "scalar": "x", "pid": 7},
        {"uris": tuple(uris[:700]), "ratio": 0.5, "flag": True, "counts": [1] * 700},
        {"uris": uris[:100] + [_Text("left to Python")], "n": 1},
        {"uris": uris[:80] + ["\udc80 lone", "caf\u00e9 \U0001f600"]},
        {"sizes": [1] * 90 + [1 << 70]},
        {"uris": uris[:3]},
        {"uris": ["\\u0000 \"quoted\"\t"] * 300},
    ]
    spans = []
    for attributes in values:
        span = tracer.start_span("batch")
        span.end()
        span._attributes = attributes  # as given: BoundedAttributes would copy a str subclass
        spans.append(span)
    return spans


@pytest.mark.parametrize("in_c", ["all", "copy only", "none"],
                         ids=["in C", "copied in C, attributes in Python", "in Python"])
def test_deferred_attributes_reach_the_file_as_encode_json_writes_them(tmp_path, monkeypatch,
                                                                       in_c):
    """A batched span's attributes, written by C straight into the spool's buffer (where it was
    built), or made a str each (without attributes_into), or joined in Python: the same bytes as
    encode_json's line, span after span."""
    from clew.exporter import otlp_encode

    if spool_module._attributes_into is None or spool_module._ascii_into is None:
        pytest.skip("clew.exporter._attributes_text or _line_chunks was not built")
    if in_c != "all":
        monkeypatch.setattr(spool_module, "_attributes_into", None)
    if in_c == "none":
        monkeypatch.setattr(spool_module, "_ascii_into", None)
    assert spool_module._deferring() == (in_c == "all")
    spans = _batched_spans()
    pieces = otlp_encode.encode_pieces(spans, [], "\n", deferred=True)
    deferred = [piece for piece in pieces if isinstance(piece, otlp_encode.AttributesText)]
    assert len(deferred) == 3  # the rest: small, or a value C leaves to Python
    exporter = SpoolSpanExporter(tmp_path)
    for span in spans:
        exporter.export([span])
    exporter.export(spans)
    exporter.shutdown()
    expected = "".join(otlp_encode.encode_json([span], [], "\n") for span in spans)
    expected += otlp_encode.encode_json(spans, [], "\n")
    assert exporter.path.read_bytes() == expected.encode()
    assert "".join(map(str, pieces)) == "".join(
        otlp_encode.encode_pieces(spans, [], "\n", deferred=False))


def test_deferred_attributes_left_to_python_part_way(tmp_path):
    """A span's attributes C has written in part and then leaves to Python (changed since they
    were checked): the line is still encode_json's."""
    from clew.exporter import otlp_encode

    if spool_module._attributes_into is None:
        pytest.skip("clew.exporter._attributes_text was not built")
    spans = _batched_spans()[:1]
    pieces = otlp_encode.encode_pieces(spans, [], "\n", deferred=True)
    expected = otlp_encode.encode_json(spans, [], "\n")
    (deferred,) = [p for p in pieces if isinstance(p, otlp_encode.AttributesText)]
    uris = deferred.pairs[0][1]
    uris[2000] = _Text(uris[2000])  # past the first buffer: C stops there
    spans[0]._attributes["uris"] = uris
    exporter = SpoolSpanExporter(tmp_path)
    fd = exporter._open()
    exporter._write_line(fd, pieces)
    exporter.shutdown()
    assert exporter.path.read_bytes() == expected.encode()


def test_attributes_written_a_window_at_a_time_are_their_text():
    """attributes_into, windows of any size at any place in the buffer, each pass begun where
    the last one marked: the text attributes_text makes, byte for byte."""
    import random

    from clew.exporter import otlp_encode

    if spool_module._attributes_into is None:
        pytest.skip("clew.exporter._attributes_text was not built")
    chance = random.Random(17)
    for _ in range(60):
        count = chance.randint(64, 600)
        attributes = {
            "uris": [f"file:///d/{'x' * chance.randint(0, 300)}{index}" for index in range(count)],
            "sizes": [chance.randint(-(1 << 62), 1 << 62) for _ in range(count)],
            "escaped": ['q"\\\u00e9\U0001f600' * chance.randint(0, 3) for _ in range(70)],
            "flags": (True, False) * 40, "ratio": 1.5, "long": "y" * chance.randint(0, 70_000),
        }
        pairs = otlp_encode._attributes_text(attributes, 64)
        assert type(pairs) is list
        size = chance.choice([17, 100, 1000, 1 << 16])
        buffer, written, offset, resume = bytearray(size), [], 0, (0, 0, 0)
        state = 2
        while state == 2:
            start = chance.randint(0, size - 1)
            state, count, resume = spool_module._attributes_into(buffer, start, pairs, offset,
                                                                 resume)
            written.append(bytes(buffer[start:start + count]))
            offset += count
        assert state == 1
        assert b"".join(written).decode() == otlp_encode._attributes_text(attributes)

"""Names that are not valid UTF-8 (a file, an argument, a working directory, an object key)
and records that cannot become spans: clew records what it can, sets the rest aside alone,
and never lets one bad value take a flush, or the program, down. Python carries the bytes of
an OS name that is not UTF-8 as lone surrogates (os.fsdecode).
"""

from __future__ import annotations

import json
import os
import socket
from urllib.parse import quote, unquote_to_bytes, urlsplit

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from clew.semconv.uris import file_uri, path_of_file_uri
from clew.query.cli import ExitStatus
from clew.semconv import attributes as attr
from clew.semconv import spans as span_names

pytestmark = pytest.mark.integration

INPUT = b"\xff\xfe.bin"
SUBDIRECTORY = b"dir-\xfd"

# The input is read, the directory listed, a child started with the name as an argument in
# a directory whose name is not UTF-8 either; model.pt is written last, so it is recorded
# by the last flush, the one a bad name used to make fail.
PROGRAM = """
import os, subprocess, sys
name = os.fsdecode(INPUT)
with open(name, "rb") as handle:
    data = handle.read()
os.listdir(".")
os.mkdir(os.fsdecode(SUBDIRECTORY))
subprocess.run([sys.executable, "-c", "import sys; open(sys.argv[1], 'rb').read()",
                os.path.join("..", name)], cwd=os.fsdecode(SUBDIRECTORY), check=True)
with open("model.pt", "wb") as handle:
    handle.write(data[::-1])
""".replace("INPUT", repr(INPUT)).replace("SUBDIRECTORY", repr(SUBDIRECTORY))


def local_uri(path: bytes) -> str:
    """A local file's URI from the bytes of its path: every byte percent-encoded as is."""
    return f"file://{socket.gethostname()}{quote(path, safe='/:@!$&()*+,;=~-._')}"


def test_a_file_named_with_bytes_that_are_not_utf8_is_recorded_with_the_rest(
    workdir, run_instrumented, spool, clew_cli
):
    source = os.fsencode(workdir) + b"/" + INPUT
    with open(source, "wb") as handle:
        handle.write(b"\x00" * (1 << 20) + b"tail")  # large: a span of its own, with file.path
    result = run_instrumented(PROGRAM, os.fsdecode(b"--tag=\xfc"))
    assert result.returncode == 0, result.stderr
    assert "clew:" not in result.stderr, result.stderr
    spool.wait_for_writers()

    # Every line is valid Unicode that the official OTLP classes parse.
    for path in spool.files():
        for line in path.read_text(encoding="utf-8").splitlines():
            json_format.Parse(line, trace_service_pb2.ExportTraceServiceRequest())

    run = spool.run()
    model = spool.only(run, "write", workdir / "model.pt")
    assert model.digest.startswith("blake3:")
    uri = local_uri(source)
    reads = [a for a in run.accesses if a.operation == "read" and a.uri == uri]
    assert len(reads) == 2, [(a.operation, a.uri) for a in run.accesses]  # parent and child
    assert unquote_to_bytes(urlsplit(uri).path) == source  # the URI gives back the real bytes
    assert os.path.exists(unquote_to_bytes(urlsplit(uri).path))

    # file.path keeps every byte, each one that is not UTF-8 written as \xNN.
    spans = spool.spans()
    paths = {s.attributes.get(attr.FILE_PATH) for s in spans if s.name == span_names.SPAN_READ_FILE}
    assert os.fsdecode(workdir) + "/\\xff\\xfe.bin" in paths
    arguments = [s.attributes[attr.PROCESS_COMMAND_ARGS] for s in spans
                 if attr.PROCESS_COMMAND_ARGS in s.attributes]
    assert any(a[-1] == "--tag=\\xfc" for a in arguments), arguments
    directories = {s.attributes.get(attr.PROCESS_WORKING_DIRECTORY) for s in spans}
    assert os.fsdecode(workdir) + "/dir-\\xfd" in directories

    ingested = clew_cli("ingest")
    assert ingested.code == ExitStatus.OK, ingested.err
    lineage = clew_cli("lineage", "model.pt", "--format", "json")
    assert lineage.code == ExitStatus.OK, lineage.err
    assert uri in {node["uri"] for node in lineage.json()["nodes"]}
    # The input is found on disk by its URI: it is not reported gone.
    stale = clew_cli("check", "model.pt", "--stale", "--format", "json")
    assert stale.code == ExitStatus.OK, stale.out + stale.err
    assert json.loads(stale.out)["findings"] == []


# An object key is any str: in fsspec's memory filesystem even one with a lone surrogate,
# which no OS name decodes to. The hook made its URI with strict UTF-8 and raised into the
# program; now the key is kept (its UTF-16 code unit, UTF-8 encoded) and the program goes on.
MEMORY_KEY = """
import fsspec
fs = fsspec.filesystem("memory")
with fs.open("/bucket/odd-\\ud800.bin", "wb") as handle:
    handle.write(b"odd")
with fs.open("/bucket/fine.bin", "wb") as handle:
    handle.write(b"fine")
with open("model.pt", "wb") as handle:
    handle.write(fs.cat("/bucket/odd-\\ud800.bin"))
"""


def test_an_object_key_with_a_lone_surrogate_is_recorded(workdir, run_instrumented, spool):
    result = run_instrumented(MEMORY_KEY)
    assert result.returncode == 0, result.stderr
    run = spool.run()
    uris = {a.uri for a in run.accesses}
    assert {"memory://bucket/odd-%ED%A0%80.bin", "memory://bucket/fine.bin"} <= uris
    spool.only(run, "write", workdir / "model.pt")


# A record whose attributes cannot be made: nothing in clew makes one any more, so the
# program hands the recorder one itself (a constructed fault). It is set aside, with a
# capture error on the process span; the records around it are recorded.
BAD_RECORD = """
from clew.instrumentation._lifecycle import get_recorder
from clew.instrumentation._record_spans import Record

class Broken(Record):
    def span_attributes(self, pid):
        raise RuntimeError("no attributes for this record")

with open("before.txt", "w") as handle:
    handle.write("before")
get_recorder().finished(Broken("write", "/nowhere"))
with open("model.pt", "w") as handle:
    handle.write("model")
"""


def test_a_record_that_cannot_become_a_span_is_set_aside_alone(workdir, run_instrumented, spool):
    result = run_instrumented(BAD_RECORD)
    assert result.returncode == 0, result.stderr
    assert "recording a span failed: RuntimeError('no attributes for this record')" in result.stderr
    run = spool.run()
    spool.only(run, "write", workdir / "before.txt")
    spool.only(run, "write", workdir / "model.pt")
    assert any("no attributes for this record" in error for error in run.capture_errors)


@pytest.mark.parametrize(
    "name", [b"\xff\xfe.bin", "é 100%.bin".encode(), b"plain.txt", "\U0001f600.npy".encode()]
)
def test_a_file_uri_gives_back_the_path_it_was_made_from(name):
    path = os.fsdecode(b"/data/" + name)
    uri = file_uri(path)
    assert unquote_to_bytes(urlsplit(uri).path) == b"/data/" + name
    assert path_of_file_uri(uri) == path

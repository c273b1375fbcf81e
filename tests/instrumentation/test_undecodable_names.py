"""Names that are not valid UTF-8: a file, an argument, a working directory. Python carries
their bytes as lone surrogates (os.fsdecode); clew records them, and everything around them.
"""

from __future__ import annotations

import json
import os
import socket
from urllib.parse import quote, unquote_to_bytes, urlsplit

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

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

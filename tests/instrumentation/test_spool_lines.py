"""What capture writes is OTLP JSON Lines as OpenTelemetry's file exporter defines it:
every line an ExportTraceServiceRequest, one file per process, whole
lines only.
"""

from __future__ import annotations

import json
import re

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from clew.exporter.otlp_json import iter_spans
from clew.semconv import attributes as attr

pytestmark = pytest.mark.integration

PROGRAM = """
import multiprocessing, os, subprocess, sys

def work(name):
    return open(name).read()

if __name__ == "__main__":
    for i in range(30):
        with open(f"in{i}.txt", "w") as handle:
            handle.write(str(i))
    for i in range(30):
        open(f"in{i}.txt").read()
    for name in ["child.txt", "fork.txt"] + [f"shard{i}.txt" for i in range(4)]:
        with open(name, "w") as handle:
            handle.write(name)
    os.listdir(".")
    os.replace("in0.txt", "moved.txt")
    subprocess.run([sys.executable, "-c", "open('child.txt').read()"], check=True)
    pid = os.fork()
    if pid == 0:
        open("fork.txt").read()
        os._exit(0)
    os.waitpid(pid, 0)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(work, [f"shard{i}.txt" for i in range(4)], chunksize=1)
    os.system("true")
"""


@pytest.fixture
def spooled(run_instrumented, spool):
    result = run_instrumented(PROGRAM)
    assert result.returncode == 0, result.stderr
    spool.wait_for_writers()
    return spool


def test_every_line_is_an_export_trace_service_request(spooled):
    """Each line parses with the official protobuf classes (unknown fields rejected), holds
    spans, uses OTLP JSON's hex ids, and ends with a newline."""
    files = spooled.files()
    assert files
    lines = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("\n"), f"{path.name} ends with a partial line"
        for number, line in enumerate(text.splitlines(), 1):
            request = json_format.Parse(line, trace_service_pb2.ExportTraceServiceRequest())
            assert request.resource_spans, f"{path.name}:{number} has no spans"
            for span in json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]:
                assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"]), span["traceId"]
                assert re.fullmatch(r"[0-9a-f]{16}", span["spanId"]), span["spanId"]
            lines += 1
    assert lines >= len(files)


def test_one_spool_file_per_process(spooled, workdir):
    """Each Python process of the run writes its own file, and only its own spans."""
    files = spooled.files()
    owners: dict[int, str] = {}
    for path in files:
        pid_in_name = int(path.stem.split("-")[-2])
        assert pid_in_name not in owners, f"two files for pid {pid_in_name}"
        owners[pid_in_name] = path.name
        spans = [
            span
            for line in path.read_text(encoding="utf-8").splitlines()
            for span in iter_spans(json.loads(line))
        ]
        process_spans = [s for s in spans if attr.PROVENANCE_PROCESS_ROLE in s.attributes]
        assert [s.attributes[attr.PROCESS_PID] for s in process_spans] == [pid_in_name], path.name
        for span in spans:
            if attr.PROVENANCE_IO_OPERATION in span.attributes:
                assert span.attributes[attr.PROCESS_PID] == pid_in_name, (path.name, span.name)
    run = spooled.run()
    assert sorted(owners) == sorted(p.pid for p in run.processes)
    # The program, its Python child, the fork and every pool worker that did work.
    expected = {
        spooled.only(run, "read", workdir / name).pid
        for name in ["child.txt", "fork.txt"] + [f"shard{i}.txt" for i in range(4)]
    }
    assert expected <= set(owners)
    assert len(expected) >= 3

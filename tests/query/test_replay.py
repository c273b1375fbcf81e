"""`clew replay`: a stored run re-sent over OTLP/HTTP arrives whole, typed, and once.

A real program runs under opentelemetry-instrument (it reads a file another run wrote, so one
span links to its producer; writes a file; starts a Python child, so two processes share the
trace), then `clew replay` sends it to a real rotel collector, whose OTLP exporter forwards to
a small OTLP/HTTP receiver here. What arrived is compared with what clew spooled.
"""

from __future__ import annotations

import collections
import gzip
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from clew.exporter.store import connection as store
from clew.exporter.otlp_json import Span, iter_spans
from clew.exporter.store.rows import spans_to_rows
from clew.exporter.spool_files import SpoolProblems, read_spool, spool_directory
from clew.query import replay as replay_module
from clew.query.cli import ExitStatus
from clew.query.replay import attribute_value, replay, rows_to_request, traces_url
from clew.query.runs import resolve_run
from clew.semconv import attributes as attr
from clew_test_helpers import free_port, invoke_clew

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
REGISTRY = Path(attr.__file__).parent / "registry" / "provenance.yaml"

PRODUCER = "open('data.txt', 'w').write('raw data')\n"
PROGRAM = """
import subprocess, sys
data = open('data.txt').read()
open('out.txt', 'w').write(data.upper())
subprocess.run([sys.executable, '-c', "open('out.txt').read()"], check=True)
"""


class _Receiver(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP traces receiver: keeps each ExportTraceServiceRequest it is sent."""

    received: list[ExportTraceServiceRequest]

    def do_POST(self) -> None:  # the http.server protocol names it
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append(ExportTraceServiceRequest.FromString(body))
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def rotel(tmp_path_factory) -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """A real rotel agent on free ports, exporting OTLP/HTTP to a receiver in this process.

    Yields the rotel endpoint clew replays to and the list of requests the receiver got.
    """
    rotel_package = pytest.importorskip("rotel")
    agent = Path(rotel_package.__file__).parent / "rotel-agent"
    try:
        subprocess.run([str(agent), "--version"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        pytest.skip(f"rotel-agent cannot run here: {error}")
    received: list[ExportTraceServiceRequest] = []
    handler = type("Handler", (_Receiver,), {"received": received})
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    directory = tmp_path_factory.mktemp("rotel")
    http_port, grpc_port = free_port(), free_port()
    process = subprocess.Popen(
        [str(agent), "start", "--exporter", "otlp",
         "--otlp-exporter-endpoint", f"http://127.0.0.1:{receiver.server_address[1]}",
         "--otlp-exporter-protocol", "http", "--otlp-exporter-compression", "none",
         "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
         "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
         "--pid-file", str(directory / "rotel.pid"), "--log-file", str(directory / "rotel.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while socket.socket().connect_ex(("127.0.0.1", http_port)) != 0:
            assert process.poll() is None, "rotel-agent exited at start"
            assert time.monotonic() < deadline, "rotel-agent did not open its OTLP/HTTP port"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{http_port}", received
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        receiver.shutdown()
        receiver.server_close()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, Path, str]:
    """(work directory, CLEW_HOME, run id) of PROGRAM, run after PRODUCER wrote its input."""
    work = tmp_path_factory.mktemp("replay")
    home = work / ".clew"
    (work / "producer.py").write_text(PRODUCER)
    (work / "main.py").write_text(PROGRAM)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "CLEW_", "TRACEPARENT", "TRACESTATE"))}
    env["CLEW_HOME"] = str(home)
    for script in ("producer.py", "main.py"):
        done = subprocess.run([str(BIN / "opentelemetry-instrument"), sys.executable, script],
                              cwd=work, env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0, done.stderr
    code, out, err = clew(work, home, "runs", "--command", "main.py", "--format", "json")
    assert code == ExitStatus.OK, err
    (run,) = json.loads(out)["runs"]
    return work, home, run["run_id"]


def clew(work: Path, home: Path, *args: str) -> tuple[int, str, str]:
    result = invoke_clew(home, work, *args)
    return result.code, result.out, result.err


def spooled(home: Path, run_id: str) -> list[Span]:
    """The run's spans as clew wrote them, read back with clew's own spool reader."""
    problems = SpoolProblems(corrupt=[], torn=[])
    lines = list(read_spool(spool_directory(home), problems))
    assert not problems.corrupt and not problems.torn
    return [s for line in lines for s in iter_spans(line.data) if s.trace_id == run_id]


def _by_id(span: Span) -> str:
    return span.span_id


def decoded(requests: list[ExportTraceServiceRequest]) -> list[Span]:
    return [span for request in requests
            for span in iter_spans(MessageToDict(request, use_integers_for_enums=True))]


def arrived(received: list[ExportTraceServiceRequest], run_id: str, count: int) -> list[Span]:
    """The run's spans the receiver got, once `count` of them are there (rotel batches)."""
    deadline = time.monotonic() + 20
    while True:
        spans = [s for s in decoded(list(received)) if s.trace_id == run_id]
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.05)


def test_a_replayed_run_arrives_whole_typed_and_once(recorded, rotel):
    work, home, run_id = recorded
    endpoint, received = rotel
    expected = spooled(home, run_id)
    code, out, err = clew(work, home, "replay", run_id[:8], "--endpoint", endpoint,
                          "--batch-size", "2")
    assert code == ExitStatus.OK, err
    assert out.strip() == f"sent {len(expected)} spans of run {run_id} to {endpoint}/v1/traces"
    spans = arrived(received, run_id, len(expected))

    counts = collections.Counter(span.span_id for span in spans)
    assert sorted(counts) == sorted(span.span_id for span in expected)
    assert set(counts.values()) == {1}, "a span arrived more than once"
    # Everything the spool holds: ids, parents, names, kinds, times to the ns, status,
    # attributes with their types, resource, scope, events and links.
    assert sorted(spans, key=_by_id) == sorted(expected, key=_by_id)

    # What a user looks at in the trace view, spelled out.
    names = collections.Counter(span.name for span in spans)
    assert names["run"] == 1 and names["process"] == 1 and names["exec"] == 1
    assert len({span.attributes[attr.PROCESS_PID] for span in spans}) == 2  # two processes
    root = next(span for span in spans if span.name == "run")
    assert root.parent_span_id == "" and isinstance(root.attributes[attr.PROCESS_PID], int)
    assert root.resource[attr.SERVICE_NAME] == "clew"
    read = next(s for s in spans if s.name == "read file" and s.links)
    uris = read.attributes[attr.PROVENANCE_ARTIFACTS_URI]
    assert isinstance(uris, list) and all(isinstance(u, str) for u in uris)
    sizes = read.attributes[attr.PROVENANCE_ARTIFACTS_SIZE]
    assert len(sizes) == len(uris) and all(isinstance(size, int) for size in sizes)
    (link,) = read.links  # to the producer run, which wrote data.txt
    assert link.trace_id != run_id
    assert link.attributes[attr.PROVENANCE_ARTIFACT_URI].endswith("/data.txt")


def test_the_api_batches_and_reports_progress(recorded, rotel):
    _, home, run_id = recorded
    endpoint, _ = rotel
    url = f"chdb://{home / 'db'}"
    client = store.connect(url)
    try:
        calls: list[tuple[int, int]] = []
        sent = replay(client, resolve_run(client, run_id.upper()[:10]), endpoint,
                      batch_size=3, progress=lambda done, total: calls.append((done, total)))
    finally:
        store.close(url)
    total = len(spooled(home, run_id))
    assert sent == total
    assert calls == [(0, total), *((min(n, total), total) for n in range(3, total + 3, 3))]


def test_an_unreachable_endpoint_is_a_one_line_error(recorded):
    work, home, run_id = recorded
    port = free_port()  # nothing listens there
    code, out, err = clew(work, home, "replay", run_id[:6], "--endpoint",
                          f"http://127.0.0.1:{port}", "--header", "Authorization=Bearer s3cret")
    assert code == ExitStatus.ERROR
    assert err == f"clew: error: cannot reach http://127.0.0.1:{port}/v1/traces: [Errno 111] " \
        "Connection refused\n"
    assert "s3cret" not in out + err


def test_an_endpoint_that_answers_an_error_is_a_one_line_error(recorded, rotel):
    work, home, run_id = recorded
    endpoint, _ = rotel
    code, _, err = clew(work, home, "replay", run_id[:6], "--endpoint",
                        f"{endpoint}/not-otlp/v1/traces")
    assert code == ExitStatus.ERROR
    assert err.startswith(f"clew: error: {endpoint}/not-otlp/v1/traces answered 404")
    assert err.count("\n") == 1


@pytest.mark.parametrize("prefix", ["0000000000", "abc", "not-hex-at-all"])
def test_an_unknown_or_malformed_run_is_a_usage_error(recorded, prefix):
    work, home, _ = recorded
    code, _, err = clew(work, home, "replay", prefix, "--endpoint", "http://127.0.0.1:9")
    assert code == ExitStatus.USAGE
    assert err.startswith("clew: ") and err.count("\n") == 1 and "`clew runs`" in err


def test_an_ambiguous_prefix_names_the_candidates():
    class Client:
        def query(self, sql: str, parameters: dict[str, str]) -> Any:
            assert parameters == {"prefix": "abcdef"}
            return type("Result", (), {"result_rows": [("abcdef01" + "0" * 24,),
                                                       ("abcdef02" + "0" * 24,)]})

    with pytest.raises(LookupError, match=r"abcdef010000, abcdef020000\): give more digits"):
        resolve_run(Client(), "ABCDEF")


def test_rows_turn_back_into_the_request_they_came_from():
    def value(kind: str, raw: Any) -> dict[str, Any]:
        return {kind: raw}

    def pairs(**values: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"key": k.replace("__", "."), "value": v} for k, v in values.items()]

    trace, other = "5b8efff798038103d269b633813fc60c", "0af7651916cd43dd8448eb211c80319c"
    request = {"resourceSpans": [{
        "resource": {"attributes": pairs(service__name=value("stringValue", "train"),
                                         provenance__rank=value("intValue", "1"))},
        "scopeSpans": [{"scope": {"name": "clew", "version": "0.1.0"}, "spans": [{
            "traceId": trace, "spanId": "eee19b7ec3c1b174", "parentSpanId": "eee19b7ec3c1b173",
            "traceState": "k=v", "name": "read file", "kind": 3,
            "startTimeUnixNano": "1700000000123456789", "endTimeUnixNano": "1700000000223456789",
            "status": {"code": 2, "message": "boom"},
            "attributes": pairs(
                process__pid=value("intValue", "42"),
                provenance__vcs__dirty=value("boolValue", True),
                provenance__artifacts__uri=value("arrayValue", {"values": [
                    {"stringValue": "file://h/a<b>&c"}, {"stringValue": "s3://b/k"}]}),
                provenance__artifacts__size=value("arrayValue", {"values": [
                    {"intValue": "1"}, {"intValue": "2"}]}),
                provenance__code__files=value("arrayValue", {}),
                file__path=value("stringValue", '["not", "an array"]'),
                custom__tags=value("arrayValue", {"values": [{"stringValue": "x"}]}),
                custom__code=value("stringValue", "007"),
            ),
            "events": [{"timeUnixNano": "1700000000200000000", "name": "exception",
                        "attributes": pairs(exception__message=value("stringValue", "no"))}],
            "links": [{"traceId": other, "spanId": "00f067aa0ba902b7", "traceState": "a=b",
                       "attributes": pairs(provenance__artifact__uri=value("stringValue", "u"))}],
        }]}],
    }]}
    back = rows_to_request(spans_to_rows(request))
    assert decoded([back]) == list(iter_spans(request))
    (resource_spans,) = back.resource_spans
    assert [s.scope.name for s in resource_spans.scope_spans] == ["clew"]

    # Values of attributes clew does not know: arrays come back, numbers stay strings.
    (span,) = decoded([rows_to_request(spans_to_rows({"resourceSpans": [{"scopeSpans": [
        {"spans": [{"traceId": trace, "spanId": "eee19b7ec3c1b174", "attributes": pairs(
            http__status_code=value("intValue", "200"), ratio=value("doubleValue", 0.5))}]}]}]}))])
    assert span.attributes == {"http.status_code": "200", "ratio": "0.5"}


def test_attribute_values_from_rotel_and_bad_values():
    # rotel's ClickHouse exporter writes an array as the OTLP JSON of the ArrayValue.
    rotel_uris = attribute_value(attr.PROVENANCE_ARTIFACTS_URI,
                                 '{"values":[{"stringValue":"a"},{"stringValue":"b"}]}')
    assert [v.string_value for v in rotel_uris.array_value.values] == ["a", "b"]
    rotel_sizes = attribute_value(attr.PROVENANCE_ARTIFACTS_SIZE, '{"values":[{"intValue":"5"}]}')
    assert [v.int_value for v in rotel_sizes.array_value.values] == [5]
    assert attribute_value(attr.PROCESS_PID, "abc").string_value == "abc"
    assert attribute_value(attr.PROVENANCE_VCS_DIRTY, "yes").string_value == "yes"
    assert attribute_value(attr.PROCESS_PID, str(2**64)).string_value == str(2**64)
    assert attribute_value("x", "[1, 2.5, true]").array_value.values[2].bool_value is True
    assert attribute_value("x", '[["nested"]]').string_value == '[["nested"]]'


def test_the_typing_table_follows_the_registry():
    groups = yaml.safe_load(REGISTRY.read_text())["groups"]
    defined = {a["id"]: a["type"] for g in groups for a in g.get("attributes", []) if "id" in a}
    referenced = {a["ref"] for g in groups for a in g.get("attributes", []) if "ref" in a}
    typed = {key: kind for key, kind in defined.items()
             if isinstance(kind, str) and kind != "string"}  # enums are strings
    table = replay_module._TYPES
    assert {k: v for k, v in table.items() if k in defined} == typed
    assert set(table) - set(defined) <= referenced - set(defined)


def test_endpoint_urls():
    assert traces_url("http://localhost:4318") == "http://localhost:4318/v1/traces"
    assert traces_url("https://otlp.example/otlp/") == "https://otlp.example/otlp/v1/traces"
    assert traces_url("http://h:4318/v1/traces") == "http://h:4318/v1/traces"
    for bad in ("localhost:4318", "grpc://h:4317", "http://user:pw@h:4318"):
        with pytest.raises(ValueError):
            traces_url(bad)

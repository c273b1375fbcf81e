"""clew's spans through rotel's ClickHouse exporter fill the lineage tables as `clew ingest` does.

Runs only where rotel (the `rotel` package from PyPI, a Rust OpenTelemetry collector) is
installed; it is not a test dependency. There is no ClickHouse server here: a small HTTP
server on 127.0.0.1 stands in for one and keeps what rotel sends (`INSERT INTO otel_traces
(...) FORMAT RowBinary` and its body), which is then inserted into an embedded store next to
the same run ingested from clew's spool. docs/deploy.md reports what this covers.
"""

from __future__ import annotations

import http.server
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clew.exporter.store import connection as store
from clew.exporter.store.ingest import ingest
from clew.exporter.store.lineage import create_lineage_tables
from clew.exporter.store.schema import SchemaOptions, create_schema
from clew.exporter.spool_files import spool_directory
from clew_test_helpers import free_port

rotel = pytest.importorskip("rotel")
AGENT = Path(rotel.__file__).parent / "rotel-agent"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not AGENT.exists(), reason="the rotel package has no rotel-agent"),
]

PROGRAM = """
import subprocess, sys
open("a.csv").read(); open("b.csv").read()
subprocess.run([sys.executable, "-c", "open('b.csv').read()"], check=True)
with open("out.bin", "wb") as out:
    out.write(b"model")
"""


class _FakeClickHouse(http.server.BaseHTTPRequestHandler):
    """Answers 200 to everything and keeps (query, body) of each request."""

    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
        if self.headers.get("Transfer-Encoding") == "chunked":
            chunks = []
            while size := int(self.rfile.readline().strip(), 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            body = b"".join(chunks)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        self.received.append((query.get("query", [""])[0], body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_clickhouse() -> Iterator[tuple[int, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    handler = type("Handler", (_FakeClickHouse,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received
    server.shutdown()
    server.server_close()


def test_spans_sent_through_rotel_fill_the_lineage_tables_as_the_spool_does(
    fake_clickhouse, tmp_path, clean_env
):
    port, received = fake_clickhouse
    http_port, grpc_port = free_port(), free_port()
    agent = subprocess.Popen(
        [str(AGENT), "start", "--exporter", "clickhouse",
         "--clickhouse-exporter-endpoint", f"http://127.0.0.1:{port}",
         "--clickhouse-exporter-database", "via_rotel",
         "--clickhouse-exporter-compression", "none",
         "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
         "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while socket.socket().connect_ex(("127.0.0.1", http_port)) != 0:
            assert time.monotonic() < deadline and agent.poll() is None, "rotel did not start"
            time.sleep(0.05)
        work, home = tmp_path / "work", tmp_path / "home"
        work.mkdir()
        (work / "a.csv").write_text("a\n")
        (work / "b.csv").write_text("b\n")
        (tmp_path / "prog.py").write_text(PROGRAM)
        env = {**clean_env(home), "OTEL_TRACES_EXPORTER": "clew,otlp",
               "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
               "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http_port}"}
        done = subprocess.run(
            [str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable,
             str(tmp_path / "prog.py")], cwd=work, env=env, capture_output=True, text=True,
            timeout=120, check=False)
        assert done.returncode == 0, done.stderr
    finally:
        agent.send_signal(signal.SIGTERM)  # rotel flushes its batches on the way out
        try:
            agent.wait(timeout=20)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
            agent.stderr.close()
    inserts = [(q, body) for q, body in received if q.startswith("INSERT INTO otel_traces ")]
    assert inserts, f"rotel sent no span: {[q for q, _ in received]}"

    url = f"chdb://{tmp_path / 'db'}"
    client = store.connect(url)
    try:
        via_rotel = SchemaOptions(database="via_rotel")
        create_schema(client, via_rotel)
        create_lineage_tables(client, via_rotel)
        for number, (query, body) in enumerate(inserts):
            path = tmp_path / f"insert-{number}.rowbinary"
            path.write_bytes(body)
            assert query.endswith(" FORMAT RowBinary"), query
            client.command(query.replace("INSERT INTO otel_traces ", "INSERT INTO via_rotel."
                                         "otel_traces ").removesuffix(" FORMAT RowBinary")
                           + f" FROM INFILE '{path}' FORMAT RowBinary")
        ingest(client, spool_directory(home), options=SchemaOptions(database="via_spool"))

        def rows(database: str, sql: str) -> list[tuple]:
            return sorted(map(tuple, client.query(sql.format(db=database)).result_rows))

        for sql in (
            "SELECT RunId, SpanId, Pid, Operation, Uri, Digest, Size, Count FROM {db}.clew_io",
            "SELECT RunId, Command, StatusCode, ExitCode, GitCommit, Host, Cwd "
            "FROM {db}.clew_runs FINAL",
            "SELECT RunId, uniqMerge(Inputs), uniqMerge(Outputs), uniqMerge(Records) "
            "FROM {db}.clew_run_io GROUP BY RunId",
            "SELECT TraceId, SpanId, SpanName, SpanKind, Duration FROM {db}.otel_traces",
        ):
            from_spool = rows("via_spool", sql)
            assert from_spool and rows("via_rotel", sql) == from_spool, sql
        (io_rows,) = client.query("SELECT count() FROM via_spool.clew_io").result_rows[0]
        assert io_rows == 4  # a.csv, b.csv, b.csv (the child), out.bin
    finally:
        store.close(url)
        shutil.rmtree(tmp_path / "db", ignore_errors=True)

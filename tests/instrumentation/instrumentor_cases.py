"""Runs an instrumentor case in a fresh interpreter (`python -c`) with an SDK TracerProvider
and an in-memory exporter, and returns what it printed: its finished spans as JSON.

The recorder is one per process, with atexit and at-fork hooks, and an audit hook cannot be
removed: each case needs an interpreter of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import blake3

from clew.semconv import attributes as attr
from clew.semconv import spans as span_names

PRELUDE = """
import json, os, subprocess, sys
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from clew.instrumentation import FilesInstrumentor, ProcessesInstrumentor
from clew.instrumentation import _lifecycle

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)


def failure(call):
    try:
        call()
    except BaseException as error:
        return [type(error).__name__, getattr(error, "errno", None),
                getattr(error, "filename", None), str(error)]
    return None


def finish(**results):
    # What exit does: flush this process's recorder and end its process span.
    _lifecycle.close(0)
    spans = [
        {
            "name": s.name,
            "attributes": dict(s.attributes),
            "status": s.status.status_code.name,
            "span_id": s.context.span_id,
            "parent": s.parent.span_id if s.parent else None,
            "events": [e.name for e in s.events],
        }
        for s in exporter.get_finished_spans()
    ]
    print("RESULT" + json.dumps({"spans": spans, **results}))
"""


def run_case(body: str, base_env, workdir) -> dict:
    code = PRELUDE + textwrap.dedent(body)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        env=base_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    outcome = json.loads(line[len("RESULT") :])
    outcome["stderr"] = result.stderr
    return outcome


def io_spans(outcome: dict) -> list[dict]:
    return [s for s in outcome["spans"] if attr.PROVENANCE_IO_OPERATION in s["attributes"]]


def exec_spans(outcome: dict) -> list[dict]:
    return [s for s in outcome["spans"] if s["name"] == span_names.SPAN_EXEC]


def process_span(outcome: dict) -> dict:
    (span,) = [s for s in outcome["spans"] if s["name"] == span_names.SPAN_RUN]
    return span


def digest(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()

"""Poison spool lines through the real CLI: each is set aside with a warning, every good line
lands, and the store keeps working.

A poison line is valid JSON that cannot be stored: a time out of range, an id that is no id,
nesting deeper than a parser recurses, or a value the store refuses (found by inserting
halves of the refused insert). Odd but storable lines (null lists, reversed times, NaN,
duplicate keys, a long string) land like any other.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_ingest import span_line, spool_file

from clew.exporter.spool_files import spool_directory
from clew.query.cli import ExitStatus
from clew_test_helpers import invoke_clew

pytestmark = pytest.mark.integration

T0 = 1_790_000_000_000_000_000


def request(**span: object) -> bytes:
    """One spool line holding one span: a valid one, with `span`'s fields replacing its own."""
    fields = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "write file",
              "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 5), **span}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [fields]}]}]}).encode() + b"\n"


# name: (line, what the warning's reason says)
POISON = {
    "not JSON": (b'{"resourceSpans": [oops\n', "JSONDecodeError"),
    "a start time of 26 digits": (request(startTimeUnixNano="1" * 26), "time out of range"),
    "an event time of 26 digits": (
        request(events=[{"timeUnixNano": "9" * 26, "name": "e"}]), "time out of range"),
    "negative times": (request(startTimeUnixNano="-5", endTimeUnixNano="-1"),
                       "time out of range"),
    "10,000-deep nesting": (b'{"resourceSpans":' + b"[" * 10_000 + b"]" * 10_000 + b"}\n",
                            "nested too deeply"),
    "a non-hex trace id": (request(traceId="z" * 32), "not a trace or span id"),
    "a span id of the wrong length": (request(spanId="abcdef"), "not a trace or span id"),
    "resource spans of a number": (b'{"resourceSpans": 5}\n', "TypeError"),
    # converts, but the store refuses it: only inserting it alone finds it
    "a null span name": (request(name=None), "Invalid None value"),
}

# storable, though odd: each lands with its span
ODD = {
    "null spans": b'{"resourceSpans": [{"scopeSpans": [{"spans": null}]}]}\n',
    "reversed times": request(spanId="0000000000000a01", startTimeUnixNano=str(T0 + 9),
                              endTimeUnixNano=str(T0)),
    "a NaN double": request(spanId="0000000000000a02", attributes=[
        {"key": "loss", "value": {"doubleValue": float("nan")}}]),
    "duplicate keys": b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "' +
                      b"ab" * 16 + b'", "spanId": "0000000000000bad", "spanId": '
                      b'"0000000000000a03", "startTimeUnixNano": "1"}]}]}]}\n',
    "a 2 MB string": request(spanId="0000000000000a04", attributes=[
        {"key": "text", "value": {"stringValue": "x" * (2 << 20)}}]),
}


def clew(home: Path, *args: str):
    return invoke_clew(home, home.parent, *args)


def stored_ids(home: Path) -> list[tuple[str, str]]:
    result = clew(home, "sql", "--format", "json", "SELECT TraceId, SpanId FROM otel_traces")
    assert result.code == ExitStatus.OK, result.err
    return sorted((row["TraceId"], row["SpanId"]) for row in result.json()["rows"])


def ids_of(lines: list[bytes]) -> list[tuple[str, str]]:
    """(TraceId, SpanId) of every span of `lines`, from the raw JSON."""
    return [(span["traceId"], span["spanId"]) for line in lines
            for resource in json.loads(line)["resourceSpans"]
            for scope in resource["scopeSpans"] for span in scope["spans"] or ()]


def quarantined(quarantine: Path) -> tuple[list[bytes], list[str]]:
    """The lines in a quarantine file, and the comments before them."""
    lines = quarantine.read_bytes().splitlines(keepends=True)
    return lines[1::2], [line.decode() for line in lines[0::2]]


WARNING = re.compile(r"warning: spool file (\S+), line (\d+): (.+); set aside in (\S+)$")


def test_each_poison_line_is_set_aside_and_named_and_every_good_line_lands(pipeline_home):
    home = pipeline_home()  # a real recorded pipeline's spool files, ingested in the same insert
    spool = spool_directory(home)
    poisoned = spool_file(spool, 1)
    good: list[bytes] = []
    lines: list[bytes] = []
    for number, (bad, _) in enumerate(POISON.values()):
        good.append(span_line(100 + number, 0, 3))
        lines += [good[-1], bad]
    good += ODD.values()
    lines += ODD.values()
    poisoned.write_bytes(b"".join(lines))

    ingested = clew(home, "ingest")

    assert ingested.code == ExitStatus.OK, ingested.err
    assert f"; {len(POISON)} lines set aside" in ingested.out
    warnings = [WARNING.match(line) for line in ingested.err.splitlines()]
    assert all(warnings) and len(warnings) == len(POISON), ingested.err
    quarantine = spool / "quarantine" / poisoned.name
    for warning, (name, (bad, reason)) in zip(warnings, POISON.items()):
        # the bad lines are the 2nd, 4th, ... of the file
        assert warning.group(1, 2, 4) == (str(poisoned), str(lines.index(bad) + 1),
                                          str(quarantine)), name
        assert reason in warning.group(3), (name, warning.group(3))
    set_aside, comments = quarantined(quarantine)
    assert set_aside == [bad for bad, _ in POISON.values()]
    assert [int(c.split(", line ")[1].split(":")[0]) for c in comments] == [
        lines.index(bad) + 1 for bad, _ in POISON.values()]
    # the real spool files had nothing bad
    assert [path.name for path in (spool / "quarantine").iterdir()] == [poisoned.name]

    stored = stored_ids(home)
    wanted = ids_of(good)
    assert set(wanted) <= set(stored) and len(wanted) == 3 * len(POISON) + 4
    assert not set(ids_of([request()])) & set(stored)  # no span of a poison line landed

    # the store keeps working: nothing new to ingest, the runs are listed, the spool shows
    again = clew(home, "ingest", "--format", "json")
    assert again.code == ExitStatus.OK and again.err == ""
    assert (again.json()["spans"], again.json()["corrupt"]) == (0, 0)
    # the planted good lines belong to runs whose root span never came: listed as incomplete
    runs = clew(home, "runs", "--format", "json")
    assert runs.code == ExitStatus.OK, runs.err
    assert len([r for r in runs.json()["runs"] if r["status"] != "incomplete"]) == 6
    shown = clew(home, "spool", "--format", "json")
    assert shown.code == ExitStatus.OK, shown.err
    assert len([r for r in shown.json()["runs"] if r["status"] != "incomplete"]) == 6
    # `clew spool` skips what it cannot read; ids and the store's refusals are the ingest's
    # concern (it shows a run by whatever id its spans share)
    unread = len(POISON) - 3
    assert shown.err == f"warning: {unread} corrupt spool lines skipped\n"
    assert stored_ids(home) == stored


def test_a_recovered_chunk_sets_its_poison_line_aside_once(tmp_path):
    """A crash after the insert, before the chunk was logged done: the next ingest takes the
    chunk again, and neither stores a span twice nor copies the bad line twice."""
    home = tmp_path / "home"
    spool = spool_directory(home)
    target = spool_file(spool, 1)
    good = [span_line(1, 0, 4), span_line(1, 4, 4)]
    bad = request(name=None)
    target.write_bytes(good[0] + bad + good[1])
    assert clew(home, "ingest").code == ExitStatus.OK
    quarantine = spool / "quarantine" / target.name
    before = quarantine.read_bytes()
    # the chunk is left logged pending only, as a kill before its "done" leaves it
    crashed = clew(home, "sql", "--write", "DELETE FROM clew_ingest_log WHERE Done = 1")
    assert crashed.code == ExitStatus.OK, crashed.err

    resumed = clew(home, "ingest")

    assert resumed.code == ExitStatus.OK and resumed.err == "", resumed.err
    # a resumed ingest counts the file it took up again
    assert resumed.out.startswith("ingested 8 spans from 1 spool files in ")
    assert quarantine.read_bytes() == before
    assert stored_ids(home) == sorted(ids_of(good))

"""`clew lineage`, `clew impact` and `clew check` over real runs.

A three-stage pipeline runs as separate programs under opentelemetry-instrument: raw data ->
features -> model -> evaluation report. One training run has a test file copied under a new
name into its training folder, the other does not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clew.query.cli import ExitStatus
from clew.semconv import attributes as attr
from clew_test_helpers import invoke_clew, takes_xattrs

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent

PREPARE = """
import sys
rows = open('raw/data.csv').read().splitlines()
open('features.csv', 'w').write('\\n'.join(r.upper() for r in rows))
"""
TRAIN = """
import os, sys
out = sys.argv[1]
seen = [open('features.csv').read()]
for name in sorted(os.listdir('train')):
    seen.append(open(os.path.join('train', name)).read())
open(out, 'w').write(str(len(''.join(seen))))
"""
EVALUATE = """
import sys
model = open(sys.argv[1]).read()
test = open('test/holdout.csv').read()
open(sys.argv[2], 'w').write(f'model {model} on {len(test)} bytes')
"""


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    home = work / ".clew"
    (work / "raw").mkdir()
    (work / "train").mkdir()
    (work / "test").mkdir()
    (work / "raw" / "data.csv").write_text("a,1\nb,2\n")
    (work / "train" / "part1.csv").write_text("x,1\n")
    (work / "test" / "holdout.csv").write_text("secret,9\n")
    for name, text in (("prepare.py", PREPARE), ("train.py", TRAIN), ("evaluate.py", EVALUATE)):
        (work / name).write_text(text)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "CLEW_", "TRACEPARENT", "TRACESTATE"))}
    env["CLEW_HOME"] = str(home)

    def run(*args: str) -> None:
        done = subprocess.run([str(BIN / "opentelemetry-instrument"), sys.executable, *args],
                              cwd=work, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    run("prepare.py")
    run("train.py", "clean-model.txt")
    # someone copies a test file, renamed, into the training data
    shutil.copy(work / "test" / "holdout.csv", work / "train" / "part2.csv")
    run("train.py", "model.txt")
    run("evaluate.py", "model.txt", "report.txt")
    return work, home


def clew(pipeline, *args: str) -> tuple[int, str, str]:
    work, home = pipeline
    result = invoke_clew(home, work, *args)
    return result.code, result.out, result.err


def graph(pipeline, *args: str) -> dict:
    code, out, err = clew(pipeline, *args, "--format", "json")
    assert code == ExitStatus.OK, err
    return json.loads(out)


def uris(document: dict) -> set[str]:
    return {node["uri"].rsplit("/", 2)[-2] + "/" + node["uri"].rsplit("/", 1)[-1]
            for node in document["nodes"] if node["kind"] == "artifact"}


def test_lineage_of_the_report_reaches_the_raw_data(pipeline):
    document = graph(pipeline, "lineage", "report.txt")
    assert document["schema"] == 1
    names = uris(document)
    assert {"raw/data.csv", "test/holdout.csv"} <= names
    assert any(name.endswith("/features.csv") for name in names)
    commands = [n["command"][-1] for n in document["nodes"] if n["kind"] == "run"]
    assert sorted(c.rsplit("/", 1)[-1] for c in commands) == ["model.txt", "prepare.py",
                                                               "report.txt"]
    # Every read names its content by digest; a later run's input is linked to the run that
    # wrote it by the producer stamp on the file where the filesystem takes user xattrs
    # (the report itself, named by the user, is matched by its digest).
    reads = {e["evidence"] for e in document["edges"] if e["kind"] == "read"}
    writes = {e["evidence"] for e in document["edges"] if e["kind"] == "wrote"}
    assert reads == {"digest"}
    assert writes == ({"stamp", "digest"} if takes_xattrs(pipeline[0]) else {"digest"})
    assert {e["kind"] for e in document["edges"]} == {"read", "wrote"}


# Each node of the JSON form, artifact or run, has these fields in this order (docs/cli.md).
NODE_FIELDS = ["id", "kind", "uri", "digest", "version", "etag", "size", "command", "start",
               "end", "status", "git_commit", "git_branch", "git_dirty", "host", "diff_files",
               "code_files", "code_digests", "runtime", "packages", "ranks", "files"]


def test_every_node_has_the_fields_of_both_kinds_those_of_the_other_empty(pipeline):
    document = graph(pipeline, "lineage", "report.txt")
    assert all(list(node) == NODE_FIELDS for node in document["nodes"])
    artifacts = [n for n in document["nodes"] if n["kind"] == "artifact"]
    runs = [n for n in document["nodes"] if n["kind"] == "run"]
    assert artifacts and runs
    assert all([n["command"], n["start"], n["status"], n["git_dirty"], n["packages"]]
               == [[], "", "", False, []] for n in artifacts)
    assert all([n["uri"], n["digest"], n["size"], n["files"]] == ["", "", -1, 1] for n in runs)
    assert all(n["digest"] for n in artifacts) and all(n["command"] for n in runs)


def test_the_root_artifact_has_the_size_its_write_recorded(pipeline):
    document = graph(pipeline, "lineage", "report.txt")
    (root,) = [n for n in document["nodes"] if n["id"] == document["root"]]
    assert root["size"] == (pipeline[0] / "report.txt").stat().st_size


def test_impact_of_the_raw_data_reaches_the_report(pipeline):
    names = uris(graph(pipeline, "impact", "raw/data.csv"))
    assert any(name.endswith("/report.txt") for name in names)
    assert any(name.endswith("/clean-model.txt") for name in names)


def test_check_finds_a_renamed_test_file_by_digest(pipeline):
    code, out, err = clew(pipeline, "check", "model.txt", "--test", "test", "--format", "json")
    assert code == ExitStatus.CHECK_FAILED, err
    report = json.loads(out)
    assert report["ok"] is False
    (finding,) = report["findings"]
    assert finding["uri"].endswith("/train/part2.csv") and finding["evidence"] == "digest"


def test_a_clean_model_passes(pipeline):
    code, out, err = clew(pipeline, "check", "clean-model.txt", "--test", "test")
    assert code == ExitStatus.OK, err
    assert "nothing upstream of clean-model.txt is test data" in out


def test_stale_inputs_are_flagged(pipeline):
    work, _ = pipeline
    code, _, err = clew(pipeline, "check", "clean-model.txt", "--stale")
    assert code == ExitStatus.OK, err
    original = (work / "raw" / "data.csv").read_text()
    (work / "raw" / "data.csv").write_text(original + "c,3\n")
    try:
        # clean-model.txt's own lineage goes through features.csv, which is unchanged, and on
        # to the raw data, which is not: it is stale.
        code, out, err = clew(pipeline, "check", "clean-model.txt", "--stale", "--format",
                              "json")
        assert code == ExitStatus.CHECK_FAILED, err
        (finding,) = json.loads(out)["findings"]
        assert finding["uri"].endswith("/raw/data.csv")
        assert finding["evidence"] == "content changed"
    finally:
        (work / "raw" / "data.csv").write_text(original)


def test_an_unknown_artifact_is_a_usage_error(pipeline):
    code, out, err = clew(pipeline, "lineage", "nothing-wrote-this.bin")
    assert code == ExitStatus.USAGE
    assert "no run in the store wrote nothing-wrote-this.bin" in err


def test_the_impact_of_an_unknown_artifact_is_a_usage_error(pipeline):
    code, out, err = clew(pipeline, "impact", "nothing-read-this.bin")
    assert (code, out) == (ExitStatus.USAGE, "")
    assert err == ("clew: no run in the store read or wrote nothing-read-this.bin: "
                   "`clew runs` lists what is recorded\n")


def test_an_output_no_run_read_has_an_empty_impact(pipeline):
    document = graph(pipeline, "impact", "report.txt")
    assert document["edges"] == [] and len(document["nodes"]) == 1
    assert document["nodes"][0]["uri"].endswith("/report.txt")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A training run that reads a directory of 60 raw shards and one shard that an
    earlier instrumented run wrote there, and writes 60 parts, one of which a later run
    reads."""
    work = tmp_path_factory.mktemp("dataset")
    home = work / ".clew"
    (work / "shards").mkdir()
    for i in range(60):
        (work / "shards" / f"raw-{i:02}.bin").write_bytes(f"raw {i}".encode())
    (work / "make.py").write_text("open('shards/made.bin', 'w').write('made by a run')\n")
    (work / "train.py").write_text(
        "import os\n"
        "seen = [open(os.path.join('shards', n), 'rb').read() for n in sorted(os.listdir('shards'))]\n"
        "open('model.txt', 'w').write(str(len(seen)))\n"
        "os.mkdir('out')\n"
        "for i in range(60):\n"
        "    open(f'out/part-{i:02}.txt', 'w').write(f'part {i}')\n"
    )
    (work / "score.py").write_text("open('score.txt', 'w').write(open('out/part-07.txt').read())\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "CLEW_", "TRACEPARENT", "TRACESTATE"))}
    env["CLEW_HOME"] = str(home)
    for script in ("make.py", "train.py", "score.py"):
        done = subprocess.run([str(BIN / "opentelemetry-instrument"), sys.executable, script],
                              cwd=work, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    return work, home


def test_raw_inputs_of_one_directory_are_one_node(dataset):
    """More than GROUP_ABOVE (50) raw files read from one directory are one node that says
    how many; the shard a run produced stays on its own, linked to that run."""
    document = graph(dataset, "lineage", "model.txt")
    artifacts = [n for n in document["nodes"] if n["kind"] == "artifact"]
    (group,) = [n for n in artifacts if n["files"] > 1]
    assert group["uri"].endswith("/shards/") and group["files"] == 60
    assert group["size"] == sum(len(f"raw {i}") for i in range(60))
    (made,) = [n for n in artifacts if n["uri"].endswith("/shards/made.bin")]
    runs = {n["id"]: n["command"][-1] for n in document["nodes"] if n["kind"] == "run"}
    edges = {(e["source"], e["target"], e["kind"]) for e in document["edges"]}
    train = next(i for i, c in runs.items() if c.endswith("train.py"))
    make = next(i for i, c in runs.items() if c.endswith("make.py"))
    assert {(group["id"], train, "read"), (made["id"], train, "read"),
            (make, made["id"], "wrote")} <= edges
    # the directory's edge and that of the shard on the path in it name the one reader
    readers = {e["source"]: (e["readers"], e["reader_count"]) for e in document["edges"]
               if e["target"] == train}
    ((reader,), count) = readers[group["id"]]
    assert count == 1 and reader["pid"] > 0 and (reader["rank"], reader["worker"]) == (None, None)
    assert readers[made["id"]] == ([reader], 1)
    code, out, _ = clew(dataset, "lineage", "model.txt")
    assert code == ExitStatus.OK and "shards/ (60 files)" in out


def test_all_files_lists_every_raw_input(dataset):
    document = graph(dataset, "lineage", "model.txt", "--all-files")
    shards = [n for n in document["nodes"] if "/shards/" in n["uri"]]
    assert len(shards) == 61 and all(n["files"] == 1 and n["digest"] for n in shards)


def test_outputs_nobody_read_of_one_directory_are_one_node(dataset):
    """Downstream, the outputs of one directory that no run read are one node; the part a
    later run read stays on its own, linked to that run."""
    document = graph(dataset, "impact", "shards/made.bin")
    artifacts = [n for n in document["nodes"] if n["kind"] == "artifact"]
    (group,) = [n for n in artifacts if n["files"] > 1]
    assert group["uri"].endswith("/out/") and group["files"] == 59
    (part,) = [n for n in artifacts if n["uri"].endswith("/out/part-07.txt")]
    runs = {n["id"]: n["command"][-1] for n in document["nodes"] if n["kind"] == "run"}
    edges = {(e["source"], e["target"], e["kind"]) for e in document["edges"]}
    train = next(i for i, c in runs.items() if c.endswith("train.py"))
    score = next(i for i, c in runs.items() if c.endswith("score.py"))
    assert {(train, group["id"], "wrote"), (train, part["id"], "wrote"),
            (part["id"], score, "read")} <= edges
    assert any(n["uri"].endswith("/score.txt") for n in artifacts)
    every = graph(dataset, "impact", "shards/made.bin", "--all-files")
    assert len([n for n in every["nodes"] if "/out/" in n["uri"]]) == 60


def test_a_stamp_copied_onto_other_content_is_not_evidence(run_instrumented, run_plain, clew_cli,
                                                           workdir, spool):
    """shutil.copy2 copies a file's xattrs, clew's stamp among them. An exact copy is what the
    stamp's producer wrote; a copy changed afterwards is not, and is not credited to it."""
    if not takes_xattrs(workdir):
        pytest.skip("this filesystem takes no user xattrs: no local stamps")
    assert run_instrumented("open('data.bin', 'wb').write(b'original')\n",
                            name="writer.py").returncode == 0
    copy = """
import shutil
shutil.copy2('data.bin', 'same.bin')
shutil.copy2('data.bin', 'changed.bin')
with open('changed.bin', 'r+b') as f:  # in place: the copied xattr stays
    f.write(b'O')
"""
    assert run_plain(copy, name="copy.py").returncode == 0
    read = "open('model.txt', 'w').write(open('same.bin').read() + open('changed.bin').read())\n"
    assert run_instrumented(read, name="reader.py").returncode == 0
    # The reader found the writer's stamp on both copies...
    linked = {link.attributes[attr.PROVENANCE_ARTIFACT_URI].rsplit("/", 1)[-1]
              for span in spool.spans() for link in span.links}
    assert linked == {"same.bin", "changed.bin"}

    result = clew_cli("lineage", "model.txt", "--format", "json")
    assert result.code == ExitStatus.OK, result.err
    graph = result.json()
    writer = next(r["run_id"] for r in clew_cli("runs", "--format", "json").json()["runs"]
                  if r["command"][-1].endswith("writer.py"))
    ids = {n["uri"].rsplit("/", 1)[-1]: n["id"] for n in graph["nodes"] if n["kind"] == "artifact"}
    wrote = {(e["source"], e["target"], e["evidence"])
             for e in graph["edges"] if e["kind"] == "wrote"}
    # ...but credits it only with the copy that holds what it wrote.
    assert (writer, ids["same.bin"], "stamp") in wrote
    assert not [edge for edge in wrote if edge[1] == ids["changed.bin"]]

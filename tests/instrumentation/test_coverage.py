"""Coverage: one realistic program (a fine-tuning job's data preparation and one training step)
that uses every native-I/O library clew hooks, plus non-Python children, run under
opentelemetry-instrument. Every file it touched must be recorded, by digest.

The set of files is known to the test, not taken from the spool: the inputs the test made
beforehand (each must be one read record with the digest it had), and every file under the
program's output directory afterwards (each must be a write record with the digest it has
now), plus the outputs the program reads back (a read record with that digest). All gaps
are reported together, so a failure lists every file clew missed.

Nothing under the output directory is excluded: datasets' lock files are recorded like any
other file the program writes, so they stay in the set. Outside the set: files outside the
working directory (a library's temporary file in /tmp, the system's time zone data), which
are not the job's data.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from library_cases import check_program, digest_of

from clew.semconv import environment

np = pytest.importorskip("numpy")
pa = pytest.importorskip("pyarrow")
for _library in ("pandas", "polars", "duckdb", "safetensors", "h5py", "tokenizers",
                 "datasets", "transformers", "torch"):
    pytest.importorskip(_library)

pytestmark = pytest.mark.integration

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

# The job: every library reads its own input, so a gap names the library that has it.
PROGRAM = """
import os
import subprocess

import duckdb
import h5py
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import torch
from datasets import load_dataset
from safetensors.numpy import load_file, save_file
from tokenizers import Tokenizer
from transformers import BertConfig, BertModel

print(os.getpid())

# Tabular sources, through each engine.
base = pq.read_table("in/base.parquet")
assert pq.read_schema("in/base.parquet") == base.schema
pq.write_table(base, "out/base_copy.parquet")
extra = pd.read_parquet("in/pandas.parquet")
extra.to_parquet("out/pandas.parquet")
labels = pl.read_parquet("in/labels.parquet")
assert pl.read_ipc_stream("in/labels.arrows").equals(labels)
shards = pl.scan_parquet("in/shards/*.parquet").filter(pl.col("id") >= 0).collect()
pl.concat([shards, labels]).write_parquet("out/polars.parquet")
duckdb.sql("COPY (SELECT * FROM read_parquet('in/duck.parquet') ORDER BY id) "
           "TO 'out/duck.parquet' (FORMAT parquet)")

# A Hugging Face dataset from local Parquet and CSV, tokenized, saved.
tokenizer = Tokenizer.from_file("in/tokenizer.json")
tokenizer.save("out/tokenizer.json")
train = load_dataset("parquet", data_files="in/hf.parquet", cache_dir="out/hf-cache")["train"]
load_dataset("csv", data_files="in/hf.csv", cache_dir="out/hf-cache")
train = train.map(lambda row: {"ids": tokenizer.encode(row["text"]).ids})
train.save_to_disk("out/dataset")

# Features and embeddings.
with h5py.File("in/features.h5") as handle:
    features = handle["x"][:]
with h5py.File("out/stats.h5", "w") as handle:
    handle["mean"] = features.mean(axis=0)
embeddings = np.memmap("in/embeddings.f32", dtype=np.float32, mode="r", shape=(8, 4))
projected = np.memmap("out/projected.f32", dtype=np.float32, mode="w+", shape=(8, 4))
projected[:] = embeddings * 2
projected.flush()
del projected

# A tiny BERT: initial weights, one training step, saved and loaded back.
init = load_file("in/init.safetensors")
config = BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=16, max_position_embeddings=16)
model = BertModel(config)
with torch.no_grad():
    model.pooler.dense.bias.copy_(torch.from_numpy(init["pooler_bias"]))
ids = torch.tensor([train[0]["ids"] + [0] * (4 - len(train[0]["ids"]))])
loss = model(input_ids=ids).last_hidden_state.pow(2).mean()
loss.backward()
torch.optim.SGD(model.parameters(), lr=0.1).step()
model.save_pretrained("out/bert")
BertModel.from_pretrained("out/bert")
save_file({"pooler_bias": model.pooler.dense.bias.detach().numpy()}, "out/pooler.safetensors")
torch.save(model.state_dict(), "out/model.pt")
model.load_state_dict(torch.load("out/model.pt", mmap=True, weights_only=True))

# Non-Python children: a copy and an archive of the saved model.
subprocess.run(["cp", "in/notes.txt", "out/notes.txt"], check=True)
subprocess.run(["tar", "czf", "out/bert.tgz", "out/bert"], check=True)
"""

# Outputs read back after they were written: by the program (from_pretrained) and tar.
READ_BACK = ["out/bert/config.json", "out/bert/model.safetensors"]
CHECKPOINT = "out/model.pt"  # read back by the program alone (torch.load with mmap)


def make_inputs(workdir: Path) -> None:
    import h5py
    import pyarrow.parquet as pq
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers

    inputs = workdir / "in"
    (inputs / "shards").mkdir(parents=True)
    (workdir / "out").mkdir()
    for offset, name in enumerate(("base", "pandas", "labels", "duck", "hf", "shards/part-0",
                                   "shards/part-1")):
        table = pa.table({"id": [offset, offset + 1], "text": ["a b", "b a"],
                          "label": [0, 1]})
        pq.write_table(table, inputs / f"{name}.parquet")
        if name == "labels":
            with pa.ipc.new_stream(str(inputs / "labels.arrows"), table.schema) as writer:
                writer.write_table(table)
    (inputs / "hf.csv").write_text("id,text\n1,a\n2,b\n")
    (inputs / "notes.txt").write_text("data card: two sources, one split\n")
    vocab = {"[UNK]": 0, "[PAD]": 1, "a": 2, "b": 3}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(inputs / "tokenizer.json"))
    with h5py.File(inputs / "features.h5", "w") as handle:
        handle["x"] = np.arange(12.0).reshape(4, 3)
    np.arange(32, dtype=np.float32).tofile(inputs / "embeddings.f32")
    save_file({"pooler_bias": np.full(8, 0.5, dtype=np.float32)}, inputs / "init.safetensors")


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def test_every_file_of_a_fine_tuning_job_is_recorded(run_instrumented, spool, workdir):
    make_inputs(workdir)
    inputs = {path: digest_of(path) for path in files_under(workdir / "in")}
    result = run_instrumented(textwrap.dedent(PROGRAM), env=OFFLINE, timeout=300)
    assert result.returncode == 0, result.stderr

    outputs = files_under(workdir / "out")
    expected = {("read", path): digest for path, digest in inputs.items()}
    expected |= {("write", path): digest_of(path) for path in outputs}
    expected |= {("read", workdir / name): digest_of(workdir / name)
                 for name in [*READ_BACK, CHECKPOINT]}
    # What the test knows the program made: a file missing here would shrink the set.
    assert {"model.pt", "bert.tgz", "notes.txt", "projected.f32", "stats.h5", "duck.parquet",
            "polars.parquet", "pandas.parquet", "base_copy.parquet", "pooler.safetensors",
            "tokenizer.json", "model.safetensors", "config.json", "dataset_info.json"} <= {
        path.name for path in outputs}
    assert any(path.suffix == ".arrow" for path in (workdir / "out" / "hf-cache").rglob("*"))

    run = spool.run()
    gaps = []
    pids = {}
    for (operation, path), digest in sorted(expected.items()):
        records = spool.accesses(run, operation, path)
        pids[operation, str(path.relative_to(workdir))] = sorted(a.pid for a in records)
        # One record per process that did it (the program and tar both read the saved model).
        if not records or {a.digest for a in records} != {digest} or \
                len({a.pid for a in records}) != len(records):
            gaps.append(f"{operation} {path.relative_to(workdir)}: recorded "
                        f"{[(a.digest, a.pid) for a in records]}")
    assert gaps == [], f"{len(gaps)} of {len(expected)} file operations not recorded once " \
        f"with their digest:\n" + "\n".join(gaps)
    assert run.capture_errors == []

    # Under the right process: cp's files by cp, the archive by tar or the gzip it starts for
    # `z` (a process of its own, not in the run's exec list), the rest by the program.
    program = int(result.stdout.split()[0])
    child = {Path(e.command[0]).name: e.pid for e in run.execs}
    assert pids["read", "in/notes.txt"] == pids["write", "out/notes.txt"] == [child["cp"]]
    (archiver,) = pids["write", "out/bert.tgz"]
    assert archiver not in (program, child["cp"])
    assert [pids["read", name] for name in READ_BACK] == [sorted([program, child["tar"]])] * 2
    assert sorted(key for key, found in pids.items() if found != [program]) == sorted(
        [("read", "in/notes.txt"), ("write", "out/notes.txt"), ("write", "out/bert.tgz")]
        + [("read", name) for name in READ_BACK])


def make_gap_inputs(workdir: Path) -> None:
    (workdir / "in.bin").write_bytes(b"native bytes")
    (workdir / "vocab.txt").write_text("[UNK]\na\nb\n")


# Entry points the README lists as not recorded by their library's hook, each run for real:
# recorded through native opens (the default), and strict expected failures without them, so
# the day a hook records one the README's row must move. name: (why, program, reads, writes).
GAPS = {
    "pyarrow.fs.LocalFileSystem opens": (
        "compiled methods of a compiled class: the pyarrow hook cannot wrap them", """
        import pyarrow.fs as fs
        local = fs.LocalFileSystem()
        with local.open_input_file("in.bin") as handle:
            handle.read()
        with local.open_output_stream("out.bin") as handle:
            handle.write(b"written")
        """, ["in.bin"], ["out.bin"]),
    "polars partitioned write": (
        "the polars hook records the file at the path given; partition_by makes a directory "
        "of files it does not list", """
        import polars as pl
        pl.DataFrame({"k": ["a", "b"], "x": [1, 2]}).write_parquet("parts", partition_by="k")
        """, [], ["parts/"]),
    "a tokenizers model's own from_file": (
        "the tokenizers hook wraps Tokenizer, not its models' readers", """
        from tokenizers import models
        models.WordPiece.from_file("vocab.txt", unk_token="[UNK]")
        """, ["vocab.txt"], []),
}


@pytest.mark.parametrize("case", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=GAPS[name][0]))
    for name in sorted(GAPS)])
def test_documented_gaps_are_still_gaps(case, run_instrumented, spool, workdir):
    _, program, reads, writes = GAPS[case]
    make_gap_inputs(workdir)

    check_program(run_instrumented, spool, workdir, program, reads, writes,
                  env={environment.CLEW_NATIVE: "0"})


@pytest.mark.parametrize("case", sorted(GAPS))
def test_hook_gaps_are_recorded_through_native_opens(case, run_instrumented, spool, workdir):
    _, program, reads, writes = GAPS[case]
    make_gap_inputs(workdir)

    check_program(run_instrumented, spool, workdir, program, reads, writes)

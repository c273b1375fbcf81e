"""Every way the test set reaches the training data, one row each: `clew check --test` finds
it, naming the file and the run (and process) that read it; the clean control exits 0.

Each row runs real programs under opentelemetry-instrument as a user writes them: a prep
step (shutil, shell `cp`, os.rename, boto3 copy_object and its managed copy in parts, s3fs
cp, GCS copy_blob and rewrite), then a training run that reads its data by glob, plainly,
through a DataLoader worker or in a torchrun rank, and writes model.txt. Objects live in
moto and fake-gcs-server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from clew.query.cli import ExitStatus
from clew_test_helpers import free_port
from objectstore_helpers import check_run, gcs_env, s3_env, unique

pytestmark = pytest.mark.integration

TEST_ROWS = b"secret,9\n" * 50
TRAIN_ROWS = b"x,1\n" * 50
# Training reads what its glob finds and writes model.txt.
TRAIN = """
import glob, sys
rows = sum(open(p, "rb").read().count(b"\\n") for p in sorted(glob.glob(sys.argv[1])))
open("model.txt", "w").write(str(rows))
"""
TRAIN_WORKER = """
import glob, sys
from torch.utils.data import DataLoader


def count_rows(batch):  # runs in the worker: the worker reads the files
    return sum(open(path, "rb").read().count(b"\\n") for path in batch)


if __name__ == "__main__":
    paths = sorted(glob.glob(sys.argv[1]))
    rows = sum(DataLoader(paths, batch_size=1, num_workers=1, collate_fn=count_rows))
    open("model.txt", "w").write(str(rows))
"""
# Rank 1 reads the first file of the glob (the test file), rank 0 the rest and saves.
TRAIN_RANKS = """
import glob, sys
import torch.distributed as dist
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
paths = sorted(glob.glob(sys.argv[1]))
mine = paths[:1] if rank == 1 else paths[1:]
rows = sum(open(p, "rb").read().count(b"\\n") for p in mine)
dist.barrier()
if rank == 0:
    open("model.txt", "w").write(str(rows))
dist.barrier()
dist.destroy_process_group()
"""
TRAIN_S3 = """
import sys, s3fs
fs = s3fs.S3FileSystem()
rows = sum(fs.cat_file(p).count(b"\\n") for p in sorted(fs.glob(sys.argv[1])))
open("model.txt", "w").write(str(rows))
"""
TRAIN_GCS = """
import sys, gcsfs
fs = gcsfs.GCSFileSystem(token="anon", project="test")
rows = sum(fs.cat_file(p).count(b"\\n") for p in sorted(fs.glob(sys.argv[1])))
open("model.txt", "w").write(str(rows))
"""
S3_SETUP = """
import sys, boto3
bucket = sys.argv[1]
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
s3.put_object(Bucket=bucket, Key="test/holdout.csv", Body=sys.argv[2].encode())
s3.put_object(Bucket=bucket, Key="train/part-1.csv", Body=sys.argv[3].encode())
"""
GCS_SETUP = """
import sys
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
client = storage.Client(project="test", credentials=AnonymousCredentials())
bucket = client.create_bucket(sys.argv[1])
bucket.blob("test/holdout.csv").upload_from_string(sys.argv[2].encode())
bucket.blob("train/part-1.csv").upload_from_string(sys.argv[3].encode())
"""
PREP = {
    "shutil.copy": 'import shutil; shutil.copy("data/test/holdout.csv", "data/train/part-2.csv")',
    "shell cp": 'import subprocess\n'
                'subprocess.run("cp data/test/holdout.csv data/train/part-2.csv", shell=True, '
                'check=True)',
    "rename": 'import os; os.rename("data/test/holdout.csv", "data/train/part-2.csv")',
    "s3 copy_object": 'import sys, boto3\nb = sys.argv[1]\n'
                      'boto3.client("s3").copy_object(Bucket=b, Key="train/part-2.csv", '
                      'CopySource={"Bucket": b, "Key": "test/holdout.csv"})',
    # boto3's managed copy in parts: CreateMultipartUpload, UploadPartCopy, Complete...
    "s3 multipart copy": 'import sys, boto3\nfrom boto3.s3.transfer import TransferConfig\n'
                         'b = sys.argv[1]\n'
                         'boto3.client("s3").copy({"Bucket": b, "Key": "test/holdout.csv"}, b, '
                         '"train/part-2.csv", Config=TransferConfig(multipart_threshold=1))',
    "s3fs cp": 'import sys, s3fs\nb = sys.argv[1]\n'
               's3fs.S3FileSystem().cp(f"{b}/test/holdout.csv", f"{b}/train/part-2.csv")',
    "gcs copy": 'import sys\nfrom google.auth.credentials import AnonymousCredentials\n'
                'from google.cloud import storage\n'
                'client = storage.Client(project="test", credentials=AnonymousCredentials())\n'
                'bucket = client.bucket(sys.argv[1])\n'
                'bucket.copy_blob(bucket.blob("test/holdout.csv"), bucket, "train/part-2.csv")',
    "gcs rewrite": 'import sys\nfrom google.auth.credentials import AnonymousCredentials\n'
                   'from google.cloud import storage\n'
                   'client = storage.Client(project="test", credentials=AnonymousCredentials())\n'
                   'bucket = client.bucket(sys.argv[1])\n'
                   'bucket.blob("train/part-2.csv").rewrite(bucket.blob("test/holdout.csv"))',
}


@dataclass
class Row:
    """How the test set reaches training: the store ("local", "s3", "gcs"), the prep step
    (a key of PREP, or ""), the training program and its glob (relative to the data root),
    and the findings expected as (URI relative to the data root, evidence, reader) where the
    reader is "prep" or "train", and the process the detail names ("" for none)."""

    store: str
    prep: str
    train: str
    glob: str
    expected: set[tuple[str, str, str]]
    process: str = ""


ROWS = {
    "clean": Row("local", "", TRAIN, "train/*.csv", set()),
    "glob": Row("local", "", TRAIN, "*/*.csv", {("test/holdout.csv", "uri", "train")}),
    "shutil.copy": Row("local", "shutil.copy", TRAIN, "train/*.csv", {
        ("train/part-2.csv", "digest", "train"), ("test/holdout.csv", "uri", "prep")}),
    # `cp` reads the test file under the prep run (clew's LD_PRELOAD library)
    "shell cp": Row("local", "shell cp", TRAIN, "train/*.csv", {
        ("train/part-2.csv", "digest", "train"), ("test/holdout.csv", "uri", "prep")}),
    # The test file is gone from the test directory: only the rename names it.
    "rename": Row("local", "rename", TRAIN, "train/*.csv", {
        ("test/holdout.csv", "uri", "prep")}),
    "s3 copy_object": Row("s3", "s3 copy_object", TRAIN_S3, "train/*.csv", {
        ("train/part-2.csv", "digest", "train"), ("test/holdout.csv", "uri", "prep")}),
    "s3 multipart copy": Row("s3", "s3 multipart copy", TRAIN_S3, "train/*.csv", {
        ("train/part-2.csv", "digest", "train"), ("test/holdout.csv", "uri", "prep")}),
    "s3fs cp": Row("s3", "s3fs cp", TRAIN_S3, "train/*.csv", {
        ("train/part-2.csv", "digest", "train"), ("test/holdout.csv", "uri", "prep")}),
    "gcs copy": Row("gcs", "gcs copy", TRAIN_GCS, "train/*.csv", {
        ("train/part-2.csv", "digest", "train"), ("test/holdout.csv", "uri", "prep")}),
    "gcs rewrite": Row("gcs", "gcs rewrite", TRAIN_GCS, "train/*.csv", {
        ("train/part-2.csv", "digest", "train"), ("test/holdout.csv", "uri", "prep")}),
    "dataloader worker": Row("local", "", TRAIN_WORKER, "*/*.csv", {
        ("test/holdout.csv", "uri", "train")}, process="DataLoader worker 0"),
    "torchrun rank": Row("local", "", TRAIN_RANKS, "*/*.csv", {
        ("test/holdout.csv", "uri", "train")}, process="rank 1"),
}


def _torchrun(base_env: dict[str, str], workdir: Path, script: Path, *args: str
              ) -> subprocess.CompletedProcess:
    """`opentelemetry-instrument torchrun --nproc-per-node 2 script ARGS`, on CPU."""
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "opentelemetry-instrument"), str(bin_dir / "torchrun"),
               "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()), str(script), *args]
    return subprocess.run(command, cwd=workdir, env={**base_env, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.parametrize("name", list(ROWS))
def test_check_finds_the_test_set_however_it_reached_training(
    name, request, run_instrumented, base_env, scripts, workdir, clew_cli
):
    row = ROWS[name]
    env: dict[str, str] = {}
    if row.store == "local":
        root, data = str(workdir / "data"), workdir / "data"
        (data / "test").mkdir(parents=True)
        (data / "train").mkdir()
        (data / "test" / "holdout.csv").write_bytes(TEST_ROWS)
        (data / "train" / "part-1.csv").write_bytes(TRAIN_ROWS)
        args: tuple[str, ...] = ()
    else:
        bucket = unique("matrix")
        scheme, setup = ("s3", S3_SETUP) if row.store == "s3" else ("gs", GCS_SETUP)
        server = request.getfixturevalue("moto_s3" if row.store == "s3" else "fake_gcs")
        env = s3_env(server) if row.store == "s3" else gcs_env(server)
        check_run(run_instrumented(setup, bucket, TEST_ROWS.decode(), TRAIN_ROWS.decode(),
                                   name="setup.py", env=env))
        root, args = f"{scheme}://{bucket}", (bucket,)
    runs: dict[str, str] = {}
    if row.prep:
        check_run(run_instrumented(PREP[row.prep], *args, name="prep.py", env=env))
        runs["prep"] = newest_run(clew_cli)
    glob = f"{root}/{row.glob}".removeprefix("s3://").removeprefix("gs://")
    if row.train is TRAIN_RANKS:
        script = scripts / "train.py"
        script.write_text(TRAIN_RANKS)
        result = _torchrun(base_env, workdir, script, glob)
    else:
        result = run_instrumented(row.train, glob, name="train.py", env=env)
    check_run(result)
    runs["train"] = newest_run(clew_cli)

    tests = f"{root}/test/" if row.store != "local" else os.path.join(root, "test")
    check = clew_cli("check", "model.txt", "--test", tests, "--format", "json")
    if not row.expected:
        assert check.code == ExitStatus.OK, check.out + check.err
        return
    assert check.code == ExitStatus.CHECK_FAILED, check.out + check.err
    findings = check.json()["findings"]
    prefix = f"{root}/" if row.store != "local" else f"file://{os.uname().nodename}{root}/"
    found = {(f["uri"].removeprefix(prefix), f["evidence"], reader)
             for f in findings for reader, run in runs.items() if f["read_by"] == [run]}
    assert found == row.expected, findings
    for finding in findings:
        (reader,) = finding["read_by"]
        # the run that read it and the process, as the records have them
        assert f"read by run {reader[:12]} (" in finding["detail"], finding
        assert row.process in finding["detail"] and "pid " in finding["detail"], finding


def newest_run(clew_cli: Callable) -> str:
    return clew_cli("runs", "--format", "json").json()["runs"][0]["run_id"]

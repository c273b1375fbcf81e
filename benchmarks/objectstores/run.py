"""Instrumented/plain ratios for reading objects from SeaweedFS with boto3 and s3fs.

Usage: `.venv/bin/python benchmarks/objectstores/run.py [--runs N]` from the checkout. Starts
SeaweedFS (`weed mini`) on free ports in a temporary directory, uploads 1,000 objects of
64 KiB and 2 of 256 MiB with plain boto3, then times each workload (benchmarks/objectstores/
workload.py) as plain (opentelemetry-instrument with every clew instrumentor disabled and no
exporter) and as clew (defaults, a fresh CLEW_HOME), alternating, N runs each, and writes the
medians as a section of benchmarks/RESULTS.md. Target: clew/plain <= 1.05 for each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.append(str(ROOT / "benchmarks"))
from results import git_state, write_section  # noqa: E402 - benchmarks/results.py
BIN = Path(sys.executable).parent
DISABLED = ("clew_files,clew_processes,clew_torch,clew_botocore,clew_fsspec,clew_gcs,clew_pyarrow,"
            "clew_polars,clew_duckdb,clew_safetensors,clew_h5py,clew_tokenizers")
# The plain variant's environment: clew installed, its hooks and every exporter off.
PLAIN = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": DISABLED, "OTEL_TRACES_EXPORTER": "none",
         "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
WORKLOADS = [("boto3", "small"), ("boto3", "large"), ("s3fs", "small"), ("s3fs", "large")]
TARGET = 1.05


def _free_port() -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 < 65536:
            with socket.socket() as other:
                try:
                    other.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def _start_seaweedfs(root: Path) -> tuple[subprocess.Popen, str]:
    ports = [_free_port() for _ in range(4)]
    (root / "logs").mkdir()
    process = subprocess.Popen(
        [str(BIN / "weed"), f"-logdir={root / 'logs'}", "mini", f"-dir={root / 'data'}",
         "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false", "-webdav=false",
         "-s3.port.iceberg=0", f"-s3.port={ports[0]}", f"-master.port={ports[1]}",
         f"-volume.port={ports[2]}", f"-filer.port={ports[3]}",
         # As in the tests' fixture: a volume count that does not depend on the disk's free space.
         "-volume.max=1000", "-master.volumeSizeLimitMB=64"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{ports[0]}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.1)
    return process, url


def _env(endpoint: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLEW_"))}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION="us-east-1", **extra)
    return env


def _upload(endpoint: str, bucket: str, *, large: bool = True) -> None:
    script = f"""
import os, boto3
s3 = boto3.client("s3")
s3.create_bucket(Bucket={bucket!r})
for i in range(1000):
    s3.put_object(Bucket={bucket!r}, Key=f"small/{{i:04d}}.bin", Body=os.urandom(64 << 10))
for i in range({2 if large else 0}):
    s3.put_object(Bucket={bucket!r}, Key=f"large/{{i}}.bin", Body=os.urandom(256 << 20))
"""
    subprocess.run([sys.executable, "-c", script], env=_env(endpoint), check=True)


def _time(endpoint: str, client: str, shape: str, bucket: str, clew: bool, home: Path,
          bin_dir: Path = BIN) -> float:
    """Seconds the workload's reads took, run with the Python and clew of `bin_dir`."""
    if clew:
        env = _env(endpoint, CLEW_HOME=str(home))
    else:
        env = _env(endpoint, **PLAIN)
    result = subprocess.run(
        [str(bin_dir / "opentelemetry-instrument"), str(bin_dir / "python"), str(HERE / "workload.py"), client, shape, bucket],
        env=env, capture_output=True, text=True, check=True, cwd=home.parent,
    )
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="clew-bench-s3-") as tmp:
        root = Path(tmp)
        process, endpoint = _start_seaweedfs(root)
        try:
            bucket = "bench"
            _upload(endpoint, bucket)
            rows = []
            for client, shape in WORKLOADS:
                plain, clew = [], []
                _time(endpoint, client, shape, bucket, False, root / "warm")  # warm-up, both
                _time(endpoint, client, shape, bucket, True, root / "warm")
                for run in range(options.runs):
                    plain.append(_time(endpoint, client, shape, bucket, False, root / f"p{run}"))
                    clew.append(_time(endpoint, client, shape, bucket, True, root / f"{client}{shape}{run}"))
                rows.append((client, shape, statistics.median(plain), statistics.median(clew), plain, clew))
                print(client, shape, rows[-1][2:4], flush=True)
        finally:
            process.terminate()
            process.wait(10)
    _write(rows, options.runs, time.time() - started)


def _write(rows: list, runs: int, took: float) -> None:
    names = {"small": "1,000 objects x 64 KiB", "large": "2 objects x 256 MiB"}
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    lines = [
        "## .venv/bin/python benchmarks/objectstores/run.py" + (f" --runs {runs}" if runs != 3 else ""),
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC (took {took / 60:.0f} min)",
        f"- clew commit measured: {git_state()}",
        f"- machine: nproc {os.cpu_count()}, {cpu}, CPython {platform.python_version()}, Linux {platform.release()}",
        f"- load average (1 min) at the end: {os.getloadavg()[0]:.2f} (a shared 2-core machine: noisy)",
        "- server: SeaweedFS `weed mini` on 127.0.0.1; objects written beforehand with plain boto3",
        f"- runs: {runs} timed runs of each variant, alternating, after one warm-up of each; the time of the reads"
        " inside the program (client set-up excluded), median",
        f"- plain: `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS={DISABLED} OTEL_TRACES_EXPORTER=none ..."
        " opentelemetry-instrument python workload.py`; clew: defaults, a fresh CLEW_HOME (spool on)",
        "",
        "| workload | plain median | clew median | clew / plain | target | result | plain runs / clew runs (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for client, shape, plain, clew, plains, clews in rows:
        ratio = clew / plain
        verdict = "pass" if ratio <= TARGET else "**FAIL**"
        spread = f"{', '.join(f'{v:.3f}' for v in plains)} / {', '.join(f'{v:.3f}' for v in clews)}"
        lines.append(f"| {client}, {names[shape]} | {plain:.3f} s | {clew:.3f} s | {ratio:.3f} | <= {TARGET} | {verdict} | {spread} |")
    write_section("\n".join(lines), "objectstores/run.py")


if __name__ == "__main__":
    main()

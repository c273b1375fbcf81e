"""One distribution, four subpackages: both a built wheel and the editable install import
clew.instrumentation, clew.semconv, clew.exporter and clew.query, with the entry points that
make `opentelemetry-instrument` and `clew` work, and the wheel keeps the capture side light.

The wheel is built from a copy of the source tree (so the repository gets no build/ or
egg-info litter), with `python -m build --wheel --no-isolation` (the build backend is in this
environment through the `test` extra), and installed into a fresh venv; its dependencies come
from the package index through pip's cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = ["instrumentation", "semconv", "exporter", "query"]
MODULES = [f"clew.{name}" for name in SUBPACKAGES]
ENTRY_POINTS = {
    ("opentelemetry_instrumentor", "clew"): "clew.instrumentation.loader:ClewInstrumentors",
    ("clew_instrumentor", "clew_files"): "clew.instrumentation.files:FilesInstrumentor",
    ("clew_instrumentor", "clew_processes"): "clew.instrumentation.processes:ProcessesInstrumentor",
    ("opentelemetry_distro", "clew"): "clew.exporter.distro:ClewDistro",
    ("opentelemetry_configurator", "clew"): "clew.exporter.distro:ClewConfigurator",
    ("opentelemetry_traces_exporter", "clew"): "clew.exporter.spool:SpoolSpanExporter",
    ("console_scripts", "clew"): "clew.query.cli:entry_point",
}
STORE_ONLY = {"clickhouse-connect", "clickhouse_connect", "chdb", "chdb-core", "chdb_core"}

# Prints where each subpackage was imported from, the entry points and the installed
# distributions, as JSON: run by the interpreter under test.
PROBE = """
import importlib, json, sys
from importlib import metadata
modules = {name: importlib.import_module(name).__file__ for name in sys.argv[1:]}
eps = sorted([ep.group, ep.name, ep.value] for ep in metadata.distribution("clew").entry_points)
dists = sorted({(d.metadata["Name"] or "").lower() for d in metadata.distributions()})
direct_url = metadata.distribution("clew").read_text("direct_url.json")
print(json.dumps({"modules": modules, "entry_points": eps, "distributions": dists,
                  "direct_url": json.loads(direct_url) if direct_url else None}))
"""

_IGNORED_TOP = {
    ".git",
    ".venv",
    ".clew",
    "build",
    "dist",
    ".ruff_cache",
    ".pytest_cache",
    "benchmarks",
    # What other tests write into the checkout while this one may be copying it (the tests
    # run on two workers): the peers' downloaded suites and the demo's outputs.
    ".cache",
    "examples",
}


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "CLEW_", "TRACEPARENT", "TRACESTATE"))}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(
        args,
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _probe(python: Path, cwd: Path) -> dict:
    return json.loads(_run([str(python), "-c", PROBE, *MODULES], cwd).stdout)


def _copy_source(target: Path) -> None:
    def ignore(directory: str, names: list[str]) -> list[str]:
        top = Path(directory) == ROOT
        return [
            n
            for n in names
            if n == "__pycache__" or n.endswith(".egg-info") or (top and n in _IGNORED_TOP)
        ]

    shutil.copytree(ROOT, target, ignore=ignore)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    _copy_source(source)
    _run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(work / "dist"),
            ".",
        ],
        source,
    )
    wheels = list((work / "dist").glob("clew-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheel_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], venv.parent)
    _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        venv.parent,
        timeout=600,
    )
    return venv


def test_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for package in SUBPACKAGES:
        assert f"clew/{package}/__init__.py" in names, package
    assert any(n.startswith("clew/semconv/registry/") and n.endswith(".yaml") for n in names)
    # Only the four subpackages: no tests, examples or stray top-level modules.
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {
        "clew",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }
    assert not any(n.startswith(("clew/tests", "tests/", "examples/")) for n in names)
    assert not any(n.startswith("clew/") and n.count("/") == 1 for n in names), (
        "clew itself stays a namespace of the four subpackages"
    )


@pytest.mark.skipif(shutil.which("gcc") is None or not sys.platform.startswith("linux"),
                    reason="the LD_PRELOAD library is built with a C compiler, on Linux")
def test_wheel_carries_the_preload_library(wheel: Path, tmp_path: Path) -> None:
    """The wheel holds clew's LD_PRELOAD library, built for this machine, the reader of its
    records and the C audit hook; the library needs no Python: it is loaded into programs that
    are not Python."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist()
                   if n.startswith("clew/instrumentation/_preload_shim") and n.endswith(".so")]
        for extension in ("_preload_notes", "_open_hook"):
            assert any(n.startswith(f"clew/instrumentation/{extension}") and n.endswith(".so")
                       for n in archive.namelist()), extension
        library = tmp_path / "shim.so"
        library.write_bytes(archive.read(name))
    undefined = subprocess.run(["nm", "-u", "-D", str(library)], capture_output=True, text=True,
                               check=True).stdout
    assert "GLIBC" in undefined and "Py" not in undefined, undefined
    needed = subprocess.run(["ldd", str(library)], capture_output=True, text=True,
                            check=True).stdout
    assert "libpython" not in needed, needed


def test_wheel_metadata_keeps_store_optional(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in archive.read(meta).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    for requirement in requires:
        name = requirement.split(";")[0].strip().split("[")[0]
        for token in "<>=!~ (":
            name = name.split(token)[0]
        if name.lower() in STORE_ONLY:
            assert 'extra == "store"' in requirement, requirement


def test_wheel_installs_light_and_imports(wheel_venv: Path, tmp_path: Path) -> None:
    info = _probe(wheel_venv / "bin" / "python", tmp_path)
    site = wheel_venv / "lib"
    for module, path in info["modules"].items():
        assert Path(path).is_relative_to(site), f"{module} imported from {path}, not the wheel"
        assert "site-packages/clew/" in path
    assert info["direct_url"] is None or not info["direct_url"].get("dir_info", {}).get("editable")
    assert not (STORE_ONLY & set(info["distributions"])), (
        "the capture side must not pull in the ClickHouse client or chDB: "
        f"{sorted(STORE_ONLY & set(info['distributions']))}"
    )
    found = {(group, name): value for group, name, value in info["entry_points"]}
    for key, value in ENTRY_POINTS.items():
        assert found.get(key) == value, f"entry point {key}: {found.get(key)!r}, want {value!r}"


def test_wheel_cli_and_capture(wheel_venv: Path, tmp_path: Path) -> None:
    bin_dir = wheel_venv / "bin"
    help_text = _run([str(bin_dir / "clew"), "--help"], tmp_path).stdout
    # Commands are imported when listed or run: each must resolve, store commands too.
    listed = help_text.split("Commands:", 1)[1].split()
    for command in ("check", "diff", "doctor", "export", "impact", "ingest", "lineage",
                    "replay", "runs", "spool", "sql"):
        assert command in listed, help_text

    # The installed wheel captures with no settings: a file written under
    # opentelemetry-instrument shows up in the spool.
    _run(
        [
            str(bin_dir / "opentelemetry-instrument"),
            str(bin_dir / "python"),
            "-c",
            "open('out.txt', 'w').write('from the wheel')",
        ],
        tmp_path,
    )
    spool = list((tmp_path / ".clew" / "spool").glob("*.jsonl"))
    assert spool, "no spool file written"
    text = "".join(p.read_text() for p in spool)
    assert str(tmp_path / "out.txt") in text


def test_editable_install_imports_source_folders(tmp_path: Path) -> None:
    info = _probe(Path(sys.executable), tmp_path)
    for name, module in zip(SUBPACKAGES, MODULES):
        path = Path(info["modules"][module])
        assert path == ROOT / name / "__init__.py", f"{module} imported from {path}"
    assert info["direct_url"] and info["direct_url"].get("dir_info", {}).get("editable"), (
        "the test environment should hold an editable install of clew (make test does that)"
    )
    found = {(group, name): value for group, name, value in info["entry_points"]}
    for key, value in ENTRY_POINTS.items():
        assert found.get(key) == value, f"entry point {key}: {found.get(key)!r}, want {value!r}"

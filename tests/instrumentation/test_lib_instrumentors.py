"""The native-I/O library instrumentors in code, each the same way:
a read recorded under the process span once the library is imported after `instrument()`,
nothing recorded when suppressed, and a failure inside clew's hook swallowed. Their
uninstrumented and error cases are in each library's own test module. Last, every library
hook under `opentelemetry-instrument`, and turned off by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clew.semconv import attributes as attr
from instrumentor_cases import io_spans, process_span
from library_cases import digest_of, library_case

def csv_input(path: Path) -> None:
    path.write_text("id,label\n1,a\n2,b\n")


def safetensors_input(path: Path) -> None:
    import numpy
    from safetensors.numpy import save_file

    save_file({"x": numpy.arange(2)}, path)


def hdf5_input(path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        handle["x"] = [1, 2]


def tokenizer_input(path: Path) -> None:
    from tokenizers import Tokenizer, models

    Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]")).save(str(path))


# library: (its instrumentor and a `read()` of its input returning a row count, the rows,
# the input's name, how the test makes it)
LIBRARIES = {
    "pyarrow": ("""
from clew.instrumentation.pyarrow import PyarrowInstrumentor as Instrumentor
def read():
    import pyarrow.csv
    return pyarrow.csv.read_csv("in.csv").num_rows
""", 2, "in.csv", csv_input),
    "polars": ("""
from clew.instrumentation.polars import PolarsInstrumentor as Instrumentor
def read():
    import polars
    return polars.read_csv("in.csv").height
""", 2, "in.csv", csv_input),
    "duckdb": ("""
from clew.instrumentation.duckdb import DuckdbInstrumentor as Instrumentor
def read():
    import duckdb
    return duckdb.connect().execute("SELECT count(*) FROM read_csv('in.csv')").fetchone()[0]
""", 2, "in.csv", csv_input),
    "safetensors": ("""
from clew.instrumentation.safetensors import SafetensorsInstrumentor as Instrumentor
def read():
    import safetensors.numpy
    return len(safetensors.numpy.load_file("in.safetensors")["x"])
""", 2, "in.safetensors", safetensors_input),
    "h5py": ("""
from clew.instrumentation.h5py import H5pyInstrumentor as Instrumentor
def read():
    import h5py
    with h5py.File("in.h5") as handle:
        return len(handle["x"])
""", 2, "in.h5", hdf5_input),
    "tokenizers": ("""
from clew.instrumentation.tokenizers import TokenizersInstrumentor as Instrumentor
def read():
    from tokenizers import Tokenizer
    return Tokenizer.from_file("in.json").get_vocab_size()
""", 2, "in.json", tokenizer_input),
}

pytestmark = pytest.mark.integration


@pytest.fixture(params=sorted(LIBRARIES))
def library(request, workdir: Path) -> tuple[str, int, str]:
    pytest.importorskip(request.param)
    prelude, rows, name, make_input = LIBRARIES[request.param]
    make_input(workdir / name)
    return prelude, rows, name


def test_instrumentor_records_a_read_under_the_process_span(library, base_env, workdir, spool):
    """Instrumented before the library is imported: patched at its import, never before."""
    prelude, rows, name = library

    outcome = library_case(prelude, f"""
        Instrumentor().instrument()
        imported_early = sorted(m for m in {sorted(LIBRARIES)} if m in sys.modules)
        finish(rows=read(), imported_early=imported_early)
        """, base_env, workdir)

    assert (outcome["rows"], outcome["imported_early"]) == (rows, [])
    (span,) = io_spans(outcome)
    assert span["attributes"][attr.PROVENANCE_ARTIFACTS_URI] == [spool.uri(workdir / name)]
    assert span["attributes"][attr.PROVENANCE_ARTIFACTS_DIGEST] == [digest_of(workdir / name)]
    assert span["parent"] == process_span(outcome)["span_id"]


def test_instrumentor_suppressed_records_nothing(library, base_env, workdir):
    prelude, rows, _name = library

    outcome = library_case(prelude, """
        Instrumentor().instrument()
        with suppress_instrumentation():
            rows = read()
        finish(rows=rows)
        """, base_env, workdir)

    assert outcome["rows"] == rows
    assert io_spans(outcome) == []


def test_instrumentor_failing_hook_is_swallowed(library, base_env, workdir):
    """A failure inside clew's hook never reaches the program: its reads work, the failure is
    logged once and kept on the process span."""
    prelude, rows, _name = library

    outcome = library_case(prelude, """
        Instrumentor().instrument()
        recorder = _lifecycle.get_recorder()
        def broken(path):
            raise RuntimeError("simulated capture bug")
        recorder.read = broken
        finish(rows=[read() for _ in range(3)])
        """, base_env, workdir)

    assert outcome["rows"] == [rows] * 3
    assert outcome["stderr"].count("simulated capture bug") == 1
    errors = process_span(outcome)["attributes"][attr.PROVENANCE_CAPTURE_ERRORS]
    assert any("simulated capture bug" in e for e in errors)


HOOKS = {
    "clew_torch": "TorchInstrumentor", "clew_botocore": "S3Instrumentor",
    "clew_fsspec": "FsspecInstrumentor", "clew_gcs": "GcsInstrumentor",
    "clew_pyarrow": "PyarrowInstrumentor", "clew_polars": "PolarsInstrumentor",
    "clew_duckdb": "DuckdbInstrumentor", "clew_safetensors": "SafetensorsInstrumentor",
    "clew_h5py": "H5pyInstrumentor", "clew_tokenizers": "TokenizersInstrumentor",
}
# A module of each hook's library, imported by the program after start-up.
LIBRARY_MODULES = ("torch", "botocore.session", "fsspec", "google.cloud.storage", "pyarrow",
                   "polars", "duckdb", "safetensors", "h5py", "tokenizers")
INSTRUMENTED = f"""
import importlib, json, sys
import clew.instrumentation as hooks
before = sorted(m for m in {LIBRARY_MODULES!r} if m in sys.modules)
for module in {LIBRARY_MODULES!r}:
    importlib.import_module(module)
print(json.dumps({{"imported_before": before,
                  "on": {{name: getattr(hooks, cls)().is_instrumented_by_opentelemetry
                         for name, cls in {HOOKS!r}.items()}}}}))
"""


@pytest.mark.parametrize("disabled", ["", "clew_pyarrow,clew_botocore", "clew_libraries"])
def test_opentelemetry_instrument_loads_each_library_hook_unless_disabled_by_name(
    run_instrumented, disabled
):
    """Under opentelemetry-instrument every library hook is on once the program imports its
    library (clew imports none of them); a name in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS
    turns that hook off, `clew_libraries` all of them."""
    result = run_instrumented(INSTRUMENTED, env={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled})

    assert result.returncode == 0, result.stderr
    off = set(HOOKS) if disabled == "clew_libraries" else set(filter(None, disabled.split(",")))
    assert json.loads(result.stdout) == {
        "imported_before": [], "on": {name: name not in off for name in HOOKS}
    }


def test_each_library_hook_is_loaded_by_the_import_of_any_module_it_patches():
    """A hook's code loads when one of its `_patched_modules` is imported: they must be the
    modules it patches, or a patch would never be registered."""
    from importlib.metadata import entry_points

    from clew.instrumentation.package import _core, _patched_modules
    from clew.semconv.environment import INSTRUMENTOR_GROUP

    hooks = {entry_point.name: entry_point.load()()
             for entry_point in entry_points(group=INSTRUMENTOR_GROUP) if entry_point.name not in _core}

    assert {name: sorted(modules) for name, modules in _patched_modules.items()} == {
        name: sorted(hook._patches()) for name, hook in hooks.items()
    }


CORE = {"clew_files": "FilesInstrumentor", "clew_native": "NativeInstrumentor",
        "clew_processes": "ProcessesInstrumentor"}
CORE_INSTRUMENTED = f"""
import json
import clew.instrumentation as hooks
print(json.dumps({{name: getattr(hooks, cls)().is_instrumented_by_opentelemetry
                  for name, cls in {CORE!r}.items()}}))
"""


@pytest.mark.parametrize("disabled", ["", "clew_files", "clew_native,clew_processes", "clew"])
def test_opentelemetry_instrument_turns_each_core_instrumentor_off_by_its_name(
    run_instrumented, disabled
):
    """Files, native opens and processes come through clew's one OpenTelemetry entry point,
    `clew`, and each is still turned off by its own name; `clew` turns off all of them."""
    result = run_instrumented(CORE_INSTRUMENTED,
                              env={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled})

    assert result.returncode == 0, result.stderr
    off = set(CORE) if disabled == "clew" else set(filter(None, disabled.split(",")))
    assert json.loads(result.stdout) == {name: name not in off for name in CORE}

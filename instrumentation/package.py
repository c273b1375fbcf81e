# The libraries each instrumentor hooks, with the versions it supports (OpenTelemetry's
# `instrumentation_dependencies`). Local files and processes are captured through the
# standard library, which is always present: those instrumentors require no library.
_instruments: tuple[str, ...] = ()
_instruments_torch = ("torch >= 1.13",)
_instruments_pyarrow = ("pyarrow >= 15.0",)
_instruments_polars = ("polars >= 1.0",)
_instruments_duckdb = ("duckdb >= 1.3",)
_instruments_safetensors = ("safetensors >= 0.4",)
_instruments_h5py = ("h5py >= 3.0",)
_instruments_tokenizers = ("tokenizers >= 0.13",)

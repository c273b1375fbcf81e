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
# One library under either distribution name (`mlflow` depends on `mlflow-skinny`; either
# alone gives the tracking client); TensorBoard's scalars through torch (which needs the
# `tensorboard` distribution) or tensorboardX.
_instruments_any_mlflow = ("mlflow >= 2.0", "mlflow-skinny >= 2.0")
_instruments_wandb = ("wandb >= 0.16",)
_instruments_any_tensorboard = ("tensorboard >= 2.0", "tensorboardX >= 2.0")
_instruments_transformers = ("transformers >= 4.30",)

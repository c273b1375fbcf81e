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

# clew's own instrumentors, instrumented at start-up in this order (the recording core comes
# with the first); every other `clew_instrumentor` entry point is a library hook.
_core = ("clew_files", "clew_native", "clew_processes")

# The modules each library hook patches (its `_patches()`), by its `clew_instrumentor` entry
# point name: the import of any of them loads the hook's code (loader.py), so a process
# that imports none of them never loads it. tests/instrumentation/test_lib_instrumentors.py
# checks that each list is the hook's own.
_SAFETENSORS_FRAMEWORKS = ("flax", "mlx", "numpy", "paddle", "tensorflow", "torch")
_patched_modules = {
    "clew_botocore": ("botocore.session",),
    "clew_duckdb": ("duckdb",),
    "clew_fsspec": ("fsspec", "gcsfs.core"),
    "clew_gcs": ("google.cloud.storage._media.requests.upload", "google.cloud.storage.blob",
                 "google.cloud.storage.bucket", "google.resumable_media.requests.upload"),
    "clew_h5py": ("h5py._hl.files",),
    "clew_mlflow": ("mlflow", "mlflow.tracking.client", "mlflow.tracking.fluent"),
    "clew_polars": ("polars",),
    "clew_pyarrow": ("pyarrow", "pyarrow.csv", "pyarrow.dataset", "pyarrow.feather", "pyarrow.ipc",
                     "pyarrow.json", "pyarrow.orc", "pyarrow.parquet.core"),
    "clew_safetensors": ("safetensors",
                         *(f"safetensors.{name}" for name in _SAFETENSORS_FRAMEWORKS)),
    "clew_tensorboard": ("tensorboardX.writer", "torch.utils.tensorboard.writer"),
    "clew_tokenizers": ("tokenizers",),
    "clew_torch": ("torch", "torch.distributed.elastic.agent.server.api",
                   "torch.utils.data._utils.worker"),
    "clew_transformers": ("transformers.trainer",),
    "clew_wandb": ("wandb", "wandb.sdk.wandb_run"),
}

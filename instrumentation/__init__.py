"""clew's capture hooks: OpenTelemetry instrumentors that record what a program read, wrote
and ran.

Under `opentelemetry-instrument python train.py` they load themselves through the
`opentelemetry_instrumentor` entry point, `clew` (`ClewInstrumentors`, which instruments each
of them by its own name); in code::

    from clew.instrumentation import FilesInstrumentor, ProcessesInstrumentor

    FilesInstrumentor().instrument()
    ProcessesInstrumentor().instrument()

Nothing here imports a database client, nor boto3, fsspec, google-cloud-storage or the
native-I/O libraries (pyarrow, polars, duckdb, safetensors, h5py, tokenizers), nor the
metric trackers (MLflow, W&B, TensorBoard, transformers): those are patched when the program
imports them. A training job carries only the OpenTelemetry SDK,
blake3 and wrapt.
"""

from __future__ import annotations

import importlib
from typing import Any

from .version import __version__

# Imported on first use (PEP 562): the SDK loads clew's resource detector
# (`clew.instrumentation.resource`) while it configures itself, also in processes where every
# clew instrumentor is disabled, and importing a submodule runs this file first.
_LAZY = {
    "ClewInstrumentors": ".loader",
    "ClewResourceDetector": ".resource",
    "DuckdbInstrumentor": ".duckdb",
    "FilesInstrumentor": ".files",
    "FsspecInstrumentor": ".fsspec",
    "GcsInstrumentor": ".gcs",
    "H5pyInstrumentor": ".h5py",
    "MlflowInstrumentor": ".mlflow",
    "NativeInstrumentor": ".native",
    "PolarsInstrumentor": ".polars",
    "ProcessesInstrumentor": ".processes",
    "PyarrowInstrumentor": ".pyarrow",
    "S3Instrumentor": ".s3",
    "SafetensorsInstrumentor": ".safetensors",
    "TensorboardInstrumentor": ".tensorboard",
    "TokenizersInstrumentor": ".tokenizers",
    "TorchInstrumentor": ".torch",
    "TransformersInstrumentor": ".transformers",
    "WandbInstrumentor": ".wandb",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)


__all__ = [
    "ClewInstrumentors",
    "ClewResourceDetector",
    "DuckdbInstrumentor",
    "FilesInstrumentor",
    "FsspecInstrumentor",
    "GcsInstrumentor",
    "H5pyInstrumentor",
    "MlflowInstrumentor",
    "NativeInstrumentor",
    "PolarsInstrumentor",
    "ProcessesInstrumentor",
    "PyarrowInstrumentor",
    "S3Instrumentor",
    "SafetensorsInstrumentor",
    "TensorboardInstrumentor",
    "TokenizersInstrumentor",
    "TorchInstrumentor",
    "TransformersInstrumentor",
    "WandbInstrumentor",
    "__version__",
]

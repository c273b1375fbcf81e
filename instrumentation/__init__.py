"""clew's capture hooks: OpenTelemetry instrumentors that record what a program read, wrote
and ran.

Under `opentelemetry-instrument python train.py` they load themselves through the
`opentelemetry_instrumentor` entry points; in code::

    from clew.instrumentation import FilesInstrumentor, ProcessesInstrumentor

    FilesInstrumentor().instrument()
    ProcessesInstrumentor().instrument()

Nothing here imports a database client: a training job carries only the OpenTelemetry SDK,
blake3 and wrapt.
"""

from .files import FilesInstrumentor
from .processes import ProcessesInstrumentor
from .version import __version__

__all__ = ["FilesInstrumentor", "ProcessesInstrumentor", "__version__"]

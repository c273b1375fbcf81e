"""clew's semantic conventions: the names of every span and attribute clew records.

clew writes provenance (what a run read, wrote and started) as ordinary OpenTelemetry spans, so
the vocabulary follows OpenTelemetry's semantic conventions:

* Where OpenTelemetry already has an attribute (``file.path``, ``process.pid``,
  ``vcs.ref.head.revision``, ``error.type``, ...), clew records that attribute with its standard
  meaning rather than inventing one.
* Everything clew adds lives under the ``provenance.`` namespace, e.g. ``provenance.artifact.uri``
  and ``provenance.io.operation``.

The vocabulary is defined once, in ``semconv/registry/*.yaml`` (OpenTelemetry's
semantic-conventions YAML format). From it ``python -m clew.semconv.generate`` generates:

* :mod:`clew.semconv.attributes`: one constant per attribute (``PROVENANCE_IO_OPERATION``,
  ``FILE_PATH``) and one ``...Values`` enum per enum attribute (``ProvenanceIoOperationValues``);
* :mod:`clew.semconv.spans`: one ``SPAN_...`` constant per span name (``SPAN_READ_FILE``);
* ``docs/semconv.md``: the reference for people reading the data.

Beside the vocabulary, the other contracts every layer shares: :mod:`clew.semconv.environment`
(clew's settings), :mod:`clew.semconv.uris` (how a file or object becomes the URI clew records),
:mod:`clew.semconv.digests` (``blake3:<hex>`` content ids) and :mod:`clew.semconv.redaction`
(what counts as a secret, and how it is left out).

Code outside this package uses those constants and never spells an attribute or span name by
hand. To change the vocabulary, edit the YAML and regenerate; ``--check`` (run by the tests)
fails while a generated file is stale.

This ``__init__`` imports nothing: instrumentation imports :mod:`clew.semconv.attributes` while a
program starts, and the generator's YAML and Jinja2 dependencies must stay off that path.
"""

__all__ = ["attributes", "spans"]

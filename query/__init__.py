"""Questions about runs: the clew CLI and its Python API."""

"""The source files of the modules this process imported, for its process span's code files.

In C where it was built (`_module_files.c`): a DataLoader worker is a fork of its rank, and
walking sys.modules from Python takes a reference to each module and to its file name, which
makes the kernel copy every page they are on (~9 ms of a worker's exit with torch imported,
docs/architecture.md). The C walk reads them by borrowed reference and hands back only the
files that may be the project's (under its root, outside the directories the path filter
excludes, such as a virtualenv inside the project); the Python walk gives the same set after
the caller's checks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

_walk: Callable[[dict, str], tuple[list[str], list[object]]] | None
try:
    from ._module_files import module_files as _walk
except ImportError:  # built without a compiler
    _walk = None


def module_sources(root: str, excluded: tuple[str, ...] = (), *, in_c: bool = True) -> set[str]:
    """Absolute paths of the `.py` files of the modules in sys.modules: every one under the
    directory `root` and under none of the `excluded` prefixes (each ending in "/") and, from
    the Python walk (`in_c=False`, or no extension), also all others."""
    walk = _walk if in_c else None
    if walk is not None:
        files, others = walk(sys.modules, root.rstrip("/") + "/", excluded)
    else:
        files, others = [], list(sys.modules.values())
    for module in others:  # what only getattr can tell (a module-level __getattr__, ...)
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.endswith(".py"):
            files.append(path)
    return {os.path.abspath(path) for path in files}

"""The source files of the modules this process imported, for its process span's code files.

In C where it was built (`_module_files.c`): a DataLoader worker is a fork of its rank, and
walking sys.modules from Python takes a reference to each module and to its file name, which
makes the kernel copy every page they are on (~9 ms of a worker's exit with torch imported,
docs/architecture.md). The C walk reads them by borrowed reference and hands back only the
files that may be the project's (under its root, outside the directories the path filter
excludes, such as a virtualenv inside the project); the Python walk gives the same set after
the caller's checks.

Even the C walk reads every module and its namespace (~1.5-2.5 ms with torch's ~1,400 modules
in a fresh fork), so a process about to fork walks first (`remember_walk`, with references to
what it walked): at exit, a child whose sys.modules still begins with exactly those entries
reads only the modules imported after them (a DataLoader worker imports numpy.random).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NamedTuple

_walk: Callable[..., tuple[list[str], list[object], list | None, list | None] | None] | None
try:
    from ._module_files import module_files as _walk
except ImportError:  # built without a compiler
    _walk = None


class _Walk(NamedTuple):
    """A C walk's result, and the entries of sys.modules it was of: held, so that the same
    pointers are the same objects (a module removed from sys.modules lives on until a later
    walk finds the entries changed and replaces this one)."""

    modules: dict
    prefix: str
    excluded: tuple[str, ...]
    keys: list[str]
    values: list[object]
    files: list[str]
    others: list[object]


_remembered: _Walk | None = None


def _walk_in_c(walk: Callable, root: str, excluded: tuple[str, ...], *, keep: bool,
               ) -> tuple[list[str], list[object]]:
    """(files, others) of the C walk: the remembered walk's and those of the modules after
    its entries, where sys.modules still begins with them; with `keep`, remembered in turn."""
    global _remembered
    modules, prefix, last = sys.modules, root.rstrip("/") + "/", _remembered
    if last is not None and last.modules is modules and (last.prefix, last.excluded) == (
            prefix, excluded):
        newer = walk(modules, prefix, excluded, last.keys, last.values, keep)
        if newer is not None:
            files, others, keys, values = newer
            if keep and keys:
                _remembered = last._replace(keys=last.keys + keys, values=last.values + values,
                                            files=last.files + files, others=last.others + others)
            return last.files + files, last.others + others
    files, others, keys, values = walk(modules, prefix, excluded, [], [], keep)
    if keep:
        _remembered = _Walk(modules, prefix, excluded, keys, values, files, others)
        return list(files), list(others)
    return files, others


def remember_walk(root: str, excluded: tuple[str, ...] = ()) -> bool:
    """Walk sys.modules in C for `module_sources` of the same arguments to reuse, here and in
    a child forked later. False if there was nothing new to walk, or no C walk."""
    if _walk is None:
        return False
    before = _remembered
    _walk_in_c(_walk, root, excluded, keep=True)
    return _remembered is not before


def module_sources(root: str, excluded: tuple[str, ...] = (), *, in_c: bool = True) -> set[str]:
    """Absolute paths of the `.py` files of the modules in sys.modules: every one under the
    directory `root` and under none of the `excluded` prefixes (each ending in "/") and, from
    the Python walk (`in_c=False`, or no extension), also all others."""
    walk = _walk if in_c else None
    if walk is not None:
        files, others = _walk_in_c(walk, root, excluded, keep=False)
    else:
        files, others = [], list(sys.modules.values())
    for module in others:  # what only getattr can tell (a module-level __getattr__, ...)
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.endswith(".py"):
            files.append(path)
    return {os.path.abspath(path) for path in files}

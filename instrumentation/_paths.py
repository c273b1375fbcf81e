"""Which local paths clew records (their URIs: `clew.semconv.uris`)."""

from __future__ import annotations

import fnmatch
import os
import site
import sys
import sysconfig
from pathlib import Path

from clew.semconv import environment

_ALWAYS_EXCLUDED = ("/proc/", "/sys/", "/dev/")
# The operating system's own files, read by libraries on a program's behalf (timezone and
# locale data, certificates, /etc/os-release): not the program's data.
_SYSTEM_FILES = ("/etc/", "/usr/share/", "/usr/lib/", "/usr/lib64/", "/lib/", "/lib64/")


def _interpreter_prefixes() -> set[str]:
    """The interpreter's own trees: the standard library, every site-packages and the
    bytecode cache when it is kept apart."""
    prefixes: set[str] = set()
    if sys.pycache_prefix:  # PYTHONPYCACHEPREFIX: bytecode the import system reads
        prefixes.add(os.path.abspath(sys.pycache_prefix))
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            prefixes.add(paths[key])
    try:
        prefixes.update(site.getsitepackages())
    except AttributeError:  # old virtualenv's site module lacks it
        pass
    user_site = getattr(site, "USER_SITE", None)
    if user_site:
        prefixes.add(user_site)
    return prefixes


def _clew_package_dirs() -> set[str]:
    """clew's own subpackage folders. In an editable install they sit in the checkout next to
    the user's files, so the folders themselves are excluded, not their parent; either way
    they are siblings of this one."""
    parent = Path(__file__).resolve().parent.parent
    return {str(parent / name) for name in ("instrumentation", "semconv", "exporter", "query")}


class PathFilter:
    """Decides, cheaply, whether an absolute path is recorded.

    Excluded by default: the interpreter's standard library and site-packages, /proc, /sys,
    /dev, the operating system's files (/etc, /usr/share, /usr/lib, /lib: timezone and locale
    data, certificates), `__pycache__`, clew's home and clew's own package. `CLEW_INCLUDE` globs win over
    every exclusion; `CLEW_EXCLUDE` globs add to them.
    """

    def __init__(self, home: Path) -> None:
        prefixes = _interpreter_prefixes() | {str(home)} | _clew_package_dirs()
        resolved = {os.path.realpath(prefix) for prefix in prefixes} | prefixes
        self._excluded_prefixes = _ALWAYS_EXCLUDED + _SYSTEM_FILES + tuple(
            sorted(prefix.rstrip("/") + "/" for prefix in resolved if prefix)
        )
        self._include = environment.names(environment.CLEW_INCLUDE)
        self._exclude = environment.names(environment.CLEW_EXCLUDE)

    @property
    def excluded_prefixes(self) -> tuple[str, ...]:
        """The directories (each ending in "/") whose files are never recorded, unless a
        `CLEW_INCLUDE` glob names them."""
        return self._excluded_prefixes

    def prefixes_only(self) -> tuple[str, ...] | None:
        """`excluded_prefixes` when they alone decide, no glob being set: `wants(path)` is
        then exactly "under none of them, and no /__pycache__/", which the C audit hook
        checks itself. None when a glob is set."""
        return None if self._include or self._exclude else self._excluded_prefixes

    @property
    def includes(self) -> bool:
        """Whether `CLEW_INCLUDE` globs were given (they win over `excluded_prefixes`)."""
        return bool(self._include)

    def wants(self, path: str) -> bool:
        """True when `path` (absolute, normalised) should be recorded."""
        if self._include and any(fnmatch.fnmatchcase(path, glob) for glob in self._include):
            return True
        if path.startswith(self._excluded_prefixes) or "/__pycache__/" in path:
            return False
        if self._exclude and any(fnmatch.fnmatchcase(path, glob) for glob in self._exclude):
            return False
        return True


def absolute(path: object) -> str | None:
    """Normalise what an audit event carries (str, bytes, PathLike, fd) to an absolute path;
    None for file descriptors and anything unreadable."""
    # The common case, at a third of abspath's cost: a str that os.path.abspath would return
    # unchanged (absolute, and nothing for normpath to fold: no empty, "." or ".." component,
    # no trailing slash). Checked here, not in a helper: the hook runs it on every open.
    if (type(path) is str and path[:1] == "/" and "/." not in path and "//" not in path
            and path[-1] != "/"):
        return path
    if isinstance(path, int):
        return None
    try:
        text = os.fsdecode(os.fspath(path))  # type: ignore[arg-type]
    except TypeError:
        return None
    return os.path.abspath(text)


def git_work_tree(cwd: str | None = None) -> str | None:
    """The nearest folder at or above `cwd` that holds a `.git` (a work tree), else None."""
    start = Path(cwd or os.getcwd()).absolute()
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return str(directory)
    return None


def project_root(cwd: str | None = None) -> str:
    """The git work tree holding `cwd`, else `cwd`: whose imported sources are "our code"."""
    return git_work_tree(cwd) or str(Path(cwd or os.getcwd()).absolute())


def is_project_source(path: str, root: str, filter_: PathFilter) -> bool:
    """A module file that belongs to the user's project rather than to the interpreter."""
    return path.startswith(root.rstrip("/") + "/") and filter_.wants(path)

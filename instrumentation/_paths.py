"""Which local paths clew records, and how a path becomes a canonical URI."""

from __future__ import annotations

import fnmatch
import os
import re
import site
import socket
import sys
import sysconfig
from pathlib import Path
from urllib.parse import quote, unquote

from clew.semconv import environment

_ALWAYS_EXCLUDED = ("/proc/", "/sys/", "/dev/")
# The operating system's own files, read by libraries on a program's behalf (timezone and
# locale data, certificates, /etc/os-release): not the program's data.
_SYSTEM_FILES = ("/etc/", "/usr/share/", "/usr/lib/", "/usr/lib64/", "/lib/", "/lib64/")
_HOST = socket.gethostname()


_URI_SAFE = "/:@!$&()*+,;=~-._"
# Characters quote() would encode with _URI_SAFE: most names have none, and a search is a
# fraction of quote()'s cost.
_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9/:@!$&()*+,;=~\-._]").search


# A name that is not valid in the filesystem's encoding reaches Python with its undecodable
# bytes as lone surrogates (os.fsdecode): quoted as os.fsencode would encode them, the URI
# holds the name's real bytes, percent-encoded, where strict UTF-8 would raise.
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def quote_uri_path(text: str) -> str:
    """`text` percent-encoded for a URI's path, as the bytes os.fsencode gives; never raises."""
    try:
        return quote(text, safe=_URI_SAFE, encoding=_FS_ENCODING, errors=_FS_ERRORS)
    except UnicodeEncodeError:
        # A lone surrogate no OS name decodes to (a str made in the program, an object key
        # in memory): its UTF-16 code unit, UTF-8 encoded, so the URI still names it.
        return quote(text, safe=_URI_SAFE, errors="surrogatepass")


def file_uri(path: str) -> str:
    """`file://<host>/<absolute path>`, percent-encoded where a URI needs it: the path's
    bytes on disk, so `path_of_file_uri` gives back the very path."""
    return f"file://{_HOST}{quote_uri_path(path)}"


def path_of_file_uri(uri: str) -> str:
    """The local path a `file_uri` names (its host is not checked), as os.fsdecode gives it:
    a name that is not valid UTF-8 comes back with its real bytes."""
    path = "/" + uri.split("/", 3)[3] if uri.count("/") >= 3 else "/"
    return unquote(path, encoding=_FS_ENCODING, errors=_FS_ERRORS)


def file_uris(directory: str, names: list[str]) -> list[str]:
    """`file_uri` of each of `names` in `directory`, quoting the directory once."""
    prefix = file_uri(directory).rstrip("/") + "/"
    return [
        prefix + (quote_uri_path(name) if _NEEDS_QUOTING(name) else name)
        for name in names
    ]


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

    def wants(self, path: str) -> bool:
        """True when `path` (absolute, normalised) should be recorded."""
        if self._include and any(fnmatch.fnmatchcase(path, glob) for glob in self._include):
            return True
        if path.startswith(self._excluded_prefixes) or "/__pycache__/" in path:
            return False
        if self._exclude and any(fnmatch.fnmatchcase(path, glob) for glob in self._exclude):
            return False
        return True


def _is_normal_absolute(path: str) -> bool:
    """Whether os.path.abspath would return `path` unchanged: absolute, and nothing for
    normpath to fold (no empty, "." or ".." component, no trailing slash)."""
    return path[:1] == "/" and "/." not in path and "//" not in path and path[-1] != "/"


def absolute(path: object) -> str | None:
    """Normalise what an audit event carries (str, bytes, PathLike, fd) to an absolute path;
    None for file descriptors and anything unreadable."""
    if type(path) is str and _is_normal_absolute(path):
        return path  # the common case, at a third of abspath's cost
    if isinstance(path, int):
        return None
    try:
        text = os.fsdecode(os.fspath(path))  # type: ignore[arg-type]
    except TypeError:
        return None
    return os.path.abspath(text)


def project_root(cwd: str | None = None) -> str:
    """The git work tree holding `cwd`, else `cwd`: whose imported sources are "our code"."""
    start = Path(cwd or os.getcwd()).absolute()
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return str(directory)
    return str(start)


def is_project_source(path: str, root: str, filter_: PathFilter) -> bool:
    """A module file that belongs to the user's project rather than to the interpreter."""
    return path.startswith(root.rstrip("/") + "/") and filter_.wants(path)

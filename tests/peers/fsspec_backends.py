"""fsspec's shared filesystem tests (`fsspec.tests.abstract`, as its sdist and wheel ship
them) bound to its local and memory filesystems, as fsspec's own repository binds them.

Not collected with clew's tests: tests/peers copies it into a folder of its own and runs it
there, plain and under clew.
"""

import pytest

import fsspec
import fsspec.tests.abstract as abstract
from fsspec.implementations.local import LocalFileSystem


class LocalFixtures(abstract.AbstractFixtures):
    @pytest.fixture
    def fs(self):
        return LocalFileSystem(auto_mkdir=True)

    @pytest.fixture
    def fs_path(self, tmpdir):
        return str(tmpdir)


class MemoryFixtures(abstract.AbstractFixtures):
    @pytest.fixture
    def fs(self):
        memory = fsspec.filesystem("memory")
        self._empty(memory)
        yield memory
        self._empty(memory)

    @staticmethod
    def _empty(memory):
        memory.store.clear()
        memory.pseudo_dirs[:] = [""]

    @pytest.fixture
    def fs_join(self):
        return lambda *parts: "/".join(parts)

    @pytest.fixture
    def fs_path(self):
        return ""


SUITES = {
    "Copy": abstract.AbstractCopyTests, "Get": abstract.AbstractGetTests,
    "Put": abstract.AbstractPutTests, "Pipe": abstract.AbstractPipeTests,
    "Open": abstract.AbstractOpenTests,
}
for _backend, _fixtures in (("Local", LocalFixtures), ("Memory", MemoryFixtures)):
    for _name, _suite in SUITES.items():
        _test = f"Test{_backend}{_name}"
        globals()[_test] = type(_test, (_suite, _fixtures), {})

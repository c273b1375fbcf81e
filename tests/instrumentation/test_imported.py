"""The process span's code files: the C walk of sys.modules and the Python one agree."""

from __future__ import annotations

import sys
import types

import pytest

from clew.instrumentation import _imported


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project with modules imported in every way a code file can be named."""
    root = tmp_path / "project"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "plain.py").write_text("X = 1\n")
    (root / "pkg" / "lazy.py").write_text("def __getattr__(name):\n    raise AttributeError(name)\n")
    (tmp_path / "elsewhere.py").write_text("")
    for name in ("given.py", "folded.py", "other.py"):  # files of the modules made below
        (root / name).write_text(f"# {name}\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("pkg", "pkg.plain", "pkg.lazy", "elsewhere"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    __import__("pkg.plain"), __import__("pkg.lazy"), __import__("elsewhere")
    # A module whose file name only its __getattr__ gives, one named through "..", and an
    # object in sys.modules that is no module.
    given = types.ModuleType("given")
    given.__getattr__ = lambda name: str(root / "given.py") if name == "__file__" else None
    folded = types.ModuleType("folded")
    folded.__file__ = str(root / "pkg" / ".." / "folded.py")
    other = types.SimpleNamespace(__file__=str(root / "other.py"))
    hidden = types.ModuleType("hidden")  # under a dot-directory: no folding to do
    hidden.__file__ = str(root.parent / ".venv" / "hidden.py")
    for name, module in (("given", given), ("folded", folded), ("other_object", other),
                         ("hidden", hidden)):
        monkeypatch.setitem(sys.modules, name, module)
    return root


@pytest.mark.skipif(_imported._walk is None, reason="the C extension was not built")
def test_the_c_walk_finds_what_the_python_walk_finds_under_the_root(project):
    under = f"{project}/"
    in_c = {p for p in _imported.module_sources(str(project)) if p.startswith(under)}
    in_python = {p for p in _imported.module_sources(str(project), in_c=False) if p.startswith(under)}
    assert in_c == in_python == {
        f"{project}/pkg/__init__.py", f"{project}/pkg/plain.py", f"{project}/pkg/lazy.py",
        f"{project}/given.py", f"{project}/folded.py", f"{project}/other.py",
    }


def test_the_python_walk_also_gives_files_outside_the_root(project):
    outside = {str(project.parent / "elsewhere.py"), str(project.parent / ".venv" / "hidden.py")}
    assert outside <= _imported.module_sources(str(project), in_c=False)
    if _imported._walk is not None:  # the C walk leaves out what cannot be the project's
        assert not outside & _imported.module_sources(str(project))
        excluded = (f"{project}/pkg/",)
        assert f"{project}/pkg/plain.py" not in _imported.module_sources(str(project), excluded)


@pytest.mark.parametrize("in_c", [True, False], ids=["C walk", "Python walk"])
def test_the_process_span_names_the_projects_imported_files(project, tmp_path, monkeypatch, in_c):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from clew.instrumentation._process_span import ProcessSpan
    from clew.instrumentation._recorder import Recorder
    from clew.instrumentation._settings import Settings
    from clew.semconv import attributes as attr
    from clew.semconv import environment

    if in_c and _imported._walk is None:
        pytest.skip("the C extension was not built")
    if not in_c:
        monkeypatch.setattr(_imported, "_walk", None)
    for name in ("TRACEPARENT", "TRACESTATE", environment.CLEW_RUN_ID):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(project)  # the project's root: where the recorder starts
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    settings = Settings(home=tmp_path / "home", hashing=True, hash_max_bytes=1 << 30,
                        flush_interval=3600, stamp=False)
    process = ProcessSpan(tracer, "fork", None)
    process.context()  # started, as a process that recorded anything has it
    recorder = Recorder(tracer, settings, process, background=False)
    recorder.close(exit_code=0)
    (span,) = exporter.get_finished_spans()
    files = list(span.attributes[attr.PROVENANCE_CODE_FILES])
    assert files == ["folded.py", "given.py", "other.py", "pkg/__init__.py", "pkg/lazy.py",
                     "pkg/plain.py"]
    digests = span.attributes[attr.PROVENANCE_CODE_DIGESTS]
    assert len(digests) == 6 and all(d.startswith("blake3:") for d in digests)


def test_forked_children_name_the_modules_they_have_at_exit(run_instrumented, spool, workdir):
    """A parent's walk before each fork is reused by its children: one that imports nothing
    more, one that imports another module, one whose sys.modules lost a module and had
    another put under its name, and one whose code file changed after the fork each name
    the files and digests of what they have at exit."""
    from clew.semconv import attributes as attr
    from clew_test_helpers import assert_succeeded, digest_of

    for name in ("first", "second", "later", "replacement"):
        (workdir / f"{name}.py").write_text(f"NAME = {name!r}\n")
    result = run_instrumented(
        """
        import importlib.util, os, sys
        sys.path.insert(0, os.getcwd())
        import first, second

        def child(name, change):
            pid = os.fork()
            if pid == 0:
                open("first.py").read()  # something to record: the child's span starts
                change()
                os._exit(0)
            os.waitpid(pid, 0)
            print(name, pid)

        def replace():
            del sys.modules["second"]
            spec = importlib.util.spec_from_file_location("second", "replacement.py")
            sys.modules["second"] = importlib.util.module_from_spec(spec)

        def edit():
            with open("first.py", "a") as handle:
                handle.write("EDITED = True\\n")

        child("same", lambda: None)
        child("imports", lambda: __import__("later"))
        child("replaced", replace)
        child("edited", edit)
        """
    )
    assert_succeeded(result)
    pids = {int(pid): name for name, pid in (line.split() for line in result.stdout.splitlines())}
    spool.wait_for_writers()
    code = {
        pids[span.attributes[attr.PROCESS_PID]]: dict(zip(
            span.attributes[attr.PROVENANCE_CODE_FILES],
            span.attributes[attr.PROVENANCE_CODE_DIGESTS]))
        for span in spool.spans() if span.attributes.get(attr.PROCESS_PID) in pids
        and attr.PROVENANCE_CODE_FILES in span.attributes
    }

    def digests(*names: str, edited: bool = False) -> dict[str, str]:
        contents = {name: f"NAME = {name!r}\n".encode() for name in names}
        if edited:
            contents["first"] += b"EDITED = True\n"
        return {f"{name}.py": digest_of(content) for name, content in contents.items()}

    assert code == {
        "same": digests("first", "second"),
        "imports": digests("first", "second", "later"),
        "replaced": digests("first", "replacement"),
        "edited": digests("first", "second", edited=True),
    }

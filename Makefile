# clew: the two commands that do all the set-up on a fresh machine (python3 >= 3.10 and make).
#
#   make demo   create .venv, install clew with the demo, store and export extras, run the demo
#   make test   create .venv, install clew with the test, store and export extras, run the tests
#
# Installs are remembered by a stamp file inside .venv whose name carries a digest of
# pyproject.toml, setup.py and the C library's source, so a second run installs nothing until
# one of them changes (and deleting .venv starts over). Pass extra pytest arguments with `make test PYTEST_ARGS='-k spool -x'`.
#
# `make test` runs every test but those marked slow: the full-scale runs (200,000 files, s3fs's
# whole suite), each of which also runs at a smaller scale unmarked, so CI covers every
# capability. The tests run on PYTEST_WORKERS pytest-xdist workers (2: this project's machines
# have two cores, and a run in one process keeps less than one of them busy, waiting on the
# programs its tests start), a test file at a time per worker; `make test PYTEST_WORKERS=0`
# (or PYTEST_ARGS=-n0) runs them in one process, one after the other. `make test
# PYTEST_MARKERS=slow` runs the full-scale ones, `make test PYTEST_MARKERS=` everything.

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
PYTEST_MARKERS ?= not slow
PYTEST_WORKERS ?= 2

BIN := $(VENV)/bin
VPY := $(BIN)/python
# Content digest, not mtime: a fresh clone or a `touch` must not force a reinstall, an edit must.
# setup.py and the C sources count too: an edit there must rebuild the LD_PRELOAD library.
BUILD_INPUTS := pyproject.toml setup.py $(wildcard instrumentation/_preload_*.[ch])
PYPROJECT_KEY := $(shell $(PYTHON) -c "import hashlib, sys; print(hashlib.sha256(b''.join(open(p,'rb').read() for p in sys.argv[1:])).hexdigest()[:16])" $(BUILD_INPUTS))
PIP := $(VPY) -m pip --disable-pip-version-check

.PHONY: demo test help clean-demo mpirun-available chromium-available
.DEFAULT_GOAL := help

help:
	@echo "make demo   set up .venv and run the example pipeline under clew"
	@echo "make test   set up .venv and run the tests (what CI runs: .ci/run)"

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-test-$(PYPROJECT_KEY): | $(VPY)
	$(PIP) install -e '.[test,store,export]'
	@rm -f $(VENV)/.installed-test-*
	@touch $@

$(VENV)/.installed-demo-$(PYPROJECT_KEY): | $(VPY)
	$(PIP) install -e '.[demo,store,export]'
	@rm -f $(VENV)/.installed-demo-*
	@touch $@

demo: $(VENV)/.installed-demo-$(PYPROJECT_KEY)
	$(VPY) examples/pipeline/demo.py

# tests/distributed runs real mpirun: Open MPI is a system package (Debian's openmpi-bin).
# Installed only when missing, and only where we may (root, as on this project's machines).
mpirun-available:
	@command -v mpirun >/dev/null 2>&1 || { \
		echo "make test: installing Open MPI (openmpi-bin) for the mpirun tests"; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends openmpi-bin; }

# tests/query/test_export.py renders `clew export --format html` in headless Chromium (Debian's
# chromium package); installed only when missing, like Open MPI above.
chromium-available:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "make test: installing Chromium (chromium) for the HTML export test"; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; }

# pytest exits 5 when it collected no tests: that is a broken suite, never a pass.
# --dist loadfile: a file's module-scoped launches and servers run once, on one worker;
# --no-loadscope-reorder: files are handed out in the order tests/conftest.py puts them in,
# the longest first, rather than by their number of tests.
test: $(VENV)/.installed-test-$(PYPROJECT_KEY) mpirun-available chromium-available
	@status=0; $(VPY) -m pytest -q -ra -p no:cacheprovider \
		-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		-m '$(PYTEST_MARKERS)' $(PYTEST_ARGS) \
		|| status=$$?; \
	if [ $$status -eq 5 ]; then \
		echo "make test: FAILED: pytest collected no tests (exit 5); the suite must not be empty" >&2; \
		exit 1; \
	fi; \
	exit $$status

clean-demo:
	rm -rf examples/pipeline/.clew examples/pipeline/data examples/pipeline/features \
		examples/pipeline/models examples/pipeline/metrics.json

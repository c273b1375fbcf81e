"""Rank detection, the resource detector and the trace-id scheme, without launchers.

The environments below are what each launcher sets (their documentation, and Open MPI
4.1's mpirun as observed); the real launchers run in tests/distributed.
"""

from __future__ import annotations

import os

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from clew.exporter.distro import with_clew_detector
from clew.instrumentation import _joining, _ranks
from clew.instrumentation._process_span import ProcessSpan, remote_context
from clew.instrumentation.resource import ClewResourceDetector
from clew.semconv import attributes as attr

TORCHRUN_WORKER = {
    "RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2",
    "GROUP_RANK": "1", "TORCHELASTIC_RUN_ID": "none", "MASTER_ADDR": "10.0.0.1",
    "MASTER_PORT": "29500",
}
SLURM_TASK = {
    "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
    "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "8", "SLURM_NODEID": "2",
    "SLURM_CLUSTER_NAME": "c1",
}
OPEN_MPI_RANK = {
    "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
    "OMPI_COMM_WORLD_NODE_RANK": "1", "OMPI_MCA_ess_base_jobid": "1734279169",
    "OMPI_MCA_orte_precondition_transports": "1ad62f58199f00e5-cd35796ddfbf2f28",
    "PMIX_RANK": "1", "PMIX_NAMESPACE": "1734279169",
}


def test_torchrun_worker():
    placement = _ranks.detect(TORCHRUN_WORKER)
    assert (placement.launcher, placement.rank, placement.local_rank) == ("torchelastic", 3, 1)
    assert (placement.world_size, placement.node_rank, placement.run_id) == (4, 1, "none")
    assert placement.joined_by == "heuristic"  # a reused id and a fixed port repeat


def test_slurm_step_is_certain_and_wins_the_identity_under_torchrun():
    placement = _ranks.detect(SLURM_TASK)
    assert (placement.launcher, placement.rank, placement.local_rank) == ("slurm", 5, 1)
    assert (placement.world_size, placement.node_rank, placement.run_id) == (8, 2, "4242.0")
    assert placement.joined_by == "launcher"
    # `srun torchrun`: torchrun numbers the ranks, SLURM identifies the launch.
    both = _ranks.detect({**SLURM_TASK, **TORCHRUN_WORKER})
    assert (both.launcher, both.rank) == ("torchelastic", 3)
    assert both.identity == placement.identity and both.joined_by == "launcher"


def test_slurm_batch_script_is_no_distributed_launch():
    batch = {k: v for k, v in SLURM_TASK.items() if k != "SLURM_STEP_ID"}
    assert not _ranks.detect(batch).distributed


def test_open_mpi_rank():
    placement = _ranks.detect(OPEN_MPI_RANK)
    assert (placement.launcher, placement.rank, placement.world_size) == ("openmpi", 1, 2)
    assert placement.node_rank is None  # OMPI_COMM_WORLD_NODE_RANK ranks within a node
    assert placement.joined_by == "launcher"


def test_pmix_mpich_and_the_generic_convention():
    pmix = _ranks.detect({"PMIX_RANK": "2", "PMIX_NAMESPACE": "prterun-h-77@1"})
    assert (pmix.launcher, pmix.rank, pmix.joined_by) == ("pmix", 2, "heuristic")
    mpich = _ranks.detect({"PMI_RANK": "1", "PMI_SIZE": "4", "PMI_FD": "9"})
    assert (mpich.launcher, mpich.rank, mpich.world_size, mpich.identity) == ("mpich", 1, 4, ())
    generic = {"RANK": "1", "WORLD_SIZE": "2", "NODE_RANK": "1", "LOCAL_RANK": "0"}
    accelerate = _ranks.detect({**generic, "MASTER_ADDR": "h0", "MASTER_PORT": "29500"})
    assert (accelerate.launcher, accelerate.rank, accelerate.node_rank) == ("env", 1, 1)
    assert accelerate.joined_by == "heuristic"
    assert _ranks.detect(generic).identity == ()  # no rendezvous address: nothing shared


def test_malformed_values_count_as_absent():
    assert not _ranks.detect({"RANK": "x", "WORLD_SIZE": "2"}).distributed
    assert _ranks.detect({**TORCHRUN_WORKER, "LOCAL_RANK": ""}).local_rank is None


def test_elastic_agent_is_recognised_by_its_command():
    assert _ranks.is_elastic_agent(["/venv/bin/python3", "/venv/bin/torchrun", "x.py"])
    assert _ranks.is_elastic_agent(["python", "-m", "torch.distributed.run", "x.py"])
    assert not _ranks.is_elastic_agent(["python", "train.py", "torchrun"])


def test_detector_resource(monkeypatch):
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in SLURM_TASK.items():
        monkeypatch.setenv(name, value)
    attributes = ClewResourceDetector().detect().attributes
    assert attributes[attr.PROVENANCE_RANK] == 5
    assert attributes[attr.PROVENANCE_NODE_RANK] == 2
    assert attributes[attr.PROVENANCE_LAUNCHER_RUN_ID] == "4242.0"
    assert attr.HOST_NAME in attributes


def test_resource_create_runs_the_detector_and_the_user_keeps_the_last_word(monkeypatch):
    """What the distro arranges: clew's detector first, the user's detectors and
    OTEL_RESOURCE_ATTRIBUTES after it, so they win on a conflict."""
    for name, value in TORCHRUN_WORKER.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", with_clew_detector("process"))
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"{attr.PROVENANCE_NODE_RANK}=9")
    resource = Resource.create()
    assert resource.attributes[attr.PROVENANCE_RANK] == 3
    assert resource.attributes[attr.PROVENANCE_NODE_RANK] == "9"  # the user's, as a string
    assert "process.pid" in resource.attributes  # the user's own detector still ran


@pytest.mark.parametrize(
    ("configured", "expected"),
    [("", "clew"), ("process", "clew,process"), ("otel, process", "clew,otel,process"),
     ("process,clew", "process,clew"), ("*", "*")],
)
def test_distro_adds_the_detector_without_dropping_the_users(configured, expected):
    assert with_clew_detector(configured) == expected


def test_derived_ids_are_shared_and_differ_per_identity_and_sequence():
    identity = ("slurm", "c1", "4242", "0", "0", "")
    assert _joining.derive_ids(identity, 0) == _joining.derive_ids(list(identity), 0)
    assert _joining.derive_ids(identity, 0) != _joining.derive_ids(identity, 1)
    assert _joining.derive_ids(identity, 0) != _joining.derive_ids(("slurm", "c1", "4242", "1"), 0)
    trace_id, span_id = _joining.derive_ids(identity, 0)
    assert 0 < trace_id < 2**128 and 0 < span_id < 2**64


def test_claims_count_each_ranks_runs(tmp_path):
    identity = ("openmpi", "1734279169")
    assert [_joining.claim(identity, 0, str(tmp_path)) for _ in range(3)] == [0, 1, 2]
    assert _joining.claim(identity, 1, str(tmp_path)) == 0  # every rank counts its own
    assert _joining.claim(("other",), 0, str(tmp_path)) == 0


def test_unwritable_claims_fall_back_to_the_first(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    assert _joining.claim(("x",), 0, str(blocked / "claims")) == 0


@pytest.fixture
def tracer_and_spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def test_root_span_has_the_derived_ids_and_peers_name_it(tracer_and_spans):
    tracer, exporter = tracer_and_spans
    ids = _joining.derive_ids(("slurm", "c1", "1", "0"), 0)
    root = ProcessSpan(tracer, "run", None, root_ids=ids, joined_by="launcher")
    peer = ProcessSpan(tracer, "peer", remote_context(*ids), joined_by="launcher")
    for process in (root, peer):
        process.context()
        process.end(exit_code=0, exception=None, code_files=None, errors=[])
    other = tracer.start_span("after")
    other.end()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert (spans["run"].context.trace_id, spans["run"].context.span_id) == ids
    assert spans["run"].parent is None
    assert spans["process"].context.trace_id == ids[0]
    assert spans["process"].parent.span_id == ids[1]
    assert spans["process"].attributes[attr.PROVENANCE_RUN_JOINED_BY] == "launcher"
    assert spans["after"].context.span_id != ids[1]  # only the one span is pinned


def test_a_waiting_span_adopts_its_run_until_it_starts(tracer_and_spans):
    tracer, exporter = tracer_and_spans
    process = ProcessSpan(tracer, "run", None, root_ids=(5, 6), deferred=True)
    assert process.waiting and process.ids() == (5, 6)
    assert process.adopt("peer", remote_context(7, 8), root_ids=None, joined_by="rendezvous")
    process.annotate({attr.PROVENANCE_WORKER_ID: 1})
    process.context()
    assert not process.waiting
    assert not process.adopt("run", None, root_ids=(1, 2), joined_by=None)  # too late
    process.end(exit_code=0, exception=None, code_files=None, errors=[])
    (span,) = exporter.get_finished_spans()
    assert span.context.trace_id == 7 and span.parent.span_id == 8
    assert span.attributes[attr.PROVENANCE_PROCESS_ROLE] == "peer"
    assert span.attributes[attr.PROVENANCE_WORKER_ID] == 1

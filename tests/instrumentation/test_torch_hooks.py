"""The torch instrumentor's DataLoader-worker and torchrun-rendezvous hooks in code:
what they record, a hook failure, uninstrumented, and the host's
errors passing through. The real launchers run in tests/distributed.

torch is not imported: each case patches small stand-ins for
`torch.utils.data._utils.worker` and `torch.distributed.elastic.agent.server.api`, in a
fresh interpreter (one recorder per process), which prints its spans as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from clew.semconv import attributes as attr
from clew.semconv import spans as span_names

PRELUDE = """
import json, pickle, sys, types
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from clew.instrumentation import _dataloader, _elastic, _lifecycle, _ranks

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)


def fake_worker_module():
    worker = types.ModuleType("fake_worker")
    handling = types.ModuleType("fake_worker.signal_handling")
    handling._set_worker_signal_handlers = lambda: None
    worker.signal_handling = handling

    def _worker_loop(dataset_kind, dataset, index_queue, data_queue, done_event,
                     auto_collation, collate_fn, drop_last, base_seed, init_fn, worker_id,
                     num_workers, persistent_workers, shared_seed):
        if dataset == "boom":
            raise ValueError("the dataset's own error")
        return ("looped", worker_id)

    _worker_loop.__module__, _worker_loop.__qualname__ = "fake_worker", "_worker_loop"
    worker._worker_loop = _worker_loop
    sys.modules["fake_worker"] = worker
    return worker


def loop_args(worker_id, dataset="data"):
    return (0, dataset, None, None, None, True, None, False, 0, None, worker_id, 2, False, 0)


class Store:
    def __init__(self, value=None):
        self.value = value

    def compare_set(self, key, expected, desired):
        assert key == _elastic.STORE_KEY and expected == ""
        if self.value is None:
            self.value = desired
        return self.value.encode()


def fake_agent_module():
    api = types.ModuleType("fake_agent_api")

    class SimpleElasticAgent:
        def _rendezvous(self, worker_group):
            if worker_group.fail:
                raise RuntimeError("rendezvous timed out")
            worker_group.group_rank, worker_group.group_world_size = 1, 2

    api.SimpleElasticAgent = SimpleElasticAgent
    return api


def worker_group(store, fail=False):
    handler = types.SimpleNamespace(get_run_id=lambda: "job")
    return types.SimpleNamespace(spec=types.SimpleNamespace(rdzv_handler=handler),
                                 store=store, fail=fail, group_rank=None,
                                 group_world_size=None)


def finish(**results):
    _lifecycle.close(0)
    spans = [
        {
            "name": s.name,
            "attributes": dict(s.attributes),
            "resource": dict(s.resource.attributes),
            "trace_id": s.context.trace_id,
            "span_id": s.context.span_id,
            "parent": s.parent.span_id if s.parent else None,
        }
        for s in exporter.get_finished_spans()
    ]
    print("RESULT" + json.dumps({"spans": spans, **results}))
"""


def _run_case(body: str, base_env, workdir) -> dict:
    code = PRELUDE + textwrap.dedent(body)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, env=base_env, capture_output=True,
        text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def _process_span(outcome: dict) -> dict:
    names = (span_names.SPAN_RUN, span_names.SPAN_PROCESS)
    (span,) = [s for s in outcome["spans"] if s["name"] in names]
    return span


def test_worker_loop_labels_the_worker_and_stays_picklable(base_env, workdir):
    outcome = _run_case(
        """
        worker = fake_worker_module()
        _dataloader.patch(worker)
        pickled = pickle.loads(pickle.dumps(worker._worker_loop))  # as spawn sends it
        result = worker._worker_loop(*loop_args(1))
        open("shard.bin", "wb").close()
        finish(result=result, same=pickled is worker._worker_loop,
               resource=dict(provider.resource.attributes))
        """,
        base_env,
        workdir,
    )
    assert outcome["result"] == ["looped", 1]
    assert outcome["same"]
    assert outcome["resource"][attr.PROVENANCE_WORKER_ID] == 1
    assert _process_span(outcome)["attributes"][attr.PROVENANCE_WORKER_ID] == 1


def test_worker_hook_failure_is_recorded_and_the_loop_runs(base_env, workdir):
    outcome = _run_case(
        """
        worker = fake_worker_module()
        _dataloader.patch(worker)
        def broken(attributes):
            raise OSError("no resource here")
        _dataloader.update_resource = broken
        finish(result=worker._worker_loop(*loop_args(0)))
        """,
        base_env,
        workdir,
    )
    assert outcome["result"] == ["looped", 0]
    errors = _process_span(outcome)["attributes"][attr.PROVENANCE_CAPTURE_ERRORS]
    assert any("DataLoader worker" in e and "no resource here" in e for e in errors)


def test_worker_error_passes_through_and_unpatch_restores(base_env, workdir):
    outcome = _run_case(
        """
        worker = fake_worker_module()
        original = worker._worker_loop, worker.signal_handling._set_worker_signal_handlers
        _dataloader.patch(worker)
        _dataloader.patch(worker)  # idempotent: wrapped once
        wrapped_once = worker._worker_loop.__wrapped__ is original[0]
        try:
            worker._worker_loop(*loop_args(0, dataset="boom"))
            raised = None
        except ValueError as error:
            raised = str(error)
        _dataloader.unpatch(worker)
        restored = (worker._worker_loop, worker.signal_handling._set_worker_signal_handlers)
        finish(raised=raised, wrapped_once=wrapped_once, restored=restored == original)
        """,
        base_env,
        workdir,
    )
    assert outcome["raised"] == "the dataset's own error"
    assert outcome["wrapped_once"] and outcome["restored"]


def test_agent_adopts_the_trace_another_node_proposed(base_env, workdir):
    outcome = _run_case(
        """
        _ranks.is_elastic_agent = lambda argv=None: True  # as under `torchrun`
        api = fake_agent_module()
        _elastic.patch(api)
        process = _lifecycle.get_recorder().process
        waiting = process.waiting
        other = f"{7:032x}-{9:016x}"
        api.SimpleElasticAgent()._rendezvous(worker_group(Store(other)))
        finish(waiting=waiting)
        """,
        base_env,
        workdir,
    )
    assert outcome["waiting"]
    span = _process_span(outcome)
    assert span["name"] == span_names.SPAN_PROCESS
    assert span["attributes"][attr.PROVENANCE_PROCESS_ROLE] == "peer"
    assert span["attributes"][attr.PROVENANCE_RUN_JOINED_BY] == "rendezvous"
    assert (span["trace_id"], span["parent"]) == (7, 9)
    assert span["resource"][attr.PROVENANCE_NODE_RANK] == 1
    assert span["resource"][attr.PROVENANCE_LAUNCHER_RUN_ID] == "job"


def test_agent_that_proposes_first_is_the_root(base_env, workdir):
    outcome = _run_case(
        """
        _ranks.is_elastic_agent = lambda argv=None: True
        api = fake_agent_module()
        _elastic.patch(api)
        store = Store()
        api.SimpleElasticAgent()._rendezvous(worker_group(store))
        finish(stored=store.value)
        """,
        base_env,
        workdir,
    )
    span = _process_span(outcome)
    assert span["name"] == span_names.SPAN_RUN and span["parent"] is None
    assert outcome["stored"] == f"{span['trace_id']:032x}-{span['span_id']:016x}"


def test_rendezvous_error_passes_through_and_the_span_still_ends(base_env, workdir):
    outcome = _run_case(
        """
        _ranks.is_elastic_agent = lambda argv=None: True
        api = fake_agent_module()
        _elastic.patch(api)
        _lifecycle.get_recorder()  # as TorchInstrumentor.instrument() does
        try:
            api.SimpleElasticAgent()._rendezvous(worker_group(Store(), fail=True))
            raised = None
        except RuntimeError as error:
            raised = str(error)
        _elastic.unpatch(api)
        finish(raised=raised, unwrapped=not hasattr(api.SimpleElasticAgent._rendezvous,
                                                    "__wrapped__"))
        """,
        base_env,
        workdir,
    )
    assert outcome["raised"] == "rendezvous timed out"
    assert outcome["unwrapped"]
    assert _process_span(outcome)["attributes"][attr.PROVENANCE_PROCESS_ROLE] == "run"

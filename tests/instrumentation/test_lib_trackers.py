"""The metrics a program logs to MLflow, W&B, TensorBoard and a transformers Trainer, and the
links both ways between the clew run and the MLflow and W&B runs. Real programs under
opentelemetry-instrument with the real libraries and no network: MLflow on a local file
store, W&B offline, TensorBoard's writers on local event files, a Trainer on a tiny randomly
initialised model on the CPU. The instrumentors in code (uninstrumented, suppressed, a
failing hook): the end of this module.

Each test checks the exact points the run's `metrics` spans carry (name, value, step, in the
order logged), and what the tracker itself kept: the MLflow run's `clew.run_id` tag read back
with MlflowClient, the W&B run's config read back from its offline run file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clew.semconv import attributes as attr
from clew.semconv import spans as span_names
from instrumentor_cases import process_span
from library_cases import library_case

pytestmark = pytest.mark.integration

OFFLINE = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "MLFLOW_ALLOW_FILE_STORE": "true",
           "TOKENIZERS_PARALLELISM": "false"}


def metric_points(spans, source: str) -> dict[str | None, list[tuple[str, float, int]]]:
    """Tracker run -> the (name, value, step) points the hooks recorded for `source`, in
    order: its metrics spans without a file (a metric file the program wrote, an event file
    or MLflow's file store, is parsed by clew apart: test_metric_files.py); `spans` as
    (name, attributes) pairs."""
    found: dict[str | None, list[tuple[str, float, int]]] = {}
    for name, attributes in spans:
        if (name != span_names.SPAN_METRICS or attributes[attr.PROVENANCE_METRIC_SOURCE] != source
                or attr.PROVENANCE_ARTIFACT_URI in attributes):
            continue
        found.setdefault(attributes.get(attr.PROVENANCE_TRACKER_RUN), []).extend(zip(
            attributes[attr.PROVENANCE_METRICS_NAME], attributes[attr.PROVENANCE_METRICS_VALUE],
            attributes[attr.PROVENANCE_METRICS_STEP]))
    return found


def spooled_points(spool, source: str) -> dict[str | None, list[tuple[str, float, int]]]:  # noqa: ANN001
    return metric_points(((s.name, s.attributes) for s in spool.spans()), source)


def printed(result, prefix: str):  # noqa: ANN001, ANN201 - a CompletedProcess; JSON
    """The JSON the program printed after `prefix`."""
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith(prefix))
    return json.loads(line[len(prefix):])


# -- MLflow ------------------------------------------------------------------------------------

MLFLOW_PROGRAM = """
import json
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric
import numpy as np

mlflow.set_tracking_uri("file:" + __import__("os").path.abspath("mlruns"))
with mlflow.start_run() as run:
    mlflow.log_metric("accuracy", 0.5, step=1)
    mlflow.log_metric("accuracy", np.float32(0.75), step=2)
    mlflow.log_metrics({"loss": 1.5, "epochs": 3})
    mlflow.log_param("lr", 0.1)
    with mlflow.start_run(nested=True) as child:  # its points are its own
        mlflow.log_metric("accuracy", 0.25, step=1)
client = MlflowClient()
made = client.create_run(run.info.experiment_id)
client.log_metric(made.info.run_id, "f1", 0.25, step=4)
client.log_batch(made.info.run_id, metrics=[Metric("f1", 0.125, 0, 5), Metric("auc", 0.875, 0, 5)])
client.set_terminated(made.info.run_id)
with mlflow.start_run(tags={"clew.run_id": "the user's own"}) as own:
    pass
print("RUNS" + json.dumps([run.info.run_id, made.info.run_id, own.info.run_id, child.info.run_id]))
"""


def test_mlflow_metrics_and_the_runs_clew_tag(run_instrumented, spool, workdir, monkeypatch,
                                               clew_cli):
    pytest.importorskip("mlflow")
    result = run_instrumented(MLFLOW_PROGRAM, env=OFFLINE)
    fluent, made, own, child = printed(result, "RUNS")

    run_id = spool.run().run_id
    # The run that logs no metric is named on clew's side too, with no points.
    assert spooled_points(spool, "mlflow") == {
        f"mlflow:{fluent}": [("accuracy", 0.5, 1), ("accuracy", 0.75, 2), ("loss", 1.5, 0),
                             ("epochs", 3.0, 0)],
        f"mlflow:{child}": [("accuracy", 0.25, 1)],
        f"mlflow:{made}": [("f1", 0.25, 4), ("f1", 0.125, 5), ("auc", 0.875, 5)],
        f"mlflow:{own}": [],
    }
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"file:{workdir / 'mlruns'}")
    tags = {run: client.get_run(run).data.tags.get("clew.run_id")
            for run in (fluent, made, own, child)}
    assert tags == {fluent: run_id, made: run_id, own: "the user's own", child: run_id}
    # What the clew side names is what MLflow has.
    history = client.get_metric_history(fluent, "accuracy")
    assert [(m.value, m.step) for m in history] == [(0.5, 1), (0.75, 2)]

    # The other way: `clew metrics` names every MLflow run of the clew run, the one that
    # logged no metric too, though it adds no row to clew_metrics.
    series = clew_cli("metrics", "--format", "json").json()
    assert [run["run_id"] for run in series["runs"]] == [run_id]
    assert series["runs"][0]["trackers"] == sorted(
        f"mlflow:{r}" for r in (fluent, made, own, child))
    rows = clew_cli("sql", "SELECT TrackerRun, count() AS n FROM clew_metrics WHERE Source = "
                    "'mlflow' GROUP BY TrackerRun", "--format", "json").json()["rows"]
    assert {r["TrackerRun"]: int(r["n"]) for r in rows} == {
        f"mlflow:{fluent}": 4, f"mlflow:{child}": 1, f"mlflow:{made}": 3}


# -- W&B ---------------------------------------------------------------------------------------

WANDB_PROGRAM = """
import json
import numpy as np, torch, wandb

run = wandb.init(project="clew-test", config={"lr": 0.1})
wandb.log({"loss": 1.5, "eval": {"accuracy": np.float32(0.75), "f1": torch.tensor(0.5)}})
wandb.log({"loss": 1.25, "histogram": wandb.Histogram([1, 2, 3]), "note": "text"})
run.log({"loss": 1.0}, step=10)
run.log({"accuracy": 0.875}, step=10, commit=True)
wandb.log({"loss": 0.5})
run.log({"loss": 9.0}, step=3)  # before the current step: W&B drops it
run.log({"lr": 0.01}, commit=False)  # the step of the next call
run.log({"loss": 0.25})
run.finish()
own = wandb.init(project="clew-test", config={"clew.run_id": "the user's own"})
own.finish()
print("RUN" + json.dumps([run.path, run.settings.sync_file, own.path, own.settings.sync_file]))
"""


def wandb_records(path: Path) -> list[bytes]:
    """The records of a W&B run file (a LevelDB-style log: a 7-byte header, then 32 KiB
    blocks of chunks, each with a 7-byte header: checksum, length, type)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, position, block = [], b"", 7, 32768
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block  # the block's zero-padded tail
            continue
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), data[position + 6]
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or a record's last chunk
            records.append(pending)
            pending = b""
    return records


def wandb_config(path: Path) -> dict:
    """The run's config as its offline run file keeps it (the updates, in order)."""
    from wandb.proto import wandb_internal_pb2

    config = {}
    for data in wandb_records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        updates = record.config.update if kind == "config" else record.run.config.update if kind == "run" else ()
        config.update((item.key, json.loads(item.value_json)) for item in updates)
    return config


def wandb_history(path: Path) -> dict[int, dict]:
    """The run's history rows as its offline run file keeps them: step -> {key: value}."""
    from wandb.proto import wandb_internal_pb2

    rows = {}
    for data in wandb_records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            items = record.history.item
            rows[record.history.step.num] = {
                item.key or ".".join(item.nested_key): json.loads(item.value_json)
                for item in items if not (item.key or item.nested_key[0]).startswith("_")}
    return rows


def test_wandb_metrics_and_the_runs_clew_config(run_instrumented, spool, workdir):
    pytest.importorskip("wandb")
    result = run_instrumented(WANDB_PROGRAM, env=OFFLINE)
    path, sync_file, own_path, own_sync_file = printed(result, "RUN")

    run_id = spool.run().run_id
    # The run that logs nothing is named on clew's side too, with no points.
    assert spooled_points(spool, "wandb") == {
        f"wandb:{own_path}": [],
        f"wandb:{path}": [
            ("loss", 1.5, 0), ("eval.accuracy", 0.75, 0), ("eval.f1", 0.5, 0),
            ("loss", 1.25, 1),
            ("loss", 1.0, 10), ("accuracy", 0.875, 10),
            ("loss", 0.5, 11),
            ("lr", 0.01, 12), ("loss", 0.25, 12),
        ],
    }
    assert path.endswith("clew-test/" + Path(sync_file).stem.removeprefix("run-"))
    # W&B kept the same final values; the step logged backwards is in neither.
    history = wandb_history(Path(sync_file))
    assert history[12] == {"lr": 0.01, "loss": 0.25}
    assert 3 not in history and history[10] == {"loss": 1.0, "accuracy": 0.875}
    config = wandb_config(Path(sync_file))
    assert (config["clew.run_id"], config["lr"]) == (run_id, 0.1)
    assert wandb_config(Path(own_sync_file))["clew.run_id"] == "the user's own"


# -- TensorBoard -------------------------------------------------------------------------------

TENSORBOARD_PROGRAM = """
import numpy as np, torch
from torch.utils.tensorboard import SummaryWriter

writer = SummaryWriter("runs/torch")
writer.add_scalar("loss", 1.5, 0)
writer.add_scalar("loss", torch.tensor(0.75), global_step=np.int64(1))
writer.add_scalar("lr", np.float64(0.125))
writer.add_scalars("eval", {"accuracy": 0.5, "f1": 0.25}, 2)
writer.close()
"""
TENSORBOARDX_PROGRAM = """
from tensorboardX import SummaryWriter

with SummaryWriter("runs/x") as writer:
    writer.add_scalar("loss", 0.5, 3)
    writer.add_scalars("eval", {"accuracy": 0.75}, global_step=4)
"""


def test_tensorboard_scalars(run_instrumented, spool):
    pytest.importorskip("tensorboard")
    result = run_instrumented(TENSORBOARD_PROGRAM, env=OFFLINE)

    assert result.returncode == 0, result.stderr
    assert spooled_points(spool, "tensorboard") == {None: [
        ("loss", 1.5, 0), ("loss", 0.75, 1), ("lr", 0.125, 0),
        ("eval/accuracy", 0.5, 2), ("eval/f1", 0.25, 2),
    ]}


def test_tensorboardx_scalars(run_instrumented, spool):
    pytest.importorskip("tensorboardX")
    result = run_instrumented(TENSORBOARDX_PROGRAM, env=OFFLINE)

    assert result.returncode == 0, result.stderr
    assert spooled_points(spool, "tensorboard") == {None: [
        ("loss", 0.5, 3), ("eval/accuracy", 0.75, 4),
    ]}


# -- transformers Trainer ----------------------------------------------------------------------

TRAINER_PROGRAM = """
import json, torch
from torch.utils.data import Dataset
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

torch.manual_seed(0)
config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, num_labels=2)


class Pairs(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return {"input_ids": torch.tensor([1 + i, 2, 3, 4]), "labels": torch.tensor(i % 2)}


arguments = TrainingArguments("out", max_steps=4, logging_steps=1, per_device_train_batch_size=2,
                              eval_strategy="steps", eval_steps=2, save_strategy="no",
                              report_to="tensorboard", use_cpu=True, disable_tqdm=True)
trainer = Trainer(model=BertForSequenceClassification(config), args=arguments,
                  train_dataset=Pairs(), eval_dataset=Pairs())
trainer.evaluate()  # before any training (an eval-only run does only this): at step 0
print("EVALUATED" + json.dumps(trainer.state.log_history))
trainer.train()  # a new state: its log history starts empty
print("HISTORY" + json.dumps(trainer.state.log_history))
"""


def test_transformers_trainer_logs(run_instrumented, spool):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    result = run_instrumented(TRAINER_PROGRAM, env=OFFLINE)
    evaluated, history = printed(result, "EVALUATED"), printed(result, "HISTORY")

    # Every value of the trainer's log history (what trainer_state.json keeps), at its step:
    # training losses and learning rates, the evaluations, the run's summary; once, whatever
    # callbacks report it elsewhere too.
    expected = [(name, float(value), entry["step"]) for entry in evaluated + history
                for name, value in entry.items() if name != "step"]
    assert {name for name, _, _ in expected} >= {"loss", "learning_rate", "eval_loss", "train_loss",
                                                  "total_flos", "epoch"}
    assert expected[0][::2] == ("eval_loss", 0)  # the evaluation before training
    assert spooled_points(spool, "transformers") == {None: expected}
    # The losses the Trainer's TensorBoard callback logged, recorded by that hook too.
    losses = [(value, step) for name, value, step in expected if name == "loss"]
    tensorboard = spooled_points(spool, "tensorboard")[None]
    assert [(value, step) for name, value, step in tensorboard if name == "train/loss"] == losses


# -- the instrumentors in code -----------------------------------------------------------------

HOOKS = """
import numpy as np
from clew.instrumentation import MlflowInstrumentor, TensorboardInstrumentor, WandbInstrumentor
INSTRUMENTORS = (MlflowInstrumentor(), TensorboardInstrumentor(), WandbInstrumentor())
def instrument():
    for instrumentor in INSTRUMENTORS:
        instrumentor.instrument()
def uninstrument():
    for instrumentor in INSTRUMENTORS:
        instrumentor.uninstrument()
def log(value):
    import mlflow, wandb
    from torch.utils.tensorboard import SummaryWriter
    mlflow.set_tracking_uri("file:" + os.path.abspath("mlruns"))
    with mlflow.start_run() as run:
        mlflow.log_metric("m", value)
    tags = mlflow.MlflowClient().get_run(run.info.run_id).data.tags
    with wandb.init(project="p") as wandb_run:
        wandb.log({"w": value})
        config = dict(wandb_run.config)
    with SummaryWriter("tb") as writer:
        writer.add_scalar("t", value, 0)
    return ["clew.run_id" in tags, "clew.run_id" in config]
"""


def trackers_case(body: str, base_env: dict, workdir: Path) -> dict:
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    pytest.importorskip("tensorboard")
    return library_case(HOOKS, body, {**base_env, **OFFLINE}, workdir)


def points_of(outcome: dict) -> list[tuple[str, float, int]]:
    return sorted((n, v, s) for source in ("mlflow", "wandb", "tensorboard")
                  for points in metric_points(((s["name"], s["attributes"]) for s in outcome["spans"]),
                                              source).values()
                  for n, v, s in points)


def test_instrumentors_uninstrumented_restore_the_libraries(base_env, workdir):
    """uninstrument() puts the libraries' own functions back and records nothing more, also
    through a name bound while they were wrapped; instrumenting again, with the libraries
    imported, patches them at once; the trackers are imported by the program, not by clew."""
    outcome = trackers_case("""
        instrument()
        imported_early = sorted(m for m in ("mlflow", "wandb", "tensorboard") if m in sys.modules)
        linked = log(0.5)
        uninstrument()
        import mlflow.tracking.client, wandb.sdk.wandb_run, torch.utils.tensorboard.writer, wrapt
        wrapped = (mlflow.tracking.client.MlflowClient.log_metric, wandb.sdk.wandb_run.Run.log,
                   torch.utils.tensorboard.writer.SummaryWriter.add_scalar)
        unlinked = log(0.25)
        instrument()
        linked_again = log(0.125)
        finish(imported_early=imported_early, linked=linked, unlinked=unlinked,
               linked_again=linked_again, restored=[not isinstance(f, wrapt.ObjectProxy) for f in wrapped])
        """, base_env, workdir)

    assert outcome["imported_early"] == []
    assert (outcome["linked"], outcome["unlinked"], outcome["linked_again"]) == (
        [True, True], [False, False], [True, True])
    assert outcome["restored"] == [True] * 3
    assert points_of(outcome) == sorted(
        (name, value, step) for value in (0.5, 0.125) for name, step in (("m", 0), ("w", 0), ("t", 0)))


def test_instrumentors_suppressed_record_nothing(base_env, workdir):
    outcome = trackers_case("""
        instrument()
        with suppress_instrumentation():
            linked = log(0.5)
        finish(linked=linked)
        """, base_env, workdir)

    assert outcome["linked"] == [False, False]
    assert points_of(outcome) == []


def test_instrumentors_failing_hook_is_swallowed(base_env, workdir):
    """A failure inside clew's hooks never reaches the program: its logging works and is
    tagged, the failure is kept on the process span."""
    outcome = trackers_case("""
        instrument()
        def broken(*args, **kwargs):
            raise RuntimeError("simulated capture bug")
        _lifecycle.get_recorder().metric = broken
        finish(linked=[log(0.5) for _ in range(2)])
        """, base_env, workdir)

    assert outcome["linked"] == [[True, True]] * 2
    errors = process_span(outcome)["attributes"][attr.PROVENANCE_CAPTURE_ERRORS]
    assert any("simulated capture bug" in e for e in errors)
    assert points_of(outcome) == []


def test_a_program_that_never_imports_them_does_not_import_them(run_instrumented):
    result = run_instrumented("""
        import sys
        names = ("mlflow", "wandb", "tensorboard", "tensorboardX", "transformers", "torch")
        print(sorted(m for m in names if m in sys.modules))
        """)

    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr

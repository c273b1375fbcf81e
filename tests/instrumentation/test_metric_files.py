"""Metrics and configs captured without code changes: real programs under
opentelemetry-instrument write metric files and read config files, and the spool holds one
`metrics` span per metric file (its points exact) and one `config` span per config read (its
keys and values flattened, secrets redacted). One check goes through the real store: the
spans arrive in `otel_traces` with their arrays whole.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from clew.semconv import attributes as attr
from clew.semconv import spans as span_names

pytestmark = pytest.mark.integration

TENSORBOARD = importlib.util.find_spec("tensorboard") is not None

METRIC_WRITER = r"""
import csv, json, os, sys

tensorboard = sys.argv[1] == "1"
if tensorboard:
    from torch.utils.tensorboard import SummaryWriter  # before the files: one flush for them
os.makedirs("out/mlruns/0/0123abcd/metrics", exist_ok=True)

# Rewritten at each epoch: only the content it ends with is parsed.
for epoch in range(3):
    with open("out/metrics.json", "w") as handle:
        json.dump({"accuracy": 0.5 + epoch / 8, "eval": {"loss": 1.0 / (epoch + 1)},
                   "name": "run", "done": epoch == 2, "bad": float("nan")}, handle)

import yaml  # clew parses YAML only in a program that imported PyYAML

with open("out/metrics.yaml", "w") as handle:
    yaml.safe_dump({"f1": 0.75, "per_class": [0.5, 0.25], "model": "resnet"}, handle)

# Lightning's CSVLogger: sparse rows, an epoch and a step column.
with open("out/metrics.csv", "w", newline="") as handle:
    handle.write("epoch,step,train_loss,val_acc\n0,9,0.5,\n0,9,,0.75\n1,19,0.25,\n1,19,,0.875\n")

with open("out/metrics_history.csv", "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["epoch", "loss"])
    writer.writerows([[1, 0.5], [2, 0.25]])

with open("out/metrics.tsv", "w") as handle:  # no step column: the last row
    handle.write("acc\tloss\n0.5\t1.0\n0.75\t0.5\n")

with open("out/trainer_state.json", "w") as handle:
    json.dump({"log_history": [
        {"loss": 1.5, "learning_rate": 0.001, "epoch": 0.5, "step": 10},
        {"eval_accuracy": 0.625, "epoch": 1.0, "step": 20},
    ], "best_metric": 0.625, "global_step": 20}, handle)

with open("out/all_results.json", "w") as handle:
    json.dump({"eval_accuracy": 0.625, "train_runtime": 12.5}, handle)

with open("out/mlruns/0/0123abcd/metrics/val_loss", "w") as handle:
    handle.write("1700000000000 0.5 0\n1700000001000 0.25 1\n")

with open("out/model.json", "w") as handle:  # not a metric file by its name
    json.dump({"accuracy": 0.1}, handle)

if tensorboard:
    board = SummaryWriter("out/tb")
    for step, loss in enumerate([1.0, 0.5, 0.25]):
        board.add_scalar("loss", loss, step)
    board.add_scalar("acc", 0.75, 3, new_style=True)
    board.close()

# A forked child writes a metrics file of its own: its points are its own, the parent's are
# not repeated.
pid = os.fork()
if pid == 0:
    os.makedirs("out/child", exist_ok=True)
    with open("out/child/metrics.json", "w") as handle:
        json.dump({"child_accuracy": 0.5}, handle)
    os._exit(0)
os.waitpid(pid, 0)
print("done")
"""

EXPECTED_FILE_POINTS = {
    "out/metrics.json": [("accuracy", 0.75, -1), ("eval.loss", 1.0 / 3, -1)],
    "out/metrics.yaml": [("f1", 0.75, -1), ("per_class.0", 0.5, -1), ("per_class.1", 0.25, -1)],
    "out/metrics.csv": [("train_loss", 0.5, 9), ("val_acc", 0.75, 9),
                        ("train_loss", 0.25, 19), ("val_acc", 0.875, 19)],
    "out/metrics_history.csv": [("loss", 0.5, 1), ("loss", 0.25, 2)],
    "out/metrics.tsv": [("acc", 0.75, -1), ("loss", 0.5, -1)],
    "out/trainer_state.json": [("loss", 1.5, 10), ("learning_rate", 0.001, 10),
                               ("eval_accuracy", 0.625, 20), ("best_metric", 0.625, 20)],
    "out/all_results.json": [("eval_accuracy", 0.625, -1), ("train_runtime", 12.5, -1)],
    "out/mlruns/0/0123abcd/metrics/val_loss": [("val_loss", 0.5, 0), ("val_loss", 0.25, 1)],
    "out/child/metrics.json": [("child_accuracy", 0.5, -1)],
}


def _points(span) -> list[tuple[str, float, int]]:
    attributes = span.attributes
    return list(zip(attributes[attr.PROVENANCE_METRICS_NAME],
                    attributes[attr.PROVENANCE_METRICS_VALUE],
                    attributes[attr.PROVENANCE_METRICS_STEP]))


def test_metric_files_a_run_writes_become_metric_points(run_instrumented, spool, workdir):
    """Each metric file is one `metrics` span of its last content's points, with the file's
    URI; MLflow's file store names its run; TensorBoard's event file is a `tensorboard`
    source; a file whose name is no metric file's gives none; a forked child's file is its."""
    result = run_instrumented(METRIC_WRITER, "1" if TENSORBOARD else "0")
    assert result.returncode == 0, result.stderr
    spans = [s for s in spool.spans() if s.name == span_names.SPAN_METRICS]
    # The files' points; those the TensorBoard hook recorded at the calls have no file.
    metrics = [s for s in spans if attr.PROVENANCE_ARTIFACT_URI in s.attributes]
    by_uri: dict[str, list] = {}
    for span in metrics:
        by_uri.setdefault(span.attributes[attr.PROVENANCE_ARTIFACT_URI], []).append(span)
    expected = {spool.uri(workdir / name): points for name, points in EXPECTED_FILE_POINTS.items()}
    board = [uri for uri in by_uri if "/out/tb/events.out.tfevents." in uri]
    assert {uri: [_points(s) for s in found] for uri, found in by_uri.items()
            if uri not in board} == {uri: [points] for uri, points in expected.items()}

    for uri, (span,) in by_uri.items():
        source = span.attributes[attr.PROVENANCE_METRIC_SOURCE]
        assert source == ("tensorboard" if uri in board else "file")
        tracker_run = span.attributes.get(attr.PROVENANCE_TRACKER_RUN)
        assert tracker_run == ("mlflow:0123abcd" if "/mlruns/" in uri else None)
    child = by_uri[spool.uri(workdir / "out/child/metrics.json")][0]
    parent = by_uri[spool.uri(workdir / "out/metrics.json")][0]
    assert child.attributes[attr.PROCESS_PID] != parent.attributes[attr.PROCESS_PID]

    if TENSORBOARD:
        (uri,) = board
        assert _points(by_uri[uri][0]) == [("loss", 1.0, 0), ("loss", 0.5, 1), ("loss", 0.25, 2),
                                           ("acc", 0.75, 3)]
        (called,) = [s for s in spans if s not in metrics]
        assert _points(called) == _points(by_uri[uri][0])


def test_clew_metric_files_chooses_the_metric_files(run_instrumented, spool, workdir):
    """CLEW_METRIC_FILES replaces the default globs: a glob without `/` matches names, one
    with `/` the end of a path."""
    result = run_instrumented(METRIC_WRITER, "0",
                              env={"CLEW_METRIC_FILES": "model.json,*/mlruns/*/*/metrics/*"})
    assert result.returncode == 0, result.stderr
    found = sorted((s.attributes[attr.PROVENANCE_ARTIFACT_URI], _points(s))
                   for s in spool.spans() if s.name == span_names.SPAN_METRICS)
    assert found == [
        (spool.uri(workdir / "out/mlruns/0/0123abcd/metrics/val_loss"),
         [("val_loss", 0.5, 0), ("val_loss", 0.25, 1)]),
        (spool.uri(workdir / "out/model.json"), [("accuracy", 0.1, -1)]),
    ]


NO_YAML = r"""
import sys

with open("metrics.yaml", "w") as handle:
    handle.write("f1: 0.75\n")
with open("config.yaml", "w") as handle:
    handle.write("lr: 0.1\n")
with open("config.yaml") as handle:
    text = handle.read()
with open("metrics.json", "w") as handle:
    handle.write('{"acc": 0.5}')
print("yaml" in sys.modules)
"""


def test_yaml_is_parsed_only_in_a_program_that_imported_pyyaml(run_instrumented, spool):
    """clew never imports a library into the program: a program that writes and reads YAML
    as text has no PyYAML loaded at its end, and no points or config from those files; its
    JSON metrics are still read."""
    result = run_instrumented(NO_YAML)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]
    found = [(s.name, s.attributes[attr.PROVENANCE_ARTIFACT_URI].rsplit("/", 1)[1])
             for s in spool.spans() if s.name in (span_names.SPAN_METRICS, span_names.SPAN_CONFIG)]
    assert found == [(span_names.SPAN_METRICS, "metrics.json")]


CONFIG_READER = r"""
import configparser, json, tomllib
import yaml

with open("configs/train.yaml") as handle:
    train = yaml.safe_load(handle)
with open("configs/train.yaml") as handle:  # read again, same content: one config
    yaml.safe_load(handle)
with open("configs/model.json") as handle:
    model = json.load(handle)
with open("configs/settings.toml", "rb") as handle:
    settings = tomllib.load(handle)
parser = configparser.ConfigParser()
parser.read("configs/app.ini")
with open("data/records.json") as handle:  # a list of records: data, not a config
    records = json.load(handle)
print(train["optimizer"]["lr"], model["hidden"], settings["training"]["epochs"], len(records))
"""

SECRETS = ("hunter2-yaml-pw", "pg-secret-99", "json-secret-abc123", "toml-secret-tok",
           "ini-secret-pw", "hf_" + "q" * 34)

CONFIGS = {
    "configs/train.yaml": (
        "optimizer:\n  name: adam\n  lr: 0.01\nlayers: [64, 32]\nshuffle: true\n"
        "db:\n  password: hunter2-yaml-pw\n  host: db.internal\n"
        "data_url: postgres://alice:pg-secret-99@db/x\nhub: hf_" + "q" * 34 + "\n",
        {"optimizer.name": '"adam"', "optimizer.lr": "0.01", "layers.0": "64", "layers.1": "32",
         "shuffle": "true", "db.password": '"REDACTED"', "db.host": '"db.internal"',
         "data_url": '"REDACTED"', "hub": '"REDACTED"'},
    ),
    "configs/model.json": (
        json.dumps({"hidden": 128, "api_key": "json-secret-abc123", "dropout": 0.1,
                    "extra": None, "tags": []}),
        {"hidden": "128", "api_key": '"REDACTED"', "dropout": "0.1", "extra": "null",
         "tags": "[]"},
    ),
    "configs/settings.toml": (
        '[training]\nepochs = 3\nscheduler = "cosine"\n\n[hub]\ntoken = "toml-secret-tok"\n',
        {"training.epochs": "3", "training.scheduler": '"cosine"', "hub.token": '"REDACTED"'},
    ),
    "configs/app.ini": (
        "[DEFAULT]\nretries = 2\n\n[server]\nhost = example.org\npassword = ini-secret-pw\n",
        {"DEFAULT.retries": '"2"', "server.host": '"example.org"',
         "server.password": '"REDACTED"'},
    ),
}


def test_config_files_a_run_reads_become_keys_and_values(run_instrumented, spool, workdir,
                                                          clew_cli):
    """One `config` span per config file read (per content version), its leaves flattened
    under dotted keys with JSON values, under the read's URI and digest; secrets, by key or
    by value, never reach the spool; a JSON list is data, not a config."""
    pytest.importorskip("yaml")
    for name, (text, _expected) in CONFIGS.items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text)
    (workdir / "data").mkdir()
    (workdir / "data/records.json").write_text(json.dumps([{"x": 1}, {"x": 2}]))

    result = run_instrumented(CONFIG_READER)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0.01", "128", "3", "2"]

    configs = [s for s in spool.spans() if s.name == span_names.SPAN_CONFIG]
    assert sorted(s.attributes[attr.PROVENANCE_ARTIFACT_URI] for s in configs) == sorted(
        spool.uri(workdir / name) for name in CONFIGS)
    run = spool.run()
    for name, (_text, expected) in CONFIGS.items():
        (span,) = [s for s in configs
                   if s.attributes[attr.PROVENANCE_ARTIFACT_URI] == spool.uri(workdir / name)]
        assert dict(zip(span.attributes[attr.PROVENANCE_CONFIG_KEY],
                        span.attributes[attr.PROVENANCE_CONFIG_VALUE])) == expected
        assert span.attributes[attr.PROVENANCE_ARTIFACT_DIGEST] == (
            spool.only(run, "read", workdir / name).digest)

    text = spool.text()
    for secret in SECRETS:
        assert secret not in text

    # Through the store, as the Collector's table holds them.
    rows = clew_cli(
        "sql", "SELECT SpanAttributes['provenance.config.key'] AS keys, "
        "SpanAttributes['provenance.config.value'] AS values FROM otel_traces "
        "WHERE SpanName = 'config' AND endsWith(SpanAttributes['provenance.artifact.uri'], "
        "'settings.toml')", "--format", "json",
    ).json()["rows"]
    assert [(json.loads(r["keys"]), json.loads(r["values"])) for r in rows] == [
        (["training.epochs", "training.scheduler", "hub.token"],
         ["3", '"cosine"', '"REDACTED"'])]

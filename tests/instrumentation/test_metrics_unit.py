"""Metric points and configs in the recorder, in this process: what `record_metric` calls and
metric files written become as `metrics` spans, at the flushes and at exit, and which config
files read become `config` spans.

The recorder is the one of test_recorder_unit (an in-memory exporter, a clock the test
moves, no worker thread). What a real program shows (exit, fork, the files it writes) is
tested end to end in test_metric_files.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from test_recorder_unit import Capture

from clew.instrumentation import _config_files, _metric_files, _metric_points, _metrics
from clew.instrumentation._process_span import ProcessSpan
from clew.semconv import attributes as attr
from clew.semconv import environment, spans


@pytest.fixture
def capture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Capture:
    for name in ("TRACEPARENT", "TRACESTATE", environment.CLEW_RUN_ID):
        monkeypatch.delenv(name, raising=False)
    result = Capture(tmp_path / "home")
    monkeypatch.setattr(_metrics, "get_recorder", lambda: result.recorder)
    return result


def _metric_spans(capture: Capture) -> list[ReadableSpan]:
    return [s for s in capture.exporter.get_finished_spans() if s.name == spans.SPAN_METRICS]


def _points(span: ReadableSpan) -> list[tuple[str, float, int]]:
    attributes = span.attributes or {}
    return list(zip(attributes[attr.PROVENANCE_METRICS_NAME],
                    attributes[attr.PROVENANCE_METRICS_VALUE],
                    attributes[attr.PROVENANCE_METRICS_STEP]))


def test_points_become_one_span_per_source_file_and_run_at_the_flush(capture: Capture) -> None:
    """Points are emitted at the next flush, grouped by (source, file, tracker run), in the
    order they were logged, under the process span."""
    _metrics.record_metric("mlflow", "loss", 0.5, 0, tracker_run="mlflow:abc")
    _metrics.record_metric("mlflow", "acc", 0.7, 0, tracker_run="mlflow:abc")
    _metrics.record_metric("tensorboard", "loss", 0.5, 0)
    _metrics.record_metric("mlflow", "loss", 0.25, 1, tracker_run="mlflow:abc")
    _metrics.record_metric("file", "f1", 0.9, uri="file://h/out/metrics.json")
    assert _metric_spans(capture) == []
    capture.tick()

    found = {
        (s.attributes[attr.PROVENANCE_METRIC_SOURCE],
         s.attributes.get(attr.PROVENANCE_ARTIFACT_URI),
         s.attributes.get(attr.PROVENANCE_TRACKER_RUN)): _points(s)
        for s in _metric_spans(capture)
    }
    assert found == {
        ("mlflow", None, "mlflow:abc"): [("loss", 0.5, 0), ("acc", 0.7, 0), ("loss", 0.25, 1)],
        ("tensorboard", None, None): [("loss", 0.5, 0)],
        ("file", "file://h/out/metrics.json", None): [("f1", 0.9, -1)],
    }
    process = trace.get_current_span(capture.recorder.process.context()).get_span_context()
    for span in _metric_spans(capture):
        assert span.parent.span_id == process.span_id


def test_each_flush_emits_only_the_points_added_since(capture: Capture) -> None:
    _metrics.record_metric("wandb", "loss", 1.0, 0)
    capture.tick()
    _metrics.record_metric("wandb", "loss", 0.5, 1)
    capture.tick()
    capture.tick()  # nothing new: no span
    capture.recorder.flush()
    assert [_points(s) for s in _metric_spans(capture)] == [[("loss", 1.0, 0)], [("loss", 0.5, 1)]]


def test_values_that_are_not_finite_numbers_are_skipped(capture: Capture) -> None:
    """A bool, a string, NaN, infinity and an int too large for a double are no metric
    points; an int value is a float; a step that is not an integer is no step."""
    numpy = pytest.importorskip("numpy")
    for value in (True, "0.5", float("nan"), float("inf"), None, 10**400, numpy.bool_(True)):
        _metrics.record_metric("wandb", "bad", value)  # type: ignore[arg-type]
    _metrics.record_metric("wandb", "int", 3, 2)
    _metrics.record_metric("wandb", "numpy", numpy.float32(0.5), numpy.int64(7))
    _metrics.record_metric("wandb", "step", 1.5, 2.0)  # type: ignore[arg-type]
    _metrics.record_metric("wandb", "flag-step", 1.5, True)  # type: ignore[arg-type]
    _metrics.record_metric("wandb", 7, 1.5)  # type: ignore[arg-type]
    capture.recorder.flush()
    (span,) = _metric_spans(capture)
    assert _points(span) == [("int", 3.0, 2), ("numpy", 0.5, 7), ("step", 1.5, -1),
                             ("flag-step", 1.5, -1)]
    assert capture.recorder.errors == []


def test_a_long_series_keeps_its_start_an_even_sample_and_its_last_point(
    capture: Capture,
) -> None:
    """A metric logged 10,007 times: the first points go out at the flushes as they come,
    the rest are thinned evenly and go out at exit, the last one always kept; at most
    MAX_POINTS_PER_NAME points in all, and the span at exit says how many were left out.
    Another metric of the group is bounded on its own."""
    total = 10_007
    for step in range(total):
        _metrics.record_metric("transformers", "loss", 1.0 / (step + 1), step)
        if step % 1000 == 0:
            _metrics.record_metric("transformers", "lr", 0.1, step)
        if step == 3000:
            capture.tick()
    capture.recorder.flush()
    loss = [step for span in _metric_spans(capture) for name, _v, step in _points(span)
            if name == "loss"]
    head = _metric_points.HEAD_POINTS
    assert loss[:head] == list(range(head))
    assert loss[-1] == total - 1
    assert len(loss) <= _metric_points.MAX_POINTS_PER_NAME
    sample = loss[head:-1]
    gaps = {b - a for a, b in zip(sample, sample[1:])}
    assert len(gaps) == 1 and len(sample) > _metric_points.TAIL_POINTS // 2
    lr = [step for span in _metric_spans(capture) for name, _v, step in _points(span)
          if name == "lr"]
    assert lr == list(range(0, total, 1000))
    left_out = [s.attributes.get(attr.PROVENANCE_METRICS_LEFT_OUT) for s in _metric_spans(capture)]
    assert left_out == [None, total - len(loss)]


def test_a_replaced_group_keeps_only_its_last_points(capture: Capture) -> None:
    """A metric file parsed again before the flush: only the last parse is emitted, and a
    parse of more points than the bound keeps its first and last and an even sample, and
    says how many it left out."""
    key = ("file", "file://h/metrics.csv", None)
    capture.recorder.metrics.replace(key, [("acc", 0.1, 0)], 1)
    capture.recorder.metrics.replace(key, [("acc", float(i), i) for i in range(5000)], 2)
    capture.tick()
    (span,) = _metric_spans(capture)
    steps = [step for _n, _v, step in _points(span)]
    assert len(steps) == _metric_points.MAX_POINTS_PER_NAME
    assert steps[0] == 0 and steps[-1] == 4999
    assert max(b - a for a, b in zip(steps, steps[1:])) <= 6
    assert span.attributes[attr.PROVENANCE_METRICS_LEFT_OUT] == 5000 - len(steps)


def test_a_forked_childs_recorder_starts_with_no_points(capture: Capture) -> None:
    """Points logged before a fork are the parent's: the child's recorder, reset at fork,
    emits only its own."""
    _metrics.record_metric("wandb", "loss", 1.0, 0)
    recorder = capture.recorder
    recorder.after_fork_in_child(ProcessSpan(recorder._tracer, "fork", None))
    _metrics.record_metric("wandb", "loss", 0.5, 1)
    recorder.flush()
    assert [_points(s) for s in _metric_spans(capture)] == [[("loss", 0.5, 1)]]


def test_a_metric_file_is_parsed_when_its_content_settles(capture: Capture,
                                                          tmp_path: Path) -> None:
    """A metric file's points are those of each content version the recorder records, its
    URI on the span; a file over the size cap, or whose name is no metric file's, gives
    none."""
    metrics = tmp_path / "metrics.json"
    capture.write(metrics, b'{"acc": 0.5}')
    capture.write(metrics, b'{"acc": 0.625}')  # before it settled: this content only
    capture.settle()
    capture.write(metrics, b'{"acc": 0.75}')
    capture.write(tmp_path / "model.json", b'{"acc": 0.1}')
    big = b'{"acc": 0.9, "pad": "' + b"x" * environment.METRIC_FILE_MAX_BYTES + b'"}'
    capture.write(tmp_path / "metrics_big.json", big)
    capture.recorder.flush()
    found = [(s.attributes[attr.PROVENANCE_ARTIFACT_URI].rsplit("/", 1)[1], _points(s))
             for s in _metric_spans(capture)]
    assert found == [("metrics.json", [("acc", 0.625, -1)]), ("metrics.json", [("acc", 0.75, -1)])]


@pytest.mark.parametrize("name", ["metrics.json", "metrics.yaml", "metrics.csv", "metrics.tsv",
                                  "trainer_state.json", "events.out.tfevents.1.host",
                                  "mlruns/0/r1/metrics/loss"])
def test_a_malformed_metric_file_gives_no_points_and_no_error(name: str) -> None:
    """Cut-off, binary and wrongly shaped content never raises: the file's points are what
    could be read, or none."""
    for data in (b"", b"\x00\xff" * 50, b'{"acc": 0.5', b"[1, 2", b"a,b\n1", bytes(range(256)) * 4,
                 b"\x08" * 20 + b"\xff" * 8, b'"text"', b"acc: [", b"1 2 3\n4"):
        parsed = _metric_files.points("/run/" + name, data)
        assert parsed is None or all(isinstance(p[1], float) for p in parsed[2])


def test_config_files_parsed_are_bounded_per_directory(capture: Capture, tmp_path: Path) -> None:
    """A loader reading many small JSON files of one directory (data, not configs) has only
    the first MAX_PER_DIRECTORY parsed; a config elsewhere is still recorded; a JSON list is
    no config."""
    samples = tmp_path / "samples"
    samples.mkdir()
    for index in range(_config_files.MAX_PER_DIRECTORY + 8):
        path = samples / f"{index:03}.json"
        path.write_text(f'{{"label": {index}}}')
        capture.recorder.read(str(path))
    (tmp_path / "train.toml").write_text("lr = 0.5\n")
    (tmp_path / "list.json").write_text("[1, 2]")
    capture.recorder.read(str(tmp_path / "train.toml"))
    capture.recorder.read(str(tmp_path / "list.json"))
    capture.recorder.flush()
    configs = [s for s in capture.exporter.get_finished_spans() if s.name == spans.SPAN_CONFIG]
    names = [s.attributes[attr.PROVENANCE_ARTIFACT_URI].rsplit("/", 1)[1] for s in configs]
    assert names == [f"{i:03}.json" for i in range(_config_files.MAX_PER_DIRECTORY)] + [
        "train.toml"]
    assert list(configs[-1].attributes[attr.PROVENANCE_CONFIG_VALUE]) == ["0.5"]


def test_a_table_without_a_header_gives_no_points() -> None:
    """A CSV whose first row holds numbers has no names for its columns: no points (not
    metrics named `0.1`); a header with non-numeric columns keeps only the numeric cells."""
    assert _metric_files.points("/run/metrics.csv", b"0.1,0.2\n0.3,0.4\n") == ("file", None, [])
    assert _metric_files.points("/run/metrics.csv", b"name,acc,note\nrun,0.5,nan\n") == (
        "file", None, [("acc", 0.5, -1)])


def test_a_document_with_a_step_key_gives_its_points_at_that_step() -> None:
    """A metrics.json a run rewrites at each evaluation ({"step": 300, ...}): its values are
    points at step 300, not a metric named `step`; without an index key, no step."""
    assert _metric_files.points("/run/metrics.json", b'{"step": 300, "eval": {"acc": 0.75}}') == (
        "file", None, [("eval.acc", 0.75, 300)])
    assert _metric_files.points("/run/metrics.json", b'{"epoch": 2, "loss": 0.5}') == (
        "file", None, [("loss", 0.5, 2)])
    assert _metric_files.points("/run/metrics.json", b'{"loss": 0.5}') == (
        "file", None, [("loss", 0.5, -1)])


def test_a_yaml_alias_bomb_gives_no_points_quickly() -> None:
    """YAML aliases let a few hundred bytes name a billion leaves: such a metric file is
    refused, not walked (the test would not end otherwise)."""
    pytest.importorskip("yaml")
    lines = ["a0: &a0 [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    assert _metric_files.points("/run/metrics.yaml", "\n".join(lines).encode()) is None
    assert _metric_files.points("/run/metrics.yaml", b"base: &b {lr: 0.5}\nrun: *b\n") == (
        "file", None, [("base.lr", 0.5, -1), ("run.lr", 0.5, -1)])


def test_secrets_in_config_keys_and_metric_names_are_redacted(capture: Capture) -> None:
    """A mapping keyed by connection URLs or tokens names its entries by their secrets: the
    secret is replaced in the key, and in a metric name logged under it; innocent names
    (`tokens_per_second`, `loss_per_token`) are kept."""
    token = "hf_" + "z" * 34
    document = ('{"postgres://bob:pg-pw-77@db/x": {"pool": 5}, "%s": 1, "lr": 0.5}' % token)
    keys, values = _config_files.entries("/run/config.json", document.encode())
    assert keys == ["postgres://REDACTED@db/x.pool", "REDACTED", "lr"]
    assert values == ["5", "1", "0.5"]

    for name in ("postgres://bob:pg-pw-77@db/x/rows", token, "tokens_per_second",
                 "loss_per_token"):
        _metrics.record_metric("wandb", name, 1.0, 0)
    capture.tick()
    (span,) = _metric_spans(capture)
    assert [name for name, _value, _step in _points(span)] == [
        "postgres://REDACTED@db/x/rows", "REDACTED", "tokens_per_second", "loss_per_token"]


def test_a_tracker_run_that_logs_nothing_is_named_once(capture: Capture) -> None:
    """A tracker run the program starts is named by one `metrics` span with no points at the
    next flush; naming it again, or its points after, adds no empty span."""
    _metrics.record_tracker_run("mlflow", "mlflow:quiet")
    _metrics.record_tracker_run("mlflow", "mlflow:quiet")
    capture.tick()
    (span,) = _metric_spans(capture)
    assert span.attributes[attr.PROVENANCE_TRACKER_RUN] == "mlflow:quiet"
    assert _points(span) == []
    _metrics.record_tracker_run("mlflow", "mlflow:quiet")
    _metrics.record_metric("mlflow", "loss", 0.5, 1, tracker_run="mlflow:quiet")
    capture.tick()
    capture.recorder.flush()
    assert [_points(s) for s in _metric_spans(capture)] == [[], [("loss", 0.5, 1)]]


def test_a_config_rewritten_before_the_flush_keeps_the_keys_it_was_read_with(
        capture: Capture, tmp_path: Path) -> None:
    """A program that reads its config and then writes it back (resolved, with defaults
    filled in) before the recorder's flush: the `config` span holds the keys the run read,
    not none; the new content is a write, no config."""
    config = tmp_path / "train.json"
    config.write_text('{"lr": 0.1}')
    capture.recorder.read(str(config))
    capture.write(config, b'{"lr": 0.1, "epochs": 3}')
    capture.recorder.flush()
    configs = [s for s in capture.exporter.get_finished_spans() if s.name == spans.SPAN_CONFIG]
    assert [list(s.attributes[attr.PROVENANCE_CONFIG_KEY]) for s in configs] == [["lr"]]


def test_a_metric_file_appended_to_emits_only_its_new_points(capture: Capture) -> None:
    """A series file that grows (Lightning rewrites its metrics.csv with the old rows first,
    an event file is appended to) is emitted once per point, not again at each version; a
    file whose content changes otherwise (metrics.json rewritten each epoch) is emitted
    whole; a version with the same points adds no span."""
    key = ("file", "file://h/metrics.csv", None)
    rows = [("loss", 1.0 / (step + 1), step) for step in range(6)]
    for parse in (rows[:3], rows[:5], rows[:5], rows, [("loss", 0.5, 0)]):
        capture.recorder.metrics.replace(key, list(parse), 1)
        capture.tick()
    assert [_points(s) for s in _metric_spans(capture)] == [
        rows[:3], rows[3:5], rows[5:], [("loss", 0.5, 0)]]


def test_each_version_of_a_config_counts_as_one_file_of_its_directory(
        capture: Capture, tmp_path: Path) -> None:
    """A program that rewrites and reads one config many times (trials of a sweep in one
    process) has every version recorded, and the directory's other configs too: the bound
    per directory counts files, not versions."""
    configs = tmp_path / "configs"
    configs.mkdir()
    trial = configs / "trial.json"
    for index in range(_config_files.MAX_PER_DIRECTORY + 8):
        trial.write_text(f'{{"lr": {index}}}')
        capture.recorder.read(str(trial))
        capture.tick()
    (configs / "train.json").write_text('{"epochs": 3}')
    capture.recorder.read(str(configs / "train.json"))
    capture.recorder.flush()
    found = [list(s.attributes[attr.PROVENANCE_CONFIG_VALUE])
             for s in capture.exporter.get_finished_spans() if s.name == spans.SPAN_CONFIG]
    assert found == [[str(i)] for i in range(_config_files.MAX_PER_DIRECTORY + 8)] + [["3"]]


def test_values_under_a_plural_secret_name_are_redacted() -> None:
    """`secrets: {db: ...}`, `passwords: [...]`, `api_keys: {...}` hold secrets though the
    policy judges single names; a leaf named by a plural (`max_tokens`) is a count, kept."""
    document = (b'{"secrets": {"db": "hunter2x"}, "passwords": ["pw-one"], '
                b'"api_keys": {"openai": "abc123def"}, "max_tokens": 512, '
                b'"datasets": {"train": "a.csv"}}')
    keys, values = _config_files.entries("/run/config.json", document)
    assert dict(zip(keys, values)) == {
        "secrets.db": '"REDACTED"', "passwords.0": '"REDACTED"', "api_keys.openai": '"REDACTED"',
        "max_tokens": "512", "datasets.train": '"a.csv"'}

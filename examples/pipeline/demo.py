"""Run the example pipeline under clew and show what was captured (`make demo` runs this).

Each step is an ordinary program started the way the README says,
`opentelemetry-instrument python STEP.py`, with no other setting except CLEW_HOME, which keeps
the demo's records in examples/pipeline/.clew instead of the repository's .clew. Then it shows
`clew spool` (every run), `clew spool RUN` (the training run in detail), `clew runs` and a
lineage question in SQL over the embedded ClickHouse store, and checks a few facts from the
captured records against the files on disk. Last, a second training run with another learning
rate, and the questions clew answers: the model's lineage, what changed since the previous
training run (`clew diff`), why its training accuracy moved (`clew why`: the config key and
the argument that changed), and whether the model saw the test set (`clew check`).

    python examples/pipeline/demo.py [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
OUTPUTS = ["data", "features", "models", "metrics.json", "experiments"]
STEPS = ["make_data.py", "train.py", "evaluate.py"]


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def show(command: list[str]) -> None:
    print(f"$ {shlex.join(command)}", flush=True)


def run(command: list[str], env: dict[str, str], capture: bool = False) -> str:
    result = subprocess.run(
        command,
        cwd=HERE,
        env=env,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"demo: `{shlex.join(command)}` failed with exit code {result.returncode}")
    return result.stdout or ""


def shown(path: Path) -> str:
    """`path` as the user would type it from where they are."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def short(uri: str) -> str:
    """A file URI as a path relative to the pipeline folder, for the summary."""
    marker = str(HERE) + "/"
    return uri.split(marker, 1)[1] if marker in uri else uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep earlier runs in the spool")
    args = parser.parse_args()

    home = HERE / ".clew"
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["CLEW_HOME"] = str(home)
    env.pop("PYTHONPATH", None)
    if not sys.stdout.isatty():
        env.setdefault("COLUMNS", "160")  # rich tables would otherwise squeeze to 80 columns
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    for name in OUTPUTS:
        target = HERE / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)

    banner("The pipeline, each step run under opentelemetry-instrument (no other setting)")
    print(f"$ cd {shown(HERE)}")
    print("$ export CLEW_HOME=$PWD/.clew  # the demo's own spool (default: .clew at the git root)")
    for step in STEPS:
        show(["opentelemetry-instrument", "python", step])
        run(["opentelemetry-instrument", "python", step], env)

    banner("What the spool captured: one line per run")
    show(["clew", "spool"])
    run(["clew", "spool"], env)

    runs = json.loads(run(["clew", "spool", "--format", "json"], env, capture=True))["runs"]
    by_step = {}
    for r in runs:
        for step in STEPS:
            if any(arg.endswith(step) for arg in r["command"][1:2]):
                by_step.setdefault(step, r)  # newest first: keep the latest run of each step
    missing = [step for step in STEPS if step not in by_step]
    if missing:
        sys.exit(f"demo: no run of {', '.join(missing)} in the spool: capture is not working")
    train = by_step["train.py"]

    banner("One run in detail: train.py, including its preprocess.py subprocess")
    show(["clew", "spool", train["run_id"][:12]])
    run(["clew", "spool", train["run_id"][:12]], env)

    banner("The same runs in the embedded ClickHouse store (chDB under .clew/db)")
    show(["clew", "runs"])
    run(["clew", "runs"], env)  # query commands ingest the spool first
    model_uri = next(
        a["uri"] for a in train["accesses"] if a["uri"].endswith("models/model.npz")
    )
    question = (
        "SELECT w.RunId AS run, r.Operation AS op, r.Uri AS input, r.Digest AS digest "
        "FROM clew_io AS w INNER JOIN clew_io AS r ON r.RunId = w.RunId "
        f"WHERE w.Operation = 'write' AND w.Uri = '{model_uri}' AND r.Operation = 'read' "
        "ORDER BY input"
    )
    print("\nWhat did the run that wrote models/model.npz read? Plain SQL:")
    show(["clew", "sql", question])
    run(["clew", "sql", question], env)

    banner("What to notice")
    notes = check(by_step, train)
    for ok, text in notes:
        print(f"  {'ok ' if ok else 'NO '} {text}")
    print(
        "\nThe spool is plain OTLP JSON Lines, one file per process:"
        f"\n  ls {shown(home / 'spool')}"
        "\nTry it on your own script: opentelemetry-instrument python your_script.py && clew spool"
    )
    if not all(ok for ok, _ in notes):
        sys.exit("demo: some captured facts did not match the files on disk")
    questions(env)


def questions(env: dict[str, str]) -> None:
    """A second training run, then lineage, diff and a contamination check over both."""
    banner("A teammate retrains with a lower learning rate (a config file of their own)")
    config = json.loads((HERE / "config.json").read_text())
    (HERE / "experiments").mkdir(exist_ok=True)
    (HERE / "experiments" / "lr-0.1.json").write_text(
        json.dumps({**config, "learning_rate": 0.1}, indent=2)
    )
    # `--`: opentelemetry-instrument would take --config for an abbreviation of its own options
    retrain = ["opentelemetry-instrument", "--", "python", "train.py", "--config",
               "experiments/lr-0.1.json"]
    show(retrain)
    run(retrain, env)

    banner("Where did models/model.npz come from? Its lineage, back to the raw data")
    show(["clew", "lineage", "models/model.npz"])
    run(["clew", "lineage", "models/model.npz"], env)

    banner("What changed since the previous training run? (causes first, then effects)")
    show(["clew", "diff"])
    run(["clew", "diff"], env)

    banner("Why did the training accuracy move? (metrics.json, captured as it was written)")
    show(["clew", "why", "train_accuracy"])
    run(["clew", "why", "train_accuracy"], env)

    banner("Did the model, or anything upstream of it, see the test set? (exit 1 if so)")
    show(["clew", "check", "models/model.npz", "--test", "data/test"])
    run(["clew", "check", "models/model.npz", "--test", "data/test"], env)
    print(
        "\nMore: clew impact data/raw/customers.csv (everything downstream), "
        "clew export models/model.npz --format html -o lineage.html (a page to look at), "
        "clew --help"
    )


def check(by_step: dict, train: dict) -> list[tuple[bool, str]]:
    """Facts a first-time user can verify: the records match what happened on disk."""
    from blake3 import blake3

    def accesses(run: dict, operation: str) -> dict[str, dict]:
        return {short(a["uri"]): a for a in run["accesses"] if a["operation"] == operation}

    evaluate = by_step["evaluate.py"]
    train_reads, train_writes = accesses(train, "read"), accesses(train, "write")
    evaluate_reads = accesses(evaluate, "read")
    pids = {p["pid"] for p in train["processes"]}
    child = [e for e in train["execs"] if any("preprocess.py" in a for a in e["command"])]
    on_disk = "blake3:" + blake3((HERE / "models" / "model.npz").read_bytes()).hexdigest()
    written = train_writes.get("models/model.npz", {}).get("digest")
    read = evaluate_reads.get("models/model.npz", {}).get("digest")
    test_set = "data/test/customers_test.csv"
    imported = [f for f in evaluate["code_files"] if f.endswith("preprocess.py")]
    commit = evaluate.get("git_commit")
    dirty = " (dirty)" if evaluate.get("git_dirty") else ""
    where = f"; git commit {commit[:12]}{dirty}" if commit else ""

    return [
        (
            bool(child) and child[0]["traced"] and len(pids) >= 2,
            (
                f"train.py's trace holds {len(pids)} processes: the preprocess.py subprocess "
                "joined it by itself (TRACEPARENT in its environment)"
            ),
        ),
        (
            "data/raw/customers.csv" in train_reads and "features/X.npy" in train_writes,
            (
                "the subprocess's own I/O is there: it read data/raw/customers.csv and wrote "
                "features/X.npy, y.npy, scaler.json"
            ),
        ),
        (
            "config.json" in train_reads and "features/X.npy" in train_reads,
            (
                "train.py read config.json and the features through numpy.load: no code changes, "
                "no logging calls"
            ),
        ),
        (
            written == on_disk == read,
            (
                "models/model.npz was written via a temporary file and os.replace; the recorded "
                f"digest {str(written)[:19]}… is the final file's, and evaluate.py read that same "
                "content"
            ),
        ),
        (
            test_set in evaluate_reads and test_set not in train_reads,
            f"{test_set} was read by evaluate.py only, never by the training run",
        ),
        (
            bool(imported),
            (
                "evaluate.py's run lists the project source it imported "
                f"({', '.join(imported) or 'none'}): the code that actually ran{where}"
            ),
        ),
    ]


if __name__ == "__main__":
    main()

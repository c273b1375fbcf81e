"""`synth.py --diff-inputs N`: two runs whose `clew diff` has a known answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanContext
from synth import (
    BATCH_MAX_RECORDS,
    DAY_NS,
    HOSTS,
    PACKAGES,
    SAMPLED,
    Dataset,
    Generator,
    Process,
    _digest,
    file_uri,
)


@dataclass
class ChangedDataset(Dataset):
    """The dataset with the files of `changed` rewritten: new contents, same paths."""

    changed: range = range(0)

    def digest(self, index: int) -> str:
        return _digest(self.name, index, "v2") if index in self.changed else super().digest(index)


def diff_pair(gen: Generator, inputs: int, start: int, share: float = 0.01) -> dict[str, Any]:
    """Two runs of one program, a day apart, for `clew diff`: each reads `inputs` files of
    one dataset (batched, one span per directory chunk of <= 512), the second with `share`
    of them changed, `share` of the first run's removed and as many new ones added; both
    write the same 100 paths with new contents; the second run's learning rate argument
    differs. The rest (host, user, git, packages, code) is the same."""
    rng = gen.rng
    moved = int(inputs * share)
    dataset = Dataset("diff-set", HOSTS[0], inputs + moved)
    commit = rng.choice(gen.world.commits)
    code = [f"/home/ana/project/src/module_{i}.py" for i in range(12)]
    runs = []
    for run, first in enumerate((0, moved)):  # the second run: files moved..inputs+moved
        if run:  # the first `moved` files it reads were rewritten since the first run
            dataset = ChangedDataset(dataset.name, dataset.host, dataset.files,
                                     changed=range(moved, 2 * moved))
        trace_id = rng.getrandbits(128) or 1
        begin = start + run * DAY_NS
        end = begin + 3600 * 10**9
        main = Process(gen, dataset.host, 4242 + run, begin, end, None)
        run_span_id = gen.span_id()
        context = SpanContext(trace_id, run_span_id, False, SAMPLED)
        at = first
        while at < first + inputs:  # batches stop at a directory's end, as clew's do
            last = min(at + BATCH_MAX_RECORDS, first + inputs,
                       (at // dataset.per_directory + 1) * dataset.per_directory)
            gen.batched_read(main, trace_id, context, dataset, range(at, last), 1, *main.at())
            at = last
        for serial in range(100):
            uri = file_uri(main.host, f"/work/exp/diff/out/item-{serial:03d}.npy")
            gen.single(main, trace_id, context, "write", uri, _digest(uri, trace_id, serial),
                       1_000_000 + serial, *main.at())
        argv = ["/opt/venv/bin/python", "train.py", "--lr", ("0.001", "0.002")[run]]
        gen.run_span(main, trace_id, run_span_id, 1, argv, "ana", commit, "main", [],
                     PACKAGES[:200], code, False, begin, end)
        gen.write_process(main)
        runs.append(f"{trace_id:032x}")
    return {"run_a": runs[0], "run_b": runs[1], "inputs": inputs,
            "expected": {"input": 3 * moved, "output": 100, "argument": 1}}

"""Cost of redacting what clew records: at every program's start-up (its argv) and on every
program it starts (the child's argv, or its shell line).

    .venv/bin/python -m pytest benchmarks/micro/test_redaction.py

Times `redact_argv` in this process on a training command without secrets, one with secrets,
a shell line (`sh -c`, as os.system records it), a JSON argument, and the longest single
argument Linux allows (128 KiB).
"""

from __future__ import annotations

import json

import pytest

from clew.semconv.redaction import redact_argv

TRAINING = ["/usr/bin/python3", "train.py", "--config", "configs/base.yaml", "--epochs", "10",
            "--lr", "3e-4", "--data", "s3://bucket/data/train", "--output", "/tmp/out",
            "--seed", "42"]
CASES = {
    "training argv, no secret (14 words)": TRAINING,
    "training argv with secrets (20 words)": [
        *TRAINING, "--api-key", "k-123", "--db", "postgresql://u:pw@db/x", "-p", "hunter2"],
    "shell line (sh -c, 12 words)": [
        "/bin/sh", "-c",
        "mkdir -p out && aws s3 cp s3://b/k out/ --profile ml && tool --token=abc > log.txt"],
    "JSON argument (1 KiB)": ["tool", "--config", json.dumps(
        {f"field{i}": f"value{i}" for i in range(60)} | {"password": "x"})],
    "one 128 KiB argument": ["tool", "--data", "a1/" * (128 * 1024 // 3)],
}


@pytest.mark.parametrize("case", CASES)
def test_redact_argv(per_call, case: str) -> None:  # noqa: ANN001
    per_call(f"redact_argv: {case}", lambda: redact_argv(CASES[case]))

"""Evaluate the model on the held-out test set and write metrics.json.

python evaluate.py [--model models/model.npz] [--test data/test/customers_test.csv]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from preprocess import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/model.npz"))
    parser.add_argument("--test", type=Path, default=Path("data/test/customers_test.csv"))
    parser.add_argument("--out", type=Path, default=Path("metrics.json"))
    args = parser.parse_args()

    with np.load(args.model) as model:
        w, b, mean, std = model["weights"], float(model["bias"]), model["mean"], model["std"]
    x, y = load(args.test)
    x[:, : len(mean)] = (x[:, : len(mean)] - mean) / std
    p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
    predicted = p >= 0.5

    eps = 1e-12
    metrics = {
        "rows": len(y),
        "accuracy": round(float(np.mean(predicted == y)), 4),
        "precision": round(float(np.sum(predicted & (y == 1)) / max(1, np.sum(predicted))), 4),
        "recall": round(float(np.sum(predicted & (y == 1)) / max(1, np.sum(y == 1))), 4),
        "log_loss": round(float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))), 4),
    }
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(metrics, handle, indent=2)
    print(f"evaluate: accuracy {metrics['accuracy']}, log loss {metrics['log_loss']} -> {args.out}")


if __name__ == "__main__":
    main()

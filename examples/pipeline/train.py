"""Train a logistic-regression churn model with numpy.

Reads config.json, runs preprocess.py as a subprocess to build the features, trains by
gradient descent, and writes the checkpoint atomically (temporary file + os.replace), the way
careful training code saves checkpoints, and its training accuracy to models/metrics.json.

    python train.py [--config config.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def fit(
    x: np.ndarray, y: np.ndarray, lr: float, epochs: int, l2: float
) -> tuple[np.ndarray, float]:
    w = np.zeros(x.shape[1])
    b = 0.0
    for _ in range(epochs):
        p = sigmoid(x @ w + b)
        grad_w = x.T @ (p - y) / len(y) + l2 * w
        grad_b = float(np.mean(p - y))
        w -= lr * grad_w
        b -= lr * grad_b
    return w, b


def save_checkpoint(path: Path, **arrays: np.ndarray) -> None:
    """Write to a temporary file next to the target, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=HERE / "config.json")
    args = parser.parse_args()

    with open(args.config, encoding="utf-8") as handle:
        config = json.load(handle)
    features = Path(config["features_dir"])

    # Step 1: preprocessing, as a separate program.
    subprocess.run(
        [sys.executable, str(HERE / "preprocess.py"), config["raw_data"], str(features)],
        check=True,
    )

    # Step 2: training.
    x = np.load(features / "X.npy")
    y = np.load(features / "y.npy").astype(float)
    with open(features / "scaler.json", encoding="utf-8") as handle:
        scaler = json.load(handle)
    w, b = fit(x, y, config["learning_rate"], config["epochs"], config["l2"])
    accuracy = float(np.mean((sigmoid(x @ w + b) >= 0.5) == y))

    save_checkpoint(
        Path(config["model_path"]),
        weights=w,
        bias=np.array(b),
        mean=np.array(scaler["mean"]),
        std=np.array(scaler["std"]),
    )
    with open(Path(config["model_path"]).parent / "metrics.json", "w", encoding="utf-8") as out:
        json.dump({"train_accuracy": accuracy}, out)
    print(f"train: {len(y)} rows, training accuracy {accuracy:.3f} -> {config['model_path']}")


if __name__ == "__main__":
    main()

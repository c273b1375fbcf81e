"""Turn the raw CSV into model features: a standardised matrix, labels and the scaler.

Run by train.py as a subprocess (as many pipelines shell out to a preprocessing step):

    python preprocess.py data/raw/customers.csv features/
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

NUMERIC = ["tenure_months", "monthly_charges", "support_calls"]
CONTRACTS = ["monthly", "yearly", "two_year"]


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    features, labels = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            numeric = [float(row[name]) for name in NUMERIC]
            one_hot = [1.0 if row["contract"] == c else 0.0 for c in CONTRACTS[1:]]
            features.append(numeric + one_hot)
            labels.append(int(row["churned"]))
    return np.asarray(features), np.asarray(labels, dtype=np.int8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()

    x, y = load(args.raw)
    # Standardise the numeric columns; keep the statistics so evaluation applies the same.
    mean = x[:, : len(NUMERIC)].mean(axis=0)
    std = x[:, : len(NUMERIC)].std(axis=0)
    x[:, : len(NUMERIC)] = (x[:, : len(NUMERIC)] - mean) / std

    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "X.npy", x)
    np.save(args.out / "y.npy", y)
    with open(args.out / "scaler.json", "w", encoding="utf-8") as handle:
        json.dump(
            {"columns": NUMERIC, "mean": mean.tolist(), "std": std.tolist()}, handle, indent=2
        )
    print(f"preprocess: {x.shape[0]} rows x {x.shape[1]} features -> {args.out}/")


if __name__ == "__main__":
    main()

"""Make the pipeline's data: a raw training CSV and a held-out test CSV.

A synthetic customer-churn table, generated deterministically (same seed, same bytes), so
repeated runs produce files with identical content digests. No network, no downloads.

    python make_data.py [--rows 4000] [--test-rows 1000] [--seed 7]
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from pathlib import Path

COLUMNS = [
    "customer_id",
    "tenure_months",
    "monthly_charges",
    "support_calls",
    "contract",
    "churned",
]
CONTRACTS = ["monthly", "yearly", "two_year"]


def rows(count: int, rng: random.Random, first_id: int):
    for i in range(count):
        tenure = rng.randint(1, 72)
        charges = round(rng.uniform(18.0, 120.0), 2)
        calls = min(9, int(rng.expovariate(0.7)))
        contract = rng.choices(CONTRACTS, weights=[5, 3, 2])[0]
        # The "true" churn process the model will try to learn.
        score = (
            1.2
            - 0.06 * tenure
            + 0.018 * charges
            + 0.45 * calls
            - {"monthly": 0.0, "yearly": 1.1, "two_year": 2.0}[contract]
        )
        churned = int(rng.random() < 1.0 / (1.0 + math.exp(-score)))
        yield [f"C{first_id + i:06d}", tenure, f"{charges:.2f}", calls, contract, churned]


def write_csv(path: Path, data) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in data:
            writer.writerow(row)
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("data"))
    args = parser.parse_args()

    rng = random.Random(args.seed)
    n_train = write_csv(args.out / "raw" / "customers.csv", rows(args.rows, rng, 0))
    n_test = write_csv(
        args.out / "test" / "customers_test.csv", rows(args.test_rows, rng, args.rows)
    )
    print(f"make_data: wrote {n_train} training rows and {n_test} test rows under {args.out}/")


if __name__ == "__main__":
    main()

"""(f): a short, I/O-heavy pipeline step. Reads thousands of small files, two large ones and a
CSV (pandas), runs one Python subprocess that does its own I/O, and writes three outputs.
Usage: f_mixed.py DATA_DIR OUT_DIR"""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
from _common import mark, small_files

CHUNK = 16 << 20


def main() -> None:
    data, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)

    # the preprocessing step runs first, as its own program with its own I/O
    child = os.path.join(os.path.dirname(os.path.abspath(__file__)), "f_child.py")
    subprocess.run([sys.executable, child, data, os.path.join(out, "child_summary.json")], check=True)

    # samples: thousands of small files
    sums = []
    for path in small_files(os.path.join(data, "small")):
        with open(path, "rb") as handle:
            sums.append(np.frombuffer(handle.read(), dtype=np.uint8).sum(dtype=np.int64))
    features = np.asarray(sums, dtype=np.float64)

    # two large shards
    buffer = bytearray(CHUNK)
    large_bytes = 0
    for name in ("large0.bin", "large1.bin"):
        with open(os.path.join(data, name), "rb") as handle:
            while count := handle.readinto(buffer):
                large_bytes += count

    # a CSV table
    table = pd.read_csv(os.path.join(data, "table.csv"))
    stats = table.describe()

    # three outputs
    np.save(os.path.join(out, "features.npy"), features)
    with open(os.path.join(out, "model.pkl"), "wb") as handle:
        pickle.dump({"weights": features[:256], "stats": stats.to_dict()}, handle)
    with open(os.path.join(out, "metrics.json"), "w") as handle:
        json.dump({"files": len(sums), "large_bytes": large_bytes, "rows": len(table)}, handle)
    print(f"small={len(sums)} large_bytes={large_bytes} rows={len(table)}")


if __name__ == "__main__":
    mark("body")
    main()
    mark("end")

"""The subprocess of (f): reads the CSV with the csv module and 200 of the small files,
writes a summary. Usage: f_child.py DATA_DIR OUTPUT"""

import csv
import json
import os
import sys

from _common import small_files


def main() -> None:
    data, output = sys.argv[1], sys.argv[2]
    with open(os.path.join(data, "table.csv"), newline="") as handle:
        rows = sum(1 for _ in csv.reader(handle)) - 1
    total = 0
    for path in small_files(os.path.join(data, "small"))[:200]:
        with open(path, "rb") as handle:
            total += len(handle.read())
    with open(output, "w") as handle:
        json.dump({"rows": rows, "bytes": total}, handle)


main()

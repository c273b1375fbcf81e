"""(a) and (e): a data loader without compute. 20,000 files of 16 KiB, read whole, in two
shuffled passes (epochs). Usage: a_small_reads.py DATA_DIR [PASSES]"""

import sys

from _common import mark, shuffled, small_files


def main() -> None:
    root = sys.argv[1]
    passes = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    paths = small_files(root)
    total = 0
    for epoch in range(passes):
        for path in shuffled(paths, epoch):
            with open(path, "rb") as handle:
                total += len(handle.read())
    print(f"files={len(paths)} passes={passes} bytes={total}")


mark("body")
main()
mark("end")

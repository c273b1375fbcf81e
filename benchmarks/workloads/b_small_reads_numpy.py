"""(b): (a) with ~0.5 ms of numpy work per file, a realistic data loader. The work per file
is ITERATIONS rounds of an elementwise transform of the file's bytes as a 128x128 float32
image; run.py calibrates ITERATIONS so one file's work takes ~0.5 ms on this machine.
Usage: b_small_reads_numpy.py DATA_DIR ITERATIONS [PASSES]"""

import sys

import numpy as np
from _common import mark, shuffled, small_files


def transform(data: bytes, iterations: int) -> float:
    image = np.frombuffer(data, dtype=np.uint8).astype(np.float32).reshape(128, 128)
    for _ in range(iterations):
        image = np.sqrt(image * image + 1.0) * 0.5
    return float(image.mean())


def main() -> None:
    root, iterations = sys.argv[1], int(sys.argv[2])
    passes = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    paths = small_files(root)
    total = 0
    checksum = 0.0
    for epoch in range(passes):
        for path in shuffled(paths, epoch):
            with open(path, "rb") as handle:
                data = handle.read()
            total += len(data)
            checksum += transform(data, iterations)
    print(f"files={len(paths)} passes={passes} bytes={total} checksum={checksum:.3f}")


if __name__ == "__main__":
    mark("body")
    main()
    mark("end")

"""(c): 4 files of 256 MiB, each read fully in 16 MiB chunks, no compute.
Usage: c_large_reads.py FILE..."""

import sys

from _common import mark

CHUNK = 16 << 20


def main() -> None:
    buffer = bytearray(CHUNK)
    total = 0
    for path in sys.argv[1:]:
        with open(path, "rb") as handle:
            while True:
                count = handle.readinto(buffer)
                if not count:
                    break
                total += count
    print(f"files={len(sys.argv) - 1} bytes={total}")


mark("body")
main()
mark("end")

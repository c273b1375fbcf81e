"""(d): 50 short Python subprocesses (`python -c pass`, with this interpreter).
Usage: d_subprocesses.py [COUNT]"""

import subprocess
import sys

from _common import mark


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    for _ in range(count):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    print(f"subprocesses={count}")


mark("body")
main()
mark("end")

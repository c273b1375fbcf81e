"""One epoch of a 2-rank data-parallel job: each rank reads its shard of small files through a
torch DataLoader with 2 workers. Run under torchrun; `python epoch.py DATA_DIR`.

Rank 0 prints one JSON line: the epoch's wall time (the slowest rank's, from a barrier before
the loop to a barrier after it), the bytes read, and when the process started and the epoch
began and ended (time.time()), so a runner can split a launch's wall time into start-up,
epoch and shutdown.
"""

from __future__ import annotations

import json
import os
import sys
import time

START = time.time()

import torch  # noqa: E402 - the start time includes importing torch
import torch.distributed as dist  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402


class Files(Dataset):
    """Each item is one file's size, read in full (a stand-in for decoding a sample)."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> int:
        with open(self.paths[index], "rb") as handle:
            return len(handle.read())


def main() -> None:
    root = sys.argv[1]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    paths = sorted(os.path.join(root, name) for name in os.listdir(root))
    loader = DataLoader(Files(paths[rank::world]), batch_size=64, num_workers=2)
    dist.barrier()
    began = time.time()
    total = sum(int(batch.sum()) for batch in loader)
    ended_here = time.time()
    dist.barrier()
    ended = time.time()
    figures = torch.tensor([float(total), ended_here - began], dtype=torch.float64)
    dist.all_reduce(figures[:1])
    dist.all_reduce(figures[1:], op=dist.ReduceOp.MAX)
    if rank == 0:
        print(json.dumps({
            "epoch_s": ended - began,
            "slowest_rank_s": float(figures[1]),
            "bytes": int(figures[0]),
            "files": len(paths),
            "start": START,
            "began": began,
            "ended": ended,
        }), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

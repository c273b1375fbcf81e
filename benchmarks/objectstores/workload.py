"""One object-store read workload, timed from inside: `workload.py CLIENT SHAPE BUCKET`.

CLIENT is boto3 or s3fs; SHAPE is small (1,000 objects of 64 KiB) or large (2 of 256 MiB).
Prints the seconds the reads took (client set-up excluded, the same for both variants).
"""

from __future__ import annotations

import sys
import time


def main() -> None:
    client, shape, bucket = sys.argv[1:4]
    keys = [f"small/{i:04d}.bin" for i in range(1000)] if shape == "small" else ["large/0.bin", "large/1.bin"]
    if client == "boto3":
        import boto3

        s3 = boto3.client("s3")
        s3.head_bucket(Bucket=bucket)  # connection and credentials set up before timing
        start = time.perf_counter()
        total = sum(len(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys)
    else:
        import s3fs

        fs = s3fs.S3FileSystem()
        fs.ls(bucket)
        start = time.perf_counter()
        total = 0
        for key in keys:
            with fs.open(f"{bucket}/{key}", "rb") as handle:
                total += len(handle.read())
    elapsed = time.perf_counter() - start
    expected = 1000 * (64 << 10) if shape == "small" else 2 * (256 << 20)
    assert total == expected, total
    print(f"{elapsed:.6f}")


if __name__ == "__main__":
    main()

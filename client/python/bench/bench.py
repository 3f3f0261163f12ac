#!/usr/bin/env python3
"""Python client performance rows, against the C++ client on the same server.

    python3 client/python/bench/bench.py [--server HOST:PORT] [--json FILE]

Without --server it starts build/server/knnmem-server (or $KNNMEM_SERVER) on
127.0.0.1:0 in a temporary directory. Rows (8 heads x 128 dims, float32):

- append-512: unary Append of 512 rows (4 MiB with the values), rows/s;
- append-pipeline-512: the same over AppendStream, 2 batches in flight;
- decode-step-32: one DecodeStep of B = 32 streams x 1 query, 1K entries
  each, k = 32: the Python call's latency;
- encode-4MiB: building the Append request of 512 rows in Python (no RPC);
- cpp-append-512 and cpp-decode-step-32-ms: the C++ client's rows of the
  same shapes on the same server, from `knnmem-bench --server ADDR --only
  W-client` ($KNNMEM_BENCH, default build/bench/knnmem-bench), and the
  ratios python/cpp (targets: append throughput >= 0.8x, decode step time
  <= 1.3x).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import knnmem
from knnmem import messages

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from server_process import ServerProcess, cli_binary  # noqa: E402

HEADS, DIM, ROWS = 8, 128, 512


def median_seconds(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_append(c: knnmem.Client, reps: int) -> dict:
    rng = np.random.default_rng(0)
    keys = rng.uniform(-1, 1, (ROWS, HEADS, DIM)).astype(np.float32)
    values = rng.uniform(-1, 1, (ROWS, HEADS, DIM)).astype(np.float32)
    rows = {}
    c.create_stream("bench-py-append", heads=HEADS, key_dim=DIM, capacity=1 << 20)
    position = [0]

    def one():
        c.append("bench-py-append", keys, values, first_position=position[0])
        position[0] += ROWS
    rows["append-512"] = ROWS / median_seconds(one, reps)

    batches = 8
    c.create_stream("bench-py-pipeline", heads=HEADS, key_dim=DIM, capacity=1 << 20)
    pipeline_position = [0]

    def pipelined():
        with c.append_pipeline(window=2) as p:
            for _ in range(batches):
                p.send("bench-py-pipeline", keys, values, first_position=pipeline_position[0])
                pipeline_position[0] += ROWS
    rows["append-pipeline-512"] = batches * ROWS / median_seconds(pipelined, max(2, reps // 4))
    rows["encode-4MiB-ms"] = 1e3 * median_seconds(
        lambda: messages.append_request("x", keys, values, 0, 0, None, False), reps)
    return rows


def bench_cpp(address: str, reps: int) -> dict:
    """The C++ client's rows (knnmem-bench --only W-client) on `address`."""
    binary = os.environ.get("KNNMEM_BENCH", str(HERE.parents[2] / "build/bench/knnmem-bench"))
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "cpp.json"
        subprocess.run([binary, "--server", address, "--only", "W-client", "--reps", str(reps),
                        "--json", str(out)], check=True, stdout=subprocess.DEVNULL)
        results = json.loads(out.read_text())
    rows = {}
    for r in results:
        if r.get("workload") != "W-client":
            continue
        if r["variant"] == "append-512":
            rows["cpp-append-512"] = r["vectors_per_second"]
        elif r["variant"] == "decode-step-32":
            rows["cpp-decode-step-32-ms"] = 1e3 * r["median_seconds"]
    return rows


def bench_decode(c: knnmem.Client, reps: int, streams: int = 32, entries: int = 1024) -> float:
    rng = np.random.default_rng(1)
    ids = [f"bench-py-decode-{i}" for i in range(streams)]
    for i in ids:
        c.create_stream(i, heads=HEADS, key_dim=DIM, capacity=entries)
        k = rng.uniform(-1, 1, (entries, HEADS, DIM)).astype(np.float32)
        c.append(i, k, k, first_position=0)
    q = rng.uniform(-1, 1, (streams, 1, HEADS, DIM)).astype(np.float32)
    steps = [knnmem.Step(i, q[b]) for b, i in enumerate(ids)]

    def one():
        for r in c.decode_step(steps, 32):
            assert r.ok, r
    return median_seconds(one, reps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="a running server (default: start one)")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if args.server is None:
            server = ServerProcess(pathlib.Path(tmp) / "data").start()
        address = args.server or server.address
        try:
            with knnmem.Client(address, timeout=120) as c:
                rows = bench_append(c, args.reps)
                rows["decode-step-32-ms"] = 1e3 * bench_decode(c, args.reps)
                rows.update(bench_cpp(address, args.reps))
        finally:
            if server is not None:
                server.kill()
    print(f"{'row':<34} {'value':>12}")
    for name, value in rows.items():
        unit = "ms" if name.endswith("-ms") else "rows/s"
        print(f"{name:<34} {value:>12.1f} {unit}")
    rows["python-over-cpp-append-throughput"] = rows["append-512"] / rows["cpp-append-512"]
    rows["python-over-cpp-decode-step-time"] = (rows["decode-step-32-ms"]
                                                / rows["cpp-decode-step-32-ms"])
    print(f"{'python/cpp append throughput':<34} "
          f"{rows['python-over-cpp-append-throughput']:>6.2f} x (target >= 0.8)")
    print(f"{'python/cpp decode step time':<34} "
          f"{rows['python-over-cpp-decode-step-time']:>6.2f} x (target <= 1.3)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

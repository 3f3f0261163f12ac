#!/usr/bin/env python3
"""Python client performance rows, against the C++ client on the same server.

    python3 client/python/bench/bench.py [--server HOST:PORT] [--rounds N]
                                         [--reps N] [--json FILE]

Without --server it starts build/server/knnmem-server (or $KNNMEM_SERVER) on
127.0.0.1:0 in a temporary directory. The C++ client runs beside this one
as `knnmem-bench --server ADDR --only W-client-paired` ($KNNMEM_BENCH,
default build/bench/knnmem-bench; bench/client_rows.h), which makes the
same calls one at a time on command and reports each one's wall and CPU
time. The server's own time dominates both clients' calls and varies by
much more than the clients differ (RocksDB's flushes and compactions after
megabytes of appends, the machine's other load), so the two are measured in
turns: each Python call next to a C++ call of the same kind (and the bare
gRPC call, below), the order rotating from turn to turn, so that both see
the server in the same state. Each of --rounds rounds (default 7) takes
--reps turns (default 10) of each kind. A row's value is the median over
the rounds of each round's median; a ratio, the median of the rounds'
ratios (their range is printed too), and "pairs", the median of the ratios
of the calls of one turn. Rows (8 heads x 128 dims, float32, uniform
[-1, 1) data; "-cpu-ms": the client process's CPU time during the call,
gRPC's threads included):

- append-512: Client.append of 512 rows (4 MiB with the values) to a stream
  growing by 512 rows a call, in rows/s, timed from the numpy arrays to the
  result; cpp-append-512: the C++ client's, from the float vectors (the
  request built in the timed call) to the parsed response;
  append-512-raw: the floor of Python on grpcio: the bare unary call of a
  request serialised before timing (gRPC Python copies it once into its
  own buffer);
- decode-step-32-ms: Client.decode_step of B = 32 streams x 1 query per
  head, 1,024 entries each, k = 32, from the numpy queries to the results'
  numpy views; cpp-decode-step-32-ms: the C++ client's, from the steps'
  float vectors to the parsed response; decode-step-32-raw-ms: Python's
  bare call (request serialised before timing, response parsed);
- append-pipeline-512: AppendStream, 8 batches, 2 in flight, in rows/s
  (Python only, once per round);
- encode-4MiB-ms: building the 4 MiB Append request in Python (no RPC);
- the ratios python/cpp (targets: append throughput >= 0.8x, decode step
  time <= 1.3x), and the bare calls' over C++'s.
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
from typing import Callable, Dict, List, Tuple

import numpy as np

import knnmem
from knnmem import codec, messages
from knnmem.v1 import memory_pb2 as pb

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from server_process import ServerProcess  # noqa: E402

HEADS, DIM, ROWS = 8, 128, 512
STREAMS, ENTRIES, K = 32, 1024, 32
PIPELINE_BATCHES = 8

Times = Tuple[float, float]  # wall and CPU seconds of one call


class Cpp:
    """The C++ client: knnmem-bench --only W-client-paired, on command."""

    def __init__(self, address: str):
        binary = os.environ.get("KNNMEM_BENCH",
                                str(HERE.parents[2] / "build/bench/knnmem-bench"))
        self.process = subprocess.Popen(
            [binary, "--server", address, "--only", "W-client-paired"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"knnmem-bench did not start (exit {self.process.wait()})")

    def call(self, command: str) -> Times:
        """One `command` ("append" or "decode"), as timed by the C++ process."""
        self.process.stdin.write(command + "\n")
        answer = self.process.stdout.readline().split()
        if len(answer) != 2:
            raise RuntimeError(f"knnmem-bench ended (exit {self.process.wait()})")
        return float(answer[0]), float(answer[1])

    def close(self) -> None:
        self.process.stdin.close()  # it deletes its streams and exits
        if self.process.wait(timeout=120) != 0:
            raise RuntimeError(f"knnmem-bench failed (exit {self.process.returncode})")


def timed(fn: Callable[[], object]) -> Times:
    cpu, start = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


class Bench:
    def __init__(self, c: knnmem.Client, cpp: Cpp, reps: int):
        self.c, self.cpp, self.reps = c, cpp, reps
        rng = np.random.default_rng(0)
        self.keys = rng.uniform(-1, 1, (ROWS, HEADS, DIM)).astype(np.float32)
        self.values = rng.uniform(-1, 1, (ROWS, HEADS, DIM)).astype(np.float32)
        self.raw_append = c._channel.unary_unary("/knnmem.v1.Memory/Append")
        self.raw_decode = c._channel.unary_unary(
            "/knnmem.v1.Memory/DecodeStep", response_deserializer=pb.DecodeStepResponse.FromString)
        # The bare calls' requests go into reused bytes too, as Client's, so
        # that freeing them does not make gRPC's copy fault.
        self.raw_buffers = codec.RequestBuffers()
        prefix = f"bench-py.{os.getpid()}.{int(time.time())}"
        self.streams = {name: f"{prefix}.{name}" for name in ("append", "raw", "pipeline")}
        for s in self.streams.values():
            c.create_stream(s, heads=HEADS, key_dim=DIM, capacity=1 << 20)
        self.next = {name: 0 for name in self.streams}
        self.ids = [f"{prefix}.decode-{i}" for i in range(STREAMS)]
        for i in self.ids:
            c.create_stream(i, heads=HEADS, key_dim=DIM, capacity=ENTRIES)
            for first in range(0, ENTRIES, ROWS):
                k = rng.uniform(-1, 1, (ROWS, HEADS, DIM)).astype(np.float32)
                c.append(i, k, k, first_position=first)
        q = rng.uniform(-1, 1, (STREAMS, 1, HEADS, DIM)).astype(np.float32)
        self.steps = [knnmem.Step(i, q[b]) for b, i in enumerate(self.ids)]
        self.decode_request = messages.decode_step_request(self.steps, K)
        self.turn = 0

    def delete_streams(self) -> None:
        for s in [*self.streams.values(), *self.ids]:
            self.c.delete_stream(s)

    def _position(self, name: str) -> int:
        p = self.next[name]
        self.next[name] += ROWS
        return p

    def turns(self, calls: Dict[str, Callable[[], Times]]) -> Dict[str, List[Times]]:
        """self.reps turns of every call, the order rotating from turn to turn."""
        names = list(calls)
        out: Dict[str, List[Times]] = {n: [] for n in names}
        for _ in range(self.reps):
            shift = self.turn % len(names)
            self.turn += 1
            for n in names[shift:] + names[:shift]:
                out[n].append(calls[n]())
        return out

    def append_calls(self) -> Dict[str, Callable[[], Times]]:
        c, keys, values = self.c, self.keys, self.values

        def python() -> Times:
            p = self._position("append")
            return timed(lambda: c.append(self.streams["append"], keys, values, first_position=p))

        def raw() -> Times:
            request = messages.append_request(self.streams["raw"], keys, values,
                                              self._position("raw"), 0, None, False,
                                              self.raw_buffers)
            return timed(lambda: self.raw_append(request, timeout=c.timeout))
        return {"append-512": python, "cpp-append-512": lambda: self.cpp.call("append"),
                "append-512-raw": raw}

    def decode_calls(self) -> Dict[str, Callable[[], Times]]:
        c = self.c

        def python() -> None:
            for r in c.decode_step(self.steps, K):
                assert r.ok, r
        return {"decode-step-32": lambda: timed(python),
                "cpp-decode-step-32": lambda: self.cpp.call("decode"),
                "decode-step-32-raw": lambda: timed(
                    lambda: self.raw_decode(self.decode_request, timeout=c.timeout))}

    def pipeline(self) -> float:
        def run() -> None:
            with self.c.append_pipeline(window=2) as p:
                for _ in range(PIPELINE_BATCHES):
                    p.send(self.streams["pipeline"], self.keys, self.values,
                           first_position=self._position("pipeline"))
        return timed(run)[0]

    def warm_up(self) -> None:
        reps, self.reps = self.reps, 1
        self.turns(self.append_calls())
        self.turns(self.decode_calls())
        self.reps = reps
        self.pipeline()

    def round(self, pairs: Dict[str, List[float]]) -> Dict[str, float]:
        """One round's rows; appends each turn's python/cpp ratios to `pairs`."""
        rows: Dict[str, float] = {}
        appends = self.turns(self.append_calls())
        decodes = self.turns(self.decode_calls())
        for name, times in appends.items():
            rows[name] = ROWS / statistics.median(t[0] for t in times)
            rows[name + "-cpu-ms"] = 1e3 * statistics.median(t[1] for t in times)
        for name, times in decodes.items():
            rows[name + "-ms"] = 1e3 * statistics.median(t[0] for t in times)
            rows[name + "-cpu-ms"] = 1e3 * statistics.median(t[1] for t in times)
        rows["append-pipeline-512"] = PIPELINE_BATCHES * ROWS / self.pipeline()
        for name, (num, den, _, throughput) in RATIOS.items():
            times = appends if throughput else decodes
            num, den = (n.replace("-ms", "") for n in (num, den))
            pairs.setdefault(name, []).extend(
                (c[0] / p[0]) if throughput else (p[0] / c[0])
                for p, c in zip(times[num], times[den]))
        return rows


RATIOS = {
    # name: (numerator row, denominator row, target, a throughput)
    "python-over-cpp-append-throughput": ("append-512", "cpp-append-512", ">= 0.8", True),
    "python-over-cpp-decode-step-time": ("decode-step-32-ms", "cpp-decode-step-32-ms",
                                         "<= 1.3", False),
    "python-raw-over-cpp-append-throughput": ("append-512-raw", "cpp-append-512", "", True),
    "python-raw-over-cpp-decode-step-time": ("decode-step-32-raw-ms", "cpp-decode-step-32-ms",
                                             "", False),
}


def encode_ms(reps: int) -> float:
    rng = np.random.default_rng(0)
    keys = rng.uniform(-1, 1, (ROWS, HEADS, DIM)).astype(np.float32)
    buffers = codec.RequestBuffers()
    build = lambda: messages.append_request("x", keys, keys, 0, 0, None, False, buffers)  # noqa
    build()
    return 1e3 * statistics.median(timed(build)[0] for _ in range(reps))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="a running server (default: start one)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    parser.add_argument("--reps", type=int, default=10,
                        help="turns of each kind per round (default 10)")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    if args.rounds < 1 or args.reps < 1:
        parser.error("--rounds and --reps must be at least 1")
    rounds: List[Dict[str, float]] = []
    pairs: Dict[str, List[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if args.server is None:
            server = ServerProcess(pathlib.Path(tmp) / "data").start()
        address = args.server or server.address
        try:
            with knnmem.Client(address, timeout=120) as c:
                cpp = Cpp(address)
                bench = Bench(c, cpp, args.reps)
                bench.warm_up()
                for r in range(args.rounds):
                    rows = bench.round(pairs)
                    for name, (num, den, _, _) in RATIOS.items():
                        rows[name] = rows[num] / rows[den]
                    rounds.append(rows)
                    print(f"round {r + 1}/{args.rounds}: append "
                          f"{rows['python-over-cpp-append-throughput']:.2f}x, decode step "
                          f"{rows['python-over-cpp-decode-step-time']:.2f}x", file=sys.stderr)
                cpp.close()
                bench.delete_streams()
        finally:
            if server is not None:
                server.kill()
    summary = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    summary["encode-4MiB-ms"] = encode_ms(5 * args.reps)
    print(f"{args.rounds} rounds of {args.reps} turns (Python, C++ and the bare gRPC call "
          "in rotating order); medians over the rounds of each round's median")
    print(f"{'row':<34} {'value':>12}")
    for name, value in summary.items():
        if name in RATIOS:
            continue
        unit = "ms" if name.endswith("-ms") else "rows/s"
        print(f"{name:<34} {value:>12.2f} {unit}")
    for name, (_, _, target, _) in RATIOS.items():
        values = [r[name] for r in rounds]
        summary[name + "-pairs"] = statistics.median(pairs[name])
        print(f"{name:<40} {summary[name]:>5.2f} x (rounds {min(values):.2f} .. "
              f"{max(values):.2f}; pairs {summary[name + '-pairs']:.2f})"
              f"{f'  target {target}' if target else ''}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rounds": rounds, "pairs": pairs},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

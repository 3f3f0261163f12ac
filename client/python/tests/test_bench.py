"""bench/bench.py runs end to end: its Python calls and the C++ client's
(knnmem-bench --only W-client-paired, driven line by line) on one server,
in one short round, with every row and ratio in its JSON."""
import json
import os
import pathlib
import subprocess
import sys

from server_process import REPO, ServerProcess

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "bench.py"


def test_one_round_pairs_python_with_cpp_calls(tmp_path):
    binary = os.environ.get("KNNMEM_BENCH", str(REPO / "build/bench/knnmem-bench"))
    assert os.access(binary, os.X_OK), f"{binary}: build knnmem-bench (or set KNNMEM_BENCH)"
    out = tmp_path / "bench.json"
    with ServerProcess(tmp_path / "data") as server:
        run = subprocess.run(
            [sys.executable, str(BENCH), "--server", server.address, "--rounds", "1",
             "--reps", "2", "--json", str(out)],
            env={**os.environ, "KNNMEM_BENCH": binary}, capture_output=True, text=True,
            timeout=50)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    summary = result["summary"]
    for row in ("append-512", "cpp-append-512", "append-512-raw", "append-pipeline-512"):
        assert summary[row] > 0, row
    for row in ("decode-step-32-ms", "cpp-decode-step-32-ms", "decode-step-32-raw-ms",
                "append-512-cpu-ms", "cpp-append-512-cpu-ms", "encode-4MiB-ms"):
        assert summary[row] > 0, row
    assert len(result["rounds"]) == 1
    assert len(result["pairs"]["python-over-cpp-append-throughput"]) == 2
    assert "python-over-cpp-decode-step-time" in run.stdout

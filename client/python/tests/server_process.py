"""ServerProcess: a real knnmem-server child on 127.0.0.1:0, as
tests/support/server_process.h: start() returns once the server printed its
ready line "knnmem-server: serving on HOST:PORT (...)" (read from its stdout:
no sleeping, no polling of the port)."""
from __future__ import annotations

import ctypes
import errno
import os
import pathlib
import re
import select
import signal
import subprocess
import threading
import time
from typing import List, Optional, Sequence

REPO = pathlib.Path(__file__).resolve().parents[3]
READY = re.compile(r"serving on (\S+) ")


def server_binary() -> str:
    return os.environ.get("KNNMEM_SERVER", str(REPO / "build/server/knnmem-server"))


def cli_binary() -> str:
    return os.environ.get("KNNMEM_CLI", str(REPO / "build/client/knnmem"))


# Looked up here, not in the child: between fork and exec the child may only
# call what takes no lock another thread could have held (dlopen takes some).
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # A test run that dies takes its servers with it.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def run_binary(argv: Sequence[str], **kwargs) -> subprocess.Popen:
    """Popen, retried while the binary is being relinked (ETXTBSY, a
    half-written file, a moment without one or without its x bit)."""
    for attempt in range(20):
        try:
            return subprocess.Popen(list(argv), preexec_fn=_die_with_parent, **kwargs)
        except OSError as e:
            if e.errno not in (errno.ETXTBSY, errno.ENOEXEC, errno.ENOENT, errno.EACCES) \
                    or attempt == 19:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


class ServerProcess:
    def __init__(self, data_dir: os.PathLike, extra_args: Sequence[str] = (),
                 listen: str = "127.0.0.1:0"):
        self.data_dir = pathlib.Path(data_dir)
        self.extra_args = list(extra_args)
        self.listen = listen
        self.address = ""
        self.output: List[str] = []
        self._process: Optional[subprocess.Popen] = None
        self._stderr_path = self.data_dir.with_name(self.data_dir.name + ".stderr")

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        for attempt in range(5):
            if self._start_once(timeout):
                return self
            # A binary caught mid-relink crashes or fails to load: try again.
            time.sleep(0.5)
        raise RuntimeError(f"knnmem-server did not start: {self.describe_failure()}")

    def _start_once(self, timeout: float) -> bool:
        argv = [server_binary(), "--listen", self.listen, "--metrics-address", "none",
                "--data-dir", str(self.data_dir), *self.extra_args]
        with open(self._stderr_path, "wb") as stderr:
            self._process = run_binary(argv, stdout=subprocess.PIPE, stderr=stderr)
        stdout = self._process.stdout
        deadline = time.monotonic() + timeout
        buffer = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([stdout], [], [], deadline - time.monotonic())
            if not ready:
                break
            chunk = os.read(stdout.fileno(), 65536)
            if not chunk:  # the server exited
                self._process.wait()
                return False
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                self.output.append(text)
                m = READY.search(text)
                if m:
                    self.address = m.group(1)
                    threading.Thread(target=self._drain, args=(buffer,), daemon=True).start()
                    return True
        self.kill()
        raise RuntimeError(f"knnmem-server not ready in {timeout} s: {self.describe_failure()}")

    def _drain(self, rest: bytes) -> None:
        # Keep reading stdout so that the server never blocks on a full pipe.
        data = rest + self._process.stdout.read()
        self.output += data.decode(errors="replace").splitlines()

    def describe_failure(self) -> str:
        stderr = self._stderr_path.read_text(errors="replace") if self._stderr_path.exists() else ""
        code = self._process.returncode if self._process else None
        return f"exit status {code}; stdout {self.output[-5:]}; stderr {stderr[-2000:]!r}"

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; the exit status."""
        if not self.running():
            return self._process.returncode if self._process else -1
        self._process.send_signal(signal.SIGTERM)
        return self._process.wait(timeout)

    def kill(self) -> None:
        if self.running():
            self._process.kill()
        if self._process is not None:
            self._process.wait()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()

"""Fixtures: one real knnmem-server for the session (tests that need their
own flags start their own), clients of it, unique stream ids; and a
per-test timeout (pytest-timeout's `timeout` ini option, or faulthandler
when that plugin is missing)."""
from __future__ import annotations

import os

# The tests start servers and the CLI with fork + exec while gRPC channels
# are open; gRPC's fork handlers then wait for its own threads, and a run
# hung in fork() under load (observed). The children never use gRPC from
# the parent's state, so fork support is off. Set before grpc is imported.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

import faulthandler  # noqa: E402
import itertools  # noqa: E402
import re  # noqa: E402
import sys
import threading

import pytest

import knnmem
from server_process import ServerProcess

DEFAULT_TIMEOUT = 60.0


def pytest_addoption(parser, pluginmanager):
    if not pluginmanager.hasplugin("timeout"):  # python3-pytest-timeout
        parser.addini("timeout", "seconds per test (faulthandler fallback)",
                      default=str(DEFAULT_TIMEOUT))


def _time_out(item, seconds: float) -> None:
    """Ends a run whose test hangs, printing every thread's stack (as
    pytest-timeout's thread method does)."""
    capture = item.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=True)
    sys.stderr.write(f"\n+++ Timeout: {item.nodeid} ran over {seconds:g} s +++\n")
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    os._exit(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if item.config.pluginmanager.hasplugin("timeout"):
        yield
        return
    marker = item.get_closest_marker("timeout")
    seconds = float(marker.args[0]) if marker else float(item.config.getini("timeout"))
    timer = threading.Timer(seconds, _time_out, (item, seconds))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test timeout")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("server") / "data") as s:
        yield s


@pytest.fixture(scope="session")
def client(server):
    with knnmem.Client(server.address, timeout=20) as c:
        yield c


_ids = itertools.count()


@pytest.fixture
def stream_id(request):
    """A stream id unique in the session, named after the test."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:100]
    return f"{name}-{next(_ids)}"

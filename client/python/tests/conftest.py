"""Fixtures: one real knnmem-server for the session (tests that need their
own flags start their own), clients of it, unique stream ids; and a
per-test timeout (pytest-timeout's `timeout` ini option, or faulthandler
when that plugin is missing)."""
from __future__ import annotations

import faulthandler
import itertools
import re
import sys

import pytest

import knnmem
from server_process import ServerProcess

try:
    import pytest_timeout  # noqa: F401  (python3-pytest-timeout)
    HAVE_TIMEOUT_PLUGIN = True
except ImportError:
    HAVE_TIMEOUT_PLUGIN = False

DEFAULT_TIMEOUT = 60.0


def pytest_addoption(parser):
    if not HAVE_TIMEOUT_PLUGIN:
        parser.addini("timeout", "seconds per test (faulthandler fallback)",
                      default=str(DEFAULT_TIMEOUT))


if not HAVE_TIMEOUT_PLUGIN:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        marker = item.get_closest_marker("timeout")
        seconds = float(marker.args[0]) if marker else float(item.config.getini("timeout"))
        # Dumps every thread's stack and exits the run if the test hangs.
        faulthandler.dump_traceback_later(seconds, exit=True, file=sys.stderr)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()


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

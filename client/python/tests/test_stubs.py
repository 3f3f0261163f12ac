"""The checked-in stubs are what generate_stubs.py makes from proto/ now."""
import importlib.util
import pathlib
import shutil

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1]


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_stubs",
                                                  PACKAGE / "generate_stubs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("protoc") is None or shutil.which("grpc_python_plugin") is None,
                    reason="needs protoc and grpc_python_plugin (scripts/install-deps)")
def test_checked_in_stubs_match_the_proto(tmp_path):
    generated = load_generator().generate(tmp_path)
    for path in generated:
        checked_in = PACKAGE / "src" / path.relative_to(tmp_path)
        assert checked_in.read_bytes() == path.read_bytes(), (
            f"{checked_in} is stale: run python3 client/python/generate_stubs.py")


def test_every_rpc_of_the_proto_has_a_method_on_every_client():
    import re

    import knnmem
    from knnmem.v1 import memory_pb2
    renamed = {"append_stream": "append_pipeline"}
    for rpc in memory_pb2.DESCRIPTOR.services_by_name["Memory"].methods_by_name:
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", rpc).lower()
        name = renamed.get(name, name)
        for cls in (knnmem.Client, knnmem.AsyncClient):
            assert hasattr(cls, name), f"{cls.__name__} has no {name} for {rpc}"

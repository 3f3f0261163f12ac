#!/usr/bin/env python3
"""Regenerates the checked-in gRPC stubs of knnmem.v1 from proto/.

    python3 client/python/generate_stubs.py            # into src/knnmem/v1/
    python3 client/python/generate_stubs.py --out DIR  # into DIR/knnmem/v1/

Uses Debian 12's protoc (protobuf-compiler) and grpc_python_plugin
(protobuf-compiler-grpc), the versions the checked-in files were made with;
tests/test_stubs.py regenerates into a temporary directory and asserts the
checked-in files are byte-identical. The proto package knnmem.v1 lands at
knnmem/v1/ inside this package, so the generated import
`from knnmem.v1 import memory_pb2` works unchanged.
"""
import argparse
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
PROTO = "knnmem/v1/memory.proto"
GENERATED = ("memory_pb2.py", "memory_pb2_grpc.py")


def generate(out: pathlib.Path, protoc: str = "protoc",
             plugin: str = "grpc_python_plugin") -> list:
    """Writes the stubs under out/knnmem/v1/ and returns their paths."""
    plugin_path = shutil.which(plugin)
    if plugin_path is None:
        raise FileNotFoundError(f"{plugin} not found (Debian: protobuf-compiler-grpc)")
    subprocess.run(
        [protoc, f"-I{PROTO_ROOT}", f"--python_out={out}",
         f"--grpc_python_out={out}",
         f"--plugin=protoc-gen-grpc_python={plugin_path}", PROTO],
        check=True)
    return [out / "knnmem" / "v1" / name for name in GENERATED]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "src",
                        help="directory that receives knnmem/v1/ (default: src)")
    args = parser.parse_args()
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

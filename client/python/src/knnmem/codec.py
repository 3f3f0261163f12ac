"""Arrays to and from knnmem.v1.Tensor.

Requests that carry vectors are serialised here by hand, around the arrays'
own memory: the header fields go through protobuf and each tensor's data is
spliced in as a length-delimited field, so building an Append costs one copy
of the keys and values (into the request bytes) and no Python work per
element. Responses are parsed by protobuf, and their data fields become
numpy views (np.frombuffer) of the response bytes: read-only arrays.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import grpc
import numpy as np

from knnmem.dtypes import (DType, DTypeLike, as_dtype, bfloat16_bits_to_float32,
                           element_size, float32_to_bfloat16_bits, float32_to_float16)
from knnmem.errors import Error, invalid_argument
from knnmem.v1 import memory_pb2 as pb

Chunk = Any  # bytes or a C-contiguous memoryview


@dataclass(frozen=True)
class WireTensor:
    """A tensor ready for the wire: little-endian, row-major bytes."""

    dtype: DType
    shape: Tuple[int, ...]
    data: memoryview


def _contiguous(a: np.ndarray, dtype: str) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.dtype(dtype))


def prepare(array: Any, dtype: DTypeLike, field: str) -> WireTensor:
    """Converts `array` ([rows, heads, dim], any float array) for the wire.

    dtype None sends float16 arrays as FLOAT16 and every other real array as
    FLOAT32. With dtype "bfloat16", a uint16 array is taken as bfloat16 bit
    patterns (sent as they are) and anything else is rounded from float32.
    Arrays already in the wire dtype, little-endian and C-contiguous, are not
    copied. torch tensors are taken as well (bfloat16 ones are sent as
    BFLOAT16 unless dtype says otherwise), through numpy views of their data.
    """
    want = as_dtype(dtype)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        from knnmem.torch.tensors import to_numpy  # a view where the layout allows
        array, want = to_numpy(array, want)
    a = np.asarray(array)
    if a.dtype == np.uint16 and want != DType.BFLOAT16:
        raise invalid_argument(
            f"{field}: a uint16 array holds bfloat16 bit patterns; pass dtype='bfloat16'")
    if a.dtype.kind not in "fiu":
        raise invalid_argument(f"{field}: dtype {a.dtype} is not a real number type")
    if want is None:
        want = DType.FLOAT16 if a.dtype == np.float16 else DType.FLOAT32
    if want == DType.FLOAT32:
        out = _contiguous(a, "<f4")
    elif want == DType.FLOAT16:
        out = _contiguous(a, "<f2") if a.dtype == np.float16 else \
            float32_to_float16(_contiguous(a, "<f4"))
    elif want == DType.BFLOAT16:
        out = _contiguous(a, "<u2") if a.dtype == np.uint16 else \
            float32_to_bfloat16_bits(_contiguous(a, "<f4"))
    else:
        raise invalid_argument(f"{field}: dtype {want.name} is not a float dtype")
    return WireTensor(want, tuple(int(d) for d in a.shape), memoryview(out.reshape(-1).view(np.uint8)))


# Protobuf wire format: varints and length-delimited fields.

def varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number: int, chunks: Sequence[Chunk]) -> List[Chunk]:
    """A length-delimited field (wire type 2) holding the concatenated chunks."""
    size = sum(len(c) for c in chunks)
    return [varint(number << 3 | 2), varint(size), *chunks]


def tensor_field(number: int, t: WireTensor) -> List[Chunk]:
    header = pb.Tensor(dtype=int(t.dtype), shape=t.shape).SerializeToString()
    return field(number, [header, *field(3, [t.data])])


def join(chunks: Iterable[Chunk]) -> bytes:
    return b"".join(chunks)


# Responses.

def decode(tensor: pb.Tensor, field_name: str, *,
           bfloat16_bits: bool = False) -> np.ndarray:
    """A response tensor as a numpy array of its shape.

    FLOAT32, FLOAT16 and INT64 are views of the response bytes; BFLOAT16 is
    widened to float32 (exact), or with bfloat16_bits a uint16 view of its bit
    patterns.
    """
    try:
        dtype = DType(tensor.dtype)
    except ValueError:
        raise Error(grpc.StatusCode.INTERNAL,
                    f"{field_name}: response has dtype {tensor.dtype}") from None
    shape = tuple(tensor.shape)
    data = tensor.data
    count = int(np.prod(shape, dtype=np.int64)) if shape else 0
    if len(data) != count * element_size(dtype):
        raise Error(grpc.StatusCode.INTERNAL,
                    f"{field_name}: response has {len(data)} bytes for shape {list(shape)}")
    if dtype == DType.BFLOAT16:
        bits = np.frombuffer(data, dtype="<u2").reshape(shape)
        return bits if bfloat16_bits else bfloat16_bits_to_float32(bits)
    numpy_type = {DType.FLOAT32: "<f4", DType.FLOAT16: "<f2", DType.INT64: "<i8"}[dtype]
    return np.frombuffer(data, dtype=numpy_type).reshape(shape)


def decode_optional(message: Any, name: str, **kwargs: Any) -> Optional[np.ndarray]:
    """decode() of message.name, or None when the response left it unset."""
    if not message.HasField(name):
        return None
    return decode(getattr(message, name), name, **kwargs)

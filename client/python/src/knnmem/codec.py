"""Arrays to and from knnmem.v1.Tensor.

Requests that carry vectors are serialised here by hand, around the arrays'
own memory: the header fields go through protobuf and each tensor's data is
spliced in as a length-delimited field, so building an Append costs one copy
of the keys and values (into the request bytes) and no Python work per
element. A client writes its large requests into bytes it reuses
(RequestBuffers) instead of fresh ones. Responses are parsed by protobuf, and
their data fields become numpy views (np.frombuffer) of the response bytes:
read-only arrays.
"""
from __future__ import annotations

import ctypes
import math
import platform
import sys
import threading
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import grpc
import numpy as np

from knnmem.dtypes import (DType, DTypeLike, as_dtype, bfloat16_bits_to_float32,
                           float32_to_bfloat16_bits, float32_to_float16)
from knnmem.errors import Error, invalid_argument
from knnmem.v1 import memory_pb2 as pb

Chunk = Any  # bytes or a C-contiguous memoryview


class WireTensor(NamedTuple):
    """A tensor ready for the wire: little-endian, row-major bytes."""

    dtype: DType
    shape: Tuple[int, ...]
    data: memoryview


_FLOAT32 = np.dtype("<f4")


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
    if (dtype is None and type(array) is np.ndarray and array.dtype == _FLOAT32
            and array.flags.c_contiguous):  # the common case, in fewer steps
        return WireTensor(DType.FLOAT32, array.shape,
                          memoryview(array.reshape(-1).view(np.uint8)))
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

_SMALL_VARINTS = [bytes((i,)) for i in range(0x80)]


def varint(n: int) -> bytes:
    if 0 <= n < 0x80:
        return _SMALL_VARINTS[n]
    if 0 < n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
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
    return [varint(number << 3 | 2), varint(sum(map(len, chunks))), *chunks]


# Serialised Tensor headers (dtype and shape) by (dtype, shape): a decode
# step's tensors have the same few shapes call after call.
_HEADERS: Dict[Tuple[int, Tuple[int, ...]], bytes] = {}
_DATA_TAG = varint(3 << 3 | 2)  # Tensor.data


def tensor_field(number: int, t: WireTensor) -> List[Chunk]:
    key = (t.dtype, t.shape)
    header = _HEADERS.get(key)
    if header is None:
        header = pb.Tensor(dtype=int(t.dtype), shape=t.shape).SerializeToString()
        if len(_HEADERS) >= 4096:
            _HEADERS.clear()
        _HEADERS[key] = header
    size = varint(len(t.data))
    return [varint(number << 3 | 2), varint(len(header) + len(_DATA_TAG) + len(size) + len(t.data)),
            header, _DATA_TAG, size, t.data]


def join(chunks: Iterable[Chunk]) -> bytes:
    return b"".join(chunks)


# RequestBuffers makes bytes objects without initialising them and writes
# into them through their C buffer, which only CPython exposes.
_REUSABLE = platform.python_implementation() == "CPython"
if _REUSABLE:
    _new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
    _new_bytes.restype = ctypes.py_object
    _new_bytes.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t]
    _bytes_address = ctypes.pythonapi.PyBytes_AsString
    _bytes_address.restype = ctypes.c_void_p
    _bytes_address.argtypes = [ctypes.py_object]


def _references(buffers: List[bytes], i: int) -> int:
    return sys.getrefcount(buffers[i])


# The count _references() sees for a bytes object referenced only by the list
# (the list, and getrefcount's argument), measured rather than assumed.
_UNSHARED = _references([bytes(1 << 10)], 0)


class RequestBuffers:
    """Serialised requests written into bytes objects that are reused.

    gRPC Python copies a request's bytes into its own buffer, so every large
    call used to allocate, fill and free two buffers of its size. glibc then
    returns the top of the heap to the kernel (both freed together exceed its
    trim threshold) and the next call page-faults on every 4 KiB of both:
    measured on a 4 MiB Append, 2,016 faults and 4 of the 6 ms of client CPU
    per call. Writing each request into a bytes object kept from an earlier
    call leaves only gRPC's buffer to come and go, which stays below that
    threshold (no faults per call).

    A kept buffer is written again only when nothing but this object refers
    to it (its reference count says so): a request still held by gRPC (an
    AppendStream queue, a call in flight), by a caller, or by a traceback is
    never changed; a new buffer is made instead. Each thread keeps its own
    `slots` most recently used buffers (a join may ask for more, as an
    AppendStream with a window does), freed with this object or its thread.
    Requests under `min_bytes` (allocated from the heap's free lists without
    faults) or over `max_bytes` (not worth keeping) are joined afresh.
    """

    def __init__(self, slots: int = 2, min_bytes: int = 256 << 10, max_bytes: int = 64 << 20):
        self.slots = slots
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes
        self._local = threading.local()

    def _buffer(self, size: int, slots: int) -> bytes:
        """A kept bytes object of `size` nobody else refers to (a new one
        when none is free); the thread keeps it and its slots - 1 most
        recently used others."""
        buffers = self._local.__dict__.setdefault("buffers", [])
        out = None
        for i in range(len(buffers)):
            if len(buffers[i]) == size and _references(buffers, i) == _UNSHARED:
                out = buffers.pop(i)
                break
        if out is None:
            out = _new_bytes(None, size)  # a new object, never a shared constant
        del buffers[:max(0, len(buffers) - (slots - 1))]
        buffers.append(out)
        return out

    def join(self, chunks: Sequence[Chunk], slots: Optional[int] = None) -> bytes:
        """b"".join(chunks), into a reused buffer when the size allows;
        `slots` (default self.slots) buffers are kept for the next joins."""
        size = sum(map(len, chunks))
        if not _REUSABLE or size < max(2, self.min_bytes) or size > self.max_bytes:
            return b"".join(chunks)
        out = self._buffer(size, max(1, self.slots if slots is None else slots))
        view = np.frombuffer((ctypes.c_char * size).from_address(_bytes_address(out)),
                             dtype=np.uint8)
        offset = 0
        for c in chunks:
            n = len(c)
            view[offset:offset + n] = np.frombuffer(c, dtype=np.uint8)
            offset += n
        return out

    def clear(self) -> None:
        """Lets go of every thread's buffers."""
        self._local = threading.local()


# Responses.

# numpy type and element size of each response dtype.
_NUMPY = {int(DType.FLOAT32): ("<f4", 4), int(DType.FLOAT16): ("<f2", 2),
          int(DType.BFLOAT16): ("<u2", 2), int(DType.INT64): ("<i8", 8)}


def decode(tensor: pb.Tensor, field_name: str, *,
           bfloat16_bits: bool = False) -> np.ndarray:
    """A response tensor as a numpy array of its shape.

    FLOAT32, FLOAT16 and INT64 are views of the response bytes; BFLOAT16 is
    widened to float32 (exact), or with bfloat16_bits a uint16 view of its bit
    patterns.
    """
    kind = _NUMPY.get(tensor.dtype)
    if kind is None:
        raise Error(grpc.StatusCode.INTERNAL,
                    f"{field_name}: response has dtype {tensor.dtype}")
    shape = tuple(tensor.shape)
    data = tensor.data
    count = math.prod(shape) if shape else 0
    if len(data) != count * kind[1]:
        raise Error(grpc.StatusCode.INTERNAL,
                    f"{field_name}: response has {len(data)} bytes for shape {list(shape)}")
    a = np.frombuffer(data, dtype=kind[0]).reshape(shape)
    if tensor.dtype == DType.BFLOAT16 and not bfloat16_bits:
        return bfloat16_bits_to_float32(a)
    return a


def decode_optional(message: Any, name: str, **kwargs: Any) -> Optional[np.ndarray]:
    """decode() of message.name, or None when the response left it unset."""
    if not message.HasField(name):
        return None
    return decode(getattr(message, name), name, **kwargs)

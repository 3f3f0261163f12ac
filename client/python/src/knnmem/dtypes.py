"""Float formats on the wire, and conversions bit-identical to base/dtype.h.

Every conversion is a handful of vectorised numpy operations over the whole
array: no Python loop per element.

- float32 -> bfloat16: the upper 16 bits, rounded to nearest even; a NaN stays
  a quiet NaN ((bits >> 16) | 0x40), as FloatToBFloat16.
- float32 -> float16: IEEE round to nearest even (numpy's conversion); overflow
  becomes infinity; a NaN becomes sign | 0x7e00, as the scalar FloatToHalf
  (the C++ F16C path keeps a NaN's top payload bits instead; no NaN reaches
  the server's storage, which refuses them).
- bfloat16 -> float32 and float16 -> float32 are exact.
"""
from __future__ import annotations

import enum
from typing import Union

import numpy as np

from knnmem.v1 import memory_pb2


class DType(enum.IntEnum):
    """knnmem.v1.DType (the values are the proto's)."""

    FLOAT32 = memory_pb2.FLOAT32
    FLOAT16 = memory_pb2.FLOAT16
    BFLOAT16 = memory_pb2.BFLOAT16
    INT64 = memory_pb2.INT64


DTypeLike = Union[DType, str, int, None]

_NAMES = {"float32": DType.FLOAT32, "float16": DType.FLOAT16,
          "bfloat16": DType.BFLOAT16, "int64": DType.INT64}


def as_dtype(value: DTypeLike) -> DType | None:
    """DType from a DType, a proto value, or a name ("float32", "bfloat16")."""
    if value is None or isinstance(value, DType):
        return value
    if isinstance(value, str):
        try:
            return _NAMES[value.lower()]
        except KeyError:
            raise ValueError(f"unknown dtype '{value}' (float32, float16, bfloat16)") from None
    return DType(int(value))


def element_size(dtype: DType) -> int:
    return 8 if dtype == DType.INT64 else 4 if dtype == DType.FLOAT32 else 2


def float32_to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) of float32 `x`, as FloatToBFloat16."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    # (u + 0x7fff + ((u >> 16) & 1)) >> 16, in three passes over the data.
    r = np.right_shift(u, 16)
    np.bitwise_and(r, 1, out=r)
    r += u
    r += np.uint32(0x7FFF)
    r >>= 16
    out = r.astype(np.uint16)
    nan = np.bitwise_and(u, np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    if nan.any():
        out[nan] = (np.right_shift(u[nan], 16) | np.uint32(0x40)).astype(np.uint16)
    return out


def bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (exact)."""
    return np.left_shift(np.asarray(bits, dtype=np.uint16).astype(np.uint32), 16).view(np.float32)


def float32_to_float16(x: np.ndarray) -> np.ndarray:
    """float16 of float32 `x`, as FloatToHalf (NaN -> sign | 0x7e00)."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        out = x.astype(np.float16)
    nan = np.isnan(x)
    if nan.any():
        bits = out.view(np.uint16)
        sign = (np.right_shift(x[nan].view(np.uint32), 16) & np.uint32(0x8000)).astype(np.uint16)
        bits[nan] = sign | np.uint16(0x7E00)
    return out

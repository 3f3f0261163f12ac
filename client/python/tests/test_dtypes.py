"""float16 / bfloat16 conversions: bit-identical to base/dtype.h.

Two checks: against scalar ports of FloatToHalf and FloatToBFloat16 over
every class of float32 (NaN, Inf, subnormals, exact ties), and against the
C++ codec itself through a server round trip: float32 appended into a
float16 or bfloat16 stream is converted by the server, and the stored bits
(read back with return_keys) must equal the Python encoding.
"""
import struct

import numpy as np
import pytest

import knnmem
from knnmem import dtypes


def f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def bits32(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def float_to_bfloat16_ref(x: int) -> int:
    """base/dtype.h FloatToBFloat16, on float32 bits."""
    if (x & 0x7FFFFFFF) > 0x7F800000:
        return ((x >> 16) | 0x40) & 0xFFFF
    return ((x + 0x7FFF + ((x >> 16) & 1)) & 0xFFFFFFFF) >> 16


def float_to_half_ref(x: int) -> int:
    """base/dtype.cc FloatToHalf (the scalar path), on float32 bits."""
    sign = (x >> 16) & 0x8000
    a = x & 0x7FFFFFFF
    if a >= 0x7F800000:
        return sign | 0x7C00 | (0x200 if a > 0x7F800000 else 0)
    if a >= 0x477FF000:
        return sign | 0x7C00
    if a < 0x38800000:
        scaled = f32(a) * 16777216.0  # exact: a power of two
        return sign | int(round(scaled))  # round() is to nearest even
    rounded = a + 0xFFF + ((a >> 13) & 1)
    return sign | ((rounded - 0x38000000) >> 13)


def interesting_float32_bits(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    random_bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    # Exact ties for bfloat16 (low 16 bits 0x8000) and float16 (low 13 bits
    # 0x1000), next to ties, float16 subnormals and the overflow edge.
    ties16 = (random_bits & np.uint32(0xFFFF0000)) | np.uint32(0x8000)
    ties13 = (random_bits & np.uint32(0xFFFFE000)) | np.uint32(0x1000)
    near = ties13 + rng.integers(-2, 3, n).astype(np.uint32)
    sub = np.uint32(0x33000000) + rng.integers(0, 0x05800000, n, dtype=np.uint32)
    edge = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001,
                     0x7F800001, 0x7FBFFFFF, 0x477FEFFF, 0x477FF000, 0x477FE000,
                     0x38800000, 0x387FFFFF, 0x33000000, 0x33000001, 0x7F7FFFFF,
                     0x7F7F8000, 0x3F808000, 0x3F818000, 0x00000001], np.uint32)
    return np.concatenate([random_bits, ties16, ties13, near, sub, edge])


def test_bfloat16_encoding_matches_the_cpp_rounding_on_every_class_of_float():
    bits = interesting_float32_bits(4000, 1)
    got = dtypes.float32_to_bfloat16_bits(bits.view(np.float32))
    want = np.array([float_to_bfloat16_ref(int(b)) for b in bits], np.uint16)
    np.testing.assert_array_equal(got, want)


def test_float16_encoding_matches_the_cpp_rounding_on_every_class_of_float():
    bits = interesting_float32_bits(4000, 2)
    got = dtypes.float32_to_float16(bits.view(np.float32)).view(np.uint16)
    want = np.array([float_to_half_ref(int(b)) for b in bits], np.uint16)
    np.testing.assert_array_equal(got, want)


def test_decoding_is_exact():
    halves = np.arange(0, 1 << 16, dtype=np.uint16)
    widened = dtypes.bfloat16_bits_to_float32(halves)
    np.testing.assert_array_equal(widened.view(np.uint32), halves.astype(np.uint32) << 16)
    finite = (halves & 0x7C00) != 0x7C00
    as_half = halves.view(np.float16)[finite]
    assert all(float(h) == float(np.float32(h)) for h in as_half[::97])


def server_values(n_rows: int, heads: int, dim: int, seed: int, limit: float) -> np.ndarray:
    """Finite float32 within `limit` (the server's bound, or the storage
    dtype's range), rich in rounding ties and float16 subnormals."""
    bits = interesting_float32_bits(n_rows * heads * dim, seed)
    x = bits.view(np.float32)
    ok = np.isfinite(x) & (np.abs(x) <= limit)
    x = x[ok][: n_rows * heads * dim]
    x = np.resize(x, n_rows * heads * dim)
    return x.reshape(n_rows, heads, dim)


def stored_rows(client, stream_id, rows, heads, dim, key_dim_query=None):
    """Every stored key of layer 0, [rows, heads, dim], as the server's raw
    storage-dtype bits (uint16), ordered by position."""
    q = np.ones((1, heads, dim), np.float32)
    r = client.search(stream_id, q, rows, return_keys=True, return_values=True)
    positions = r.positions[0]  # [heads, rows]
    assert (positions >= 0).all()
    order = np.argsort(positions, axis=-1)
    keys = np.take_along_axis(r.keys[0], order[..., None], axis=1)  # [heads, rows, dim]
    values = np.take_along_axis(r.values[0], order[..., None], axis=1)
    return keys.transpose(1, 0, 2), values.transpose(1, 0, 2)


@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_server_conversion_of_float32_is_bit_identical_to_python(client, stream_id, storage):
    rows, heads, dim = 512, 2, 8
    limit = 65504.0 if storage == "float16" else 1e15
    x = server_values(rows, heads, dim, 3, limit)
    client.create_stream(stream_id, heads=heads, key_dim=dim, capacity=rows, dtype=storage)
    client.append(stream_id, x, -x, first_position=0)  # float32 on the wire
    keys, values = stored_rows(client, stream_id, rows, heads, dim)
    if storage == "float16":
        assert keys.dtype == np.float16
        want = dtypes.float32_to_float16(x).view(np.uint16)
        got_keys, got_values = keys.view(np.uint16), values.view(np.uint16)
        want_values = dtypes.float32_to_float16(-x).view(np.uint16)
    else:
        assert keys.dtype == np.float32  # bfloat16, widened exactly
        want = dtypes.float32_to_bfloat16_bits(x)
        got_keys = (keys.view(np.uint32) >> 16).astype(np.uint16)
        got_values = (values.view(np.uint32) >> 16).astype(np.uint16)
        assert not (keys.view(np.uint32) & 0xFFFF).any()
        want_values = dtypes.float32_to_bfloat16_bits(-x)
    np.testing.assert_array_equal(got_keys, want)
    np.testing.assert_array_equal(got_values, want_values)


@pytest.mark.parametrize("wire", ["float16", "bfloat16"])
def test_python_encoded_wire_dtypes_store_what_python_encoded(client, stream_id, wire):
    rows, heads, dim = 256, 2, 8
    x = server_values(rows, heads, dim, 4, 65504.0)
    client.create_stream(stream_id, heads=heads, key_dim=dim, capacity=rows, dtype="float32")
    client.append(stream_id, x, x, first_position=0, dtype=wire)  # Python converts
    keys, _ = stored_rows(client, stream_id, rows, heads, dim)
    if wire == "float16":
        want = dtypes.float32_to_float16(x).astype(np.float32)
    else:
        want = dtypes.bfloat16_bits_to_float32(dtypes.float32_to_bfloat16_bits(x))
    np.testing.assert_array_equal(keys.view(np.uint32), want.view(np.uint32))


def test_bfloat16_bit_patterns_and_float16_arrays_are_sent_as_they_are(client, stream_id):
    heads, dim = 1, 4
    client.create_stream(stream_id, heads=heads, key_dim=dim, capacity=8, dtype="bfloat16")
    bits = np.array([[[0x3F80, 0xC000, 0x0001, 0x5800]]], np.uint16)  # 1, -2, tiny, 5.6e14
    client.append(stream_id, bits, bits, first_position=0, dtype="bfloat16")
    half = np.array([[[1.5, -0.25, 3.0, 0.0]]], np.float16)
    client.append(stream_id, half, half, first_position=1)  # FLOAT16 on the wire
    r = client.search(stream_id, np.ones((1, 1, 4), np.float32), 2, return_keys=True)
    by_position = {int(p): r.keys[0, 0, i] for i, p in enumerate(r.positions[0, 0])}
    np.testing.assert_array_equal(by_position[0].view(np.uint32) >> 16, bits[0, 0])
    np.testing.assert_array_equal(by_position[1], half[0, 0].astype(np.float32))
    with pytest.raises(knnmem.Error) as e:
        client.append(stream_id, bits, bits, first_position=2)
    assert "bfloat16" in e.value.message

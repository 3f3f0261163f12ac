"""Requests and results of knnmem.v1.Memory, shared by every client.

Builders return the serialised request (bytes); decoders turn responses into
the result types below, whose arrays are views of the response bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, NamedTuple, Optional, Sequence, Union

import grpc
import numpy as np

from knnmem import codec
from knnmem.dtypes import DTypeLike, as_dtype
from knnmem.errors import Error, invalid_argument, status_code
from knnmem.v1 import memory_pb2 as pb

FloatList = Union[None, float, Sequence[float]]


class Appended(NamedTuple):
    """An acknowledged Append: where the next batch starts, rows newly stored."""

    next_position: int
    stored: int


class Neighbours(NamedTuple):
    """Search results per (query, head), best first; empty slots have score
    -inf, position -1 and zero keys/values.

    scores float32 [n, heads, k]; positions int64 [n, heads, k]; keys
    [n, heads, k, key_dim] and values [n, heads, k, value_dim] when asked for,
    in the stream's storage dtype (float32 or float16 views; bfloat16 widened
    to float32, exactly), else None.
    """

    scores: np.ndarray
    positions: np.ndarray
    keys: Optional[np.ndarray] = None
    values: Optional[np.ndarray] = None


class Attention(NamedTuple):
    """Attend results: output float32 [n, heads, value_dim] and lse float32
    [n, heads] (-inf where the memory is empty)."""

    output: np.ndarray
    lse: np.ndarray


@dataclass
class Step:
    """One stream's part of a decode_step: optionally append keys and values
    ([t, heads, dim], rows starting at first_position), then attend the
    queries ([n, heads, key_dim]; None to only append)."""

    stream_id: str
    queries: Any = None
    layer: int = 0
    keys: Any = None
    values: Any = None
    first_position: Optional[int] = None


class StepResult(NamedTuple):
    """A step that succeeded: as Attention, plus the layer's next position."""

    output: Optional[np.ndarray]
    lse: Optional[np.ndarray]
    next_position: int
    ok: bool = True


class StepError(Error):
    """A step that failed alone (the other steps of the call went on)."""

    ok = False

    def __init__(self, code: grpc.StatusCode, message: str, index: int = -1):
        super().__init__(code, message)
        self.index = index

    def __reduce__(self):
        return (type(self), (self.code, self.message, self.index))


StepOutcome = Union[StepResult, StepError]


def stream_spec(*, heads: int, key_dim: int, capacity: int, value_dim: Optional[int] = None,
                layers: int = 1, dtype: DTypeLike = "float32", index: str = "exact",
                ttl_seconds: int = 0, nlist: int = 0, nprobe: int = 0,
                exact_tail: int = 0) -> pb.StreamSpec:
    """A StreamSpec; value_dim defaults to key_dim, index is "exact" or
    "approximate"."""
    kinds = {"exact": pb.EXACT, "approximate": pb.APPROXIMATE}
    if index not in kinds:
        raise ValueError(f"index: '{index}' is not 'exact' or 'approximate'")
    return pb.StreamSpec(
        layers=layers, heads=heads, key_dim=key_dim,
        value_dim=key_dim if value_dim is None else value_dim, capacity=capacity,
        index=kinds[index], storage_dtype=int(as_dtype(dtype)), ttl_seconds=ttl_seconds,
        nlist=nlist, nprobe=nprobe, exact_tail=exact_tail)


def _floats(values: FloatList) -> List[float]:
    if values is None:
        return []
    if np.ndim(values) == 0:
        return [float(values)]
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def _join(chunks: List[codec.Chunk], buffers: Optional[codec.RequestBuffers]) -> bytes:
    return codec.join(chunks) if buffers is None else buffers.join(chunks)


def append_chunks(stream_id: str, keys: Any, values: Any, first_position: int, layer: int,
                  dtype: DTypeLike, sync: bool) -> List[codec.Chunk]:
    head = pb.AppendRequest(stream_id=stream_id, layer=layer,
                            first_position=first_position, sync=sync).SerializeToString()
    return [head, *codec.tensor_field(4, codec.prepare(keys, dtype, "keys")),
            *codec.tensor_field(5, codec.prepare(values, dtype, "values"))]


def append_request(stream_id: str, keys: Any, values: Any, first_position: int, layer: int,
                   dtype: DTypeLike, sync: bool,
                   buffers: Optional[codec.RequestBuffers] = None) -> bytes:
    """The serialised AppendRequest; written into one of `buffers` when given."""
    return _join(append_chunks(stream_id, keys, values, first_position, layer, dtype, sync),
                 buffers)


def search_request(stream_id: str, queries: Any, k: int, layer: int, return_keys: bool,
                   return_values: bool, exact: bool, dtype: DTypeLike,
                   buffers: Optional[codec.RequestBuffers] = None) -> bytes:
    head = pb.SearchRequest(stream_id=stream_id, layer=layer, k=k, return_keys=return_keys,
                            return_values=return_values, exact=exact).SerializeToString()
    return _join([head, *codec.tensor_field(3, codec.prepare(queries, dtype, "queries"))],
                 buffers)


def attend_request(stream_id: str, queries: Any, k: int, layer: int, scale: FloatList,
                   age_alpha: FloatList, age_tau: float, dtype: DTypeLike,
                   buffers: Optional[codec.RequestBuffers] = None) -> bytes:
    head = pb.AttendRequest(stream_id=stream_id, layer=layer, k=k, scale=_floats(scale),
                            age_alpha=_floats(age_alpha), age_tau=age_tau).SerializeToString()
    return _join([head, *codec.tensor_field(3, codec.prepare(queries, dtype, "queries"))],
                 buffers)


def as_step(step: Any) -> Step:
    if isinstance(step, Step):
        return step
    if isinstance(step, dict):
        return Step(**step)
    raise TypeError(f"a decode step is a knnmem.Step or a dict, not {type(step).__name__}")


def decode_step_request(steps: Sequence[Any], k: int, scale: FloatList = None,
                        age_alpha: FloatList = None, age_tau: float = 0.0, sync: bool = False,
                        dtype: DTypeLike = None,
                        buffers: Optional[codec.RequestBuffers] = None) -> bytes:
    chunks: List[codec.Chunk] = [pb.DecodeStepRequest(
        k=k, scale=_floats(scale), age_alpha=_floats(age_alpha), age_tau=age_tau,
        sync=sync).SerializeToString()]
    for i, step in enumerate(map(as_step, steps)):
        body: List[codec.Chunk] = []
        appends = step.keys is not None or step.values is not None
        if appends and step.first_position is None:
            raise invalid_argument(f"steps[{i}].first_position: required with keys and values")
        body.append(pb.StreamStep(stream_id=step.stream_id, layer=step.layer,
                                  first_position=step.first_position or 0).SerializeToString())
        for number, name, array in ((4, "keys", step.keys), (5, "values", step.values),
                                    (6, "queries", step.queries)):
            if array is not None:
                body += codec.tensor_field(
                    number, codec.prepare(array, dtype, f"steps[{i}].{name}"))
        chunks += codec.field(1, body)
    return _join(chunks, buffers)


def neighbours(r: pb.SearchResponse, bfloat16_bits: bool = False) -> Neighbours:
    return Neighbours(codec.decode(r.scores, "scores"), codec.decode(r.positions, "positions"),
                      codec.decode_optional(r, "keys", bfloat16_bits=bfloat16_bits),
                      codec.decode_optional(r, "values", bfloat16_bits=bfloat16_bits))


def attention(r: pb.AttendResponse) -> Attention:
    return Attention(codec.decode(r.output, "output"), codec.decode(r.lse, "lse"))


def step_outcomes(r: pb.DecodeStepResponse, steps: int) -> List[StepOutcome]:
    if len(r.results) != steps:
        raise Error(grpc.StatusCode.DATA_LOSS, f"results: {len(r.results)} for {steps} steps")
    out: List[StepOutcome] = []
    decode = codec.decode
    for i, s in enumerate(r.results):
        if s.code != 0:
            out.append(StepError(status_code(s.code), s.message, i))
        else:
            out.append(StepResult(decode(s.output, "output") if s.HasField("output") else None,
                                  decode(s.lse, "lse") if s.HasField("lse") else None,
                                  s.next_position))
    return out

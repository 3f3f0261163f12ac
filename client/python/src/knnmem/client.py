"""Client: the blocking Python client of knnmem.v1.Memory."""
from __future__ import annotations

from typing import Any, Callable, Iterator, List, Optional, Sequence

import grpc

from knnmem import channel as ch
from knnmem import codec
from knnmem import messages as m
from knnmem.dtypes import DTypeLike
from knnmem.errors import Error
from knnmem.pipeline import AppendPipeline
from knnmem.v1 import memory_pb2 as pb

DEFAULT_TIMEOUT = 30.0  # seconds per call, as the C++ client's deadline


class Client:
    """A client of the server at `address` (HOST:PORT); connects on first use.

    Every call has a deadline (`timeout` seconds, or the call's own
    `timeout=`) and raises knnmem.Error with the gRPC code and the server's
    message. Thread-safe. Arrays go in as numpy arrays [rows, heads, dim] of
    float32 or float16 (or uint16 bfloat16 bit patterns with
    dtype="bfloat16"); `dtype` picks the wire format, converting with the C++
    codec's rounding. Arrays come out as read-only views of the response.
    """

    def __init__(self, address: str, *, token: Optional[str] = None, root_certs: ch.Pem = None,
                 cert_chain: ch.Pem = None, private_key: ch.Pem = None,
                 timeout: float = DEFAULT_TIMEOUT,
                 options: Sequence[tuple] = ()):
        creds = ch.credentials(root_certs, cert_chain, private_key)
        opts = ch.OPTIONS + list(options)
        self.address = address
        self.timeout = timeout
        self._channel = (grpc.secure_channel(address, creds, opts) if creds
                         else grpc.insecure_channel(address, opts))
        self._metadata = ch.metadata(token)
        self._calls = {}
        # Large requests are written into reused bytes (codec.RequestBuffers).
        self._buffers = codec.RequestBuffers()

    # Plumbing.

    def _method(self, name: str, response: Any, kind: str = "unary_unary") -> Callable:
        method = self._calls.get(name)
        if method is None:
            path = name if name.startswith("/") else ch.SERVICE + name
            deserialize = response.FromString if response is not None else None
            method = getattr(self._channel, kind)(path, request_serializer=None,
                                                  response_deserializer=deserialize)
            self._calls[name] = method
        return method

    def _call(self, name: str, request: Any, response: Any, timeout: Optional[float]) -> Any:
        payload = request if isinstance(request, bytes) else request.SerializeToString()
        try:
            return self._method(name, response)(
                payload, timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata)
        except grpc.RpcError as e:
            raise Error.from_rpc_error(e) from None

    def _future(self, name: str, request: bytes, response: Any,
                timeout: Optional[float]) -> grpc.Future:
        return self._method(name, response).future(
            request, timeout=self.timeout if timeout is None else timeout,
            metadata=self._metadata)

    def close(self) -> None:
        self._channel.close()
        self._buffers.clear()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # Streams.

    def create_stream(self, stream_id: str, spec: Optional[pb.StreamSpec] = None, *,
                      timeout: Optional[float] = None, **spec_fields: Any
                      ) -> pb.CreateStreamResponse:
        """Creates a stream from `spec`, or from keyword fields (heads=,
        key_dim=, capacity=, value_dim=, layers=, dtype=, index=, ...; see
        knnmem.stream_spec). Idempotent for an identical spec."""
        if spec is None:
            spec = m.stream_spec(**spec_fields)
        elif spec_fields:
            raise TypeError("give a spec or spec fields, not both")
        return self._call("CreateStream", pb.CreateStreamRequest(stream_id=stream_id, spec=spec),
                          pb.CreateStreamResponse, timeout)

    def get_stream(self, stream_id: str, *, timeout: Optional[float] = None) -> pb.StreamInfo:
        return self._call("GetStream", pb.GetStreamRequest(stream_id=stream_id),
                          pb.StreamInfo, timeout)

    def list_streams(self, *, page_size: int = 0,
                     timeout: Optional[float] = None) -> Iterator[pb.StreamInfo]:
        """Every stream, sorted by id, fetching one page (page_size streams;
        0 = the server's default) at a time as the iteration reaches it."""
        token = ""
        while True:
            page = self._call("ListStreams",
                              pb.ListStreamsRequest(page_size=page_size, page_token=token),
                              pb.ListStreamsResponse, timeout)
            yield from page.streams
            token = page.next_page_token
            if not token:
                return

    def reset_stream(self, stream_id: str, *, timeout: Optional[float] = None) -> None:
        self._call("ResetStream", pb.ResetStreamRequest(stream_id=stream_id),
                   pb.ResetStreamResponse, timeout)

    def delete_stream(self, stream_id: str, *, timeout: Optional[float] = None) -> None:
        self._call("DeleteStream", pb.DeleteStreamRequest(stream_id=stream_id),
                   pb.DeleteStreamResponse, timeout)

    # Vectors.

    def append(self, stream_id: str, keys: Any, values: Any, *, first_position: int,
               layer: int = 0, dtype: DTypeLike = None, sync: bool = False,
               timeout: Optional[float] = None) -> m.Appended:
        """Stores keys [t, heads, key_dim] and values [t, heads, value_dim] at
        positions first_position.. of `layer`; returns once in the WAL."""
        request = m.append_request(stream_id, keys, values, first_position, layer, dtype, sync,
                                   self._buffers)
        r = self._call("Append", request, pb.AppendResponse, timeout)
        return m.Appended(r.next_position, r.stored)

    def append_pipeline(self, window: int = 2, *,
                        timeout: Optional[float] = None) -> AppendPipeline:
        """An AppendStream call keeping up to `window` batches unacknowledged
        (as MemoryClient::OpenAppendPipeline). Its deadline covers the whole
        call. Use it as a context manager, or call finish()."""
        return AppendPipeline(self._method("AppendStream", pb.AppendResponse, "stream_stream"),
                              window, self.timeout if timeout is None else timeout,
                              self._metadata, self._buffers)

    def search(self, stream_id: str, queries: Any, k: int, *, layer: int = 0,
               return_keys: bool = False, return_values: bool = False, exact: bool = False,
               dtype: DTypeLike = None, timeout: Optional[float] = None) -> m.Neighbours:
        """Top-k by inner product per (query, head) of queries [n, heads, key_dim]."""
        request = m.search_request(stream_id, queries, k, layer, return_keys, return_values,
                                   exact, dtype, self._buffers)
        return m.neighbours(self._call("Search", request, pb.SearchResponse, timeout))

    def attend(self, stream_id: str, queries: Any, k: int, *, layer: int = 0,
               scale: m.FloatList = None, age_alpha: m.FloatList = None, age_tau: float = 0.0,
               dtype: DTypeLike = None, timeout: Optional[float] = None) -> m.Attention:
        """Memory attention over the top-k of queries [n, heads, key_dim].
        scale and age_alpha: None, one value, or one per head."""
        request = m.attend_request(stream_id, queries, k, layer, scale, age_alpha, age_tau, dtype,
                                   self._buffers)
        return m.attention(self._call("Attend", request, pb.AttendResponse, timeout))

    def decode_step(self, steps: Sequence[Any], k: int, *, scale: m.FloatList = None,
                    age_alpha: m.FloatList = None, age_tau: float = 0.0, sync: bool = False,
                    dtype: DTypeLike = None,
                    timeout: Optional[float] = None) -> List[m.StepOutcome]:
        """One generation step of many streams in one call: per knnmem.Step an
        optional append, then an attend. Returns one outcome per step, in
        order: a StepResult(output, lse, next_position), or a StepError (a
        knnmem.Error with .code, .message and .index; returned, not raised)
        for a step that failed alone. Raises knnmem.Error only when the whole
        call failed."""
        steps = list(steps)
        request = m.decode_step_request(steps, k, scale, age_alpha, age_tau, sync, dtype,
                                        self._buffers)
        response = self._call("DecodeStep", request, pb.DecodeStepResponse, timeout)
        return m.step_outcomes(response, len(steps))

    def health(self, *, timeout: Optional[float] = None) -> str:
        """grpc.health.v1 status of the server: "SERVING", "NOT_SERVING", ..."""
        return ch.serving_status(self._call(ch.HEALTH_CHECK, b"", None, timeout))

"""AsyncClient: the asyncio (grpc.aio) client, with Client's methods."""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable, List, Optional, Sequence

import grpc
from grpc import aio

from knnmem import channel as ch
from knnmem import codec
from knnmem import messages as m
from knnmem.client import DEFAULT_TIMEOUT
from knnmem.dtypes import DTypeLike
from knnmem.errors import Error
from knnmem.v1 import memory_pb2 as pb


class AsyncClient:
    """Client's methods as coroutines (list_streams: an async iterator), over
    a grpc.aio channel. Create and use it inside a running event loop."""

    def __init__(self, address: str, *, token: Optional[str] = None, root_certs: ch.Pem = None,
                 cert_chain: ch.Pem = None, private_key: ch.Pem = None,
                 timeout: float = DEFAULT_TIMEOUT, options: Sequence[tuple] = ()):
        creds = ch.credentials(root_certs, cert_chain, private_key)
        opts = ch.OPTIONS + list(options)
        self.address = address
        self.timeout = timeout
        self._channel = (aio.secure_channel(address, creds, opts) if creds
                         else aio.insecure_channel(address, opts))
        self._metadata = ch.metadata(token)
        self._calls = {}
        self._buffers = codec.RequestBuffers()  # as Client's

    def _method(self, name: str, response: Any, kind: str = "unary_unary") -> Callable:
        method = self._calls.get(name)
        if method is None:
            path = name if name.startswith("/") else ch.SERVICE + name
            deserialize = response.FromString if response is not None else None
            method = getattr(self._channel, kind)(path, request_serializer=None,
                                                  response_deserializer=deserialize)
            self._calls[name] = method
        return method

    async def _call(self, name: str, request: Any, response: Any,
                    timeout: Optional[float]) -> Any:
        payload = request if isinstance(request, bytes) else request.SerializeToString()
        try:
            return await self._method(name, response)(
                payload, timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata)
        except grpc.RpcError as e:
            raise Error.from_rpc_error(e) from None

    async def close(self) -> None:
        await self._channel.close()
        self._buffers.clear()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def create_stream(self, stream_id: str, spec: Optional[pb.StreamSpec] = None, *,
                            timeout: Optional[float] = None, **spec_fields: Any
                            ) -> pb.CreateStreamResponse:
        if spec is None:
            spec = m.stream_spec(**spec_fields)
        elif spec_fields:
            raise TypeError("give a spec or spec fields, not both")
        return await self._call("CreateStream",
                                pb.CreateStreamRequest(stream_id=stream_id, spec=spec),
                                pb.CreateStreamResponse, timeout)

    async def get_stream(self, stream_id: str, *,
                         timeout: Optional[float] = None) -> pb.StreamInfo:
        return await self._call("GetStream", pb.GetStreamRequest(stream_id=stream_id),
                                pb.StreamInfo, timeout)

    async def list_streams(self, *, page_size: int = 0,
                           timeout: Optional[float] = None) -> AsyncIterator[pb.StreamInfo]:
        token = ""
        while True:
            page = await self._call("ListStreams",
                                    pb.ListStreamsRequest(page_size=page_size, page_token=token),
                                    pb.ListStreamsResponse, timeout)
            for info in page.streams:
                yield info
            token = page.next_page_token
            if not token:
                return

    async def reset_stream(self, stream_id: str, *, timeout: Optional[float] = None) -> None:
        await self._call("ResetStream", pb.ResetStreamRequest(stream_id=stream_id),
                         pb.ResetStreamResponse, timeout)

    async def delete_stream(self, stream_id: str, *, timeout: Optional[float] = None) -> None:
        await self._call("DeleteStream", pb.DeleteStreamRequest(stream_id=stream_id),
                         pb.DeleteStreamResponse, timeout)

    async def append(self, stream_id: str, keys: Any, values: Any, *, first_position: int,
                     layer: int = 0, dtype: DTypeLike = None, sync: bool = False,
                     timeout: Optional[float] = None) -> m.Appended:
        request = m.append_request(stream_id, keys, values, first_position, layer, dtype, sync,
                                   self._buffers)
        r = await self._call("Append", request, pb.AppendResponse, timeout)
        return m.Appended(r.next_position, r.stored)

    def append_pipeline(self, window: int = 2, *,
                        timeout: Optional[float] = None) -> "AsyncAppendPipeline":
        call = self._method("AppendStream", pb.AppendResponse, "stream_stream")(
            timeout=self.timeout if timeout is None else timeout, metadata=self._metadata)
        return AsyncAppendPipeline(call, window, self._buffers)

    async def search(self, stream_id: str, queries: Any, k: int, *, layer: int = 0,
                     return_keys: bool = False, return_values: bool = False,
                     exact: bool = False, dtype: DTypeLike = None,
                     timeout: Optional[float] = None) -> m.Neighbours:
        request = m.search_request(stream_id, queries, k, layer, return_keys, return_values,
                                   exact, dtype, self._buffers)
        return m.neighbours(await self._call("Search", request, pb.SearchResponse, timeout))

    async def attend(self, stream_id: str, queries: Any, k: int, *, layer: int = 0,
                     scale: m.FloatList = None, age_alpha: m.FloatList = None,
                     age_tau: float = 0.0, dtype: DTypeLike = None,
                     timeout: Optional[float] = None) -> m.Attention:
        request = m.attend_request(stream_id, queries, k, layer, scale, age_alpha, age_tau, dtype,
                                   self._buffers)
        return m.attention(await self._call("Attend", request, pb.AttendResponse, timeout))

    async def decode_step(self, steps: Sequence[Any], k: int, *, scale: m.FloatList = None,
                          age_alpha: m.FloatList = None, age_tau: float = 0.0,
                          sync: bool = False, dtype: DTypeLike = None,
                          timeout: Optional[float] = None) -> List[m.StepOutcome]:
        steps = list(steps)
        request = m.decode_step_request(steps, k, scale, age_alpha, age_tau, sync, dtype,
                                        self._buffers)
        response = await self._call("DecodeStep", request, pb.DecodeStepResponse, timeout)
        return m.step_outcomes(response, len(steps))

    async def health(self, *, timeout: Optional[float] = None) -> str:
        return ch.serving_status(await self._call(ch.HEALTH_CHECK, b"", None, timeout))


class AsyncAppendPipeline:
    """AppendPipeline for asyncio: `await send(...)`, `await finish()`, or
    `async with client.append_pipeline() as p`."""

    def __init__(self, call: Any, window: int,
                 buffers: Optional[codec.RequestBuffers] = None):
        if window < 1:
            raise ValueError("window must be at least 1")
        self._call = call
        self._window = window
        self._sent = 0
        self._error: Optional[Error] = None
        self._closed = False
        self.acknowledged: List[m.Appended] = []
        self._buffers = codec.RequestBuffers() if buffers is None else buffers  # the client's

    def _fail(self, error: Error) -> Error:
        self._error = error
        self._call.cancel()
        return error

    async def _status_error(self) -> Error:
        code = await self._call.code()
        return Error(code, await self._call.details() or "")

    async def _read_one(self) -> None:
        try:
            r = await self._call.read()
        except grpc.RpcError as e:
            raise self._fail(Error.from_rpc_error(e)) from None
        if r is aio.EOF:
            error = await self._status_error()
            if error.code == grpc.StatusCode.OK:
                error = Error(grpc.StatusCode.INTERNAL,
                              "AppendStream ended before acknowledging every batch")
            raise self._fail(error)
        self.acknowledged.append(m.Appended(r.next_position, r.stored))

    async def send(self, stream_id: str, keys: Any, values: Any, *, first_position: int,
                   layer: int = 0, dtype: DTypeLike = None, sync: bool = False) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ValueError("the pipeline is finished")
        request = self._buffers.join(
            m.append_chunks(stream_id, keys, values, first_position, layer, dtype, sync),
            slots=self._window + 2)
        while self._sent - len(self.acknowledged) >= self._window:
            await self._read_one()
        try:
            await self._call.write(request)
        except grpc.RpcError as e:
            raise self._fail(Error.from_rpc_error(e)) from None
        except asyncio.InvalidStateError:  # the call already ended: its status says why
            raise self._fail(await self._status_error()) from None
        self._sent += 1

    async def finish(self) -> List[m.Appended]:
        if self._error is not None:
            raise self._error
        if not self._closed:
            self._closed = True
            await self._call.done_writing()
        while len(self.acknowledged) < self._sent:
            await self._read_one()
        error = await self._status_error()
        if error.code != grpc.StatusCode.OK:
            raise self._fail(error)
        return self.acknowledged

    def cancel(self) -> None:
        self._closed = True
        self._call.cancel()

    async def __aenter__(self) -> "AsyncAppendPipeline":
        return self

    async def __aexit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            await self.finish()
        else:
            self.cancel()

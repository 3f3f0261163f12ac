"""AppendPipeline: Append over one AppendStream call, with a window."""
from __future__ import annotations

import queue
from typing import Any, Callable, Iterator, List, Optional, Tuple

import grpc

from knnmem import codec
from knnmem import messages as m
from knnmem.dtypes import DTypeLike
from knnmem.errors import Error

_END = object()


class AppendPipeline:
    """Appends batches (any streams, layers) over one AppendStream call,
    keeping up to `window` of them unacknowledged so that sending one batch
    overlaps the server's write of the one before (as the C++
    AppendPipeline). An acknowledged batch is in the WAL.

    After a failure the call is over: that send and every later send and
    finish raise the same knnmem.Error; the batches in `acknowledged` are
    stored. Not thread-safe: one pipeline per appending thread.
    """

    def __init__(self, method: Callable, window: int, timeout: float,
                 metadata: Tuple[Tuple[str, str], ...],
                 buffers: Optional[codec.RequestBuffers] = None):
        if window < 1:
            raise ValueError("window must be at least 1")
        self._window = window
        self._requests: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._responses = method(self._request_iterator(), timeout=timeout,
                                 metadata=metadata)
        self._sent = 0
        self._error: Optional[Error] = None
        self._closed = False
        self.acknowledged: List[m.Appended] = []
        # The client's buffers, window + 2 of them kept while sending: up to
        # `window` requests in gRPC's hands, one being written, one spare.
        self._buffers = codec.RequestBuffers() if buffers is None else buffers

    def _request_iterator(self) -> Iterator[bytes]:
        while True:
            item = self._requests.get()
            if item is _END:
                return
            yield item

    def _close_requests(self) -> None:
        if not self._closed:
            self._closed = True
            self._requests.put(_END)  # also frees gRPC's thread reading requests

    def _fail(self, error: Error) -> Error:
        self._error = error
        self._close_requests()
        return error

    def _read_one(self) -> None:
        try:
            r = next(self._responses)
        except StopIteration:
            raise self._fail(Error(grpc.StatusCode.INTERNAL,
                                   "AppendStream ended before acknowledging every batch"))
        except grpc.RpcError as e:
            raise self._fail(Error.from_rpc_error(e)) from None
        self.acknowledged.append(m.Appended(r.next_position, r.stored))

    def send(self, stream_id: str, keys: Any, values: Any, *, first_position: int,
             layer: int = 0, dtype: DTypeLike = None, sync: bool = False) -> None:
        """Sends one batch, as Client.append, first waiting for
        acknowledgements while `window` batches are unacknowledged."""
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ValueError("the pipeline is finished")
        request = self._buffers.join(
            m.append_chunks(stream_id, keys, values, first_position, layer, dtype, sync),
            slots=self._window + 2)
        while self._sent - len(self.acknowledged) >= self._window:
            self._read_one()
        self._requests.put(request)
        self._sent += 1

    def finish(self) -> List[m.Appended]:
        """Closes the call once every batch is acknowledged; returns the
        acknowledgements in the order the batches were sent."""
        if self._error is not None:
            raise self._error
        self._close_requests()
        while len(self.acknowledged) < self._sent:
            self._read_one()
        try:
            next(self._responses)
        except StopIteration:
            return self.acknowledged
        except grpc.RpcError as e:
            raise self._fail(Error.from_rpc_error(e)) from None
        raise self._fail(Error(grpc.StatusCode.INTERNAL,
                               "AppendStream acknowledged more batches than were sent"))

    def cancel(self) -> None:
        """Ends the call without waiting; unacknowledged batches may or may
        not be stored."""
        self._close_requests()
        self._responses.cancel()

    def __enter__(self) -> "AppendPipeline":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.cancel()

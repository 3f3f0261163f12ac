"""TorchClient: Client's calls with torch tensors in and out."""
from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Sequence, Union

import grpc
import torch

import knnmem
from knnmem import messages as m
from knnmem.errors import Error
from knnmem.torch.tensors import from_numpy
from knnmem.v1 import memory_pb2 as pb


class TorchNeighbours(NamedTuple):
    """knnmem.Neighbours as tensors; keys and values in the storage dtype
    (float32, float16 or bfloat16), views of the response where on the CPU."""

    scores: torch.Tensor
    positions: torch.Tensor
    keys: Optional[torch.Tensor] = None
    values: Optional[torch.Tensor] = None


class TorchAttention(NamedTuple):
    output: torch.Tensor
    lse: torch.Tensor


class TorchClient:
    """Wraps a knnmem.Client (or makes one from an address and Client's
    keyword arguments). Inputs: tensors of float32, float16 or bfloat16 (the
    wire dtype follows the tensor's unless dtype= says otherwise), sent
    without a copy when on the CPU and contiguous. Outputs: tensors on
    `device` (default: the queries' device). Stream calls (create_stream,
    get_stream, ...) and append_pipeline are the Client's, which takes
    tensors too."""

    def __init__(self, client: Union[str, "knnmem.Client"], **client_options: Any):
        self.client = knnmem.Client(client, **client_options) if isinstance(client, str) \
            else client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def append(self, stream_id: str, keys: torch.Tensor, values: torch.Tensor,
               **kwargs: Any) -> m.Appended:
        return self.client.append(stream_id, keys, values, **kwargs)

    def _search_request(self, stream_id: str, queries: torch.Tensor, k: int, layer: int,
                        return_keys: bool, return_values: bool, exact: bool) -> bytes:
        return m.search_request(stream_id, queries, k, layer, return_keys, return_values,
                                exact, None, self.client._buffers)

    @staticmethod
    def _neighbours(r: pb.SearchResponse, device: torch.device) -> TorchNeighbours:
        n = m.neighbours(r, bfloat16_bits=True)
        return TorchNeighbours(*(None if a is None else from_numpy(a, device) for a in n))

    def search(self, stream_id: str, queries: torch.Tensor, k: int, *, layer: int = 0,
               return_keys: bool = False, return_values: bool = False, exact: bool = False,
               device: Optional[torch.device] = None,
               timeout: Optional[float] = None) -> TorchNeighbours:
        request = self._search_request(stream_id, queries, k, layer, return_keys,
                                       return_values, exact)
        r = self.client._call("Search", request, pb.SearchResponse, timeout)
        return self._neighbours(r, device or queries.device)

    def search_streams(self, stream_ids: Sequence[str], queries: torch.Tensor, k: int, *,
                       layer: int = 0, return_keys: bool = False,
                       return_values: bool = False, exact: bool = False,
                       device: Optional[torch.device] = None,
                       timeout: Optional[float] = None) -> TorchNeighbours:
        """Searches stream_ids[b] with queries[b] ([batch, n, heads, key_dim]),
        every call in flight at once; results stacked on a batch dimension."""
        if len(stream_ids) != queries.shape[0]:
            raise ValueError(f"{len(stream_ids)} streams for a batch of {queries.shape[0]}")
        futures = [self.client._future(
            "Search", self._search_request(s, q, k, layer, return_keys, return_values, exact),
            pb.SearchResponse, timeout) for s, q in zip(stream_ids, queries)]
        parts = []
        for f in futures:
            try:
                parts.append(self._neighbours(f.result(), torch.device("cpu")))
            except grpc.RpcError as e:
                raise Error.from_rpc_error(e) from None
        device = device or queries.device
        return TorchNeighbours(*(None if field[0] is None else torch.stack(field).to(device)
                                 for field in zip(*parts)))

    def attend(self, stream_id: str, queries: torch.Tensor, k: int, *, layer: int = 0,
               scale: m.FloatList = None, age_alpha: m.FloatList = None, age_tau: float = 0.0,
               device: Optional[torch.device] = None,
               timeout: Optional[float] = None) -> TorchAttention:
        request = m.attend_request(stream_id, queries, k, layer, scale, age_alpha, age_tau, None,
                                   self.client._buffers)
        a = m.attention(self.client._call("Attend", request, pb.AttendResponse, timeout))
        device = device or queries.device
        return TorchAttention(from_numpy(a.output, device), from_numpy(a.lse, device))

    def decode_step(self, steps: Sequence[Any], k: int, *,
                    device: Optional[torch.device] = None, **kwargs: Any) -> List[m.StepOutcome]:
        """Client.decode_step with tensors; each StepResult's output and lse
        are tensors on `device` (default: the CPU)."""
        out: List[m.StepOutcome] = []
        for r in self.client.decode_step(steps, k, **kwargs):
            if r.ok:
                r = m.StepResult(*(None if a is None else from_numpy(a, device)
                                   for a in (r.output, r.lse)), r.next_position)
            out.append(r)
        return out

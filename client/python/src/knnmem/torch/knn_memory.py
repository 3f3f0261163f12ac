"""KNNMemory: memorizing-transformers-pytorch's KNNMemory, kept in knnmem.

Same constructor, add, search, clear and batch scoping, so that code written
for that project keeps working after one changed import; the memory lives in
a knnmem-server (one stream per batch row) instead of in-process FAISS and a
memmap, and evicts its oldest entries first-in-first-out at max_memories
instead of being reset when full.
"""
from __future__ import annotations

import contextlib
import math
import os
import uuid
from typing import Any, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch

import knnmem
from knnmem.errors import Error
from knnmem.torch.client import TorchClient

DEFAULT_ADDRESS = "127.0.0.1:50051"


def _client(client: Any, address: Optional[str]) -> TorchClient:
    if isinstance(client, TorchClient):
        return client
    if client is not None:
        return TorchClient(client)
    return TorchClient(address or os.environ.get("KNNMEM_ADDRESS", DEFAULT_ADDRESS))


class KNNMemory:
    """Per batch row, a FIFO memory of at most max_memories (key, value)
    pairs of `dim` features, searched exactly by inner product.

    KNNMemory(dim, max_memories, num_indices) as the original (memmap_filename,
    multiprocessing and knn_use_gpu are accepted and unused). Where the
    memory lives: `client` (a knnmem.Client or TorchClient), else `address`,
    else $KNNMEM_ADDRESS, else 127.0.0.1:50051. Streams are named
    f"{stream_prefix}-{row}" (a fresh prefix by default), stored as `dtype`,
    and expire after ttl_seconds idle; cleanup() deletes them.
    """

    def __init__(self, dim: int, max_memories: int = 16000, num_indices: int = 1,
                 memmap_filename: Optional[str] = None, multiprocessing: bool = True,
                 knn_use_gpu: bool = False, *, client: Any = None,
                 address: Optional[str] = None, stream_prefix: Optional[str] = None,
                 dtype: str = "float32", ttl_seconds: int = 3600):
        del memmap_filename, multiprocessing, knn_use_gpu  # FAISS / memmap settings
        self.dim = dim
        self.max_memories = max_memories
        self.num_indices = num_indices
        self.client = _client(client, address)
        self.stream_prefix = stream_prefix or f"knn-memory-{uuid.uuid4().hex}"
        self.stream_ids = [f"{self.stream_prefix}-{i}" for i in range(num_indices)]
        self.db_offsets = np.zeros(num_indices, dtype=np.int64)  # next position per row
        self.scoped_indices: List[int] = list(range(num_indices))
        for s in self.stream_ids:
            self.client.create_stream(s, heads=1, key_dim=dim, value_dim=dim,
                                      capacity=max_memories, dtype=dtype,
                                      ttl_seconds=ttl_seconds)

    # Batch rows in scope: add and search take one row per scoped index.

    def set_scoped_indices(self, indices: Sequence[int]) -> None:
        indices = list(indices)
        if len(set(indices)) != len(indices):
            raise ValueError(f"all scoped batch indices must be unique, received: {indices}")
        if not all(0 <= i < self.num_indices for i in indices):
            raise ValueError(f"each batch index must be between 0 and less than "
                             f"{self.num_indices}: received {indices}")
        self.scoped_indices = indices

    @contextlib.contextmanager
    def at_batch_indices(self, indices: Sequence[int]) -> Iterator["KNNMemory"]:
        previous = self.scoped_indices
        self.set_scoped_indices(indices)
        try:
            yield self
        finally:
            self.set_scoped_indices(previous)

    def clear(self, batch_indices: Union[None, int, Sequence[int]] = None) -> None:
        """Empties the memories of these batch rows (default: all)."""
        if batch_indices is None:
            batch_indices = list(range(self.num_indices))
        elif isinstance(batch_indices, int):
            batch_indices = [batch_indices]
        for i in batch_indices:
            self.client.reset_stream(self.stream_ids[i])
            self.db_offsets[i] = 0

    def _check_batch(self, t: torch.Tensor, what: str) -> None:
        if t.shape[0] != len(self.scoped_indices) or t.shape[-1] != self.dim:
            raise ValueError(f"{what}: shape {list(t.shape)}, want batch "
                             f"{len(self.scoped_indices)} and feature dim {self.dim}")

    def add(self, memories: torch.Tensor) -> None:
        """Appends memories [batch, n, 2 (key | value), dim], row b to scoped
        batch index b; only the last max_memories of n are kept."""
        if memories.dim() != 4 or memories.shape[2] != 2:
            raise ValueError(f"memories: shape {list(memories.shape)}, want [b, n, 2, dim]")
        self._check_batch(memories, "memories")
        memories = memories.detach()[:, -self.max_memories:]
        n = memories.shape[1]
        if n == 0:
            return
        steps = []
        for row, index in enumerate(self.scoped_indices):
            # [n, 1 head, dim]: one copy into a contiguous layout.
            keys = memories[row, :, 0:1, :]
            values = memories[row, :, 1:2, :]
            steps.append(knnmem.Step(self.stream_ids[index], keys=keys, values=values,
                                     first_position=int(self.db_offsets[index])))
        # One call appends every row, in parallel on the server.
        for outcome in self.client.decode_step(steps, 1):
            if not outcome.ok:
                raise Error(outcome.code, outcome.message)
        for index in self.scoped_indices:
            self.db_offsets[index] += n

    def search(self, queries: torch.Tensor, topk: int, nprobe: int = 8,
               increment_hits: bool = True, increment_age: bool = True):
        """Top-k memories of queries [batch, ..., dim] per batch row:
        (key_values [batch, ..., topk, 2, dim], mask [batch, ..., topk]), best
        first; slots past the stored entries are masked out and zero. On the
        queries' device; float32 unless the streams store another dtype."""
        del nprobe, increment_hits, increment_age  # FAISS settings
        self._check_batch(queries, "queries")
        b, *middle, d = queries.shape
        flat = queries.detach().reshape(b, -1, 1, d)  # [b, m, 1 head, dim]
        ids = [self.stream_ids[i] for i in self.scoped_indices]
        found = self.client.search_streams(ids, flat, topk, return_keys=True,
                                           return_values=True, device=torch.device("cpu"))
        keys = found.keys[:, :, 0]      # [b, m, topk, dim]
        values = found.values[:, :, 0]
        mask = found.positions[:, :, 0] >= 0
        key_values = torch.stack([keys, values], dim=-2)  # [b, m, topk, 2, dim]
        key_values = key_values.reshape(b, *middle, topk, 2, d)
        mask = mask.reshape(b, *middle, topk)
        return key_values.to(queries.device), mask.to(queries.device)

    def cleanup(self) -> None:
        """Deletes the streams."""
        for s in self.stream_ids:
            try:
                self.client.delete_stream(s)
            except Error:
                pass

    def __repr__(self) -> str:
        return (f"KNNMemory(dim={self.dim}, max_memories={self.max_memories}, "
                f"num_indices={self.num_indices}, streams='{self.stream_prefix}-*')")


class KNNMemoryList(list):
    """A list of KNNMemory (one per memorizing layer), as the original."""

    def __getitem__(self, indices: Any) -> Any:
        item = super().__getitem__(indices)
        return self.__class__(item) if isinstance(indices, slice) else item

    def split(self, n: int) -> List["KNNMemoryList"]:
        return [self[i * n:(i + 1) * n] for i in range(math.ceil(len(self) / n))]

    def cleanup(self) -> None:
        for memory in self:
            memory.cleanup()

    @classmethod
    def create_memories(cls, *, batch_size: int, num_memory_layers: int,
                        memories_directory: Optional[str] = None, **defaults: Any):
        """A factory: create_memories(batch_size=, num_memory_layers=)(dim,
        max_memories, ...) makes one KNNMemory of batch_size rows per layer."""
        del memories_directory  # memmaps: not used

        def inner(*args: Any, **kwargs: Any) -> "KNNMemoryList":
            return cls([KNNMemory(*args, num_indices=batch_size, **{**defaults, **kwargs})
                        for _ in range(num_memory_layers)])
        return inner

    @contextlib.contextmanager
    def at_batch_indices(self, indices: Sequence[int]) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for memory in self:
                stack.enter_context(memory.at_batch_indices(indices))
            yield

    def clear_memory(self, batch_indices: Any = None,
                     memory_indices: Optional[Sequence[int]] = None) -> None:
        for i in (range(len(self)) if memory_indices is None else memory_indices):
            self[i].clear(batch_indices)

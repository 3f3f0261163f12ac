"""Brute-force numpy oracle of a knnmem stream: what the server must answer.

A Memory keeps, per layer, the rows a stream holds (positions, keys,
values as float64 copies of what is stored) with FIFO eviction at capacity;
search and attend recompute top-k and memory attention from scratch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np


@dataclass
class Layer:
    positions: np.ndarray  # [t] int64
    keys: np.ndarray       # [t, heads, key_dim] float64
    values: np.ndarray     # [t, heads, value_dim] float64


@dataclass
class Memory:
    heads: int
    key_dim: int
    value_dim: int
    capacity: int
    layers: Dict[int, Layer] = field(default_factory=dict)

    def layer(self, layer: int) -> Layer:
        if layer not in self.layers:
            self.layers[layer] = Layer(np.zeros(0, np.int64),
                                       np.zeros((0, self.heads, self.key_dim)),
                                       np.zeros((0, self.heads, self.value_dim)))
        return self.layers[layer]

    def next_position(self, layer: int = 0) -> int:
        p = self.layer(layer).positions
        return int(p[-1]) + 1 if len(p) else 0

    def append(self, keys: np.ndarray, values: np.ndarray, first_position: int,
               layer: int = 0) -> int:
        """Rows from first_position on; re-sent positions are skipped, a gap
        is an error. Returns the rows newly stored."""
        L = self.layer(layer)
        start = self.next_position(layer)
        assert first_position <= start, "gap"
        skip = start - first_position
        keys, values = np.asarray(keys, np.float64)[skip:], np.asarray(values, np.float64)[skip:]
        n = len(keys)
        L.positions = np.concatenate([L.positions, np.arange(start, start + n)])[-self.capacity:]
        L.keys = np.concatenate([L.keys, keys])[-self.capacity:]
        L.values = np.concatenate([L.values, values])[-self.capacity:]
        return n

    def reset(self) -> None:
        self.layers.clear()

    def scores(self, queries: np.ndarray, layer: int = 0) -> np.ndarray:
        """Every score [n, heads, t]."""
        return np.einsum("nhd,thd->nht", np.asarray(queries, np.float64), self.layer(layer).keys)

    def topk(self, queries: np.ndarray, k: int, layer: int = 0):
        """Oracle top-k: scores [n, heads, k] (-inf past the entries) and the
        indices into the layer's rows ([n, heads, k], -1 past the entries)."""
        s = self.scores(queries, layer)
        order = np.argsort(-s, axis=-1, kind="stable")[..., :k]
        top = np.take_along_axis(s, order, axis=-1)
        pad = k - order.shape[-1]
        if pad > 0:
            shape = s.shape[:-1] + (pad,)
            top = np.concatenate([top, np.full(shape, -np.inf)], axis=-1)
            order = np.concatenate([order, np.full(shape, -1)], axis=-1)
        return top, order

    def attend(self, queries: np.ndarray, k: int, layer: int = 0,
               scale: Optional[Sequence[float]] = None,
               age_alpha: Optional[Sequence[float]] = None, age_tau: float = 0.0):
        """Memory attention over the oracle's top-k: (output, lse)."""
        q = np.asarray(queries, np.float64)
        n = q.shape[0]
        L = self.layer(layer)
        if len(L.positions) == 0:
            return np.zeros((n, self.heads, self.value_dim)), np.full((n, self.heads), -np.inf)
        top, idx = self.topk(q, k, layer)
        valid = idx >= 0
        safe = np.where(valid, idx, 0)
        h = np.broadcast_to(np.arange(self.heads)[None, :, None], idx.shape)
        scale_h = np.broadcast_to(
            np.asarray(1 / np.sqrt(self.key_dim) if scale is None else scale, np.float64),
            (self.heads,))
        adjusted = np.where(valid, top, 0.0)
        if age_alpha is not None:
            alpha = np.broadcast_to(np.asarray(age_alpha, np.float64), (self.heads,))
            age = L.positions[-1] - L.positions[safe]
            adjusted = adjusted - alpha[None, :, None] * np.log1p(age / age_tau)
        logits = np.where(valid, scale_h[None, :, None] * adjusted, -np.inf)
        lse = np.logaddexp.reduce(logits, axis=-1)
        p = np.exp(logits - lse[..., None])
        v = L.values[safe, h]  # [n, heads, k, value_dim]
        return np.einsum("nhk,nhkd->nhd", p, v), lse


def assert_search_matches(memory: Memory, queries: np.ndarray, k: int, result,
                          layer: int = 0, rtol: float = 1e-5, atol: float = 1e-4) -> None:
    """The server's answer is a correct top-k: scores sorted and equal to the
    oracle's top-k scores, each position's score what the oracle computes for
    it, empty slots -inf / -1, and keys/values (if returned) the stored rows."""
    L = memory.layer(layer)
    top, _ = memory.topk(queries, k, layer)
    scores = np.asarray(result.scores, np.float64)
    positions = np.asarray(result.positions)
    assert scores.shape == top.shape and positions.shape == top.shape
    valid = np.isfinite(top)
    np.testing.assert_array_equal(positions >= 0, valid)
    np.testing.assert_array_equal(np.isfinite(scores), valid)
    np.testing.assert_allclose(scores[valid], top[valid], rtol=rtol, atol=atol)
    if len(L.positions) == 0:
        for got in (result.keys, result.values):
            assert got is None or not np.asarray(got).any()
        return
    # Each returned position is stored and scores what the oracle says.
    rows = np.searchsorted(L.positions, positions)
    safe = np.where(valid, np.minimum(rows, len(L.positions) - 1), 0)
    assert (L.positions[safe][valid] == positions[valid]).all(), "a position is not stored"
    full = memory.scores(queries, layer)
    np.testing.assert_allclose(np.take_along_axis(full, safe, axis=-1)[valid], scores[valid],
                               rtol=rtol, atol=atol)
    h = np.broadcast_to(np.arange(memory.heads)[None, :, None], safe.shape)
    for got, stored in ((result.keys, L.keys), (result.values, L.values)):
        if got is None:
            continue
        want = np.where(valid[..., None], stored[safe, h] if len(stored) else 0.0, 0.0)
        np.testing.assert_array_equal(np.asarray(got, np.float64), want)

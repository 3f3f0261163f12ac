"""Memory attention for the kNN layer of a Memorizing Transformer.

A kNN layer attends, per head, to its local window and to the top-k
(key, value) pairs of the memory, in one softmax. Both halves are computed as
(output, lse) pairs and merged exactly (merge_attention):

- inference: the server computes the memory half (Attend, for every stream
  of the batch in one DecodeStep call), nothing comes back but output and lse;
- training: Search returns the top-k keys and values, and the scores are
  recomputed here in torch, so that gradients reach the queries (the memory
  itself, made of past activations, takes none, as in the paper).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch

import knnmem
from knnmem.errors import Error
from knnmem.torch.client import TorchClient

Pair = Tuple[torch.Tensor, torch.Tensor]


def _softmax_pair(logits: torch.Tensor, values: torch.Tensor, eq: str) -> Pair:
    """(sum_j softmax_j(logits) v_j, logsumexp(logits)) over the last logits
    dim; a row of only -inf gives zeros and -inf (and no NaN gradients)."""
    empty = torch.isneginf(logits).all(dim=-1, keepdim=True)
    logits = logits.masked_fill(empty, 0.0)
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    weights = torch.exp(logits - lse).masked_fill(empty, 0.0)
    lse = lse.masked_fill(empty, float("-inf")).squeeze(-1)
    return torch.einsum(eq, weights, values), lse


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                    causal: bool = True) -> Pair:
    """Attention of q [b, n, heads, dk] over k [b, t, heads, dk], v
    [b, t, heads, dv]; causal aligns the last query with the last key.
    Returns (output [b, n, heads, dv], lse [b, n, heads])."""
    logits = torch.einsum("bnhd,bthd->bhnt", q, k) * scale
    if causal:
        n, t = q.shape[1], k.shape[1]
        future = torch.ones(n, t, dtype=torch.bool, device=q.device).triu(t - n + 1)
        logits = logits.masked_fill(future, float("-inf"))
    out, lse = _softmax_pair(logits, v, "bhnt,bthd->bhnd")
    return out.transpose(1, 2), lse.transpose(1, 2)


def merge_attention(a: Pair, b: Pair) -> Pair:
    """The attention over the union of two disjoint key sets from each one's
    (output, lse): one softmax over both, exactly. An lse of -inf (no keys)
    weighs nothing."""
    (out_a, lse_a), (out_b, lse_b) = a, b
    top = torch.maximum(lse_a, lse_b)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    wa, wb = torch.exp(lse_a - top), torch.exp(lse_b - top)  # 0 for -inf
    total = wa + wb
    some = total > 0
    total = torch.where(some, total, torch.ones_like(total))
    lse = torch.where(some, top + torch.log(total), torch.full_like(top, float("-inf")))
    out = (out_a * wa.unsqueeze(-1) + out_b * wb.unsqueeze(-1)) / total.unsqueeze(-1)
    return out, lse


def memory_attention(client: TorchClient, stream_ids: Sequence[str], queries: torch.Tensor,
                     k: int, *, scale: Optional[float] = None, layer: int = 0,
                     training: Optional[bool] = None) -> Pair:
    """Attention of queries [b, n, heads, key_dim] over the top-k entries of
    stream_ids[b]'s memory (layer `layer`): (output [b, n, heads, value_dim],
    lse [b, n, heads]), lse -inf where a memory is empty.

    training (default: when torch records gradients for the queries) goes
    through Search and recomputes the scores in torch; otherwise the server
    attends (one DecodeStep for the whole batch) and no graph is built.
    """
    if scale is None:
        scale = 1 / math.sqrt(queries.shape[-1])
    if training is None:
        training = torch.is_grad_enabled() and queries.requires_grad
    if training:
        found = client.search_streams(stream_ids, queries, k, layer=layer, return_keys=True,
                                      return_values=True)
        keys = found.keys.to(queries.dtype)       # [b, n, heads, k, dk]
        values = found.values.to(queries.dtype)   # [b, n, heads, k, dv]
        logits = torch.einsum("bnhd,bnhkd->bnhk", queries, keys) * scale
        logits = logits.masked_fill(found.positions < 0, float("-inf"))
        return _softmax_pair(logits, values, "bnhk,bnhkd->bnhd")
    steps = [knnmem.Step(s, q, layer=layer) for s, q in zip(stream_ids, queries.detach())]
    results = client.decode_step(steps, k, scale=scale, device=queries.device)
    for r in results:
        if not r.ok:
            raise Error(r.code, r.message)
    output = torch.stack([r.output for r in results]).to(queries.dtype)
    lse = torch.stack([r.lse for r in results])
    return output, lse

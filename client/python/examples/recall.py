#!/usr/bin/env python3
"""A small Memorizing Transformer trained from Python through a knnmem-server.

The associative-recall task of tests/model/recall_test.cc (model/recall_task.h):
documents of 4 segments of 32 bytes over a cyclic alphabet, with a digit and a
capital letter planted in segment 0, questions "?" (the digit) and "=" (the
letter) answered right after them in segment 0 (near answers) and again in
segment 3 (far answers). The model reads one segment at a time with no cache
of earlier segments, so a far answer can come only from memory: its second
layer, the kNN layer, attends in one softmax to the segment and to the top-k
(key, value) pairs of its document's memory, a knnmem stream per batch lane
that receives each segment's keys and values once read.

Training reads the memory with Search and recomputes the scores in torch
(knnmem.torch.memory_attention), so gradients reach the queries; evaluation
reads it with Attend (one DecodeStep for the batch). Without memory the far
answers are at chance (1 in 10 and 1 in 26).

    python3 client/python/examples/recall.py [--server HOST:PORT] [--steps N]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import math
import random
import time
import uuid
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

import knnmem
from knnmem.torch import TorchClient, local_attention, memory_attention, merge_attention

SEGMENT = 32
SEGMENTS = 4


# The task.

def two_places(rng: random.Random, start: int, end: int) -> Tuple[int, int]:
    """Two distinct even offsets in [start, end - 1)."""
    a = rng.randint(start // 2, (end - 2) // 2)
    b = a
    while b == a:
        b = rng.randint(start // 2, (end - 2) // 2)
    return 2 * a, 2 * b


def recall_document(rng: random.Random) -> Tuple[bytes, List[int], List[int]]:
    """(bytes, near answer offsets, far answer offsets), as MakeRecallDocument."""
    s = SEGMENT
    first = rng.randrange(26)
    doc = bytearray(ord("a") + (first + i) % 26 for i in range(SEGMENTS * s + 1))
    digit, capital = ord(str(rng.randrange(10))), ord("A") + rng.randrange(26)
    d, c = two_places(rng, 0, s // 2)
    doc[d], doc[c] = digit, capital
    near, far = [], []
    for (lo, hi), answers in (((s // 2, s), near), ((3 * s, 4 * s), far)):
        q1, q2 = two_places(rng, lo, hi)
        for at, question, answer in ((q1, ord("?"), digit), (q2, ord("="), capital)):
            doc[at], doc[at + 1] = question, answer
            answers.append(at + 1)
    return bytes(doc), near, far


# The model.

class Block(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int, knn: bool):
        super().__init__()
        self.heads, self.knn = heads, knn
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, ffn), nn.Linear(ffn, d)
        if knn:  # L2-normalised queries and keys, a learned scale per head
            self.log_scale = nn.Parameter(torch.full((heads,), math.log(10.0)))

    def forward(self, x: torch.Tensor, memory: Optional["LaneMemory"]) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, -1).unbind(2)
        scale = 1 / math.sqrt(q.shape[-1])
        if self.knn:
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
            q, scale = q * self.log_scale.exp().view(1, 1, -1, 1), 1.0
        attended = local_attention(q, k, v, scale)
        if self.knn and memory is not None:
            if memory.filled:
                attended = merge_attention(attended, memory.read(q))
            memory.keep(k.detach(), v.detach())
        x = x + self.out(attended[0].reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class MemorizingTransformer(nn.Module):
    def __init__(self, d: int = 64, heads: int = 4, ffn: int = 128, layers: int = 2,
                 knn_layer: int = 1):
        super().__init__()
        # No position embedding: causal attention needs none here, and keys
        # then match queries by content alone, in the window and in memory.
        self.embed = nn.Embedding(256, d)
        self.blocks = nn.ModuleList(Block(d, heads, ffn, i == knn_layer) for i in range(layers))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, 256)

    def forward(self, tokens: torch.Tensor, memory: Optional["LaneMemory"]) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, memory)
        return self.head(self.ln(x))


class LaneMemory:
    """One knnmem stream per batch lane: the document the lane reads."""

    def __init__(self, client: TorchClient, lanes: int, heads: int, head_dim: int, k: int):
        prefix = f"recall-{uuid.uuid4().hex[:8]}"
        self.client, self.k = client, k
        self.ids = [f"{prefix}-{lane}" for lane in range(lanes)]
        for s in self.ids:
            client.create_stream(s, heads=heads, key_dim=head_dim, capacity=1024,
                                 ttl_seconds=600)
        self.position = 0
        self.pool = concurrent.futures.ThreadPoolExecutor(lanes)
        self.pending: Optional[Tuple[torch.Tensor, torch.Tensor]] = None

    @property
    def filled(self) -> bool:
        return self.position > 0

    def new_documents(self) -> None:
        list(self.pool.map(self.client.reset_stream, self.ids))  # all in flight at once
        self.position = 0

    def read(self, queries: torch.Tensor):
        return memory_attention(self.client, self.ids, queries, self.k, scale=1.0)

    def keep(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.pending = (keys, values)

    def write(self) -> None:
        """Appends the segment just read ([lanes, T, heads, dim])."""
        keys, values = self.pending
        steps = [knnmem.Step(s, keys=k, values=v, first_position=self.position)
                 for s, k, v in zip(self.ids, keys, values)]
        for r in self.client.decode_step(steps, 1):
            if not r.ok:
                raise r
        self.position += keys.shape[1]
        self.pending = None

    def close(self) -> None:
        list(self.pool.map(self.client.delete_stream, self.ids))
        self.pool.shutdown()


def read_documents(model: MemorizingTransformer, docs: Sequence[bytes],
                   memory: Optional[LaneMemory], train: Optional[torch.optim.Optimizer]):
    """Reads a batch of documents segment by segment; the logits of each
    segment ([lanes, T, 256], detached) and the last loss."""
    tokens = torch.tensor([list(d) for d in docs], dtype=torch.long)
    if memory is not None:
        memory.new_documents()
    out, loss = [], 0.0
    for s in range(SEGMENTS):
        inputs = tokens[:, s * SEGMENT:(s + 1) * SEGMENT]
        targets = tokens[:, s * SEGMENT + 1:(s + 1) * SEGMENT + 1]
        with torch.set_grad_enabled(train is not None):
            logits = model(inputs, memory)
        if train is not None:
            l = F.cross_entropy(logits.reshape(-1, 256), targets.reshape(-1))
            train.zero_grad()
            l.backward()
            train.step()
            loss = l.item()
        if memory is not None:
            memory.write()
        out.append(logits.detach())
    return torch.cat(out, 1), loss


def accuracy(model, docs, answers, memory) -> float:
    model.eval()
    right = total = 0
    for i in range(0, len(docs), len(memory.ids) if memory else 16):
        batch = docs[i:i + (len(memory.ids) if memory else 16)]
        logits, _ = read_documents(model, batch, memory, None)
        predicted = logits.argmax(-1)
        for lane, doc in enumerate(batch):
            for a in answers[i + lane]:
                right += int(predicted[lane, a - 1]) == doc[a]
                total += 1
    model.train()
    return right / total


def run(address: str, steps: int = 1000, lanes: int = 16, seed: int = 11,
        log_every: int = 0, lr: float = 3e-3, top_k: int = 32) -> dict:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = MemorizingTransformer()
    heads, head_dim = 4, 16
    client = TorchClient(address, timeout=60)
    memory = LaneMemory(client, lanes, heads, head_dim, k=top_k)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.monotonic()
    loss = 0.0
    try:
        for step in range(0, steps, SEGMENTS):
            docs = [recall_document(rng)[0] for _ in range(lanes)]
            _, loss = read_documents(model, docs, memory, optimizer)
            if log_every and (step // SEGMENTS) % log_every == 0:
                print(f"step {step}: loss {loss:.3f} ({time.monotonic() - start:.0f} s)",
                      flush=True)
        seconds = time.monotonic() - start
        held_out = [recall_document(random.Random(10_000 + i)) for i in range(64)]
        docs = [d for d, _, _ in held_out]
        result = {
            "steps": steps, "seconds": seconds, "loss": loss,
            "far_with_memory": accuracy(model, docs, [f for _, _, f in held_out], memory),
            "far_without_memory": accuracy(model, docs, [f for _, _, f in held_out], None),
            "near_without_memory": accuracy(model, docs, [n for _, n, _ in held_out], None),
        }
    finally:
        memory.close()
        client.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    r = run(args.server, args.steps, log_every=25)
    print(f"trained {r['steps']} steps in {r['seconds']:.1f} s (last loss {r['loss']:.3f}); "
          f"far answers {r['far_with_memory']:.3f} with memory, "
          f"{r['far_without_memory']:.3f} without; near answers {r['near_without_memory']:.3f}")


if __name__ == "__main__":
    main()

"""knnmem.torch: tensors in and out, KNNMemory against a reimplementation of
its documented semantics, and memory attention (inference and training)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import knnmem  # noqa: E402
from knnmem.torch import (KNNMemory, KNNMemoryList, TorchClient, local_attention,  # noqa: E402
                          memory_attention, merge_attention, to_numpy)
from oracle import Memory  # noqa: E402


@pytest.fixture(scope="module")
def tclient(server):
    return TorchClient(server.address, timeout=20)


def test_cpu_contiguous_tensors_are_sent_without_a_copy():
    t = torch.randn(4, 2, 8)
    a, dtype = to_numpy(t, None)
    assert a.__array_interface__["data"][0] == t.data_ptr() and dtype is None
    b = torch.randn(4, 2, 8).to(torch.bfloat16)
    bits, dtype = to_numpy(b, None)
    assert bits.dtype == np.uint16 and dtype == knnmem.DType.BFLOAT16
    assert bits.__array_interface__["data"][0] == b.data_ptr()
    strided = torch.randn(8, 2, 8)[::2]
    assert to_numpy(strided, None)[0].flags.c_contiguous  # copied once, to be contiguous


@pytest.mark.parametrize("storage,tensor_dtype", [
    ("float32", torch.float32), ("float16", torch.float16), ("bfloat16", torch.bfloat16),
    ("bfloat16", torch.float32), ("float16", torch.float32), ("float32", torch.bfloat16)])
def test_tensors_round_trip_through_every_storage_dtype(tclient, stream_id, storage,
                                                        tensor_dtype):
    torch.manual_seed(0)
    rows, heads, dim = 64, 2, 8
    tclient.create_stream(stream_id, heads=heads, key_dim=dim, capacity=rows, dtype=storage)
    keys = (torch.randn(rows, heads, dim) * 3).to(tensor_dtype)
    tclient.append(stream_id, keys, keys, first_position=0)
    found = tclient.search(stream_id, torch.ones(1, heads, dim), rows, return_keys=True)
    want_dtype = {"float32": torch.float32, "float16": torch.float16,
                  "bfloat16": torch.bfloat16}[storage]
    assert found.keys.dtype == want_dtype and found.positions.dtype == torch.int64
    order = found.positions[0].argsort(dim=-1)  # [heads, rows] by position
    stored = torch.gather(found.keys[0], 1, order.unsqueeze(-1).expand(-1, -1, dim))
    # torch's own conversion (round to nearest even) gives the same bits.
    want = keys.to(torch.float32).to(want_dtype).transpose(0, 1)
    assert torch.equal(stored.view(torch.int16) if want_dtype != torch.float32 else stored,
                       want.view(torch.int16) if want_dtype != torch.float32 else want)


def test_attend_and_decode_step_with_tensors(tclient, stream_id):
    torch.manual_seed(1)
    tclient.create_stream(stream_id, heads=2, key_dim=8, value_dim=4, capacity=100)
    k, v = torch.randn(50, 2, 8), torch.randn(50, 2, 4)
    tclient.append(stream_id, k, v, first_position=0)
    q = torch.randn(3, 2, 8)
    a = tclient.attend(stream_id, q, 10, scale=0.5)
    memory = Memory(2, 8, 4, 100)
    memory.append(k.numpy(), v.numpy(), 0)
    out, lse = memory.attend(q.numpy(), 10, scale=0.5)
    assert a.output.dtype == torch.float32
    np.testing.assert_allclose(a.output.numpy(), out, rtol=1e-4, atol=1e-5)
    [step] = tclient.decode_step([knnmem.Step(stream_id, q)], 10, scale=0.5)
    assert isinstance(step.output, torch.Tensor) and torch.equal(step.output, a.output)


class ReferenceKNNMemory:
    """The documented semantics of memorizing-transformers-pytorch's
    KNNMemory, with FIFO eviction: per batch index the last max_memories
    (key, value) rows added; search returns, per query, the topk rows of
    highest inner product, best first, zero and masked out past the stored."""

    def __init__(self, dim, max_memories, num_indices):
        self.dim, self.max = dim, max_memories
        self.rows = [np.zeros((0, 2, dim), np.float32) for _ in range(num_indices)]

    def add(self, memories, indices):
        for row, i in zip(memories, indices):
            self.rows[i] = np.concatenate([self.rows[i], row])[-self.max:]

    def clear(self, indices):
        for i in indices:
            self.rows[i] = self.rows[i][:0]

    def search(self, queries, topk, indices):
        b, *middle, d = queries.shape
        q = queries.reshape(b, -1, d)
        kv = np.zeros((b, q.shape[1], topk, 2, d), np.float32)
        mask = np.zeros((b, q.shape[1], topk), bool)
        for bi, i in enumerate(indices):
            stored = self.rows[i]
            scores = q[bi].astype(np.float64) @ stored[:, 0].T.astype(np.float64)
            top = np.argsort(-scores, axis=-1)[:, :topk]
            n = top.shape[1]
            kv[bi, :, :n] = stored[top]
            mask[bi, :, :n] = True
        return kv.reshape(b, *middle, topk, 2, d), mask.reshape(b, *middle, topk)


def assert_same_search(memory, reference, queries, topk):
    kv, mask = memory.search(queries, topk)
    want_kv, want_mask = reference.search(queries.numpy(), topk, memory.scoped_indices)
    assert kv.shape == want_kv.shape and mask.shape == want_mask.shape
    np.testing.assert_array_equal(mask.numpy(), want_mask)
    np.testing.assert_array_equal(kv.numpy(), want_kv)


def test_knn_memory_matches_its_documented_semantics(server):
    torch.manual_seed(2)
    dim, max_memories, batch = 16, 40, 3
    memory = KNNMemory(dim, max_memories=max_memories, num_indices=batch,
                       client=knnmem.Client(server.address))
    reference = ReferenceKNNMemory(dim, max_memories, batch)
    try:
        def add(n, indices=None):
            m = torch.randn(len(indices or range(batch)), n, 2, dim)
            memory.add(m)
            reference.add(m.numpy(), memory.scoped_indices)

        assert_same_search(memory, reference, torch.randn(batch, 4, dim), 5)  # empty
        add(30)
        assert_same_search(memory, reference, torch.randn(batch, 7, dim), 10)
        add(25)  # past max_memories: the oldest 15 go
        add(100)  # more than max_memories at once: only the last 40 are kept
        assert_same_search(memory, reference, torch.randn(batch, 2, 4, dim), 12)
        memory.clear([1])
        reference.clear([1])
        add(5)
        assert_same_search(memory, reference, torch.randn(batch, 6, dim), 8)  # row 1: 5 of 8
        with memory.at_batch_indices([2, 0]):
            add(3, [2, 0])
            assert_same_search(memory, reference, torch.randn(2, 3, dim), 4)
        assert memory.scoped_indices == [0, 1, 2]
        memory.clear()
        reference.clear(range(batch))
        assert_same_search(memory, reference, torch.randn(batch, 1, dim), 3)
        with pytest.raises(ValueError):
            memory.add(torch.randn(batch + 1, 2, 2, dim))
        with pytest.raises(ValueError):
            memory.set_scoped_indices([0, 0])
    finally:
        memory.cleanup()
    with pytest.raises(knnmem.Error):
        memory.client.get_stream(memory.stream_ids[0])


def test_knn_memory_list_makes_one_memory_per_layer(server):
    memories = KNNMemoryList.create_memories(batch_size=2, num_memory_layers=3)(
        8, max_memories=10, client=knnmem.Client(server.address))
    try:
        assert len(memories) == 3 and isinstance(memories[1:], KNNMemoryList)
        for m in memories:
            m.add(torch.randn(2, 4, 2, 8))
        memories.clear_memory(batch_indices=[0], memory_indices=[1])
        masks = [m.search(torch.randn(2, 1, 8), 4)[1] for m in memories]
        assert masks[1][0].sum() == 0 and masks[1][1].sum() == 4 and masks[0].all()
        with memories.at_batch_indices([1]):
            assert all(m.scoped_indices == [1] for m in memories)
    finally:
        memories.cleanup()


def test_memory_attention_inference_and_training_agree_and_train_the_queries(tclient,
                                                                             stream_id):
    torch.manual_seed(3)
    B, n, heads, dk, dv, k, scale = 3, 4, 2, 8, 6, 5, 0.4
    ids = [f"{stream_id}-{b}" for b in range(B)]
    memories = []
    for b, s in enumerate(ids):
        tclient.create_stream(s, heads=heads, key_dim=dk, value_dim=dv, capacity=100)
        memory = Memory(heads, dk, dv, 100)
        if b != 2:  # stream 2 stays empty
            keys, values = torch.randn(30, heads, dk), torch.randn(30, heads, dv)
            tclient.append(s, keys, values, first_position=0)
            memory.append(keys.numpy(), values.numpy(), 0)
        memories.append(memory)
    q = torch.randn(B, n, heads, dk)
    with torch.no_grad():
        out_inf, lse_inf = memory_attention(tclient, ids, q, k, scale=scale)
    q_train = q.clone().requires_grad_(True)
    out, lse = memory_attention(tclient, ids, q_train, k, scale=scale)
    assert out.requires_grad
    np.testing.assert_allclose(out.detach().numpy(), out_inf.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lse.detach().numpy(), lse_inf.numpy(), rtol=1e-5, atol=1e-5)
    for b in range(B):
        want_out, want_lse = memories[b].attend(q[b].numpy(), k, scale=scale)
        np.testing.assert_allclose(out_inf[b].numpy(), want_out, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(lse_inf[b].numpy(), want_lse, rtol=1e-5, atol=1e-5)
    assert torch.isneginf(lse[2]).all() and not out[2].any()
    # Gradients reach the queries, as through a softmax over the oracle's top-k.
    (out.sum() + lse[:2].sum()).backward()
    q_ref = q.clone().requires_grad_(True)
    total = 0
    for b in range(2):
        L = memories[b].layer(0)
        _, idx = memories[b].topk(q[b].numpy(), k)
        h = np.arange(heads)[None, :, None]
        keys = torch.tensor(L.keys[idx, h], dtype=torch.float32)      # [n, heads, k, dk]
        values = torch.tensor(L.values[idx, h], dtype=torch.float32)
        logits = torch.einsum("nhd,nhkd->nhk", q_ref[b], keys) * scale
        p = torch.softmax(logits, -1)
        total = total + torch.einsum("nhk,nhkd->nhd", p, values).sum() + \
            torch.logsumexp(logits, -1).sum()
    total.backward()
    assert torch.isfinite(q_train.grad).all() and not q_train.grad[2].any()
    np.testing.assert_allclose(q_train.grad.numpy(), q_ref.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_merging_local_and_memory_attention_is_one_softmax_over_both():
    torch.manual_seed(4)
    b, n, t, m, heads, d = 2, 3, 5, 4, 2, 8
    q = torch.randn(b, n, heads, d)
    k_local, v_local = torch.randn(b, t, heads, d), torch.randn(b, t, heads, d)
    k_mem, v_mem = torch.randn(b, m, heads, d), torch.randn(b, m, heads, d)
    scale = 0.3
    local = local_attention(q, k_local, v_local, scale, causal=True)
    mem = local_attention(q, k_mem, v_mem, scale, causal=False)
    out, lse = merge_attention(local, mem)
    # Reference: one softmax over memory keys and the causal local window.
    logits = torch.cat([torch.einsum("bnhd,bthd->bhnt", q, k_mem),
                        torch.einsum("bnhd,bthd->bhnt", q, k_local)], -1) * scale
    future = torch.ones(n, t, dtype=torch.bool).triu(t - n + 1)
    logits[..., m:] = logits[..., m:].masked_fill(future, float("-inf"))
    want = torch.einsum("bhnt,bthd->bnhd", torch.softmax(logits, -1), torch.cat([v_mem, v_local], 1))
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lse, torch.logsumexp(logits, -1).transpose(1, 2))
    # An empty memory (lse -inf) leaves the local attention as it was.
    empty = (torch.zeros_like(mem[0]), torch.full_like(mem[1], float("-inf")))
    same = merge_attention(local, empty)
    torch.testing.assert_close(same[0], local[0])
    torch.testing.assert_close(same[1], local[1])

"""Every RPC of the blocking Client against the numpy oracle."""
import numpy as np
import pytest

import knnmem
from oracle import Memory, assert_search_matches


def rows(rng, n, heads, dim):
    return rng.standard_normal((n, heads, dim)).astype(np.float32)


def test_stream_lifecycle_create_get_list_reset_delete(client, stream_id):
    spec = knnmem.stream_spec(layers=2, heads=3, key_dim=8, value_dim=4, capacity=100,
                              dtype="float16", ttl_seconds=60)
    r = client.create_stream(stream_id, spec)
    assert r.created and r.stream.spec == spec
    again = client.create_stream(stream_id, layers=2, heads=3, key_dim=8, value_dim=4,
                                 capacity=100, dtype="float16", ttl_seconds=60)
    assert not again.created
    rng = np.random.default_rng(0)
    client.append(stream_id, rows(rng, 7, 3, 8), rows(rng, 7, 3, 4), first_position=0, layer=1)
    info = client.get_stream(stream_id)
    assert info.stream_id == stream_id and info.spec == spec
    assert [(l.layer, l.first_position, l.next_position, l.entries) for l in info.layers] == \
        [(0, 0, 0, 0), (1, 0, 7, 7)]
    assert stream_id in [s.stream_id for s in client.list_streams()]
    client.reset_stream(stream_id)
    assert [l.next_position for l in client.get_stream(stream_id).layers] == [0, 0]
    client.delete_stream(stream_id)
    with pytest.raises(knnmem.Error) as e:
        client.get_stream(stream_id)
    assert e.value.code.name == "NOT_FOUND"


def test_list_streams_follows_pages_in_id_order(client, stream_id):
    ids = [f"{stream_id}-{i:02d}" for i in range(7)]
    for i in reversed(ids):
        client.create_stream(i, heads=1, key_dim=2, capacity=4)
    listed = [s.stream_id for s in client.list_streams(page_size=3)]
    assert listed == sorted(listed)
    assert [i for i in listed if i.startswith(stream_id)] == ids
    assert listed == [s.stream_id for s in client.list_streams()]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_append_and_search_match_the_oracle_across_eviction(client, stream_id, dtype):
    rng = np.random.default_rng(1)
    heads, dk, dv, capacity = 4, 16, 8, 300
    client.create_stream(stream_id, heads=heads, key_dim=dk, value_dim=dv, capacity=capacity,
                         dtype=dtype)
    memory = Memory(heads, dk, dv, capacity)
    storage = {"float32": lambda x: x,
               "float16": lambda x: knnmem.dtypes.float32_to_float16(x).astype(np.float32),
               "bfloat16": lambda x: knnmem.dtypes.bfloat16_bits_to_float32(
                   knnmem.dtypes.float32_to_bfloat16_bits(x))}[dtype]
    position = 0
    for n in (50, 200, 1, 149):  # 400 rows: the first 100 are evicted
        k, v = rows(rng, n, heads, dk), rows(rng, n, heads, dv)
        r = client.append(stream_id, k, v, first_position=position)
        assert r == knnmem.Appended(position + n, n)
        memory.append(storage(k), storage(v), position)
        position += n
    queries = rows(rng, 5, heads, dk)
    for k in (1, 10, 300, 301, 2048):
        result = client.search(stream_id, queries, k, return_keys=True, return_values=True)
        # Scores are of the float32 queries with the stored keys.
        assert_search_matches(memory, queries, k, result)
    info = client.get_stream(stream_id).layers[0]
    assert (info.first_position, info.next_position, info.entries) == (100, 400, 300)


def test_search_results_are_read_only_views_with_optional_keys(client, stream_id):
    rng = np.random.default_rng(2)
    client.create_stream(stream_id, heads=2, key_dim=4, capacity=10)
    client.append(stream_id, rows(rng, 3, 2, 4), rows(rng, 3, 2, 4), first_position=0)
    r = client.search(stream_id, rows(rng, 2, 2, 4), 5)
    assert r.keys is None and r.values is None
    assert r.scores.dtype == np.float32 and r.positions.dtype == np.int64
    assert r.scores.shape == r.positions.shape == (2, 2, 5)
    assert not r.scores.flags.writeable
    assert (r.positions[..., 3:] == -1).all() and np.isneginf(r.scores[..., 3:]).all()


def test_replayed_batches_are_acknowledged_not_stored_and_layers_are_separate(client, stream_id):
    rng = np.random.default_rng(3)
    client.create_stream(stream_id, layers=2, heads=1, key_dim=4, capacity=50)
    k = rows(rng, 10, 1, 4)
    assert client.append(stream_id, k, k, first_position=0) == (10, 10)
    assert client.append(stream_id, k, k, first_position=0) == (10, 0)
    assert client.append(stream_id, k[5:], k[5:], first_position=0, layer=1, sync=True) == (5, 5)
    memory = Memory(1, 4, 4, 50)
    memory.append(k, k, 0)
    assert_search_matches(memory, k[:3], 4, client.search(stream_id, k[:3], 4))
    layer1 = Memory(1, 4, 4, 50)
    layer1.append(k[5:], k[5:], 0)
    assert_search_matches(layer1, k[:3], 4, client.search(stream_id, k[:3], 4, layer=1))


def test_attend_matches_the_oracle_with_scales_and_age_penalty(client, stream_id):
    rng = np.random.default_rng(4)
    heads, dk, dv = 3, 8, 5
    client.create_stream(stream_id, heads=heads, key_dim=dk, value_dim=dv, capacity=1000)
    memory = Memory(heads, dk, dv, 1000)
    k, v = rows(rng, 120, heads, dk), rows(rng, 120, heads, dv)
    client.append(stream_id, k, v, first_position=0)
    memory.append(k, v, 0)
    q = rows(rng, 4, heads, dk)
    for kwargs in ({}, {"scale": 0.5}, {"scale": [0.1, 0.7, 2.0]},
                   {"scale": 0.3, "age_alpha": [0.5, 0.0, 2.0], "age_tau": 10.0},
                   {"age_alpha": 1.5, "age_tau": 1.0}):
        got = client.attend(stream_id, q, 16, **kwargs)
        out, lse = memory.attend(q, 16, **kwargs)
        assert got.output.shape == (4, heads, dv) and got.lse.shape == (4, heads)
        np.testing.assert_allclose(got.output, out, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got.lse, lse, rtol=1e-5, atol=1e-5)


def test_attend_on_an_empty_memory_gives_zeros_and_minus_infinity(client, stream_id):
    client.create_stream(stream_id, heads=2, key_dim=4, capacity=10)
    got = client.attend(stream_id, np.ones((3, 2, 4), np.float32), 4)
    assert not got.output.any() and np.isneginf(got.lse).all()


def test_append_pipeline_stores_every_batch_in_order(client, stream_id):
    rng = np.random.default_rng(5)
    client.create_stream(stream_id, layers=2, heads=2, key_dim=4, capacity=1000)
    other = stream_id + "-b"
    client.create_stream(other, heads=2, key_dim=4, capacity=1000)
    memory, memory1, memory_other = Memory(2, 4, 4, 1000), Memory(2, 4, 4, 1000), \
        Memory(2, 4, 4, 1000)
    with client.append_pipeline(window=3) as p:
        for i in range(12):
            k = rows(rng, 20, 2, 4)
            p.send(stream_id, k, -k, first_position=20 * i)
            memory.append(k, -k, 20 * i)
            if i % 3 == 0:
                p.send(other, k, k, first_position=20 * (i // 3), dtype="float16")
                memory_other.append(k.astype(np.float16), k.astype(np.float16), 20 * (i // 3))
            if i == 5:
                p.send(stream_id, k, k, first_position=0, layer=1)
                memory1.append(k, k, 0)
    assert len(p.acknowledged) == 12 + 4 + 1
    assert p.acknowledged[0] == (20, 20) and p.acknowledged[-1] == (240, 20)
    q = rows(rng, 3, 2, 4)
    assert_search_matches(memory, q, 50, client.search(stream_id, q, 50, return_values=True))
    assert_search_matches(memory1, q, 50, client.search(stream_id, q, 50, layer=1))
    assert_search_matches(memory_other, q, 50, client.search(other, q, 50), rtol=1e-3,
                          atol=1e-2)


def test_append_pipeline_failure_ends_the_call_with_the_servers_status(client, stream_id):
    rng = np.random.default_rng(6)
    client.create_stream(stream_id, heads=1, key_dim=4, capacity=100)
    k = rows(rng, 5, 1, 4)
    p = client.append_pipeline(window=1)
    p.send(stream_id, k, k, first_position=0)
    with pytest.raises(knnmem.Error) as e:
        p.send(stream_id, k, k, first_position=50)  # a gap
        p.send(stream_id, k, k, first_position=100)
        p.finish()
    assert e.value.code.name == "FAILED_PRECONDITION"
    with pytest.raises(knnmem.Error) as again:
        p.finish()
    assert again.value is e.value
    assert p.acknowledged == [(5, 5)]
    assert client.get_stream(stream_id).layers[0].next_position == 5


def test_decode_step_appends_then_attends_many_streams_in_one_call(client, stream_id):
    rng = np.random.default_rng(7)
    heads, dk, dv, B = 2, 8, 4, 6
    ids = [f"{stream_id}-{b}" for b in range(B)]
    memories = []
    for b, i in enumerate(ids):
        client.create_stream(i, heads=heads, key_dim=dk, value_dim=dv, capacity=64)
        memories.append(Memory(heads, dk, dv, 64))
        k, v = rows(rng, 30 + b, heads, dk), rows(rng, 30 + b, heads, dv)
        client.append(i, k, v, first_position=0)
        memories[b].append(k, v, 0)
    for step in range(3):
        steps, want = [], []
        for b, i in enumerate(ids):
            q = rows(rng, 1, heads, dk)
            if b % 2 == 0:  # half of the streams append a row first
                k, v = rows(rng, 1, heads, dk), rows(rng, 1, heads, dv)
                pos = memories[b].next_position()
                steps.append(knnmem.Step(i, q, keys=k, values=v, first_position=pos))
                memories[b].append(k, v, pos)
            else:
                steps.append(knnmem.Step(i, q))
            want.append((memories[b].attend(q, 8, scale=0.4), memories[b].next_position()))
        results = client.decode_step(steps, 8, scale=0.4)
        assert len(results) == B
        for r, ((out, lse), next_position) in zip(results, want):
            assert r.ok and isinstance(r, knnmem.StepResult)
            np.testing.assert_allclose(r.output, out, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(r.lse, lse, rtol=1e-5, atol=1e-5)
            assert r.next_position == next_position


def test_decode_step_failures_are_per_step(client, stream_id):
    client.create_stream(stream_id, heads=1, key_dim=4, capacity=10)
    q = np.ones((1, 1, 4), np.float32)
    results = client.decode_step([
        knnmem.Step(stream_id, q),
        knnmem.Step(stream_id + "-missing", q),
        {"stream_id": stream_id, "queries": q, "layer": 3},
    ], 4)
    assert results[0].ok and np.isneginf(results[0].lse).all()
    assert not results[1].ok and results[1].code.name == "NOT_FOUND"
    assert results[1].index == 1 and isinstance(results[1], knnmem.Error)
    assert results[2].code.name == "INVALID_ARGUMENT"
    assert results[2].message.startswith("steps[2].")
    # Appending only (no queries).
    k = np.ones((2, 1, 4), np.float32)
    [only] = client.decode_step([knnmem.Step(stream_id, keys=k, values=k, first_position=0)], 4)
    assert only.ok and only.next_position == 2
    assert only.output is None or only.output.size == 0, only.output


def test_health(client):
    assert client.health() == "SERVING"

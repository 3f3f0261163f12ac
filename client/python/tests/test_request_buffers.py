"""Large requests are written into reused bytes (codec.RequestBuffers): the
bytes are those b"".join makes, a buffer is never rewritten while anything
else holds it, and every client path that uses them (unary, AppendStream,
asyncio, calls in flight together) stores exactly what was sent. The point
of it: a 4 MiB Append no longer page-faults on every page of its request."""
import asyncio
import resource
import threading

import numpy as np
import pytest

import knnmem
from knnmem import codec, messages
from oracle import Memory, assert_search_matches

HEADS, DIM, ROWS = 8, 128, 512  # 4 MiB Appends (keys and values)


def chunks(seed: int, floats: int):
    data = np.random.default_rng(seed).standard_normal(floats).astype(np.float32)
    return [b"head", memoryview(data.view(np.uint8)), b"", b"tail"]


def test_join_gives_the_bytes_of_bytes_join_above_and_below_the_threshold():
    buffers = codec.RequestBuffers(min_bytes=1 << 12)
    for floats in (10, 1 << 10, 1 << 16):
        parts = chunks(floats, floats)
        got = buffers.join(parts)
        assert type(got) is bytes and got == b"".join(parts)


def test_a_buffer_is_rewritten_only_when_nothing_else_holds_it():
    buffers = codec.RequestBuffers(slots=2, min_bytes=1 << 10)
    first = buffers.join(chunks(1, 1 << 12))
    kept = bytes(bytearray(first))  # a copy of its contents
    second = buffers.join(chunks(2, 1 << 12))  # `first` is held: not reused
    assert second is not first and first == kept
    assert second == b"".join(chunks(2, 1 << 12))
    ids = {id(first), id(second)}
    del first, second  # now only the pool holds them
    third = buffers.join(chunks(3, 1 << 12))
    assert id(third) in ids and third == b"".join(chunks(3, 1 << 12))
    # Every slot held: the oldest is let go, nothing held is touched.
    held = [third, buffers.join(chunks(4, 1 << 12)), buffers.join(chunks(5, 1 << 12))]
    assert len({id(b) for b in held}) == 3
    assert [bytes(b) for b in held] == [b"".join(chunks(s, 1 << 12)) for s in (3, 4, 5)]
    # A different size takes a free slot's place.
    del held, third
    other = buffers.join(chunks(6, 1 << 11))
    assert other == b"".join(chunks(6, 1 << 11))


def test_threads_have_their_own_buffers():
    buffers = codec.RequestBuffers(slots=1, min_bytes=1 << 10)
    mine = buffers.join(chunks(1, 1 << 12))
    mine_id = id(mine)  # kept alive by this thread's pool
    del mine
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(buffers.join(chunks(2, 1 << 12))))
    thread.start()
    thread.join(timeout=10)
    again = buffers.join(chunks(3, 1 << 12))
    assert id(theirs[0]) != mine_id and id(again) == mine_id
    assert theirs[0] == b"".join(chunks(2, 1 << 12))
    assert again == b"".join(chunks(3, 1 << 12))


def batches(count: int, seed: int):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((ROWS, HEADS, DIM)).astype(np.float32),
             rng.standard_normal((ROWS, HEADS, DIM)).astype(np.float32)) for _ in range(count)]


def check_stored(c: knnmem.Client, stream_id: str, sent) -> None:
    memory = Memory(HEADS, DIM, DIM, 1 << 14)
    for i, (k, v) in enumerate(sent):
        memory.append(k, v, i * ROWS)
    q = np.random.default_rng(99).standard_normal((4, HEADS, DIM)).astype(np.float32)
    found = c.search(stream_id, q, 8, return_keys=True, return_values=True)
    assert_search_matches(memory, q, 8, found)
    # Each batch's last row, asked for by itself, comes back exactly.
    for i, (k, v) in enumerate(sent):
        hit = c.search(stream_id, k[-1:] * 100, 1, return_keys=True, return_values=True)
        assert (hit.positions[0, :, 0] == (i + 1) * ROWS - 1).all()
        np.testing.assert_array_equal(hit.values[0, :, 0], v[-1])


def test_appends_and_pipelines_through_reused_buffers_store_every_batch(client, stream_id):
    client.create_stream(stream_id, heads=HEADS, key_dim=DIM, capacity=1 << 14)
    sent = batches(6, seed=1)
    for i, (k, v) in enumerate(sent[:3]):
        assert client.append(stream_id, k, v, first_position=i * ROWS).next_position == \
            (i + 1) * ROWS
    with client.append_pipeline(window=2) as p:
        for i, (k, v) in enumerate(sent[3:], start=3):
            p.send(stream_id, k, v, first_position=i * ROWS)
    assert [a.next_position for a in p.acknowledged] == [4 * ROWS, 5 * ROWS, 6 * ROWS]
    check_stored(client, stream_id, sent)


def test_asyncio_calls_in_flight_together_each_send_their_own_rows(server, client, stream_id):
    ids = [f"{stream_id}-{i}" for i in range(2)]
    sent = {s: batches(3, seed=10 + j) for j, s in enumerate(ids)}

    async def main():
        async with knnmem.AsyncClient(server.address, timeout=20) as c:
            for s in ids:
                await c.create_stream(s, heads=HEADS, key_dim=DIM, capacity=1 << 14)
            for i in range(2):  # two 4 MiB Appends in flight at once, one client
                await asyncio.gather(*(c.append(s, *sent[s][i], first_position=i * ROWS)
                                       for s in ids))
            async with c.append_pipeline(window=2) as p:
                for s in ids:
                    await p.send(s, *sent[s][2], first_position=2 * ROWS)
    asyncio.run(main())
    for s in ids:
        check_stored(client, s, sent[s])


def test_a_4_MiB_append_does_not_fault_in_its_pages_on_every_call(client, stream_id):
    # Before RequestBuffers: 2,016 minor faults per call (two 4 MiB buffers,
    # allocated and freed each call, their pages returned to the kernel).
    client.create_stream(stream_id, heads=HEADS, key_dim=DIM, capacity=1 << 14)
    (k, v), = batches(1, seed=2)
    for i in range(3):
        client.append(stream_id, k, v, first_position=i * ROWS)
    calls = 10
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(3, 3 + calls):
        client.append(stream_id, k, v, first_position=i * ROWS)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls
    assert faults < 256, f"{faults:.0f} minor page faults per 4 MiB Append"


@pytest.mark.parametrize("dtype", [None, "bfloat16"])
def test_request_bytes_match_protobuf_serialisation(dtype):
    """The hand-made framing (cached Tensor headers, varints) parses back to
    the fields given."""
    from knnmem.v1 import memory_pb2 as pb
    k = np.random.default_rng(0).standard_normal((300, 8, 128)).astype(np.float32)
    for first in (0, 127, 128, 16383, 16384, 1 << 40):
        data = messages.append_request("s", k, k[:, :, :64], first, 3, dtype, True,
                                       codec.RequestBuffers(min_bytes=1))
        r = pb.AppendRequest.FromString(data)
        assert (r.stream_id, r.layer, r.first_position, r.sync) == ("s", 3, first, True)
        assert list(r.keys.shape) == [300, 8, 128] and list(r.values.shape) == [300, 8, 64]
        assert len(r.keys.data) == k.size * (4 if dtype is None else 2)
    steps = [knnmem.Step(f"s{i}", k[i:i + 1]) for i in range(40)]
    r = pb.DecodeStepRequest.FromString(messages.decode_step_request(steps, 32))
    assert [s.stream_id for s in r.steps] == [f"s{i}" for i in range(40)]
    np.testing.assert_array_equal(
        np.frombuffer(r.steps[7].queries.data, np.float32).reshape(1, 8, 128), k[7:8])

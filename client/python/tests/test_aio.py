"""AsyncClient: every RPC under asyncio, against the numpy oracle."""
import asyncio

import numpy as np
import pytest

import knnmem
from oracle import Memory, assert_search_matches


def run(coroutine):
    return asyncio.run(coroutine)


def test_every_rpc_under_asyncio(server, stream_id):
    async def main():
        rng = np.random.default_rng(0)
        heads, dk, dv = 2, 8, 4
        async with knnmem.AsyncClient(server.address, timeout=20) as c:
            assert await c.health() == "SERVING"
            r = await c.create_stream(stream_id, heads=heads, key_dim=dk, value_dim=dv,
                                      capacity=200)
            assert r.created
            memory = Memory(heads, dk, dv, 200)
            k = rng.standard_normal((150, heads, dk)).astype(np.float32)
            v = rng.standard_normal((150, heads, dv)).astype(np.float32)
            assert await c.append(stream_id, k[:50], v[:50], first_position=0) == (50, 50)
            async with c.append_pipeline(window=2) as p:
                for start in range(50, 150, 25):
                    await p.send(stream_id, k[start:start + 25], v[start:start + 25],
                                 first_position=start)
            assert [a.next_position for a in p.acknowledged] == [75, 100, 125, 150]
            memory.append(k, v, 0)
            q = rng.standard_normal((3, heads, dk)).astype(np.float32)
            # Calls in flight together on one channel.
            found, attended, info = await asyncio.gather(
                c.search(stream_id, q, 20, return_keys=True, return_values=True),
                c.attend(stream_id, q, 20, scale=0.25),
                c.get_stream(stream_id))
            assert_search_matches(memory, q, 20, found)
            out, lse = memory.attend(q, 20, scale=0.25)
            np.testing.assert_allclose(attended.output, out, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(attended.lse, lse, rtol=1e-5, atol=1e-5)
            assert info.layers[0].next_position == 150
            step_k = rng.standard_normal((1, heads, dk)).astype(np.float32)
            [step] = await c.decode_step(
                [knnmem.Step(stream_id, q[:1], keys=step_k, values=step_k[..., :dv],
                             first_position=150)], 20, scale=0.25)
            memory.append(step_k, step_k[..., :dv], 150)
            out, lse = memory.attend(q[:1], 20, scale=0.25)
            np.testing.assert_allclose(step.output, out, rtol=1e-4, atol=1e-5)
            assert step.next_position == 151
            listed = [s.stream_id async for s in c.list_streams(page_size=1)]
            assert stream_id in listed and listed == sorted(listed)
            await c.reset_stream(stream_id)
            assert (await c.get_stream(stream_id)).layers[0].entries == 0
            await c.delete_stream(stream_id)
            with pytest.raises(knnmem.Error) as e:
                await c.get_stream(stream_id)
            assert e.value.code.name == "NOT_FOUND"
    run(main())


def test_async_pipeline_failure_and_errors(server, stream_id):
    async def main():
        async with knnmem.AsyncClient(server.address, timeout=20) as c:
            await c.create_stream(stream_id, heads=1, key_dim=4, capacity=10)
            rows = np.ones((2, 1, 4), np.float32)
            p = c.append_pipeline(window=1)
            await p.send(stream_id, rows, rows, first_position=0)
            with pytest.raises(knnmem.Error) as e:
                await p.send(stream_id, rows, rows, first_position=9)  # a gap
                await p.send(stream_id, rows, rows, first_position=11)
                await p.finish()
            assert e.value.code.name == "FAILED_PRECONDITION"
            assert p.acknowledged == [(2, 2)]
            with pytest.raises(knnmem.Error) as e:
                await c.search(stream_id, np.ones((1, 1, 5), np.float32), 1)
            assert e.value.code.name == "INVALID_ARGUMENT"
            assert e.value.message.startswith("queries.shape[2]")
    run(main())

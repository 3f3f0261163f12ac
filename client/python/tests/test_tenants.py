"""Tenants from Python: a token scoped to tenant=acme reaches only ids
"acme/..." through Client, AsyncClient, ShardedClient and KNNMemory, lists
only them, and gets PERMISSION_DENIED (never NOT_FOUND) for another
tenant's stream, whether or not it exists."""
import asyncio

import grpc
import numpy as np
import pytest

import knnmem
from server_process import ServerProcess

ACME = "acme-writer-token-0123456789"
ADMIN = "admin-token-0123456789abcdef"
ROW = np.full((1, 1, 4), 0.5, np.float32)


@pytest.fixture
def servers(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ACME} rw tenant=acme name=acme-writer\n{ADMIN} rw name=ops\n"
                      "quota acme streams=8\n")
    flags = ["--auth-token-file", str(tokens)]
    with ServerProcess(tmp_path / "a", flags) as a, ServerProcess(tmp_path / "b", flags) as b:
        yield a, b


def denied(call):
    with pytest.raises(knnmem.Error) as e:
        call()
    assert e.value.code == grpc.StatusCode.PERMISSION_DENIED, e.value
    return e.value.message


def test_a_tenant_reaches_and_lists_only_its_own_streams(servers):
    a, _ = servers
    with knnmem.Client(a.address, token=ACME, timeout=10) as acme, \
            knnmem.Client(a.address, token=ADMIN, timeout=10) as admin:
        admin.create_stream("globex/secret", heads=1, key_dim=4, capacity=10)
        acme.create_stream("acme/doc", heads=1, key_dim=4, capacity=10)
        acme.append("acme/doc", ROW, ROW, first_position=0)
        assert acme.search("acme/doc", ROW, 1).positions.tolist() == [[[0]]]
        # The same answer for a stream that exists and one that does not.
        messages = [denied(lambda: acme.get_stream(i)).replace(i, "X")
                    for i in ("globex/secret", "globex/none")]
        assert messages[0] == messages[1]
        assert messages[0].startswith("stream_id: 'X' is outside tenant 'acme'")
        denied(lambda: acme.append("globex/secret", ROW, ROW, first_position=0))
        denied(lambda: acme.create_stream("doc", heads=1, key_dim=4, capacity=10))
        assert [s.stream_id for s in acme.list_streams()] == ["acme/doc"]
        assert sorted(s.stream_id for s in admin.list_streams()) == ["acme/doc",
                                                                     "globex/secret"]
        out = acme.decode_step([knnmem.Step("acme/doc", ROW),
                                knnmem.Step("globex/secret", ROW)], 1)
        assert out[0].ok
        assert not out[1].ok and out[1].code == grpc.StatusCode.PERMISSION_DENIED
        assert out[1].message.startswith("steps[1].stream_id")
        for i in range(7):  # the quota: 8 streams
            acme.create_stream(f"acme/more-{i}", heads=1, key_dim=4, capacity=10)
        with pytest.raises(knnmem.Error) as e:
            acme.create_stream("acme/one-too-many", heads=1, key_dim=4, capacity=10)
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert e.value.message.startswith("quota streams of tenant 'acme': 8")

    async def async_calls():
        async with knnmem.AsyncClient(a.address, token=ACME, timeout=10) as c:
            assert "acme/doc" in [s.stream_id async for s in c.list_streams()]
            with pytest.raises(knnmem.Error) as e:
                await c.get_stream("globex/secret")
            assert e.value.code == grpc.StatusCode.PERMISSION_DENIED

    asyncio.run(async_calls())


def test_sharded_client_and_knn_memory_carry_the_tenant(servers):
    a, b = servers
    addresses = f"{a.address},{b.address}"
    with knnmem.ShardedClient(addresses, token=ACME, timeout=10) as acme, \
            knnmem.ShardedClient(addresses, token=ADMIN, timeout=10) as admin:
        ids = {f"acme/doc-{i}" for i in range(5)}
        for i in ids:
            acme.create_stream(i, heads=1, key_dim=4, capacity=10)
            admin.create_stream(i.replace("acme/", "globex/"), heads=1, key_dim=4,
                                capacity=10)
        assert {s.stream_id for s in acme.list_streams()} == ids
        # Locating another tenant's stream says why, not "on no server".
        denied(lambda: acme.locate("globex/doc-0"))
        assert acme.locate("acme/doc-0") in (0, 1)

    torch_part = pytest.importorskip("knnmem.torch")
    with knnmem.Client(a.address, token=ACME, timeout=10) as acme:
        memory = torch_part.KNNMemory(4, max_memories=16, num_indices=2, client=acme,
                                      stream_prefix="acme/knn")
        assert memory.stream_ids == ["acme/knn-0", "acme/knn-1"]
        denied(lambda: torch_part.KNNMemory(4, max_memories=16, client=acme))

"""ShardedClient places streams as the C++ ShardedClient: the same parse of
the server list, the same rendezvous hash, checked against the knnmem CLI."""
import subprocess

import numpy as np
import pytest

import knnmem
from knnmem.sharding import mixed_hash64, parse_server_list, rendezvous_index
from server_process import ServerProcess, cli_binary, run_binary

ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/-"))

SERVER_LISTS = [
    "127.0.0.1:5001,127.0.0.1:5002,127.0.0.1:5003",
    "shard-a=10.0.0.1:50051, shard-b=10.0.0.2:50051,shard-c=h:1,,shard-d=h:2",
    "knnmem-{0..7}.knnmem.default.svc:50051",
    "knnmem-{ 2..4}.knnmem:50051,spare=spare.knnmem:50051",
]


def stream_ids(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = [f"doc-{i}" for i in range(n // 2)]
    lengths = rng.integers(1, 129, n - len(ids))
    ids += ["".join(rng.choice(ALPHABET, size=int(k))) for k in lengths]
    # No id starts with '-': the CLI would take it for a flag.
    return ["x" + i[1:] if i.startswith("-") else i for i in ids]


def cli(*args: str) -> subprocess.CompletedProcess:
    p = run_binary([cli_binary(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   text=True)
    out, err = p.communicate(timeout=60)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def python_places(servers: str, ids):
    parsed = parse_server_list(servers)
    names = [s.name for s in parsed]
    return [" ".join(parsed[rendezvous_index(i, names)]) for i in ids]


def test_hash_is_fnv1a_then_splitmix64_finaliser():
    # Fnv1a64("") is the offset basis; the finaliser of it, computed by hand.
    h = 0xCBF29CE484222325
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) % 2**64
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) % 2**64
    assert mixed_hash64("") == h ^ (h >> 31)
    assert knnmem.rendezvous_weight("doc-1", "s0") == mixed_hash64("s0\ndoc-1")
    assert all(0 <= mixed_hash64(s) < 2**64 for s in stream_ids(100))


@pytest.mark.parametrize("servers", SERVER_LISTS)
def test_placement_of_a_few_ids_matches_the_cli_one_by_one(servers):
    ids = stream_ids(12, seed=len(servers))
    want = python_places(servers, ids)
    for i, place in zip(ids, want):
        r = cli("--servers", servers, "where", i)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == place, i


@pytest.mark.parametrize("servers", SERVER_LISTS)
def test_placement_of_10000_ids_matches_the_cpp_sharded_client(servers):
    # Needs `knnmem --servers LIST where ID [ID...]` to print one
    # "NAME ADDRESS" line per id, in order.
    ids = stream_ids(10000, seed=7)
    r = cli("--servers", servers, "where", *ids)
    assert r.returncode == 0, r.stderr
    got = r.stdout.splitlines()
    if len(got) != len(ids):
        pytest.fail(f"`knnmem where` printed {len(got)} line(s) for {len(ids)} ids: the CLI "
                    "must print one 'NAME ADDRESS' line per id", pytrace=False)
    want = python_places(servers, ids)
    mismatches = [(i, g, w) for i, g, w in zip(ids, got, want) if g != w]
    assert not mismatches, mismatches[:5]
    counts = {p: want.count(p) for p in set(want)}
    assert len(counts) == len(parse_server_list(servers))  # every server gets streams


BAD_LISTS = ["", " , ", "host", "a=:1", "=h:1", "h:0", "h:70000", "h:x", ":5",
             "k-{0..}.k:1", "k-{3..1}.k:1", "k-{0..1001}.k:1", "k-{-1..2}.k:1", "k-{0.1}.k:1",
             "a=h:1,a=h:2", "h:1,h:1", "a=h:1,b=h:1"]


@pytest.mark.parametrize("servers", BAD_LISTS)
def test_bad_server_lists_are_refused_with_the_cli_message(servers):
    with pytest.raises(ValueError) as e:
        parse_server_list(servers)
    if servers.strip(" ,") == "":
        return  # the CLI falls back to its default server for an empty flag
    r = cli("--servers", servers, "where", "x")
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == f"knnmem: {e.value}"


def test_ranges_and_names_expand_as_in_cpp():
    assert parse_server_list("knnmem-{0..2}.knnmem:50051") == [
        knnmem.ServerAddress(f"knnmem-{i}.knnmem:50051", f"knnmem-{i}.knnmem:50051")
        for i in range(3)]
    assert parse_server_list(" a=h:1 ,b=[::1]:2") == [
        knnmem.ServerAddress("a", "h:1"), knnmem.ServerAddress("b", "[::1]:2")]


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    base = tmp_path_factory.mktemp("shards")
    with ServerProcess(base / "a") as a, ServerProcess(base / "b") as b:
        yield [a, b]


def test_sharded_client_keeps_each_stream_on_its_rendezvous_server(two_servers):
    servers = ",".join(f"s{i}={s.address}" for i, s in enumerate(two_servers))
    names = ["s0", "s1"]
    rng = np.random.default_rng(0)
    ids = [f"sharded-{i}" for i in range(20)]
    with knnmem.ShardedClient(servers, timeout=10) as sharded:
        for i in ids:
            assert sharded.create_stream(i, heads=1, key_dim=4, capacity=10).created
            rows = rng.standard_normal((3, 1, 4)).astype(np.float32)
            sharded.append(i, rows, rows, first_position=0)
        homes = {i: rendezvous_index(i, names) for i in ids}
        assert set(homes.values()) == {0, 1}
        for i, home in homes.items():
            assert sharded.server_of(i).name == names[home]
            sharded.clients[home].get_stream(i)
            with pytest.raises(knnmem.Error) as e:
                sharded.clients[1 - home].get_stream(i)
            assert e.value.code.name == "NOT_FOUND"
        assert {s.stream_id for s in sharded.list_streams()} >= set(ids)
        # Steps on both servers in one decode_step, answered in step order.
        q = np.ones((1, 1, 4), np.float32)
        results = sharded.decode_step([knnmem.Step(i, q) for i in ids] +
                                      [knnmem.Step("sharded-missing", q)], 2)
        for i, r in zip(ids, results):
            want = sharded.attend(i, q, 2)
            np.testing.assert_array_equal(r.output, want.output)
        assert results[-1].code.name == "NOT_FOUND" and results[-1].index == len(ids)
    # A client with the servers in another order (other names) finds them.
    flipped = ",".join(f"t{i}={s.address}" for i, s in enumerate(reversed(two_servers)))
    with knnmem.ShardedClient(flipped, timeout=10) as other:
        for i, home in homes.items():
            assert other.locate(i) == 1 - home
            assert other.get_stream(i).layers[0].next_position == 3
        other.delete_stream(ids[0])
        with pytest.raises(knnmem.Error):
            other.locate(ids[0])

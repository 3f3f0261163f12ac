"""Encoding a request and decoding a response run no Python code per element:
the profile of a 4 MiB Append (and of a large Search answer) has exactly as
many Python function calls as that of a tiny one (builtins aside: a varint
appends one byte per 7 bits of a length), and a whole Client.append call
(request, gRPC, response) of 16 MiB as many as one of 4 MiB."""
import cProfile
import pstats

import numpy as np
import pytest

import knnmem
from knnmem import messages
from knnmem.v1 import memory_pb2 as pb


def calls(fn) -> int:
    """Python function calls (frames) while fn runs."""
    profile = cProfile.Profile()
    profile.runcall(fn)
    stats = pstats.Stats(profile).stats
    return sum(calls for (filename, _, _), (_, calls, *_) in stats.items() if filename != "~")


@pytest.mark.parametrize("dtype", [None, "float16", "bfloat16"])
def test_append_request_calls_do_not_grow_with_its_size(dtype):
    def request(rows):
        keys = np.ones((rows, 8, 128), np.float32)
        return lambda: messages.append_request("s", keys, keys, 0, 0, dtype, False)
    request(1)()  # imports and caches warmed up
    big = calls(request(2048))  # 2 x 2048 x 8 x 128 float32: 16 MiB
    assert big == calls(request(1))
    data = messages.append_request("s", np.ones((512, 8, 128), np.float32),
                                   np.ones((512, 8, 128), np.float32), 0, 0, None, False)
    assert len(data) > 4 << 20  # the 4 MiB Append
    parsed = pb.AppendRequest.FromString(data)
    assert parsed.stream_id == "s" and list(parsed.keys.shape) == [512, 8, 128]


def test_search_response_decoding_calls_do_not_grow_with_its_size():
    def response(n):
        shape = [n, 8, 32]
        count = int(np.prod(shape))
        r = pb.SearchResponse(
            scores=pb.Tensor(dtype=pb.FLOAT32, shape=shape, data=bytes(4 * count)),
            positions=pb.Tensor(dtype=pb.INT64, shape=shape, data=bytes(8 * count)),
            keys=pb.Tensor(dtype=pb.BFLOAT16, shape=shape + [128], data=bytes(2 * count * 128)))
        return lambda: messages.neighbours(r)
    response(1)()
    assert calls(response(256)) == calls(response(1))


def test_a_whole_client_append_calls_as_many_python_functions_at_4_and_16_mib(server, stream_id):
    def second_call(rows):
        # Its own client: both sizes take the same path through its buffers.
        with knnmem.Client(server.address, timeout=20) as c:
            s = f"{stream_id}-{rows}"
            c.create_stream(s, heads=8, key_dim=128, capacity=4096)
            keys = np.ones((rows, 8, 128), np.float32)
            c.append(s, keys, keys, first_position=0)
            return calls(lambda: c.append(s, keys, keys, first_position=rows))
    assert second_call(512) == second_call(2048)

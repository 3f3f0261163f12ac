"""Each bad input raises knnmem.Error with the right code and the server's
message, which names the field."""
import socket

import grpc
import numpy as np
import pytest

import knnmem
from server_process import ServerProcess

HEADS, DIM = 2, 4


@pytest.fixture
def stream(client, stream_id):
    client.create_stream(stream_id, layers=2, heads=HEADS, key_dim=DIM, capacity=100)
    rows = np.ones((3, HEADS, DIM), np.float32)
    client.append(stream_id, rows, rows, first_position=0)
    return stream_id


def ones(*shape, dtype=np.float32):
    return np.ones(shape, dtype)


def with_value(x):
    a = ones(2, HEADS, DIM)
    a[1, 1, 2] = x
    return a


Q = ones(1, HEADS, DIM)

# (name, call(client, stream), code, message prefix)
CASES = [
    ("unknown stream", lambda c, s: c.get_stream(s + "-none"), "NOT_FOUND", "stream_id"),
    ("search unknown", lambda c, s: c.search(s + "-none", Q, 1), "NOT_FOUND", "stream_id"),
    ("append unknown", lambda c, s: c.append(s + "-none", Q, Q, first_position=0),
     "NOT_FOUND", "stream_id"),
    ("reset unknown", lambda c, s: c.reset_stream(s + "-none"), "NOT_FOUND", "stream_id"),
    ("delete unknown", lambda c, s: c.delete_stream(s + "-none"), "NOT_FOUND", "stream_id"),
    ("other spec", lambda c, s: c.create_stream(s, layers=2, heads=HEADS, key_dim=DIM,
                                                capacity=99), "ALREADY_EXISTS", "stream_id"),
    ("gap", lambda c, s: c.append(s, Q, Q, first_position=10), "FAILED_PRECONDITION",
     "first_position"),
    ("empty id", lambda c, s: c.get_stream(""), "INVALID_ARGUMENT", "stream_id"),
    ("bad id", lambda c, s: c.create_stream("a b", heads=1, key_dim=1, capacity=1),
     "INVALID_ARGUMENT", "stream_id"),
    ("long id", lambda c, s: c.create_stream("x" * 129, heads=1, key_dim=1, capacity=1),
     "INVALID_ARGUMENT", "stream_id"),
    ("zero heads", lambda c, s: c.create_stream(s + "-z", heads=0, key_dim=4, capacity=1),
     "INVALID_ARGUMENT", "spec.heads"),
    ("huge dim", lambda c, s: c.create_stream(s + "-z", heads=1, key_dim=5000, capacity=1),
     "INVALID_ARGUMENT", "spec.key_dim"),
    ("query dim", lambda c, s: c.search(s, ones(1, HEADS, DIM + 1), 1), "INVALID_ARGUMENT",
     "queries.shape[2]"),
    ("query heads", lambda c, s: c.search(s, ones(1, HEADS + 1, DIM), 1), "INVALID_ARGUMENT",
     "queries.shape[1]"),
    ("query rank", lambda c, s: c.search(s, ones(HEADS, DIM), 1), "INVALID_ARGUMENT",
     "queries: shape has rank"),
    ("rows differ", lambda c, s: c.append(s, ones(2, HEADS, DIM), ones(3, HEADS, DIM),
                                          first_position=3), "INVALID_ARGUMENT", "values"),
    ("dtypes differ", lambda c, s: c.append(s, ones(1, HEADS, DIM),
                                            ones(1, HEADS, DIM, dtype=np.float16),
                                            first_position=3), "INVALID_ARGUMENT", "values"),
    ("nan", lambda c, s: c.append(s, with_value(np.nan), ones(2, HEADS, DIM), first_position=3),
     "INVALID_ARGUMENT", "keys"),
    ("inf", lambda c, s: c.search(s, with_value(np.inf), 1), "INVALID_ARGUMENT", "queries"),
    ("too large", lambda c, s: c.attend(s, with_value(2e15), 1), "INVALID_ARGUMENT", "queries"),
    ("k zero", lambda c, s: c.search(s, Q, 0), "INVALID_ARGUMENT", "k"),
    ("k too big", lambda c, s: c.attend(s, Q, 2049), "INVALID_ARGUMENT", "k"),
    ("layer", lambda c, s: c.search(s, Q, 1, layer=2), "INVALID_ARGUMENT", "layer"),
    ("scale zero", lambda c, s: c.attend(s, Q, 1, scale=0.0), "INVALID_ARGUMENT", "scale"),
    ("scale count", lambda c, s: c.attend(s, Q, 1, scale=[1.0, 1.0, 1.0]), "INVALID_ARGUMENT",
     "scale"),
    ("age tau", lambda c, s: c.attend(s, Q, 1, age_alpha=1.0), "INVALID_ARGUMENT", "age_tau"),
    ("position", lambda c, s: c.append(s, Q, Q, first_position=1 << 62), "INVALID_ARGUMENT",
     "first_position"),
    ("step k", lambda c, s: c.decode_step([knnmem.Step(s, Q)], 0), "INVALID_ARGUMENT", "k"),
    ("no steps", lambda c, s: c.decode_step([], 1), "INVALID_ARGUMENT", "steps"),
    # Refused before sending: not numbers, ambiguous uint16, a step without position.
    ("strings", lambda c, s: c.search(s, np.array([["a"]]), 1), "INVALID_ARGUMENT", "queries"),
    ("uint16", lambda c, s: c.search(s, ones(1, HEADS, DIM, dtype=np.uint16), 1),
     "INVALID_ARGUMENT", "queries"),
    ("step position", lambda c, s: c.decode_step([knnmem.Step(s, Q, keys=Q, values=Q)], 1),
     "INVALID_ARGUMENT", "steps[0].first_position"),
]


@pytest.mark.parametrize("name,call,code,prefix", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_with_its_code_and_field(client, stream, name, call, code, prefix):
    with pytest.raises(knnmem.Error) as e:
        call(client, stream)
    assert e.value.code == getattr(grpc.StatusCode, code), e.value
    assert e.value.message.startswith(prefix), e.value.message


def test_bad_steps_fail_alone(client, stream):
    other = stream + "-other"
    client.create_stream(other, heads=HEADS, key_dim=DIM, capacity=10)
    results = client.decode_step([
        knnmem.Step(stream, ones(1, HEADS, DIM + 1)),
        knnmem.Step(stream, Q, keys=Q, values=Q, first_position=50, layer=1),
        knnmem.Step(other, Q),
        knnmem.Step(stream, Q),  # (stream, layer 0) again
    ], 2)
    assert [r.code.name if not r.ok else "OK" for r in results] == \
        ["INVALID_ARGUMENT", "FAILED_PRECONDITION", "OK", "INVALID_ARGUMENT"]
    assert results[0].message.startswith("steps[0].queries")
    assert results[1].message.startswith("steps[1].first_position")
    assert results[3].message.startswith("steps[3].stream_id")


def test_a_deadline_that_passes_is_deadline_exceeded(client, stream):
    with pytest.raises(knnmem.Error) as e:
        # A deadline already past (a tiny positive one rounds up to the
        # next millisecond, in which a local call may well finish).
        client.search(stream, ones(64, HEADS, DIM), 16, timeout=-1.0)
    assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_no_server_is_unavailable():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with knnmem.Client(f"127.0.0.1:{port}", timeout=5) as c:
        with pytest.raises(knnmem.Error) as e:
            c.get_stream("x")
    assert e.value.code == grpc.StatusCode.UNAVAILABLE


def test_a_request_over_the_message_limit_is_resource_exhausted(tmp_path):
    with ServerProcess(tmp_path / "data", ["--max-message-bytes", "65536"]) as server, \
            knnmem.Client(server.address, timeout=10) as c:
        c.create_stream("big", heads=1, key_dim=64, capacity=10000)
        rows = ones(300, 1, 64)  # 2 x 76,800 bytes
        with pytest.raises(knnmem.Error) as e:
            c.append("big", rows, rows, first_position=0)
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_errors_pickle_with_their_code():
    import pickle
    e = pickle.loads(pickle.dumps(knnmem.Error(grpc.StatusCode.NOT_FOUND, "stream_id: x")))
    assert (e.code, e.message) == (grpc.StatusCode.NOT_FOUND, "stream_id: x")
    s = pickle.loads(pickle.dumps(knnmem.StepError(grpc.StatusCode.NOT_FOUND, "m", 3)))
    assert (s.code, s.message, s.index, s.ok) == (grpc.StatusCode.NOT_FOUND, "m", 3, False)

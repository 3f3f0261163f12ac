"""ShardedClient: one stream, one server, placed as the C++ ShardedClient.

parse_server_list and rendezvous_weight follow client/sharded_client.cc and
base/stable_hash.h exactly, so that Python and C++ clients given the same
server list put every stream on the same server.
"""
from __future__ import annotations

import re
import threading
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence

import grpc

from knnmem import messages as m
from knnmem.client import Client
from knnmem.errors import Error
from knnmem.v1 import memory_pb2 as pb

_MASK = (1 << 64) - 1
_ASCII_SPACE = " \t\n\v\f\r"
_INT = re.compile(r"[+-]?[0-9]+\Z")


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for c in data:
        h = ((h ^ c) * 0x100000001B3) & _MASK
    return h


def mixed_hash64(text: str) -> int:
    """FNV-1a 64 of the UTF-8 bytes, then SplitMix64's finaliser."""
    h = fnv1a64(text.encode())
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & _MASK
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & _MASK
    return h ^ (h >> 31)


def rendezvous_weight(stream_id: str, name: str) -> int:
    return mixed_hash64(f"{name}\n{stream_id}")


class ServerAddress(NamedTuple):
    """A server of the list; streams are placed by name (the address unless
    the list names it: "shard-0=10.1.2.3:50051")."""

    name: str
    address: str


def _atoi(text: str) -> Optional[int]:
    """absl::SimpleAtoi into an int: surrounding ASCII whitespace, a sign,
    decimal digits, within int32."""
    text = text.strip(_ASCII_SPACE)
    if not _INT.match(text):
        return None
    value = int(text)
    return value if -(1 << 31) <= value < (1 << 31) else None


def _bad(entry: str, why: str) -> ValueError:
    return ValueError(f"--servers: '{entry}' {why}")


def parse_server_list(spec: str) -> List[ServerAddress]:
    """Comma-separated [NAME=]HOST:PORT entries, each with at most one range
    "{A..B}" ("knnmem-{0..2}.knnmem:50051"). ValueError, with the C++
    message, for an empty list, an entry without a port, a bad range, or a
    duplicate name or address."""
    out: List[ServerAddress] = []
    for piece in spec.split(","):
        if piece.strip(_ASCII_SPACE) == "":
            continue
        entry = piece.strip(_ASCII_SPACE)
        open_ = entry.find("{")
        if open_ < 0:
            expanded = [entry]
        else:
            close = entry.find("}", open_)
            dots = entry.find("..", open_)
            lo = hi = None
            if close >= 0 and dots >= 0 and dots <= close:
                lo = _atoi(entry[open_ + 1:dots])
                hi = _atoi(entry[dots + 2:close])
            if lo is None or hi is None or lo < 0 or hi < lo or hi - lo > 1000:
                raise _bad(entry, "has a range that is not {A..B} with 0 <= A <= B")
            expanded = [f"{entry[:open_]}{i}{entry[close + 1:]}" for i in range(lo, hi + 1)]
        for server in expanded:
            eq = server.find("=")
            address = server if eq < 0 else server[eq + 1:]
            name = server if eq < 0 else server[:eq]
            colon = address.rfind(":")
            port = _atoi(address[colon + 1:]) if colon > 0 else None
            if not name or port is None or port <= 0 or port > 65535:
                raise _bad(server, "is not [NAME=]HOST:PORT")
            out.append(ServerAddress(name, address))
    if not out:
        raise ValueError("--servers: the list is empty")
    names, addresses = set(), set()
    for s in out:
        if s.name in names:
            raise _bad(s.name, "appears twice")
        names.add(s.name)
        if s.address in addresses:
            raise _bad(s.address, "appears twice")
        addresses.add(s.address)
    return out


def rendezvous_index(stream_id: str, names: Sequence[str]) -> int:
    """Index of the name with the highest weight (the first on a tie)."""
    best, best_weight = 0, -1
    for i, name in enumerate(names):
        w = rendezvous_weight(stream_id, name)
        if w > best_weight:
            best, best_weight = i, w
    return best


class ShardedClient:
    """Routes each stream by rendezvous hashing of its id over a server list
    (a "[NAME=]HOST:PORT,..." string or ServerAddress entries), and keeps a
    stream on the server this client created or located it on. The per-stream
    calls of Client are here too, sent to the stream's server; keyword
    arguments of Client (token, TLS, timeout) apply to every server."""

    def __init__(self, servers: Any, **client_options: Any):
        self.servers: List[ServerAddress] = (
            parse_server_list(servers) if isinstance(servers, str) else
            [ServerAddress(*s) for s in servers])
        if not self.servers:
            raise ValueError("--servers: the list is empty")
        self._names = [s.name for s in self.servers]
        self.clients = [Client(s.address, **client_options) for s in self.servers]
        self._lock = threading.Lock()
        self._pins: Dict[str, int] = {}

    def close(self) -> None:
        for c in self.clients:
            c.close()

    def __enter__(self) -> "ShardedClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def server_index_of(self, stream_id: str) -> int:
        with self._lock:
            pinned = self._pins.get(stream_id)
        return pinned if pinned is not None else rendezvous_index(stream_id, self._names)

    def server_of(self, stream_id: str) -> ServerAddress:
        return self.servers[self.server_index_of(stream_id)]

    def for_stream(self, stream_id: str) -> Client:
        """The client of the stream's server."""
        return self.clients[self.server_index_of(stream_id)]

    def create_stream(self, stream_id: str, spec: Optional[pb.StreamSpec] = None,
                      **kwargs: Any) -> pb.CreateStreamResponse:
        """Creates the stream on its rendezvous server and pins it there."""
        index = self.server_index_of(stream_id)
        r = self.clients[index].create_stream(stream_id, spec, **kwargs)
        with self._lock:
            self._pins[stream_id] = index
        return r

    def locate(self, stream_id: str) -> int:
        """Asks every server for the stream and pins it where found. Raises
        at once when a server refuses the token or its tenant (every server
        has the same tokens)."""
        for i, c in enumerate(self.clients):
            try:
                c.get_stream(stream_id)
            except Error as e:
                if e.code in (grpc.StatusCode.UNAUTHENTICATED,
                              grpc.StatusCode.PERMISSION_DENIED):
                    raise
                continue
            with self._lock:
                self._pins[stream_id] = i
            return i
        raise Error(grpc.StatusCode.NOT_FOUND,
                    f"stream_id: stream '{stream_id}' is on no reachable server")

    def list_streams(self, **kwargs: Any) -> Iterator[pb.StreamInfo]:
        """Every stream of every server, server by server."""
        for s, c in zip(self.servers, self.clients):
            try:
                yield from c.list_streams(**kwargs)
            except Error as e:
                raise Error(e.code, f"{s.address}: {e.message}") from None

    def delete_stream(self, stream_id: str, **kwargs: Any) -> None:
        self.for_stream(stream_id).delete_stream(stream_id, **kwargs)
        with self._lock:
            self._pins.pop(stream_id, None)

    def get_stream(self, stream_id: str, **kwargs: Any) -> pb.StreamInfo:
        return self.for_stream(stream_id).get_stream(stream_id, **kwargs)

    def reset_stream(self, stream_id: str, **kwargs: Any) -> None:
        self.for_stream(stream_id).reset_stream(stream_id, **kwargs)

    def append(self, stream_id: str, *args: Any, **kwargs: Any) -> m.Appended:
        return self.for_stream(stream_id).append(stream_id, *args, **kwargs)

    def search(self, stream_id: str, *args: Any, **kwargs: Any) -> m.Neighbours:
        return self.for_stream(stream_id).search(stream_id, *args, **kwargs)

    def attend(self, stream_id: str, *args: Any, **kwargs: Any) -> m.Attention:
        return self.for_stream(stream_id).attend(stream_id, *args, **kwargs)

    def decode_step(self, steps: Sequence[Any], k: int, *, timeout: Optional[float] = None,
                    **kwargs: Any) -> List[m.StepOutcome]:
        """Client.decode_step over the shards: one call per server holding
        any of the steps, all in flight at once; outcomes in step order. A
        call that fails as a whole makes each of its steps a StepError
        naming the server."""
        steps = [m.as_step(s) for s in steps]
        groups: Dict[int, List[int]] = {}
        for i, s in enumerate(steps):
            groups.setdefault(self.server_index_of(s.stream_id), []).append(i)
        calls = []
        for server, indices in groups.items():
            client = self.clients[server]
            request = m.decode_step_request([steps[i] for i in indices], k, **kwargs,
                                            buffers=client._buffers)
            calls.append((server, indices, client._future(
                "DecodeStep", request, pb.DecodeStepResponse, timeout)))
        out: List[Any] = [None] * len(steps)
        for server, indices, future in calls:
            try:
                outcomes = m.step_outcomes(future.result(), len(indices))
            except (grpc.RpcError, Error) as e:
                error = e if isinstance(e, Error) else Error.from_rpc_error(e)
                outcomes = [m.StepError(error.code, f"{self.servers[server].address}: "
                                        f"{error.message}") for _ in indices]
            for j, (i, outcome) in enumerate(zip(indices, outcomes)):
                if isinstance(outcome, m.StepError):
                    # Name the step by its index in `steps`, not in the shard's call.
                    local = f"steps[{j}]"
                    if outcome.message.startswith(local):
                        outcome = m.StepError(outcome.code,
                                              f"steps[{i}]{outcome.message[len(local):]}", i)
                    outcome.index = i
                out[i] = outcome
        return out

"""knnmem: the Python client of the knnmem external-memory server.

    import knnmem, numpy as np
    c = knnmem.Client("127.0.0.1:50051")
    c.create_stream("doc-1", heads=8, key_dim=128, capacity=65536)
    c.append("doc-1", keys, values, first_position=0)
    hits = c.search("doc-1", queries, k=32, return_values=True)

Client (blocking), AsyncClient (asyncio) and ShardedClient (many servers,
placed as the C++ ShardedClient) take and return numpy arrays; every failure
is a knnmem.Error carrying the gRPC code and the server's message.
knnmem.torch (needs torch) adds tensors, KNNMemory and memory attention.
"""
from knnmem.aio import AsyncAppendPipeline, AsyncClient
from knnmem.client import Client
from knnmem.dtypes import DType
from knnmem.errors import Error
from knnmem.messages import (Appended, Attention, Neighbours, Step, StepError, StepOutcome,
                             StepResult, stream_spec)
from knnmem.pipeline import AppendPipeline
from knnmem.sharding import ServerAddress, ShardedClient, parse_server_list, rendezvous_weight
from knnmem.v1.memory_pb2 import StreamInfo, StreamSpec

__all__ = [
    "AppendPipeline", "Appended", "AsyncAppendPipeline", "AsyncClient", "Attention", "Client",
    "DType", "Error", "Neighbours", "ServerAddress", "ShardedClient", "Step", "StepError",
    "StepOutcome", "StepResult", "StreamInfo", "StreamSpec", "parse_server_list",
    "rendezvous_weight", "stream_spec",
]
__version__ = "0.1.0"

"""knnmem.torch: torch tensors in and out, KNNMemory, and memory attention.

Needs torch (Debian 12: python3-torch).

    from knnmem.torch import KNNMemory            # for memorizing-transformers-pytorch's
    memory = KNNMemory(dim=64, max_memories=1024, num_indices=2)
    memory.add(torch.randn(2, 512, 2, 64))
    key_values, mask = memory.search(torch.randn(2, 512, 64), topk=32)
"""
try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover
    raise ImportError("knnmem.torch needs torch (Debian: apt-get install python3-torch)") from e

from knnmem.torch.attention import local_attention, memory_attention, merge_attention
from knnmem.torch.client import TorchAttention, TorchClient, TorchNeighbours
from knnmem.torch.knn_memory import KNNMemory, KNNMemoryList
from knnmem.torch.tensors import from_numpy, to_numpy

__all__ = ["KNNMemory", "KNNMemoryList", "TorchAttention", "TorchClient", "TorchNeighbours",
           "from_numpy", "local_attention", "memory_attention", "merge_attention", "to_numpy"]

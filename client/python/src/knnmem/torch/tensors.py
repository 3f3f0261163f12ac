"""torch tensors to and from the numpy arrays of the wire codec, without
copies where the layout allows (CPU, contiguous)."""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import numpy as np
import torch

from knnmem.dtypes import DType

WIRE_DTYPES = {torch.float32: DType.FLOAT32, torch.float16: DType.FLOAT16,
               torch.bfloat16: DType.BFLOAT16}
TORCH_DTYPES = {v: k for k, v in WIRE_DTYPES.items()}


def to_numpy(t: torch.Tensor, want: Optional[DType]) -> Tuple[np.ndarray, Optional[DType]]:
    """A numpy view of `t` for the codec, and the wire dtype to send it as.

    CPU contiguous tensors are viewed, not copied; others are copied once
    (to the CPU, or into a contiguous layout). bfloat16 tensors become uint16
    bit patterns sent as BFLOAT16, unless `want` asks for another dtype.
    """
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.dtype == torch.bfloat16 and want in (None, DType.BFLOAT16):
        return t.contiguous().view(torch.int16).numpy().view(np.uint16), DType.BFLOAT16
    if t.dtype not in (torch.float32, torch.float16):
        t = t.to(torch.float32)
    return t.contiguous().numpy(), want


def from_numpy(a: np.ndarray, device: Optional[torch.device] = None) -> torch.Tensor:
    """A tensor over the array's memory (uint16 arrays: bfloat16 bit
    patterns), moved to `device` if given.

    The codec's arrays are read-only views of a response's bytes, which
    nothing else holds: the tensor shares them (torch has no read-only
    tensors, hence the silenced warning).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writ")
        if a.dtype == np.uint16:
            t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
        else:
            t = torch.from_numpy(a)
    return t if device is None else t.to(device)

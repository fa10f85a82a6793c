"""splitmix64: the random-number mixing both compiled kernels (SGNS, walks) build on.

``splitmix64(state)`` turns a counter or seed into 64 well-mixed bits; advancing the
state by :data:`GOLDEN` between calls gives the splitmix64 stream, and mixing a seed once
makes nearby seeds give unrelated streams.
"""

from __future__ import annotations

import numpy as np
from numba import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)


@njit(nogil=True, cache=True, inline="always")
def splitmix64(z: np.uint64) -> np.uint64:
    """The splitmix64 finaliser of ``z`` (uint64 in, uint64 out)."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)

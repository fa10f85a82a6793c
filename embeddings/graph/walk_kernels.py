"""Compiled kernels for node2vec walks over a CSR graph (see :mod:`embeddings.graph.walks`).

First order: the next node ``x`` of a walk at ``v`` is drawn with probability
``w_vx / W_v`` (``W_v`` = summed out-weight of ``v``): one bounded integer for an unweighted
row, Walker's alias method (per-row tables, O(1) a draw, 8 bytes an arc) for a weighted one.

Second order (node2vec's p, q): having come from ``t``, the walk at ``v`` moves to ``x`` with
probability ∝ ``α(t, x) · w_vx`` where ``α = 1/p`` if ``x == t``, ``1`` if ``x`` is an
out-neighbour of ``t`` and ``1/q`` otherwise. Rejection sampling draws it in O(E) memory,
as KnightKing does: propose ``x`` from the first-order distribution and accept it with
probability ``α(t, x) / α_hi``, ``α_hi = max(1, 1/q)``. When ``1/p > α_hi`` the return to
``t`` would need a taller envelope for every proposal; instead its excess mass
``w_vt · (1/p - α_hi)`` is a separate region of the envelope drawn first, which keeps the
acceptance rate of every other proposal. A proposal accepted below ``min(1, 1/q)`` needs
no test at all; otherwise "is x an out-neighbour of t" is one bit of t's bitmap when t is a
hub (the highest-degree nodes, where walks spend their time) or a binary search of t's
sorted row.

Speed: several walks advance in turn in one loop (lanes), so the CPU overlaps one walk's
cache misses with the others' work; the sampling code is written out in that loop because
a function call there (even a compiled one) stops the overlap.

Randomness: every walk has its own splitmix64 stream seeded from (seed, walk id), so the
walks do not depend on how many threads run them or in which order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from embeddings.splitmix import GOLDEN, splitmix64

_LOW32 = np.uint64(0xFFFFFFFF)
_S11 = np.uint64(11)
_S32 = np.uint64(32)
_TO_UNIT53 = 1.0 / 9007199254740992.0
_TO_UNIT32 = 1.0 / 4294967296.0


@njit(nogil=True, cache=True, inline="always")
def _uniform(z: np.uint64) -> float:
    return float(z >> _S11) * _TO_UNIT53


@njit(nogil=True, cache=True, inline="always")
def _find(indices: np.ndarray, lo: int, hi: int, x: int) -> int:
    """Position of ``x`` in the sorted ``indices[lo:hi]``, or -1."""
    end = hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < end and indices[lo] == x else -1


@njit(nogil=True, cache=True)
def build_alias(indptr: np.ndarray, weights: np.ndarray, prob: np.ndarray, alias: np.ndarray) -> None:
    """Fill Walker alias tables per row, in place.

    For arc ``lo + k`` of a row: keep it with probability ``prob[lo + k]`` (float32), else
    take arc ``lo + alias[lo + k]`` (int32, offset within the row). Vose's method, O(deg).
    """
    n = indptr.size - 1
    longest = 0
    for v in range(n):
        longest = max(longest, indptr[v + 1] - indptr[v])
    small = np.empty(longest, dtype=np.int64)
    large = np.empty(longest, dtype=np.int64)
    scaled = np.empty(longest, dtype=np.float64)
    for v in range(n):
        lo = indptr[v]
        deg = indptr[v + 1] - lo
        total = 0.0
        for k in range(deg):
            total += weights[lo + k]
        n_small = 0
        n_large = 0
        for k in range(deg):
            scaled[k] = weights[lo + k] * deg / total
            if scaled[k] < 1.0:
                small[n_small] = k
                n_small += 1
            else:
                large[n_large] = k
                n_large += 1
        while n_small > 0 and n_large > 0:
            n_small -= 1
            s = small[n_small]
            g = large[n_large - 1]
            prob[lo + s] = scaled[s]
            alias[lo + s] = g
            scaled[g] -= 1.0 - scaled[s]
            if scaled[g] < 1.0:
                n_large -= 1
                small[n_small] = g
                n_small += 1
        # What is left is 1 up to rounding: keep it.
        for j in range(n_large):
            prob[lo + large[j]] = 1.0
            alias[lo + large[j]] = large[j]
        for j in range(n_small):
            prob[lo + small[j]] = 1.0
            alias[lo + small[j]] = small[j]


@njit(nogil=True, cache=True)
def build_hub_bitmaps(indptr: np.ndarray, indices: np.ndarray, min_degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Out-neighbour bitmaps of the nodes with at least ``min_degree`` out-arcs.

    Returns hub_slot int32 ``(n,)`` (the node's bitmap row, -1 for other nodes) and
    hub_bits uint64 ``(hubs, ceil(n / 64))``: bit ``x`` of row ``hub_slot[t]`` is set when
    ``t -> x`` is an arc.
    """
    n = indptr.size - 1
    hub_slot = np.full(n, -1, dtype=np.int32)
    hubs = 0
    for v in range(n):
        if indptr[v + 1] - indptr[v] >= min_degree:
            hub_slot[v] = hubs
            hubs += 1
    hub_bits = np.zeros((hubs, (n + 63) // 64), dtype=np.uint64)
    for v in range(n):
        slot = hub_slot[v]
        if slot >= 0:
            for a in range(indptr[v], indptr[v + 1]):
                x = indices[a]
                hub_bits[slot, x >> 6] |= np.uint64(1) << np.uint64(x & 63)
    return hub_slot, hub_bits


@njit(nogil=True, cache=True)
def walk_chunk(
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    alias_prob: np.ndarray,
    alias_off: np.ndarray,
    row_weight: np.ndarray,
    starts: np.ndarray,
    first_walk: int,
    seed: np.uint64,
    walk_length: int,
    inv_p: float,
    inv_q: float,
    directed: bool,
    hub_slot: np.ndarray,
    hub_bits: np.ndarray,
    out: np.ndarray,
    lengths: np.ndarray,
    n_lanes: int,
) -> int:
    """Walk from each of ``starts``; return the number of steps taken.

    indptr int64 ``(n + 1,)``, indices int32 ``(nnz,)`` sorted per row; weights float32
    ``(nnz,)`` with its alias tables (``alias_prob`` float32, ``alias_off`` int32), all three
    empty for an unweighted graph; row_weight float64 ``(n,)`` summed out-weights; hub_slot
    int32 ``(n,)`` and hub_bits uint64 ``(hubs, ceil(n / 64))``: the out-neighbour bitmaps
    of the hubs (see :func:`build_hub_bitmaps`). Walk ``i`` (global id ``first_walk + i``)
    writes node index + 1 into ``out[i, :lengths[i]]`` (``out`` int32
    ``(len(starts), walk_length)``); it stops early at a node without out-arcs.

    ``n_lanes`` walks advance in turn, one attempt each per round, and a lane whose walk
    ends takes the next one: their memory accesses are independent, so the CPU overlaps
    the cache misses of one walk with the work of the others (first-order walks on
    BlogCatalog: 2.5x the steps/s of one walk at a time; second-order rejection, whose
    branches are coin flips, gains little).
    """
    weighted = weights.size > 0
    second_order = inv_p != 1.0 or inv_q != 1.0
    alpha_hi = max(1.0, inv_q)
    alpha_lo = min(1.0, inv_q)
    return_excess = inv_p - alpha_hi if inv_p > alpha_hi else 0.0
    n_walks = starts.size
    # Per lane: its walk (-1 when idle), position, current node v, previous node t (-1 at
    # the start), RNG state and the weight of the arc v -> t (-1 until looked up).
    lane_walk = np.full(n_lanes, -1, dtype=np.int64)
    lane_pos = np.zeros(n_lanes, dtype=np.int64)
    lane_v = np.zeros(n_lanes, dtype=np.int64)
    lane_t = np.zeros(n_lanes, dtype=np.int64)
    lane_state = np.zeros(n_lanes, dtype=np.uint64)
    lane_w_back = np.zeros(n_lanes, dtype=np.float64)

    next_walk = 0
    active = 0
    steps = 0
    for b in range(n_lanes):
        if next_walk < n_walks:
            _start(b, next_walk, starts, first_walk, seed, out, lane_walk, lane_pos, lane_v, lane_t, lane_state)
            next_walk += 1
            active += 1

    while active > 0:
        for b in range(n_lanes):
            i = lane_walk[b]
            if i < 0:
                continue
            v = lane_v[b]
            lo = indptr[v]
            deg = indptr[v + 1] - lo
            pos = lane_pos[b]
            if deg == 0 or pos == walk_length:
                lengths[i] = pos
                steps += pos - 1
                lane_walk[b] = -1
                active -= 1
                if next_walk < n_walks:
                    _start(b, next_walk, starts, first_walk, seed, out, lane_walk, lane_pos, lane_v, lane_t, lane_state)
                    next_walk += 1
                    active += 1
                continue
            t = lane_t[b]
            state = lane_state[b]
            biased = second_order and t >= 0
            accepted = False
            x = t
            w_next = 0.0
            if biased:
                w_vt = lane_w_back[b]
                if w_vt < 0.0:  # directed: is there an arc back to t?
                    back = _find(indices, lo, lo + deg, t)
                    w_vt = 0.0 if back < 0 else (weights[back] if weighted else 1.0)
                    lane_w_back[b] = w_vt
                w_next = w_vt
                excess = w_vt * return_excess
                if excess > 0.0:
                    state += GOLDEN
                    accepted = _uniform(splitmix64(state)) * (alpha_hi * row_weight[v] + excess) < excess
            if not accepted:
                # Propose an arc ∝ weight: the high 32 bits pick a slot, the low 32 bits toss
                # its alias coin.
                state += GOLDEN
                z = splitmix64(state)
                k = np.int64(((z >> _S32) * np.uint64(deg)) >> _S32)
                if weighted and float(z & _LOW32) * _TO_UNIT32 >= alias_prob[lo + k]:
                    k = np.int64(alias_off[lo + k])
                x = np.int64(indices[lo + k])
                w_next = weights[lo + k] if weighted else 1.0
                accepted = True
                if biased:
                    state += GOLDEN
                    r = _uniform(splitmix64(state)) * alpha_hi
                    if x == t:
                        accepted = r < inv_p
                    elif r >= alpha_lo:
                        # α is 1 if x is an out-neighbour of t, else 1/q: look x up in t's
                        # bitmap when t is a hub, else binary search t's sorted row.
                        slot = hub_slot[t]
                        if slot >= 0:
                            near = (hub_bits[slot, x >> 6] >> np.uint64(x & 63)) & np.uint64(1) != 0
                        else:
                            near = _find(indices, indptr[t], indptr[t + 1], x) >= 0
                        accepted = r < (1.0 if near else inv_q)
            lane_state[b] = state
            if accepted:
                out[i, pos] = x + 1
                lane_pos[b] = pos + 1
                lane_t[b] = v
                lane_v[b] = x
                # The arc just taken, reversed, has the same weight when undirected.
                lane_w_back[b] = -1.0 if directed else w_next
    return steps


@njit(nogil=True, cache=True, inline="always")
def _start(
    b: int,
    i: int,
    starts: np.ndarray,
    first_walk: int,
    seed: np.uint64,
    out: np.ndarray,
    lane_walk: np.ndarray,
    lane_pos: np.ndarray,
    lane_v: np.ndarray,
    lane_t: np.ndarray,
    lane_state: np.ndarray,
) -> None:
    """Put walk ``i`` (global id ``first_walk + i``) in lane ``b``, at its start node."""
    v = np.int64(starts[i])
    out[i, 0] = v + 1
    lane_walk[b] = i
    lane_pos[b] = 1
    lane_v[b] = v
    lane_t[b] = -1
    lane_state[b] = splitmix64(seed + np.uint64(first_walk + i) * GOLDEN)

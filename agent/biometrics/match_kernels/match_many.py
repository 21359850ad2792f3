"""One probe against many prepared candidates in one kernel call.

A 1:N search compares one probe with hundreds of candidates; called one by
one, each comparison also pays Numba's dispatch of some thirty arguments
(a few microseconds, a tenth of the comparison). Here the candidates'
arrays lie end to end (matcher.Batch) and the loop over them runs inside
the kernel. Each candidate is compared exactly as `match_score.similarity`
compares it alone, in the order the caller says (the pair's canonical
order), so every score is the same to the bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fpagent.biometrics.match_kernels.match_score import match_prepared



@njit(cache=True)
def similarity_many(px, py, pth, p_len, p_i, p_j, p_ai, p_aj, p_dir, p_bstart, p_grid,
                    cx, cy, cth, c_len, c_i, c_j, c_ai, c_aj, c_dir, c_bstart, c_grid,
                    offsets, grid_shapes, probe_first, params):
    """Similarity of the probe with each candidate n, whose arrays are c_*[offsets[f, n]:offsets[f, n + 1]]
    (f the field's position, the grid flattened, grid_shapes[n] its shape); the probe is the first
    template of the pair where probe_first[n], else the second."""
    n_cand = offsets.shape[1] - 1
    out = np.empty(n_cand, dtype=np.float64)
    for n in range(n_cand):
        o = offsets[:, n]
        e = offsets[:, n + 1]
        grid = c_grid[o[10]:e[10]].reshape((grid_shapes[n, 0], grid_shapes[n, 1]))
        if probe_first[n]:
            out[n] = match_prepared(
                px, py, pth, p_len, p_i, p_j, p_ai, p_aj, p_dir, p_bstart, p_grid,
                cx[o[0]:e[0]], cy[o[1]:e[1]], cth[o[2]:e[2]], c_len[o[3]:e[3]], c_i[o[4]:e[4]],
                c_j[o[5]:e[5]], c_ai[o[6]:e[6]], c_aj[o[7]:e[7]], c_dir[o[8]:e[8]], c_bstart[o[9]:e[9]],
                grid, params)[0]
        else:
            out[n] = match_prepared(
                cx[o[0]:e[0]], cy[o[1]:e[1]], cth[o[2]:e[2]], c_len[o[3]:e[3]], c_i[o[4]:e[4]],
                c_j[o[5]:e[5]], c_ai[o[6]:e[6]], c_aj[o[7]:e[7]], c_dir[o[8]:e[8]], c_bstart[o[9]:e[9]],
                grid, px, py, pth, p_len, p_i, p_j, p_ai, p_aj, p_dir, p_bstart, p_grid, params)[0]
    return out


def similarity_many_reference(probe_args, candidate_args, probe_first, params):
    """Plain-numpy reference: `match_score.match_prepared_reference` once per candidate (kernel
    argument tuples), the probe first where probe_first says."""
    from fpagent.biometrics.match_kernels.match_score import match_prepared_reference  # noqa: PLC0415

    return np.array([match_prepared_reference(*(probe_args + c if first else c + probe_args), params)
                     for c, first in zip(candidate_args, probe_first)], dtype=np.float64)

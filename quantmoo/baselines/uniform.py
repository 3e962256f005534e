"""Uniform-precision baselines: the same bits on every layer (pinned layers keep their pins)."""
from __future__ import annotations

import numpy as np

#: (weight_bits, activation_bits, granularity) presets practitioners compare against.
UNIFORM_PRESETS = (
    (16, 16, "per_channel"),
    (8, 8, "per_channel"),
    (8, 16, "per_channel"),
    (6, 8, "per_channel"),
    (4, 8, "per_channel"),
    (4, 16, "per_group"),
    (4, 8, "per_group"),
    (3, 8, "per_group"),
    (2, 8, "per_group"),
)


def uniform_genomes(problem, presets=UNIFORM_PRESETS):
    """``(names, X)``: one genome per preset whose bits are in the space (others skipped)."""
    enc, sp = problem.encoding, problem.space
    names, rows = [], []
    for w, a, g in presets:
        if w not in sp.weight_bits or a not in sp.activation_bits:
            continue
        gran = g if g in sp.granularities else ("per_channel" if "per_channel" in sp.granularities
                                                 else sp.granularities[0])
        names.append(f"uniform W{w}A{a}" + ("" if w == 16 else f" {gran.replace('per_', 'per-')}"))
        rows.append(enc.uniform_genome(w, a, granularity=gran))
    if not rows:
        return [], np.zeros((0, enc.n_var), dtype=np.int64)
    X = np.array(rows, dtype=np.int64)
    from ..search.operators.repair import repair_genomes
    return names, repair_genomes(X, enc)

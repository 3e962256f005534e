"""The axis scales a front is drawn on, and the same scales as coordinates for thinning it.

A front is read on the axes :mod:`quantmoo.results.plots` draws: an accuracy loss that spans decades on a
symlog axis, a cost that spans more than :data:`LOG_SPAN` x on a log axis, anything else linear. The
reported front of a model whose loss is a divergence (a KL in nats, a cosine distance) is thinned in those
coordinates too (:func:`display_coordinates`): an epsilon-net in linear loss spends its points on the large
losses, and leaves the near-lossless end, the one a symlog plot spreads over several decades and the one users
deploy from, at 1.25-1.32x the exact loss at equal size (``benchmarks/bench_exact_gap.py``). An accuracy in %
(and the prior's pp) keeps the linear net: it moves in steps of 100 / n_test pp (0.28 pp on digits), and a
front dense below that step buys points that validation cannot tell apart (Kendall tau of proxy vs measured
over the digits front 0.88 with the linear net, 0.64 with the symlog one).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

#: A positive cost whose largest value is more than this many times its smallest is drawn on a log axis.
LOG_SPAN = 30.0


def wants_log(values, obj: str) -> bool:
    """Log scale when positive values span more than 30x (accuracy loss, often ~0, stays linear)."""
    if obj == "accuracy_loss":
        return False
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size and v.min() > 0 and v.max() / v.min() > LOG_SPAN)


#: Axis unit, smallest symlog threshold, and whether the loss is a divergence (thinned on the symlog axis) of each
#: ``accuracy_loss_unit`` a model's meta names. An accuracy in % resolves no better than 0.01 pp; a KL divergence
#: in nats is meaningful far lower (llama.cpp's Q8_0 is ~1e-3 nats per token on smollm2-135m).
LOSS_UNITS = {"percentage points": ("pp", 0.01, False), "100 * (1 - mean cosine)": ("100 (1 - cos)", 0.01, True),
              "nats per token": ("nats/token", 1e-5, True), "nats": ("nats", 1e-5, True)}


def loss_unit(unit: Optional[str]) -> tuple:
    """``(axis unit, smallest symlog threshold, divergence)`` of an ``accuracy_loss_unit`` (pp when None: the
    prior's unit; an unknown unit is drawn like pp and not taken for a divergence)."""
    return LOSS_UNITS.get(unit, (unit, 0.01, False)) if unit else ("pp", 0.01, False)


def loss_linthresh(values, force: bool = False, floor: float = 0.01) -> Optional[float]:
    """Linear threshold of a symlog accuracy-loss axis, or None for a linear axis.

    Symlog when the largest |loss| is more than 30x the median nonzero |loss| (e.g. a front
    from 0.1 to 100 pp, whose 0-5 pp region a linear axis flattens). The threshold is the
    decade at or below the 10th percentile of the nonzero |losses|, within [floor, 1] (``floor``:
    :func:`loss_unit`'s, 0.01 pp by default).
    """
    v = np.asarray([a for a in values if a is not None], dtype=float)
    v = np.abs(v[np.isfinite(v)])
    pos = v[v > 0]
    if pos.size == 0 or (not force and (pos.size < 2 or v.max() <= LOG_SPAN * np.median(pos))):
        return None if not force else floor
    return float(10.0 ** np.clip(np.floor(np.log10(np.percentile(pos, 10))), np.floor(np.log10(floor)), 0))


def display_coordinates(F: np.ndarray, objectives: Sequence[str], unit: Optional[str] = None):
    """``F`` (n, m) in the coordinates the reported front is thinned in, and each axis' scale.

    Returns ``(G, scales)``: ``G`` has the accuracy loss on its plot's symlog axis (``sign(y) log10(1 + |y| /
    t)``, ``t`` from :func:`loss_linthresh` for the loss ``unit``, an ``accuracy_loss_unit``) when the unit is
    a divergence (module docstring; else linear), log10 of a cost that spans more than :data:`LOG_SPAN` x, the
    rest as is; ``scales`` names each column's scale (``"linear"``, ``"log"`` or ``"symlog(t)"``).
    """
    F = np.asarray(F, dtype=np.float64)
    G = F.copy()
    scales = {}
    for i, obj in enumerate(objectives):
        scales[obj] = "linear"
        if obj == "accuracy_loss":
            _, floor, divergence = loss_unit(unit)
            t = loss_linthresh(F[:, i], floor=floor) if divergence else None
            if t is not None:
                G[:, i] = np.sign(F[:, i]) * np.log10(1.0 + np.abs(F[:, i]) / t)
                scales[obj] = f"symlog({t:g})"
        elif wants_log(F[:, i], obj):
            G[:, i] = np.log10(F[:, i])
            scales[obj] = "log"
    return G, scales

"""Proxy accuracy tables from real weights and activations (kind ``proxy``).

:func:`sensitivity` builds the :class:`~quantmoo.accuracy.tables.AccuracyTable` the search
evaluates by gathers: ``accuracy_loss(config) ~= sum_l T[m, l, c_l]`` for calibration method
``m`` and per-layer choices ``c_l``. It needs a model with real weights; with an evaluator it
measures how sensitive each layer is, without one it falls back to a weight-only heuristic.

The proxy (``measure="anchors"``, the default with an evaluator)
------------------------------------------------------------------
1. **Error terms for every choice** (cheap, vectorised). With ``X`` a layer's fp32 input
   activations on the *calibration* split and ``W`` its fp32 weight:

   * weights: ``e_w(l, c) = ||X Q_c(W)^T - X W^T||^2 / ||X W^T||^2`` (through ``X`` or a factor
     of its Gram matrix, whichever is smaller; for an embedding, rows weighted by how often each
     token occurs; one value per distinct weight choice: bits, scheme, granularity; ``Q_c(W)``
     is ``evaluator.quantized_weight``, the very weight an evaluation uses);
   * activations: ``e_a(l, c, m) = ||Q_a(X) W^T - X W^T||^2 / ||X W^T||^2`` with ``Q_a`` the
     evaluator's static per-tensor activation quantizer, its range calibrated by method ``m``
     exactly as the evaluator does it (one value per bits, scheme and method).

   Both are relative noise powers at the layer's output; to first order independent noise
   sources add, so a layer's output noise is ``e_w + e_a``.
2. **Measured per-layer response** (the AIMET-AMP phase-1 idea: quantize one layer at a time,
   every other layer at fp16 weights and activations). For each layer the output distortion
   of the whole model on the calibration split is measured at a few anchor choices: weights
   at ``ANCHOR_WEIGHT_BITS`` (per-channel symmetric when the space allows it, activations at
   16) and activations at ``ANCHOR_ACTIVATION_BITS`` (asymmetric, weights at 16); the
   fp16-only distortion is subtracted first. The distortion is a smooth function of the model
   outputs: for a classifier the mean KL divergence ``KL(softmax(fp32) || softmax(quantized))``,
   for a sentence encoder ``100 * (1 - mean cosine)`` (the evaluator's own metric), otherwise
   the relative output MSE. It is measured on the calibration split, never on the split the
   evaluator's ``accuracy_loss`` is measured on.

   * Weights: the anchors ``(e_w, d)`` of a layer are the knots of its **response curve**
     ``r_l(e)`` (:func:`response_knots`, :func:`apply_response`): log-log linear between knots,
     made non-decreasing, proportional to ``e`` below the first knot and above the last. One
     gain per layer (a straight line through the origin) is not enough: one-layer damage grows
     faster than the output error once a layer's error is large. On ``minilm-l6`` the word
     embedding's measured distortion is 0.5x its 4-bit-anchored gain times the error at
     ``e_w`` = 0.02 but 7x at ``e_w`` = 0.83 (2-bit per-tensor, 98 loss units alone), which a
     single gain predicted as 13.5; the 2-bit anchor puts the curve's knee where it is.
   * Activations: the gain ``g_a(l)``, the geometric mean of ``distortion / error`` over the
     anchors.
   * A layer whose anchors are all lost in the noise floor gets the median gain of the other
     layers (a straight line).
3. **Combine**: ``T[m, l, c] = k * (r_l(e_w(l, c)) + g_a(l) e_a(l, c, m))``. ``k`` converts
   the distortion into the evaluator's unit: 1 when the distortion is the evaluator's metric,
   otherwise the least-squares fit (through 0) of measured ``accuracy_loss``
   (``evaluator.loss``, on the evaluator's own split) against the predicted distortion over the
   uniform-precision configs of the space. ``k`` is one number: it sets the unit, not the ranking.

The table is a proxy (``kind="proxy"``): it ranks configs; only a re-evaluation with the
evaluator (:func:`quantmoo.accuracy.validate.validate`) gives measured numbers.

How good it is (measured; ``python -m benchmarks.bench_real``, seeds 0 and 1, 2026-11-24): over
the measured search fronts (thinned front plus the refinement points, about 100 points for
``digits`` and 130-140 for ``minilm-l6``), Kendall tau against the measured loss is 0.84-0.85 on
``digits`` (360 test images, one image = 0.28 pp: the test set's granularity is the limit) and
0.93-0.97 on ``minilm-l6`` (smooth metric), 0.89-0.95 on the thinned fronts alone. With proxy v1
(one gain per layer) MiniLM's were 0.83-0.91 and 0.66-0.79. The sensitivity pass takes a few
seconds for ``digits`` (17 one-layer runs) and about one and a half minutes for ``minilm-l6`` on
two cores (most of it calibrating the percentile/MSE/entropy activation ranges, which the
evaluator keeps for later evaluations, and 148 one-layer runs on the 64 calibration sentences).
On ``smollm2-135m`` in llama.cpp's types (``python -m benchmarks.bench_smollm2_front``, seeds 0 and 1,
2026-12-03) tau is 1.000 over the 22 validated points of each seed's front (KL from 0 to 2.3
nats/token) and over the 10 of them within the llama.cpp presets' sizes; the pass makes 272
one-layer runs on 512 calibration tokens (one per layer and stored type: llama.cpp's fallback
stores several types alike on rows that are not a multiple of 256), 339 s CPU on one core.

Other modes
-----------
``measure="full"``
    Every (layer, distinct weight choice) and (layer, activation choice, method) is measured
    one layer at a time; error terms only fill in what was not measured. Affordable for small
    models only. On ``digits`` (measured with proxy v1) it ranked random configs better than
    ``anchors`` (tau 0.79 vs 0.71) but search fronts worse (0.74 vs 0.79): the search seeks out
    the choices whose one-layer measurement happened to be low, while the smooth error model has
    no such noise.
``measure="omega"``
    No evaluator: the HAWQ-style ``Omega = sensitivity x ||Q(W) - W||^2`` with the trace-free
    sensitivity heuristic ``100 * kappa_l / L`` of the prior (``kappa`` = 3 for the first and
    last layers and embeddings, 1 otherwise) applied to the relative weight error
    ``||Q_c(W) - W||^2 / ||W||^2``; activations use the prior's noise model.
``measure="auto"``
    ``anchors`` when a NumpyEvaluator-style evaluator is available, ``omega`` otherwise.

Caching
-------
With ``cache_dir``, the table is stored as ``<cache_dir>/proxy-<key>.npz`` where ``key`` hashes
the model's spec hash, a digest of its weights, the search space, the evaluator's name and the
measure; a later call with the same inputs loads it instead of recomputing.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..config import LayerQuant, QuantConfig
from ..errors import QuantmooError, check_choice
from .cache import weights_digest
from .tables import AccuracyTable, nsr_activations

__all__ = ["MEASURES", "ANCHOR_WEIGHT_BITS", "ANCHOR_ACTIVATION_BITS", "sensitivity", "weight_errors",
           "activation_errors", "output_distortion", "table_cache_key"]

MEASURES = ("auto", "anchors", "full", "omega")
#: Weight bit-widths at which each layer's gain is measured (those in the space, below 16).
ANCHOR_WEIGHT_BITS = (2, 3, 4)
#: Activation bit-widths at which each layer's activation gain is measured.
ANCHOR_ACTIVATION_BITS = (4,)
#: Bump when the proxy's method changes: old cached tables are then ignored.
PROXY_VERSION = 3   # 3: tables built on the half-to-even, float32-dequantized grids (issue 15)
_TINY = 1e-30


# -- choice bookkeeping --------------------------------------------------------------------------
def _weight_keys(enc) -> Tuple[List[tuple], np.ndarray]:
    """Distinct weight choices ``(bits, scheme, granularity)`` ((16,) for fp16) and their id per choice.

    A llama.cpp type is ``(nominal bits, "ggml", type)``.
    """
    cv = enc.choice_value
    keys, index, ids = [], {}, np.empty(enc.n_choices, dtype=np.int64)
    for c in range(enc.n_choices):
        b = int(cv["weight_bits"][c])
        fmt = str(cv["weight_format"][c])
        k = (16,) if b >= 16 else (b, "ggml", fmt) if fmt != "int" else (
            b, str(cv["weight_scheme"][c]), str(cv["granularity"][c]))
        if k not in index:
            index[k] = len(keys)
            keys.append(k)
        ids[c] = index[k]
    return keys, ids


def _act_keys(enc) -> Tuple[List[tuple], np.ndarray]:
    """Distinct activation choices ``(bits, scheme)`` ((16,) for fp16) and their id per choice."""
    cv = enc.choice_value
    keys, index, ids = [], {}, np.empty(enc.n_choices, dtype=np.int64)
    for c in range(enc.n_choices):
        b = int(cv["activation_bits"][c])
        k = (16,) if b >= 16 else (b, str(cv["activation_scheme"][c]))
        if k not in index:
            index[k] = len(keys)
            keys.append(k)
        ids[c] = index[k]
    return keys, ids


def _same_weight(model, wkeys) -> np.ndarray:
    """``(L, K)``: for each layer, the index of the first weight key that gives it the same weights.

    llama.cpp types whose block does not divide a layer's rows fall back to another type
    (:func:`quantmoo.quant.ggml.effective_type`): on SmolLM2's 576-wide rows Q2_K, Q3_K and Q4_0
    are all Q4_0. Such keys are one choice for that layer: its error term and one-layer response
    are computed once and shared (the same numbers, fewer runs).
    """
    from ..quant.ggml import effective_type
    out = np.tile(np.arange(len(wkeys)), (model.n_layers, 1))
    for i, layer in enumerate(model.layers):
        cols = int(np.prod(layer.weight_shape[1:])) if len(layer.weight_shape) > 1 else int(layer.weight_shape[0])
        seen = {}
        for j, k in enumerate(wkeys):
            if k[0] < 16 and k[1] == "ggml":
                t = effective_type(k[2], cols).name
                k = (16,) if t == "F16" else ("ggml", t)
            out[i, j] = seen.setdefault(k, j)
    return out


def _lq(wkey=(16,), akey=(16,), group_size: int = 128) -> LayerQuant:
    kw = {"group_size": group_size}
    if wkey[0] < 16 and wkey[1] == "ggml":
        kw.update(weight_format=wkey[2])
    elif wkey[0] < 16:
        kw.update(weight_bits=wkey[0], weight_scheme=wkey[1], granularity=wkey[2])
    else:
        kw.update(weight_bits=16)
    if akey[0] < 16:
        kw.update(activation_bits=akey[0], activation_scheme=akey[1])
    else:
        kw.update(activation_bits=16)
    return LayerQuant(**kw)


# -- error terms -----------------------------------------------------------------------------------
def _error_basis(ev, layer: str):
    """``(kind, B)``: token counts of an embedding, or a matrix ``B`` with ``B^T B = X^T X``.

    ``B`` is the calibration inputs themselves when they have fewer rows than features, else a
    Cholesky-style factor of the Gram matrix (so the cost per choice is ``min(rows, in)`` x the
    weight size).
    """
    spec = ev.spec.layers[ev.spec.index(layer)]
    x = ev.calibration_inputs(layer)
    if spec.kind == "embedding":
        return "counts", np.bincount(np.asarray(x, dtype=np.int64).ravel(),
                                     minlength=spec.weight_shape[0]).astype(np.float64)
    x = np.asarray(x, dtype=np.float32).reshape(-1, spec.in_features)
    if x.shape[0] <= x.shape[1]:
        return "rows", x
    g = ev._gram(layer) if hasattr(ev, "_gram") else x.astype(np.float64).T @ x.astype(np.float64)
    lam, v = np.linalg.eigh(g)
    lam = np.maximum(lam, 0.0)
    return "rows", np.ascontiguousarray((v * np.sqrt(lam)).T, dtype=np.float32)


def weight_errors(evaluator, layer: str, wkeys, group_size: int = 128, calibration: Optional[str] = None) -> np.ndarray:
    """Relative output-space error ``e_w`` of ``layer`` for each weight choice in ``wkeys``.

    ``||X Q(W)^T - X W^T||^2 / ||X W^T||^2`` with ``X`` the fp32 calibration inputs (for an
    embedding, looked-up rows weighted by token counts). ``wkeys`` are
    ``(bits, scheme, granularity)`` tuples or ``(16,)`` (fp16); the quantized weights come from
    ``evaluator.quantized_weight``, so they are exactly those an evaluation uses.
    """
    kind, b = _error_basis(evaluator, layer)
    w = np.asarray(evaluator.fp32_weight(layer), dtype=np.float32)

    def power(m: np.ndarray) -> float:
        if kind == "counts":
            m64 = m.astype(np.float64)
            return float(np.dot(b, np.einsum("ij,ij->i", m64, m64)))
        y = b @ m.T
        return float(np.einsum("ij,ij->", y, y, dtype=np.float64))

    denom = max(power(w), _TINY)
    out = np.empty(len(wkeys), dtype=np.float64)
    for i, k in enumerate(wkeys):
        wq = evaluator.quantized_weight(layer, _lq(k, group_size=group_size), calibration)
        out[i] = power(np.subtract(wq, w, dtype=np.float32)) / denom
    return out


def activation_errors(evaluator, layer: str, akeys, method: str, max_rows: int = 4096) -> np.ndarray:
    """Relative output-space error ``e_a`` of quantizing ``layer``'s input, per activation choice.

    ``||Q_a(X) W^T - X W^T||^2 / ||X W^T||^2`` on (at most ``max_rows`` evenly spaced rows of)
    the fp32 calibration inputs, with the evaluator's static range for ``method``. Zero for
    embeddings (their input is token ids).
    """
    spec = evaluator.spec.layers[evaluator.spec.index(layer)]
    out = np.zeros(len(akeys), dtype=np.float64)
    if spec.kind == "embedding":
        return out
    x = evaluator.calibration_inputs(layer)
    x = np.asarray(x, dtype=np.float32).reshape(-1, spec.in_features)
    if len(x) > max_rows:
        x = x[np.linspace(0, len(x) - 1, max_rows).astype(np.int64)]
    wt = np.asarray(evaluator.fp32_weight(layer), dtype=np.float32).T
    y = x @ wt
    denom = max(float(np.einsum("ij,ij->", y, y, dtype=np.float64)), _TINY)
    for i, k in enumerate(akeys):
        if k[0] >= 16:
            xq = x.astype(np.float16).astype(np.float32)
        else:
            lo, hi = evaluator.activation_range(layer, k[0], k[1], method)
            xq = evaluator._quantize_activation(x, k[0], k[1], method, lo, hi)
        d = (xq - x) @ wt
        out[i] = float(np.einsum("ij,ij->", d, d, dtype=np.float64)) / denom
    return out


# -- output distortion -----------------------------------------------------------------------------
def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return p


def output_distortion(evaluator):
    """The distortion measure for ``evaluator``: ``(fn(outputs, reference) -> float, same_unit)``.

    ``same_unit`` is True when the measure is in the unit of the evaluator's ``accuracy_loss``.
    An evaluator may define its own ``output_distortion(outputs, reference)`` (then
    ``distortion_in_loss_unit`` says whether it is in loss units); otherwise: classifiers
    (evaluators with ``labels``) use the mean KL divergence of the softmax outputs, sentence
    encoders (``metric == "cosine_fidelity"``) ``100 * (1 - mean cosine)``, anything else the
    relative MSE ``||out - ref||^2 / ||ref||^2``.
    """
    fn = getattr(evaluator, "output_distortion", None)
    if callable(fn):
        return fn, bool(getattr(evaluator, "distortion_in_loss_unit", False))
    if getattr(evaluator, "metric", None) == "cosine_fidelity":
        def cos_loss(out, ref):
            o = np.asarray(out, dtype=np.float64)
            r = np.asarray(ref, dtype=np.float64)
            o = o / np.maximum(np.linalg.norm(o, axis=1, keepdims=True), 1e-12)
            r = r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
            return 100.0 * (1.0 - float(np.mean(np.sum(o * r, axis=1))))
        return cos_loss, True
    if getattr(evaluator, "labels", None) is not None:
        def kl(out, ref):
            p = _softmax(np.asarray(ref, dtype=np.float64))
            q = _softmax(np.asarray(out, dtype=np.float64))
            return float(np.mean(np.sum(p * (np.log(np.maximum(p, _TINY)) - np.log(np.maximum(q, _TINY))), axis=1)))
        return kl, False

    def rel_mse(out, ref):
        o = np.asarray(out, dtype=np.float64)
        r = np.asarray(ref, dtype=np.float64)
        return float(np.sum((o - r) ** 2) / max(float(np.sum(r * r)), _TINY))
    return rel_mse, False


class _Probe:
    """Runs configs on the calibration split and returns the output distortion."""

    def __init__(self, ev):
        self.ev = ev
        self.fn, self.same_unit = output_distortion(ev)
        data = getattr(ev, "_calibration_data", None)
        if data is None or not hasattr(ev, "run"):
            raise QuantmooError(f"Evaluator '{getattr(ev, 'name', ev)}' cannot run the calibration split; "
                                "the proxy needs a NumpyEvaluator (or measure='omega')")
        self.data = data
        self.ref = ev.run(data, None)
        self.n = 0

    def __call__(self, config: QuantConfig) -> float:
        self.n += 1
        return float(self.fn(self.ev.run(self.data, config), self.ref))


# -- main entry --------------------------------------------------------------------------------------
_PROBE_API = ("run", "calibration_inputs", "fp32_weight", "quantized_weight", "activation_range", "spec")


def _can_probe(ev) -> bool:
    return ev is not None and all(hasattr(ev, a) for a in _PROBE_API) and \
        getattr(ev, "_calibration_data", None) is not None


def _resolve(model, space):
    from ..search.problem import resolve_model, resolve_space
    return resolve_model(model), resolve_space(space)


def table_cache_key(model, space, evaluator_name: str, measure: str, weights: str = "") -> str:
    """Hash identifying a proxy table: spec hash, weights digest, space, evaluator name, measure."""
    blob = json.dumps({"version": PROXY_VERSION, "spec": model.spec_hash(), "weights": weights,
                       "space": space.to_dict(), "evaluator": evaluator_name, "measure": measure},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def sensitivity(model, space=None, evaluator=None, measure: str = "auto", progress: bool = False,
                cache_dir=None) -> AccuracyTable:
    """Proxy accuracy table of ``model`` for ``space`` (see the module docstring).

    Parameters
    ----------
    model : ModelSpec or str
        A model with real weights (``model.weights``), e.g. ``quantmoo.zoo.load("digits")``.
    space : SearchSpace or mapping, optional
        Default ``SearchSpace()``.
    evaluator : Evaluator, optional
        Default ``model.evaluator``. Must be a :class:`~quantmoo.accuracy.evaluator.NumpyEvaluator`
        (it runs the calibration split) for ``anchors``/``full``.
    measure : {"auto", "anchors", "full", "omega"}
    progress : bool
        Print one line per phase to stderr.
    cache_dir : path, optional
        Load/save the table there (keyed by :func:`table_cache_key`).

    Returns
    -------
    AccuracyTable
        ``kind="proxy"``, shape ``(len(space.calibrations), n_layers, n_choices)``; ``meta``
        records the method, the gains, ``k`` and the number of evaluations.
    """
    check_choice("measure", measure, MEASURES, "sensitivity")
    model, space = _resolve(model, space)
    ev = evaluator if evaluator is not None else getattr(model, "evaluator", None)
    if measure == "auto":
        measure = "anchors" if _can_probe(ev) else "omega"
    if measure in ("anchors", "full") and not _can_probe(ev):
        what = "has none" if ev is None else f"has '{getattr(ev, 'name', ev)}', which cannot run the calibration split"
        raise QuantmooError(f"measure='{measure}' needs a NumpyEvaluator-style evaluator; model '{model.name}' {what} "
                            "(pass evaluator= or use measure='omega')")
    if measure == "omega" and ev is None and model.weights is None:
        raise QuantmooError(f"Model '{model.name}' has no weights: a proxy table needs real weights "
                            "(use quantmoo.accuracy.prior_table for the documented prior)")
    if measure == "omega" and not hasattr(ev, "fp32_weight"):
        ev = None
    if ev is not None and hasattr(ev, "spec") and set(ev.spec.layer_names) != set(model.layer_names):
        raise QuantmooError(f"The evaluator '{ev.name}' does not belong to model '{model.name}' (its layers differ)")
    enc = space.bind(model)
    ev_name = getattr(ev, "name", "none") if measure != "omega" else "none"

    path = None
    if cache_dir is not None:
        key = table_cache_key(model, space, ev_name, measure,
                              weights_digest(model, ev if measure != "omega" else None))
        path = Path(cache_dir).expanduser() / f"proxy-{key}.npz"
        if path.is_file():
            try:
                t = AccuracyTable.load(path).check(enc)
                if t.kind == "proxy" and t.table.shape[0] == len(space.calibrations):
                    return t
            except Exception:  # unreadable (e.g. a truncated zip), stale or foreign: rebuild and overwrite
                pass

    t0, c0 = time.perf_counter(), time.process_time()
    if measure == "omega":
        table = _omega_table(model, enc, ev)
    else:
        table = _anchor_table(model, enc, ev, full=(measure == "full"), progress=progress)
    table.meta["seconds"] = round(time.perf_counter() - t0, 3)
    table.meta["cpu_seconds"] = round(time.process_time() - c0, 3)
    if path is not None:
        _save_atomic(table, path)
    return table


def default_table_dir() -> Path:
    """Where default proxy tables are cached: ``<evaluation cache>/_proxy_tables``."""
    from .cache import default_cache_dir
    return default_cache_dir() / "_proxy_tables"


def default_accuracy(model, space=None) -> AccuracyTable:
    """The accuracy model a search uses when none is given (DESIGN.md section 6, "Defaults").

    A model with real weights is never searched with the prior: with an evaluator that can run
    its calibration split it gets the measured-sensitivity proxy (``measure="anchors"``),
    otherwise the weights-only omega proxy; both are cached in :func:`default_table_dir`
    (keyed by model, weights, space and evaluator), so only the first search pays for them.
    The documented prior is the default only for layer tables without weights.
    """
    from .tables import prior_table
    model, space = _resolve(model, space)
    ev = getattr(model, "evaluator", None)
    if model.weights is None and not hasattr(ev, "fp32_weight"):
        return prior_table(model, space.bind(model))
    return sensitivity(model, space, ev, measure="anchors" if _can_probe(ev) else "omega",
                       cache_dir=default_table_dir())


def _save_atomic(table: AccuracyTable, path: Path) -> None:
    try:
        table.save(path)   # atomic: temp file + rename
    except OSError as e:
        raise QuantmooError(f"Cannot write the proxy table cache {path}: {e.strerror}") from None


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(f"[quantmoo.sensitivity] {msg}", file=sys.stderr, flush=True)


# -- omega (no evaluator) ------------------------------------------------------------------------
def _kappa(model) -> np.ndarray:
    L = model.n_layers
    kappa = np.ones(L)
    kappa[[0, L - 1]] = 3.0
    kinds = np.array([l.kind for l in model.layers])
    kappa[np.isin(kinds, ("embedding", "lm_head"))] = 3.0
    return kappa


def _omega_table(model, enc, ev) -> AccuracyTable:
    from .. import quant
    wkeys, wid = _weight_keys(enc)
    L = model.n_layers
    omega = np.zeros((L, len(wkeys)))
    for i, name in enumerate(model.layer_names):
        # checked: the layer's weight_shape and finite values, or an error naming the layer
        w = ev.fp32_weight(name) if ev is not None else None
        shape = tuple(model.layers[i].weight_shape)
        if w is not None and np.shape(w) == (shape[0], int(np.prod(shape[1:]))):
            w = np.reshape(w, shape)   # evaluators give a conv's weight as its (C_out, C_in * k) matrix
        w = model.layer_weights(name, w)
        if w.size == 0:
            continue
        w = w.reshape(w.shape[0], -1)
        denom = max(float(np.sum(w.astype(np.float64) ** 2)), _TINY)
        for j, k in enumerate(wkeys):
            if k[0] >= 16:
                wq = w.astype(np.float16).astype(np.float32)
            elif k[1] == "ggml":
                wq = quant.ggml.fake_quantize(w, k[2])
            else:
                wq = quant.quantize_dequantize(w, k[0], k[1], k[2], enc.space.group_size, "min_max")
            omega[i, j] = float(np.sum((wq.astype(np.float64) - w) ** 2)) / denom
    scale = 100.0 * _kappa(model) / L
    cv = enc.choice_value
    tables = []
    for cal in enc.space.calibrations:
        na = nsr_activations(cv["activation_bits"], cv["activation_scheme"], cal)
        tables.append(scale[:, None] * (omega[:, wid] + na[None, :]))
    return AccuracyTable(np.stack(tables), kind="proxy",
                         meta={"model": "quantmoo proxy v%d: HAWQ-style trace-free Omega" % PROXY_VERSION,
                               "measure": "omega", "model_name": model.name, "evaluator": None,
                               "sensitivity": "100 * kappa_l / L (kappa 3 for first/last/embedding layers)"})


# -- anchors / full ------------------------------------------------------------------------------
def _one_layer_config(model, layer: str, lq: LayerQuant, calibration: str) -> QuantConfig:
    fp16 = LayerQuant(weight_bits=16, activation_bits=16)
    layers = {n: fp16 for n in model.layer_names}
    layers[layer] = lq
    return QuantConfig(layers, calibration=calibration, model=model.name)


def _anchor_weight_keys(space, wkeys) -> List[int]:
    gran = "per_channel" if "per_channel" in space.granularities else space.granularities[0]
    scheme = "symmetric" if "symmetric" in space.weight_schemes else space.weight_schemes[0]
    out = []
    if space.llama_cpp_types:   # anchors: the lowest-bit type of each anchor bit-width
        for b in ANCHOR_WEIGHT_BITS:
            ks = [j for j, k in enumerate(wkeys) if k[0] == b]
            out += ks[:1]
        return out or [j for j, k in enumerate(wkeys) if k[0] < 16][:2]
    low = [b for b in space.weight_bits if b < 16]
    bits = [b for b in ANCHOR_WEIGHT_BITS if b in low] or low[:2]
    for b in bits:
        k = (b, scheme, gran)
        if k in wkeys:
            out.append(wkeys.index(k))
    return out


def _anchor_act_keys(space, akeys) -> List[int]:
    scheme = "asymmetric" if "asymmetric" in space.activation_schemes else space.activation_schemes[0]
    low = [b for b in space.activation_bits if b < 16]
    bits = [b for b in ANCHOR_ACTIVATION_BITS if b in low] or low[:1]
    return [akeys.index((b, scheme)) for b in bits if (b, scheme) in akeys]


def _gain(d: np.ndarray, e: np.ndarray, floor: float) -> float:
    """Geometric mean of d / e over anchors whose distortion is above the noise floor."""
    ok = (e > 0) & (d > floor)
    if not ok.any():
        return np.nan
    return float(np.exp(np.mean(np.log(d[ok] / e[ok]))))


def response_knots(e: np.ndarray, d: np.ndarray, floor: float) -> Tuple[np.ndarray, np.ndarray]:
    """Knots ``(log e, log d)`` of a layer's measured response curve, monotone in ``e``.

    Anchors whose distortion is lost in the noise floor are dropped; anchors at (nearly) the
    same error are averaged; pool-adjacent-violators makes ``log d`` non-decreasing (a larger
    output error never helps, measured differences at close errors are noise).
    """
    ok = np.isfinite(e) & np.isfinite(d) & (e > 0) & (d > floor)
    if not ok.any():
        return np.empty(0), np.empty(0)
    le, ld = np.log(e[ok]), np.log(d[ok])
    o = np.argsort(le, kind="stable")
    le, ld = le[o], ld[o]
    # blocks: [sum of log e, sum of log d, count], merged while they violate monotonicity or coincide
    blocks: List[list] = []
    for x, y in zip(le, ld):
        blocks.append([x, y, 1])
        while len(blocks) > 1:
            (x1, y1, n1), (x2, y2, n2) = blocks[-2], blocks[-1]
            if y2 / n2 < y1 / n1 or x2 / n2 - x1 / n1 < 0.01:
                blocks[-2:] = [[x1 + x2, y1 + y2, n1 + n2]]
            else:
                break
    return np.array([b[0] / b[2] for b in blocks]), np.array([b[1] / b[2] for b in blocks])


def apply_response(knots: Tuple[np.ndarray, np.ndarray], e: np.ndarray) -> np.ndarray:
    """Distortion predicted by a response curve at errors ``e`` (0 where ``e`` is 0).

    Log-log linear between knots; beyond the first and last knot, proportional to ``e``
    (slope 1: small independent noise adds linearly, and past the largest measured error
    nothing is known that would justify a steeper or flatter guess).
    """
    le_k, ld_k = knots
    e = np.asarray(e, dtype=np.float64)
    out = np.zeros_like(e)
    pos = e > 0
    le = np.log(e[pos])
    y = np.interp(le, le_k, ld_k)
    y = np.where(le < le_k[0], ld_k[0] + le - le_k[0], y)
    y = np.where(le > le_k[-1], ld_k[-1] + le - le_k[-1], y)
    out[pos] = np.exp(y)
    return out


def _anchor_table(model, enc, ev, full: bool, progress: bool) -> AccuracyTable:
    space = enc.space
    names = model.layer_names
    L = len(names)
    gs = space.group_size
    wkeys, wid = _weight_keys(enc)
    akeys, aid = _act_keys(enc)
    methods = list(space.calibrations)
    follow = getattr(ev, "weight_calibration", "min_max") == "config"
    t = time.perf_counter()
    # 1. error terms
    same = _same_weight(model, wkeys)
    ew = np.zeros((len(methods) if follow else 1, L, len(wkeys)))
    for mi in range(ew.shape[0]):
        for i, n in enumerate(names):
            u = np.unique(same[i])
            ew[mi, i, u] = weight_errors(ev, n, [wkeys[j] for j in u], gs, methods[mi] if follow else None)
            ew[mi, i] = ew[mi, i, same[i]]
    ea = np.zeros((len(methods), L, len(akeys)))
    for mi, m in enumerate(methods):
        for i, n in enumerate(names):
            ea[mi, i] = activation_errors(ev, n, akeys, m)
    _log(progress, f"error terms: {len(wkeys)} weight x {len(akeys)} activation choices, {L} layers "
                   f"({time.perf_counter() - t:.1f} s)")
    # 2. measured gains
    probe = _Probe(ev)
    cal0 = methods[0]
    base = probe(_one_layer_config(model, names[0], LayerQuant(weight_bits=16, activation_bits=16), cal0))
    floor = max(10.0 * abs(base), 1e-12)
    wa = list(range(len(wkeys))) if full else _anchor_weight_keys(space, wkeys)
    wa = [j for j in wa if wkeys[j][0] < 16]
    aa = list(range(len(akeys))) if full else _anchor_act_keys(space, akeys)
    aa = [j for j in aa if akeys[j][0] < 16]
    kinds = [l.kind for l in model.layers]
    dw = np.full((L, len(wkeys)), np.nan)
    da = np.full((L, len(akeys)), np.nan)
    da_m = np.full((len(methods), L, len(akeys)), np.nan)
    for i, n in enumerate(names):
        for j in wa:
            r = same[i, j]   # keys giving this layer the same weights are measured once
            if not np.isfinite(dw[i, r]):
                dw[i, r] = probe(_one_layer_config(model, n, _lq(wkeys[j], group_size=gs), cal0)) - base
            dw[i, j] = dw[i, r]
        if kinds[i] != "embedding":
            for j in aa:
                da[i, j] = probe(_one_layer_config(model, n, _lq((16,), akeys[j], gs), cal0)) - base
            if full:  # every calibration method too
                for mi in range(1, len(methods)):
                    for j in aa:
                        da_m[mi, i, j] = probe(_one_layer_config(model, n, _lq((16,), akeys[j], gs),
                                                                 methods[mi])) - base
    _log(progress, f"gains: {probe.n} one-layer runs on the calibration split ({time.perf_counter() - t:.1f} s)")
    is_emb = np.array([k == "embedding" for k in kinds])
    gw = np.array([_gain(dw[i, wa], ew[0, i, wa], floor) for i in range(L)])
    ga = np.array([np.nan if is_emb[i] else _gain(da[i, aa], ea[0, i, aa], floor) for i in range(L)])
    for g, rows in ((gw, np.ones(L, dtype=bool)), (ga, ~is_emb)):
        bad = rows & ~np.isfinite(g)
        good = g[rows & np.isfinite(g)]
        g[bad] = float(np.median(good)) if good.size else 1.0
        g[~rows] = 0.0
    # weight response curves: measured one-layer distortion against output error, per layer
    knots = [response_knots(ew[0, i, wa], dw[i, wa], floor) for i in range(L)]

    def modelled_weights(e: np.ndarray) -> np.ndarray:
        """(L, n_weight_keys) distortion predicted from output errors ``e``: curve or median gain."""
        return np.stack([apply_response(knots[i], e[i]) if knots[i][0].size else gw[i] * e[i] for i in range(L)])

    # 3. combine
    D = np.empty((len(methods), L, enc.n_choices))
    for mi in range(len(methods)):
        ewm = ew[mi if follow else 0]
        D[mi] = modelled_weights(ewm)[:, wid] + ga[:, None] * ea[mi][:, aid]
    if full:
        # measured one-layer distortions replace the modelled ones where available
        da_m[0] = da
        for mi in range(len(methods)):
            ewm = ew[mi if follow else 0]
            mw = np.where(np.isfinite(dw), np.maximum(dw, 0.0), modelled_weights(ewm))
            if follow and mi:  # measured with the first method: rescale by the error ratio
                mw = mw * np.where(ew[0] > 0, ewm / np.maximum(ew[0], _TINY), 1.0)
            ma = np.where(np.isfinite(da_m[mi]), np.maximum(da_m[mi], 0.0), ga[:, None] * ea[mi])
            D[mi] = mw[:, wid] + ma[:, aid]
    k, k_fit = 1.0, None
    if not probe.same_unit:
        k, k_fit = _fit_scale(model, enc, ev, D, progress)
    table = AccuracyTable(k * D, kind="proxy", meta={
        "model": f"quantmoo proxy v{PROXY_VERSION}: measured one-layer response curves of output-space quantization error",
        "measure": "full" if full else "anchors", "model_name": model.name, "evaluator": getattr(ev, "name", None),
        "distortion": "loss unit" if probe.same_unit else getattr(probe.fn, "__name__", "distortion"),
        "scale_k": k, "scale_fit": k_fit, "n_calibration_runs": probe.n,
        "gain_weight": [round(float(v), 6) for v in gw], "gain_activation": [round(float(v), 6) for v in ga],
        "anchor_weight_choices": [list(wkeys[j]) for j in wa], "anchor_activation_choices": [list(akeys[j]) for j in aa],
        "response_weight": [[[round(float(x), 6) for x in np.exp(k[0])], [round(float(y), 6) for y in np.exp(k[1])]]
                            for k in knots]})
    _log(progress, f"done ({time.perf_counter() - t:.1f} s)")
    return table


def _fit_scale(model, enc, ev, D, progress) -> Tuple[float, dict]:
    """k minimising sum (loss_i - k * P_i)^2 over uniform configs (P_i: predicted distortion)."""
    from ..search.operators.sampling import uniform_precision_seeds
    X = uniform_precision_seeds(enc)
    C = enc.choices(X)
    P = D[0][np.arange(enc.n_layers)[None, :], C].sum(axis=1)
    losses = np.array([ev.loss(enc.decode(x)) for x in X])
    ok = np.isfinite(losses) & (P > 0)
    if int(np.sum(ok & (losses > 0))) < 2 or float(np.dot(P[ok], P[ok])) <= 0:
        _log(progress, "scale k = 1: the uniform configs show no measurable loss")
        return 1.0, {"n": int(ok.sum()), "note": "no measurable loss; table left in distortion units"}
    k = float(np.dot(P[ok], np.maximum(losses[ok], 0.0)) / np.dot(P[ok], P[ok]))
    if not np.isfinite(k) or k <= 0:
        k = 1.0
    _log(progress, f"scale k = {k:.4g} from {int(ok.sum())} uniform configs")
    return k, {"n": int(ok.sum()), "configs": "uniform-precision seeds", "measured": losses[ok].tolist(),
               "predicted": P[ok].tolist()}

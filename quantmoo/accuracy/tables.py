"""Accuracy tables: the separable accuracy model the search evaluates by gathers.

An :class:`AccuracyTable` holds, for every calibration method ``m``, layer ``l`` and choice
``c``, the contribution ``T[m, l, c]`` of that layer to ``accuracy_loss``; a config's loss is
``sum_l T[m, l, c_l]``. Its ``kind`` says where the numbers come from:

* ``prior``: no weights; :func:`prior_table`, a documented noise model (below).
* ``proxy``: built from real weights and calibration activations (see
  :mod:`quantmoo.accuracy.sensitivity`), scaled by measured per-layer sensitivity.
* ``measured``: only for values re-evaluated with a real evaluator after the search.

The prior noise model
---------------------
A ``b``-bit uniform quantizer whose clipping range spans ``+-k`` standard deviations of a
roughly Gaussian tensor has a noise-to-signal power ratio

    NSR(b) = k^2 / (3 * 4^b)

(quantization noise ``step^2 / 12`` with ``step = 2k sigma / 2^b``). The prior uses

* weights: ``k`` = 5 per-tensor (outlier channels stretch the range), 4 per-channel,
  3.5 per-group; asymmetric equals symmetric for weights (they are near zero-mean);
  power-of-two scales are rounded up by a factor ``u`` in [1, 2) with ``log2 u`` uniform, which
  multiplies the NSR by ``E[u^2] = 3 / ln 4 = 2.16``;
* activations: ``k`` = 8 for min-max (heavy tails), 5 percentile, 4.5 entropy, 4 MSE;
  symmetric schemes waste half the range on one-sided (post-ReLU/GELU) activations, which
  multiplies the NSR by 4;
* 16 bits is fp16: NSR = 2^-22 (half-precision rounding);
* llama.cpp types (``weight_format``): the NSR their real kernel gives on a fixed standard-normal
  sample (:func:`quantmoo.quant.ggml.gaussian_nsr`; the layer's fallback type where its rows do
  not fit the block), so e.g. Q4_K ranks below Q4_0 at the same 4.5 bits per weight;
* ``accuracy_loss`` (percentage points) = ``100 * sum_l (kappa_l / L) * (NSR_w + NSR_a)``,
  with ``kappa_l`` = 3 for the first and last layers and for embeddings / LM heads (the
  layers PTQ practice keeps at higher precision) and 1 otherwise.

This gives about 0.03 pp for uniform W8A8 per-channel, 2 pp for W4A8 per-channel and 35 pp for
W2A8: the ordering practitioners report, but not a prediction for any model. It is always
labelled ``prior``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import zipfile
from pathlib import Path

import numpy as np

from ..errors import QuantmooError

KINDS = ("prior", "proxy", "measured")

_K_WEIGHT = {"per_tensor": 5.0, "per_channel": 4.0, "per_group": 3.5}
_K_ACT = {"min_max": 8.0, "percentile": 5.0, "entropy": 4.5, "mse": 4.0}
_POW2_FACTOR = 3.0 / np.log(4.0)
_FP16_NSR = 2.0 ** -22


@dataclass
class AccuracyTable:
    """Per-(calibration, layer, choice) additive accuracy-loss contributions.

    Parameters
    ----------
    table : ndarray (n_calibrations, n_layers, n_choices)
    kind : str
        One of ``KINDS``.
    meta : dict
        Provenance (how it was built, evaluator name, ...).
    """

    table: np.ndarray
    kind: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise QuantmooError(f"The 'kind' of AccuracyTable must be one of {{{', '.join(KINDS)}}}; got {self.kind!r}")
        self.table = np.asarray(self.table, dtype=np.float64)
        if self.table.ndim == 2:
            self.table = self.table[None]
        if self.table.ndim != 3:
            raise QuantmooError(f"The 'table' of AccuracyTable must have shape (n_calibrations, n_layers, "
                                f"n_choices); got {self.table.shape}")
        if not np.isfinite(self.table).all():
            raise QuantmooError("The 'table' of AccuracyTable contains NaN or inf")
        n_cal, L, nc = self.table.shape
        self._flat = np.ascontiguousarray(self.table.reshape(-1))
        self._offsets = (np.arange(L) * nc)[None, :]

    def check(self, encoding) -> "AccuracyTable":
        n_cal = len(encoding.space.calibrations)
        want = (n_cal, encoding.n_layers, encoding.n_choices)
        if self.table.shape != want and self.table.shape != (1,) + want[1:]:
            raise QuantmooError(f"The accuracy table has shape {self.table.shape}; this search space needs "
                                f"{want} (calibrations, layers, choices)")
        return self

    def evaluate(self, C: np.ndarray, calib: np.ndarray, rows: np.ndarray = None) -> np.ndarray:
        """Loss of every individual: C (N, L) choice ids, calib (N,) calibration indices.

        ``rows = C + layer * n_choices`` may be passed when the caller already has it.
        """
        n_cal, L, nc = self.table.shape
        if rows is None:
            rows = C + self._offsets
        if n_cal > 1:
            rows = rows + (np.minimum(calib, n_cal - 1) * (L * nc))[:, None]
        return self._flat[rows].sum(axis=1)

    def separable(self, calib: int = 0) -> np.ndarray:
        """(L, n_choices) table for one calibration method."""
        return self.table[min(calib, self.table.shape[0] - 1)]

    def to_bytes(self) -> bytes:
        """The ``.npz`` file's bytes (what :meth:`save` writes and :meth:`load` reads)."""
        import io
        import json
        buf = io.BytesIO()
        np.savez_compressed(buf, table=self.table, kind=self.kind, meta=json.dumps(self.meta))
        return buf.getvalue()

    def save(self, path) -> Path:
        """Write to ``path`` (``.npz`` appended if missing) atomically: temp file, then rename."""
        from ..io import atomic_write_bytes
        path = Path(path)
        path = path if path.suffix == ".npz" else path.with_suffix(path.suffix + ".npz")
        atomic_write_bytes(path, self.to_bytes())
        return path

    @classmethod
    def load(cls, path) -> "AccuracyTable":
        import json
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(table=z["table"], kind=str(z["kind"]), meta=json.loads(str(z["meta"])))
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise QuantmooError(f"Cannot read accuracy table {path}: {e}") from None


def nsr_weights(bits: np.ndarray, scheme: np.ndarray, granularity: np.ndarray) -> np.ndarray:
    """Prior noise-to-signal ratio of weight quantization, vectorised over choices."""
    bits = np.asarray(bits)
    k = np.vectorize(_K_WEIGHT.get, otypes=[float])(granularity)
    nsr = k ** 2 / (3.0 * 4.0 ** np.minimum(bits, 15))
    nsr = np.where(np.asarray(scheme) == "power_of_two", nsr * _POW2_FACTOR, nsr)
    return np.where(bits >= 16, _FP16_NSR, nsr)


def nsr_activations(bits: np.ndarray, scheme: np.ndarray, calibration: str) -> np.ndarray:
    """Prior noise-to-signal ratio of activation quantization, vectorised over choices."""
    bits = np.asarray(bits)
    k = _K_ACT[calibration]
    nsr = k ** 2 / (3.0 * 4.0 ** np.minimum(bits, 15))
    scheme = np.asarray(scheme)
    nsr = np.where(scheme == "asymmetric", nsr, nsr * 4.0)            # one-sided activations
    nsr = np.where(scheme == "power_of_two", nsr * _POW2_FACTOR, nsr)
    return np.where(bits >= 16, _FP16_NSR, nsr)


def prior_table(model, encoding) -> AccuracyTable:
    """The documented prior noise model as an :class:`AccuracyTable` (kind ``prior``)."""
    cv = encoding.choice_value
    L = model.n_layers
    kappa = np.ones(L)
    kappa[[0, L - 1]] = 3.0
    kinds = np.array([l.kind for l in model.layers])
    kappa[np.isin(kinds, ("embedding", "lm_head"))] = 3.0
    has_w = np.array([l.n_params > 0 for l in model.layers], dtype=np.float64)
    nw = np.broadcast_to(nsr_weights(cv["weight_bits"], cv["weight_scheme"], cv["granularity"]),
                         (L, encoding.n_choices))                                   # (L, nc)
    fmt = cv["weight_format"]
    if (fmt != "int").any():
        from ..quant.ggml import effective_type, gaussian_nsr
        cols = model.arrays()["in_features"]
        by_cols = {c: [gaussian_nsr(effective_type(f, int(c)).name) if f != "int" else np.nan for f in fmt]
                   for c in np.unique(cols)}
        g = np.array([by_cols[c] for c in cols])
        nw = np.where(fmt[None, :] != "int", g, nw)
    tables = []
    for cal in encoding.space.calibrations:
        na = nsr_activations(cv["activation_bits"], cv["activation_scheme"], cal)
        t = 100.0 * (kappa / L)[:, None] * (has_w[:, None] * nw + na[None, :])
        tables.append(t)
    return AccuracyTable(np.stack(tables), kind="prior", meta={"model": "quantmoo prior noise model v1"})

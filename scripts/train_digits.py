"""Train the digits MLP and write the shipped weights ``quantmoo/accuracy/data/digits_mlp.npz``.

The training is :func:`quantmoo.accuracy.digits.train_digits_mlp` (deterministic NumPy Adam on
the fixed stratified split of scikit-learn's bundled digits, seed 0; about 4 s on two cores).
``tests/test_real_models.py`` re-runs that function and checks the result reaches the shipped
weights' test accuracy within a small tolerance (bit-exact weights are not expected across BLAS
builds).

Usage::

    python scripts/train_digits.py [--out PATH]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantmoo.accuracy.digits import DIGITS_WEIGHTS, digits_split, train_digits_mlp  # noqa: E402


def test_accuracy(arrs) -> float:
    s = digits_split()
    h = (s["x"][s["test"]].astype(np.float32) - arrs["mean"]) / arrs["scale"]
    k = sum(1 for key in arrs if key.startswith("W"))
    for i in range(k):
        h = h @ arrs[f"W{i + 1}"].T + arrs[f"b{i + 1}"]
        if i < k - 1:
            h = np.maximum(h, 0)
    return 100.0 * float(np.mean(h.argmax(1) == s["y"][s["test"]]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DIGITS_WEIGHTS, help="output .npz (default: the shipped file)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    arrs = train_digits_mlp()
    dt = time.perf_counter() - t0
    acc = test_accuracy(arrs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrs)
    n = sum(a.size for k, a in arrs.items() if k[0] in "Wb")
    print(f"trained in {dt:.1f} s: {n:,} parameters, fp32 test accuracy {acc:.2f} %; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

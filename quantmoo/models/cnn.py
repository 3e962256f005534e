"""Convolutional architectures as layer tables: torchvision ResNet and MobileNetV2.

The builders reproduce the torchvision module structure (same layer names, same parameter
counts) without any weights. Only convolutions and the classifier become :class:`LayerSpec`
rows; BatchNorm affine parameters (gamma and beta, two per channel) are counted in
``ModelSpec.other_params`` and the classifier bias in its ``extra_params``. BatchNorm running
statistics are buffers, not parameters, so they are not counted (this is how torchvision arrives
at 25,557,032 parameters for ResNet-50).

Workload: ``batch`` images of ``image_size`` x ``image_size`` pixels. MACs of a convolution are
``H_out * W_out * C_out * (C_in / groups) * k * k`` per image, of a linear layer ``in * out``;
``act_in`` / ``act_out`` are the element counts of the input and output feature maps. Pooling,
activation functions, BatchNorm and residual adds have no weights and are not rows.

Tie groups: inside a ResNet stage (or a run of MobileNetV2 blocks that keep the same width) every
block output is ``previous stream + last conv of the block``, so the last conv of each block and
the downsample conv that starts the stream all feed the same chain of residual adds. They get one
tie group per stage (``"layer2.residual"``, ``"features.3-4.residual"``), so a quantized residual
add always sees operands of one activation precision.
"""
from __future__ import annotations

import numbers
from typing import List, Optional, Tuple

from ..errors import QuantmooError
from .spec import LayerSpec, ModelSpec

__all__ = ["resnet", "mobilenet_v2", "RESNET_DEPTHS"]

#: Blocks per stage and block type for the torchvision ResNets.
RESNET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

# (expand ratio t, output channels c, repeats n, first stride s), torchvision MobileNetV2.
_MBV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                  (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

Shape = Tuple[int, int, int]  # (channels, height, width) of one image's feature map


def _positive_int(field: str, value, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise QuantmooError(f"The '{field}' of {owner} must be an integer >= 1; got {value!r}")
    return int(value)


class _Net:
    """Accumulates layer rows and the unquantized parameter count while tracing shapes."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.layers: List[LayerSpec] = []
        self.other_params = 0

    def conv(self, name: str, x: Shape, c_out: int, k: int, stride: int = 1, groups: int = 1,
             bn: bool = True, block: Optional[int] = None, tie: Optional[str] = None) -> Shape:
        c_in, h, w = x
        pad = k // 2  # torchvision uses "same"-style padding k // 2 everywhere in these nets
        h_out = (h + 2 * pad - k) // stride + 1
        w_out = (w + 2 * pad - k) // stride + 1
        if h_out < 1 or w_out < 1:
            raise QuantmooError(f"The 'image_size' is too small: layer '{name}' would have an empty output")
        kind = "depthwise_conv" if groups > 1 and groups == c_in == c_out else "conv"
        self.layers.append(LayerSpec(
            name=name, kind=kind, weight_shape=(c_out, c_in // groups, k, k),
            macs=self.batch * h_out * w_out * c_out * (c_in // groups) * k * k,
            act_in=self.batch * c_in * h * w, act_out=self.batch * c_out * h_out * w_out,
            block=block, tie_group=tie))
        if bn:
            self.other_params += 2 * c_out  # BatchNorm gamma + beta
        return (c_out, h_out, w_out)

    def linear(self, name: str, n_in: int, n_out: int) -> None:
        self.layers.append(LayerSpec(
            name=name, kind="linear", weight_shape=(n_out, n_in), macs=self.batch * n_in * n_out,
            act_in=self.batch * n_in, act_out=self.batch * n_out, extra_params=n_out))


def _pool(x: Shape, k: int, stride: int, pad: int) -> Shape:
    c, h, w = x
    return (c, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)


def resnet(depth: int = 50, *, batch: int = 1, image_size: int = 224, num_classes: int = 1000,
           name: Optional[str] = None) -> ModelSpec:
    """Torchvision ResNet (v1.5: the stride of a bottleneck sits on its 3x3 conv).

    Parameters
    ----------
    depth : {18, 34, 50, 101, 152}
        Network depth.
    batch : int, default 1
        Images per inference.
    image_size : int, default 224
        Input height and width in pixels.
    num_classes : int, default 1000
        Classifier outputs.
    name : str, optional
        Model name; ``f"resnet{depth}"`` by default.

    Returns
    -------
    ModelSpec
        Rows ``conv1``, ``layer{s}.{b}.conv{1,2,3}``, ``layer{s}.{b}.downsample.0`` and ``fc``,
        in execution order. ``block`` is the running index of the residual block (0-based).
    """
    owner = "resnet"
    if depth not in RESNET_DEPTHS:
        raise QuantmooError(f"The 'depth' of resnet must be one of {{{', '.join(map(str, RESNET_DEPTHS))}}}; "
                            f"got {depth!r}")
    batch = _positive_int("batch", batch, owner)
    image_size = _positive_int("image_size", image_size, owner)
    num_classes = _positive_int("num_classes", num_classes, owner)
    block_type, repeats = RESNET_DEPTHS[depth]
    expansion = 4 if block_type == "bottleneck" else 1

    net = _Net(batch)
    x = net.conv("conv1", (3, image_size, image_size), 64, 7, stride=2)
    x = _pool(x, 3, 2, 1)  # maxpool
    block = 0
    for s, (planes, n) in enumerate(zip((64, 128, 256, 512), repeats), start=1):
        tie = f"layer{s}.residual"
        for b in range(n):
            stride = 2 if (b == 0 and s > 1) else 1
            p = f"layer{s}.{b}"
            x_in = x
            if block_type == "bottleneck":
                y = net.conv(f"{p}.conv1", x_in, planes, 1, block=block)
                y = net.conv(f"{p}.conv2", y, planes, 3, stride=stride, block=block)
                y = net.conv(f"{p}.conv3", y, planes * expansion, 1, block=block, tie=tie)
            else:
                y = net.conv(f"{p}.conv1", x_in, planes, 3, stride=stride, block=block)
                y = net.conv(f"{p}.conv2", y, planes, 3, block=block, tie=tie)
            if stride != 1 or x_in[0] != planes * expansion:
                net.conv(f"{p}.downsample.0", x_in, planes * expansion, 1, stride=stride, block=block, tie=tie)
            x = y
            block += 1
    net.linear("fc", x[0], num_classes)  # after global average pooling
    return ModelSpec(
        name=name or f"resnet{depth}", layers=net.layers,
        workload={"batch": batch, "image_size": image_size}, other_params=net.other_params,
        meta={"family": "cnn", "architecture": {"builder": "resnet", "depth": depth, "num_classes": num_classes}})


def mobilenet_v2(*, batch: int = 1, image_size: int = 224, num_classes: int = 1000,
                 name: Optional[str] = None) -> ModelSpec:
    """Torchvision MobileNetV2 (width multiplier 1.0).

    Parameters
    ----------
    batch : int, default 1
        Images per inference.
    image_size : int, default 224
        Input height and width in pixels.
    num_classes : int, default 1000
        Classifier outputs.
    name : str, optional
        Model name; ``"mobilenet_v2"`` by default.

    Returns
    -------
    ModelSpec
        Rows named as torchvision's parameters: ``features.0.0`` (stem), per inverted residual
        block ``features.{i}.conv.0.0`` (1x1 expand; absent when t = 1), the depthwise 3x3 and
        the 1x1 projection, then ``features.18.0`` and ``classifier.1``. ``block`` is the
        0-based index of the inverted residual block.
    """
    owner = "mobilenet_v2"
    batch = _positive_int("batch", batch, owner)
    image_size = _positive_int("image_size", image_size, owner)
    num_classes = _positive_int("num_classes", num_classes, owner)

    net = _Net(batch)
    x = net.conv("features.0.0", (3, image_size, image_size), 32, 3, stride=2)
    i = 1
    for t, c, n, s in _MBV2_SETTINGS:
        # One residual stream per run of blocks with the same output width: the first block's
        # projection starts it, the following blocks' projections are added to it.
        tie = f"features.{i}-{i + n - 1}.residual" if n > 1 else None
        for r in range(n):
            stride = s if r == 0 else 1
            p = f"features.{i}.conv"
            hidden = x[0] * t
            y = x
            if t != 1:
                y = net.conv(f"{p}.0.0", y, hidden, 1, block=i - 1)
                dw, proj = f"{p}.1.0", f"{p}.2"
            else:
                dw, proj = f"{p}.0.0", f"{p}.1"
            y = net.conv(dw, y, hidden, 3, stride=stride, groups=hidden, block=i - 1)
            x = net.conv(proj, y, c, 1, block=i - 1, tie=tie)
            i += 1
    x = net.conv(f"features.{i}.0", x, 1280, 1)
    net.linear("classifier.1", x[0], num_classes)  # after global average pooling (and dropout)
    return ModelSpec(
        name=name or "mobilenet_v2", layers=net.layers,
        workload={"batch": batch, "image_size": image_size}, other_params=net.other_params,
        meta={"family": "cnn", "architecture": {"builder": "mobilenet_v2", "num_classes": num_classes}})

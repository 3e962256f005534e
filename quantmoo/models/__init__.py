"""Models: the layer table (:class:`ModelSpec`), architecture builders and the zoo registry.

The public entry point for users is :mod:`quantmoo.zoo` (``names``, ``load``, ``transformer``,
``from_hf_config``, ``from_onnx``). The generic transformer builder is not re-exported here
because its name would shadow the :mod:`quantmoo.models.transformer` submodule.
"""
from .spec import LAYER_KINDS, UNQUANTIZED_BYTES_PER_PARAM, LayerSpec, ModelSpec
from .cnn import mobilenet_v2, resnet
from .transformer import from_hf_config
from .onnx_import import from_onnx
from .zoo import describe, load, names, register, unregister

__all__ = ["LAYER_KINDS", "UNQUANTIZED_BYTES_PER_PARAM", "LayerSpec", "ModelSpec", "resnet", "mobilenet_v2",
           "from_hf_config", "from_onnx", "describe", "load", "names", "register", "unregister"]

"""The architecture zoo: named layer tables, spec files, Hugging Face configs, ONNX and GGUF files.

>>> from quantmoo import zoo
>>> "llama2-7b" in zoo.names()
True
>>> zoo.load("resnet50").n_params
25557032

See :mod:`quantmoo.models.zoo` (registry), :mod:`quantmoo.models.cnn` and
:mod:`quantmoo.models.transformer` (builders), :mod:`quantmoo.models.onnx_import` (ONNX
files, with their weights) and :mod:`quantmoo.models.gguf_import` (llama-family GGUF files: layer
table and lazy weights; ``load`` adds the evaluator of :mod:`quantmoo.runtime.llama`) for the
counting conventions.
"""
from .models.cnn import mobilenet_v2, resnet
from .models.gguf_import import from_gguf
from .models.onnx_import import from_onnx
from .models.transformer import from_hf_config, transformer
from .models.zoo import allowed_overrides, describe, load, names, onnx_path, register, unregister

__all__ = ["names", "load", "describe", "register", "unregister", "allowed_overrides", "transformer",
           "from_hf_config", "from_onnx", "from_gguf", "resnet", "mobilenet_v2", "onnx_path"]

"""The architecture zoo: named layer tables, spec files and Hugging Face configs.

>>> from quantmoo import zoo
>>> "llama2-7b" in zoo.names()
True
>>> zoo.load("resnet50").n_params
25557032

See :mod:`quantmoo.models.zoo` (registry), :mod:`quantmoo.models.cnn` and
:mod:`quantmoo.models.transformer` (builders) for the counting conventions.
"""
from .models.cnn import mobilenet_v2, resnet
from .models.transformer import from_hf_config, transformer
from .models.zoo import allowed_overrides, describe, load, names, register, unregister

__all__ = ["names", "load", "describe", "register", "unregister", "allowed_overrides", "transformer",
           "from_hf_config", "resnet", "mobilenet_v2"]

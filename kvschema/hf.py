"""The Hugging Face import under its first name; it lives in :mod:`kvschema.models.hf`.

>>> from kvschema.hf import layers_from_hf_config
>>> layers_from_hf_config is __import__("kvschema.models.hf").models.hf.layers_from_hf_config
True
"""

from kvschema.models.hf import (
    HFConfigError,
    HFLayers,
    layers_from_hf_config,
    mask_details_from_hf_config,
)

__all__ = ["HFConfigError", "HFLayers", "layers_from_hf_config", "mask_details_from_hf_config"]

"""The family tables under their first names (kept for callers of kvschema 0.x).

The rules live in :mod:`kvschema.models.catalog` (which family reads which model type, and
how), :mod:`kvschema.models.defaults` (the config classes' defaults) and the readers.

>>> "qwen3_moe" in SUPPORTED, read_field({}, "num_hidden_layers", "deepseek_v2")
(True, 32)
"""

from __future__ import annotations

from typing import Any

from kvschema.models.catalog import FAMILIES
from kvschema.models.defaults import FAMILY_DEFAULTS
from kvschema.models.fields import HFConfigError

__all__ = ["FAMILY_DEFAULTS", "SUPPORTED", "HFConfigError", "read_field"]

#: Every model_type kvschema reads.
SUPPORTED = tuple(sorted({t for family in FAMILIES for t in family.model_types}))


def read_field(config: dict[str, Any], name: str, model_type: str) -> Any:
    """A field of ``config`` (an explicit null included), else its class default, else None.

    >>> read_field({"sliding_window": None}, "sliding_window", "mistral") is None
    True
    """
    if name in config:
        return config[name]
    return FAMILY_DEFAULTS.get(model_type, {}).get(name)

"""Models: a Hugging Face ``config.json`` → per-layer specs.

Modules: ``families`` (the family tables), ``hf`` (``layers_from_hf_config``,
``mask_details_from_hf_config``).  Imports ``spec`` and ``layout``.
"""

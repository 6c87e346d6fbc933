"""Models: a Hugging Face ``config.json`` → per-layer specs, as vLLM 0.33 sizes each family.

Modules: ``hf`` (``layers_from_hf_config``, ``mask_details_from_hf_config``), ``catalog`` (the
family table: model types, vLLM architectures, rules), ``readers`` / ``gemmas`` / ``mla`` /
``hybrids`` (each family's rule), ``refusals`` (what is refused, and why), ``fields`` (strict
field reading), ``files`` (the size-capped file read), ``defaults`` (the config classes'
defaults), ``layers`` (per-layer records), ``states`` / ``mixers`` (recurrent state), ``context``
(the model's context length).  Imports ``spec`` and ``layout``.
"""

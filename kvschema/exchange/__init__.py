"""Exchange: canonical JSON and fingerprints, the compatibility check, the JSON Schemas.

Modules: ``canonical``, ``compat``, ``schema``.  Imports ``spec`` and ``layout``.
"""

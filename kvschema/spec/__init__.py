"""The per-layer cache specs: dtypes, the spec kinds, the rule that merges them, and their union.

The bottom floor: it imports nothing of kvschema's but ``errors`` and ``_args``.  Modules:
``dtypes`` (names and sizes), ``base`` (what every kind shares, and the merge rule),
``attention`` / ``state`` / ``uniform`` (the kinds), ``union`` (``CacheSpec``, ``parse_spec``),
``merge`` (``merge_specs`` over the union).
"""

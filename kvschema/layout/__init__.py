"""A model's cache layout: groups of layers that share a page table, and the whole config.

Modules: ``group`` (``CacheGroupSpec``), ``masks`` (per-layer mask details → groups),
``config`` (``CacheGroupsConfig``, ``SCHEMA_VERSION``).  Imports ``spec`` only.
"""

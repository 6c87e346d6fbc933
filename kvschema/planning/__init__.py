"""Planning: group layers as vLLM's allocator does, shard them, and size the page pool.

Modules: ``sharding`` (per-rank specs), ``grouping`` (vLLM's grouping steps), ``planner``
(``plan_cache``, ``CachePlan``).  Imports ``spec``, ``layout`` and ``models``.
"""

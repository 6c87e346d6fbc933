"""config.json -> plan for a memory budget -> allocate on the local devices -> verify.

Run: python examples/jax_end_to_end.py   (needs the jax extra; CPU is fine; set
XLA_FLAGS=--xla_force_host_platform_device_count=4 to try a 4-way mesh on one CPU)
"""

from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh

from kvschema import plan_cache
from kvschema.hf import layers_from_hf_config
from kvschema.jax import allocate, verify

CONFIG = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hf" / "qwen3.5.json"

devices = jax.devices()
tp = 2 if len(devices) >= 2 else 1
# Every layer's spec as one rank sees it: 2 KV heads of 256 split over tp, gated delta-net state.
layers = layers_from_hf_config(CONFIG, tensor_parallel_size=tp)
plan = plan_cache(
    layers,
    available_bytes=256 * 1024**2,  # a small budget so the example runs anywhere
    max_model_len=1024,
    max_num_batched_tokens=512,
    tensor_parallel_size=tp,
    specs_per_rank=True,
)
mesh = Mesh(np.array(devices[:tp]), ("tp",))
cache = allocate(plan, mesh=mesh)
verify(plan, cache)
per_device = sorted(set(cache.device_bytes().values()))
print(f"{len(cache)} layers, {plan.config.num_pages} pages, {tp} device(s)")
print(
    f"each device holds {per_device[0]} bytes; the plan says {plan.config.num_pages * plan.bytes_per_page}"
)
print("verified: every array matches the schema")

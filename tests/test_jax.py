"""kvschema.jax: allocated bytes equal the schema's, on one device and sharded over a mesh."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from kvschema import (  # noqa: E402
    CacheGroupsConfig,
    CacheGroupSpec,
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    MambaSpec,
    SlidingWindowSpec,
    plan_cache,
)
from kvschema.jax import CacheMismatchError, allocate, spec_from_array, verify  # noqa: E402
from kvschema.strategies import cache_groups_configs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DTYPES = ["bf16", "fp8_e4m3", "fp32", "int8"]


def one_of_each(dtype: str) -> dict[str, object]:
    geometry = {"page_size": 16, "num_kv_heads": 2, "head_size": 64, "dtype": dtype}
    return {
        "full": FullAttentionSpec(**geometry),
        "mla": FullAttentionSpec(
            page_size=16, num_kv_heads=1, head_size=96, dtype=dtype, use_mla=True
        ),
        "sliding": SlidingWindowSpec(**geometry, sliding_window=64),
        "chunked": ChunkedLocalAttentionSpec(**geometry, attention_chunk_size=128),
        "mamba": MambaSpec(page_size=16, shapes=[[32, 3], [4, 8, 8]], dtype=dtype),
        "mamba_mixed": MambaSpec(page_size=16, shapes=[[32, 3], [4, 8, 8]], dtypes=[dtype, "fp32"]),
        "padded": FullAttentionSpec(
            **geometry, page_size_padded=2 * FullAttentionSpec(**geometry).page_size_bytes + 8
        ),
        "mamba_padded": MambaSpec(page_size=16, shapes=[[8]], dtype=dtype, page_size_padded=1000),
    }


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_spec_kind_allocates_its_schema_bytes(dtype: str) -> None:
    specs = one_of_each(dtype)
    config = CacheGroupsConfig(
        num_pages=3,
        kv_cache_groups=[
            CacheGroupSpec(kv_cache_spec=spec, layer_names=[name]) for name, spec in specs.items()
        ],
    )
    cache = allocate(config)
    for name, spec in specs.items():
        assert cache.layer_nbytes(name) == 3 * spec.page_size_bytes, name
    assert cache.nbytes == 3 * sum(spec.page_size_bytes for spec in specs.values())
    verify(config, cache)
    assert cache["full"]["kv"].shape == (3, 16, 4, 64)
    assert cache["mla"]["kv"].shape == (3, 16, 1, 96)
    assert [a.dtype.name for a in cache["mamba_mixed"].values()] == [
        jnp.dtype(cache["full"]["kv"].dtype).name,
        "float32",
    ]


def test_total_equals_the_plan() -> None:
    full = FullAttentionSpec(page_size=16, num_kv_heads=2, head_size=64, dtype="bf16")
    local = SlidingWindowSpec(
        page_size=16, num_kv_heads=2, head_size=64, dtype="bf16", sliding_window=64
    )
    layers = {f"layer.{i}": full if i % 3 == 2 else local for i in range(6)}
    plan = plan_cache(
        layers,
        available_bytes=4 * 1024**2,
        max_model_len=256,
        max_num_batched_tokens=32,
        strategy="per_layer",
    )
    cache = allocate(plan)
    assert cache.nbytes == plan.config.num_pages * plan.bytes_per_page
    verify(plan, cache)


@settings(max_examples=30)
@given(cache_groups_configs(max_layers=12))
def test_abstract_allocation_matches_any_config(config: CacheGroupsConfig) -> None:
    if config.kv_cache_groups[0].layer_names is None:
        return
    cache = allocate(config, abstract=True)
    expected = sum(
        config.num_pages * spec.page_size_bytes for spec in config.layer_specs().values()
    )
    if any(g.kv_cache_spec.kind == "uniform_type" for g in config.kv_cache_groups):
        expected = config.num_pages * sum(
            m.page_size_bytes
            for g in config.kv_cache_groups
            for m in g.kv_cache_spec.kv_cache_specs.values()
        )  # type: ignore[union-attr]
    assert cache.nbytes == expected
    verify(config, cache)


def test_verify_names_the_layer() -> None:
    spec = FullAttentionSpec(page_size=16, num_kv_heads=2, head_size=64, dtype="bf16")
    config = CacheGroupsConfig(
        num_pages=2, kv_cache_groups=[CacheGroupSpec(kv_cache_spec=spec, layer_names=["a", "b"])]
    )
    cache = allocate(config)
    layers = {name: dict(arrays) for name, arrays in cache.items()}
    layers["b"]["kv"] = jnp.zeros((2, 16, 4, 64), jnp.float16)
    with pytest.raises(CacheMismatchError, match="b.kv: dtype float16, the schema says bfloat16"):
        verify(config, layers)
    layers["b"]["kv"] = jnp.zeros((2, 16, 2, 64), jnp.bfloat16)
    with pytest.raises(CacheMismatchError, match=r"b.kv: one rank holds shape \(2, 16, 2, 64\)"):
        verify(config, layers)
    del layers["b"]
    with pytest.raises(CacheMismatchError, match="no arrays for layer"):
        verify(config, layers)


def test_spec_read_back_from_a_live_array() -> None:
    spec = SlidingWindowSpec(
        page_size=32, num_kv_heads=4, head_size=128, dtype=jnp.bfloat16, sliding_window=1024
    )
    config = CacheGroupsConfig(
        num_pages=5, kv_cache_groups=[CacheGroupSpec(kv_cache_spec=spec, layer_names=["x"])]
    )
    array = allocate(config)["x"]["kv"]
    assert spec_from_array(array, sliding_window=1024) == (spec, 5)
    mla = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=576, dtype="bf16", use_mla=True)
    assert spec_from_array(jnp.zeros((2, 16, 1, 576), jnp.bfloat16), use_mla=True) == (mla, 2)


def test_jax_dtype_objects_are_dtypes() -> None:
    a = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=64, dtype=jnp.bfloat16)
    b = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=64, dtype=jnp.dtype("bfloat16"))
    assert a == b
    assert a.dtype == "bfloat16"
    assert (
        MambaSpec(page_size=1, shapes=[[4]], dtype=jnp.dtype("float8_e4m3fn")).dtype
        == "float8_e4m3fn"
    )


SHARDED = textwrap.dedent(
    """
    import json, jax
    from jax.sharding import Mesh
    import numpy as np
    from kvschema import FullAttentionSpec, MambaSpec, plan_cache, shard_spec
    from kvschema.jax import allocate, verify

    out = {}
    for tp in (1, 2, 4, 8):
        for total_heads in (8, 2):  # 8: split evenly; 2: replicated once tp > 2
            layers = {
                "attn.0": FullAttentionSpec(page_size=16, num_kv_heads=total_heads, head_size=64, dtype="bf16"),
                "attn.1": FullAttentionSpec(page_size=16, num_kv_heads=total_heads, head_size=64, dtype="bf16"),
                "mla": FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=96, dtype="bf16", use_mla=True),
            }
            # one rank's specs: attention sharded by heads, and a state already per rank
            layers = {name: shard_spec(spec, tp) for name, spec in layers.items()}
            layers["state"] = MambaSpec(page_size=16, shapes=[[64, 3]], dtype="fp32")
            plan = plan_cache(layers, available_bytes=1 << 22, max_model_len=64, max_num_batched_tokens=16,
                              strategy="per_layer", tensor_parallel_size=tp, specs_per_rank=True)
            mesh = Mesh(np.array(jax.devices()[:tp]), ("tp",))
            cache = allocate(plan, mesh=mesh)
            verify(plan, cache)
            held = cache.device_bytes()
            out[f"{tp}/{total_heads}"] = {
                "devices": len(held),
                "per_device": sorted(set(held.values())),
                "planned": plan.config.num_pages * plan.bytes_per_page,
                "abstract": sorted(set(allocate(plan, mesh=mesh, abstract=True).device_bytes().values())),
            }
    print(json.dumps(out))
    """
)


def test_each_device_holds_the_planners_per_rank_bytes() -> None:
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
    }
    done = subprocess.run(
        [sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, check=True
    )
    results = json.loads(done.stdout)
    assert len(results) == 8
    for key, result in results.items():
        tp = int(key.split("/")[0])
        assert result["devices"] == tp, key
        assert result["per_device"] == [result["planned"]], key
        assert result["abstract"] == [result["planned"]], key


@pytest.mark.parametrize("with_state", [False, True])
def test_hybrid_plans_share_pools_as_vllm_does(with_state: bool) -> None:
    full = FullAttentionSpec(page_size=16, num_kv_heads=2, head_size=64, dtype="bf16")
    local = SlidingWindowSpec(
        page_size=16, num_kv_heads=2, head_size=64, dtype="bf16", sliding_window=64
    )
    state = MambaSpec(page_size=16, shapes=[[100]], dtype="fp32")
    layers = {
        f"layer.{i}": (state if with_state and i % 3 == 1 else full if i % 3 == 2 else local)
        for i in range(9)
    }
    plan = plan_cache(layers, available_bytes=1 << 22, max_model_len=256, max_num_batched_tokens=32)
    cache = allocate(plan)  # shared pools by default for a hybrid plan
    assert cache.nbytes == plan.config.num_pages * plan.bytes_per_page <= 1 << 22
    verify(plan, cache)
    per_layer = allocate(plan, layout="per_layer", abstract=True)
    groups = len(plan.config.kv_cache_groups)
    assert per_layer.nbytes == plan.config.num_pages * sum(
        s.page_size_bytes for s in plan.config.layer_specs().values()
    )
    assert per_layer.nbytes > cache.nbytes or groups == 1
    with pytest.raises(ValueError, match="layout must be"):
        allocate(plan, layout="packed")


def test_example_holds_what_the_plan_says() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "jax_end_to_end.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("each device holds"))
    held, planned = [int(word) for word in line.replace(";", "").split() if word.isdigit()]
    assert held == planned

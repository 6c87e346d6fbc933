"""Which options a command uses as it is called: an option that would be ignored is refused.

``plan --layers`` or ``--groups`` reads specs already made, so the options that make specs from
a Hugging Face config (``--page-size``, ``--kv-cache-dtype``, ...) are refused with them (exit
2, naming the option), never silently ignored; ``diff`` takes each peer's tensor-parallel size
from its layout when the layout records one.  The type of every option that counts something
(``positive_count``) is here too, shared by the commands' and ``fit``'s options.

>>> import argparse
>>> args = argparse.Namespace(hf_config=None, layers="l.yaml", groups=None, groups_list=False,
...     strategy="hybrid", page_size=16, kv_cache_dtype=None, mamba_cache_dtype=None,
...     mamba_ssm_cache_dtype=None, gdn_prefill_backend=None, enable_prefix_caching=None,
...     allow_long_max_model_len=False)
>>> print(plan_options_refused(args))
--page-size applies to --hf-config only: --layers FILE already holds the specs it would set
"""

from __future__ import annotations

import argparse
from typing import Any

from kvschema.cli.output import MESSAGE_LIMIT, printable

__all__ = [
    "HF_DEFAULTS",
    "apply_hf_defaults",
    "diff_tensor_parallel",
    "plan_options_refused",
    "positive_count",
]

#: The options that shape the specs read from a Hugging Face config, by ``args`` attribute, and
#: the value each takes when not given (the parser's default is None, so a given one is seen).
HF_DEFAULTS: dict[str, Any] = {
    "page_size": None,
    "kv_cache_dtype": "auto",
    "mamba_cache_dtype": "auto",
    "mamba_ssm_cache_dtype": "auto",
    "gdn_prefill_backend": "flashinfer",
}

#: Options that only ``plan --hf-config`` with the hybrid strategy uses (vLLM's paging).
_VLLM_ONLY = {"gdn_prefill_backend": "--gdn-prefill-backend"}


def apply_hf_defaults(args: argparse.Namespace) -> None:
    """Give each Hugging Face option left out its default (see :data:`HF_DEFAULTS`)."""
    for name, default in HF_DEFAULTS.items():
        if getattr(args, name, None) is None:
            setattr(args, name, default)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def plan_options_refused(args: argparse.Namespace) -> str:
    """Why ``plan`` refuses an option it would not use as called, or "" when every one applies."""
    source = "--layers FILE" if args.layers is not None else "--groups FILE"
    if args.groups_list and args.groups is None:
        return "--groups-list says what --groups FILE holds: give --groups FILE"
    if args.hf_config is None:
        given = [name for name in HF_DEFAULTS if getattr(args, name) is not None]
        if args.enable_prefix_caching is not None:
            given.append("no_enable_prefix_caching")
        if given:
            return (
                f"{_flag(given[0])} applies to --hf-config only: {source} already holds the "
                "specs it would set"
            )
        if args.allow_long_max_model_len:
            return (
                f"--allow-long-max-model-len applies to --hf-config only: {source} does not say "
                "the model's context length, so no --max-model-len is too long for it"
            )
        return ""
    if args.strategy == "per_layer":
        if args.gdn_prefill_backend is not None:
            return (
                "--gdn-prefill-backend applies to vLLM's paging (--strategy hybrid); "
                "--strategy per_layer keeps the plain pages"
            )
        if args.enable_prefix_caching is not None:
            return (
                "--no-enable-prefix-caching applies to vLLM's paging (--strategy hybrid); "
                "--strategy per_layer keeps one state page per request"
            )
    return ""


def diff_tensor_parallel(args: argparse.Namespace, configs: list[Any]) -> tuple[str, int, int]:
    """``diff``'s tensor-parallel sizes: as given, else as each layout records, else 1.

    A size given that contradicts the one its layout records (a plan's ``parallelism``) is
    refused: the message says why ("" when there is none).
    """
    sizes = []
    for side, asked, config in (("a", args.tp_a, configs[0]), ("b", args.tp_b, configs[1])):
        recorded = None if config.parallelism is None else config.parallelism.tensor_parallel_size
        if asked is not None and recorded is not None and asked != recorded:
            name = args.a if side == "a" else args.b
            return (
                f"--tp-{side} {asked} contradicts {printable(str(name), MESSAGE_LIMIT)}, whose specs are "
                f"{config.parallelism.describe()}; leave --tp-{side} out or give {recorded}",
                0,
                0,
            )
        sizes.append(asked or recorded or 1)
    return "", sizes[0], sizes[1]


def positive_count(text: str) -> int:
    """An option's positive integer (``--tp``, ``--workers``, ``--max-depth``, ...), as argparse
    takes a type: a message naming the text otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value

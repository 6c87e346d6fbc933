"""The examples that end each command's ``--help``: two or three real command lines each.

Paths are the repository's own examples, so every line runs from a clone (the test suite parses
each one with the real parser and checks that the files it names exist).

>>> print(EXAMPLES["diff"].splitlines()[0])
examples:
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["EXAMPLES", "ExamplesFormatter", "add_examples"]

_PLAN = "examples/plan/gemma3-27b-layers.yaml"


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


#: Each subcommand's examples, as its ``--help`` ends with them.
EXAMPLES: dict[str, str] = {
    "validate": _examples(
        "kvschema validate examples/valid/gemma3-sliding-hybrid.yaml examples/valid/llama4-chunked.toml",
        "kvschema validate --path /serving/kv_cache examples/sections/llama3-deploy.yaml",
        "kvschema validate -o json examples/invalid/sliding-mla.yaml",
    ),
    "plan": _examples(
        f"kvschema plan --layers {_PLAN} --memory 20GiB --max-model-len 32768",
        "kvschema plan --hf-config tests/fixtures/hf/gemma3-27b.json --memory 80G --tp 2",
        f"kvschema plan --layers {_PLAN} --memory 20GiB --max-model-len 32768 -o json > plan.json",
    ),
    "layers": _examples(
        "kvschema layers --hf-config tests/fixtures/hf/jamba-v0.1.json",
        "kvschema layers --hf-config tests/fixtures/hf/qwen3-next-80b.json --tp 4 -o json",
    ),
    "diff": _examples(
        "kvschema diff examples/exchange/prefill-tp2.yaml examples/exchange/decode-tp4.yaml "
        "--tp-a 2 --tp-b 4",
        "kvschema diff plan.json examples/exchange/decode-tp4.yaml --tp-b 4"
        "   # what plan -o json wrote",
        "kvschema diff --path /serving/kv_cache examples/sections/llama3-deploy.yaml "
        "examples/sections/llama3-deploy.yaml",
    ),
    "fingerprint": _examples(
        "kvschema fingerprint examples/exchange/prefill-tp2.yaml",
        "kvschema fingerprint plan.json -o json   # a plan's layout, as plan -o json wrote it",
        "kvschema fingerprint --path /serving/kv_cache examples/sections/llama3-deploy.yaml",
    ),
    "schema": _examples(
        "kvschema schema --out schemas",
        "kvschema schema --check --out schemas",
    ),
    "fit": _examples(
        "kvschema fit --hf-config tests/fixtures/hf/llama3-8b.json --gpu H100 --max-model-len 32768",
        "kvschema fit --hf-config tests/fixtures/hf/qwen3-8b.json --gpu L4 --max-model-len auto",
        "kvschema fit --hf-config tests/fixtures/hf/llama3-8b.json --sweep --gpu L4,H100",
    ),
    "models": _examples(
        "kvschema models",
        "kvschema models -o markdown",
    ),
    "serve": _examples(
        "kvschema serve",
        "kvschema serve --port 8080",
    ),
}


class ExamplesFormatter(argparse.HelpFormatter):
    """argparse's formatter, but an epilog of examples keeps its lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def add_examples(commands: argparse._SubParsersAction[Any]) -> None:
    """End each subcommand's ``--help`` with its examples (kept as written, line by line)."""
    for name, parser in commands.choices.items():
        if name in EXAMPLES:
            parser.epilog = EXAMPLES[name]
            parser.formatter_class = ExamplesFormatter

"""The command line as a pipeline: what one command writes, the next reads.

``plan -o json`` writes a plan; ``plan --groups``, ``diff`` and ``fingerprint`` read it (its
layout, ``/config``), a bare layout, or a section of a deploy file (``--path``).  This module
holds ``kvschema fingerprint``; which options apply is :mod:`kvschema.cli.options`'s.
"""

from __future__ import annotations

import argparse
import json

from kvschema.cli.commands import EXIT_OK, _plan_layout, _read_one

__all__ = ["cmd_fingerprint"]


def cmd_fingerprint(args: argparse.Namespace) -> int:
    """Print a layout's ``fingerprint`` and ``layout_fingerprint`` (see docs/exchange.md)."""
    from kvschema.exchange.canonical import fingerprint, layout_fingerprint
    from kvschema.layout.config import CacheGroupsConfig

    code, value = _read_one(args.file, None, args, section=_plan_layout)
    if code != EXIT_OK:
        return code  # 1: the document is wrong; 2: it cannot be read
    is_config = isinstance(value, CacheGroupsConfig)
    answer = {
        "fingerprint": fingerprint(value),
        "layout_fingerprint": layout_fingerprint(value) if is_config else None,
    }
    if args.output == "json":
        print(json.dumps({"file": args.file, **answer}, indent=2))
    else:
        for key, print_value in answer.items():
            if print_value is not None:
                print(f"{key:<20}{print_value}")
    return EXIT_OK

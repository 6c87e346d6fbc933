"""Every benchmark from one entry point: python benchmarks/run.py (see docs/performance.md).

Needs the bench extra for the baselines: pip install -e ".[bench]".
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cli_validate
import commands
import planner
import startup
import throughput
from common import table

SECTIONS = [
    ("Start-up to a first answer", startup.main),
    ("Validation throughput", throughput.main),
    ("Commands as whole processes", commands.main),
    ("kvschema validate on 200 files vs check-jsonschema", cli_validate.main),
    ("Planning", planner.main),
]

if __name__ == "__main__":
    for title, run in SECTIONS:
        print(f"\n## {title}\n")
        print(table(run()))

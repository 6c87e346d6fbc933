"""``python -m kvschema``: the command line."""

from kvschema.cli import run

run()

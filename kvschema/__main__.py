"""``python -m kvschema``: the command line."""

from kvschema.cli import main

raise SystemExit(main())

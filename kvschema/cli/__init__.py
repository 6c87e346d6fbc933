"""The ``kvschema`` command line: parsing, commands, readers of deploy files, tables and charts.

Importing it is instant (``kvschema --version`` loads no pydantic); each command imports what it
uses.  Modules: ``app`` (argument parsing, ``main``, ``run``), ``commands``, ``fanout`` (forked
workers), ``tables`` (output), ``fit_cli`` / ``fit_tables`` (``kvschema fit``).  Reading files is
``kvschema.reading``'s, charts and sizes ``kvschema.render``'s (the web app shares them).
"""

from kvschema.cli.app import main, run

__all__ = ["main", "run"]

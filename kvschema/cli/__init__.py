"""The ``kvschema`` command line: parsing, commands, readers of deploy files, tables and charts.

Importing it is instant (``kvschema --version`` loads no pydantic); each command imports what it
uses.  Modules: ``app`` (argument parsing, ``main``, ``run``), ``commands``, ``document`` /
``loaders`` / ``yaml12`` (reading files), ``checking`` (a document's verdict), ``fanout``
(forked workers), ``tables`` / ``chart`` / ``units`` (output).
"""

from kvschema.cli.app import main, run

__all__ = ["main", "run"]

"""Reading deploy documents: YAML 1.2, JSON and TOML with positions and limits, and checking what
they hold.

Shared by the command line (``kvschema validate``, ``plan``, ``diff``) and the web app
(``kvschema serve``): ``document`` (what a reader produces), ``loaders`` and ``yaml12`` (the
readers), ``checking`` (a document's verdict, with the rule id of every fault).
"""

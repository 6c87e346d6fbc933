"""The console script runs without pydantic's plugin discovery, unless its user asks for it.

pydantic looks for plugins when it builds its first validator: it imports ``importlib.metadata``
(with ``email``, ``zipfile``, ``csv`` and ``socket``) and reads the entry points of every
installed distribution, a cost that grows with the environment (a tenth of a ``kvschema fit``
run in a development environment).  A plugin observes the validations of the program it is
installed for; a ``kvschema`` run validates only kvschema's own models.  So the console script
(:func:`kvschema.cli.run`, never ``import kvschema`` or :func:`kvschema.cli.main`) answers
pydantic's question itself — no plugins — unless ``PYDANTIC_DISABLE_PLUGINS`` is set, to any
value: then pydantic reads it as always (``__all__``, ``1`` or ``true``: none; a comma-separated
list: all but those; empty: every plugin).  The environment is not changed, so nothing the
process starts inherits the choice.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

__all__ = ["LOADER", "skip_plugin_discovery"]

#: pydantic's module that discovers plugins (``get_plugins``), imported on its first validator.
LOADER = "pydantic.plugin._loader"


def _no_plugins(*args: Any, **kwargs: Any) -> tuple[()]:
    """pydantic's ``get_plugins``, answered: none."""
    return ()


_loaded: list[types.ModuleType] = []


def _real(name: str) -> Any:
    """Any other name of pydantic's loader (one a later pydantic may import): the real one's."""
    if name.startswith("__"):  # the import system's questions (__path__, ...): a plain module
        raise AttributeError(name)
    if not _loaded:
        import importlib.util
        from importlib.machinery import PathFinder

        package = importlib.import_module(LOADER.rpartition(".")[0]).__path__
        spec = PathFinder.find_spec(LOADER.rpartition(".")[2], package)
        if spec is None or spec.loader is None:
            raise AttributeError(name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded.append(module)
    return getattr(_loaded[0], name)


def skip_plugin_discovery() -> bool:
    """Answer pydantic's plugin discovery with "none" in this process; whether it was done.

    Nothing is done when ``PYDANTIC_DISABLE_PLUGINS`` is set (the user's choice, which pydantic
    reads) or when pydantic has already loaded its loader.
    """
    if "PYDANTIC_DISABLE_PLUGINS" in os.environ or LOADER in sys.modules:
        return False
    loader = types.ModuleType(LOADER, "pydantic's plugin loader, answered by kvschema: none.")
    loader.get_plugins = _no_plugins  # type: ignore[attr-defined]
    loader.__getattr__ = _real  # type: ignore[method-assign]
    sys.modules[LOADER] = loader
    return True

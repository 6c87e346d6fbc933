"""The package version, kept apart so `kvschema --version` imports nothing else."""

__version__ = "0.2.0"

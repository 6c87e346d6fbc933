"""Shared test set-up: hypothesis profiles (``KVSCHEMA_HYPOTHESIS=long`` for a long run)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=100_000, deadline=1000)
settings.load_profile(
    os.environ.get("KVSCHEMA_HYPOTHESIS", "ci" if os.environ.get("CI") else "default")
)

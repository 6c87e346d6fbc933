"""Shared test set-up: hypothesis profiles.

``KVSCHEMA_HYPOTHESIS=long`` runs 100,000 examples per property (``KVSCHEMA_FUZZ_EXAMPLES``
sets another count) with a one-second deadline per example.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("KVSCHEMA_FUZZ_EXAMPLES", "100000")),
    deadline=1000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("KVSCHEMA_HYPOTHESIS", "ci" if os.environ.get("CI") else "default")
)

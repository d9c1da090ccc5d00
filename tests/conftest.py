"""Shared test setup: hypothesis profiles, markers, and the real peer tools.

Peers (skopeo, umoci, podman ...) are real programs. When one is missing its tests skip
with the reason -- except under ``OCI_REQUIRE_PEERS=1`` (set by ``.ci/run``), where a
missing peer fails the test instead, so nothing is skipped silently in CI.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") or os.environ.get("OCI_REQUIRE_PEERS")
                      else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

pytest_plugins = ["tests.peers"]

"""Shared test setup: hypothesis profiles, markers, and the real peer tools.

Peers (skopeo, umoci, podman ...) are real programs. When one is missing its tests skip
with the reason -- except under ``OCI_REQUIRE_PEERS=1`` (set by ``.ci/run``), where a
missing peer fails the test instead, so nothing is skipped silently in CI.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") or os.environ.get("OCI_REQUIRE_PEERS")
                      else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Registry access reads the user's auth files, registries.conf and caches: point every
# one of them at a private directory, so that tests never read or write the machine's
# (~/.docker, /etc/containers, ~/.cache). Set at import, before any test or subprocess.
HERMETIC = Path(tempfile.mkdtemp(prefix="ocistack-tests-env-"))
for _sub in ("cache", "run", "config", "docker", "registries.conf.d"):
    (HERMETIC / _sub).mkdir()
(HERMETIC / "registries.conf").write_text("")
os.environ.update({
    "XDG_CACHE_HOME": str(HERMETIC / "cache"),
    "XDG_RUNTIME_DIR": str(HERMETIC / "run"),
    "XDG_CONFIG_HOME": str(HERMETIC / "config"),
    "DOCKER_CONFIG": str(HERMETIC / "docker"),
    "REGISTRY_AUTH_FILE": str(HERMETIC / "auth.json"),
    "CONTAINERS_REGISTRIES_CONF": str(HERMETIC / "registries.conf"),
})

pytest_plugins = ["tests.peers", "tests.registry"]

"""Every local transport passes the same conformance suite."""

from __future__ import annotations

from pathlib import Path

from oci_image.testing.conformance import TransportConformance


class TestOCILayout(TransportConformance):
    def ref(self, base: Path, name: str) -> str:
        return f"oci:{base / 'target'}:{name}"


class TestOCIArchive(TransportConformance):
    def ref(self, base: Path, name: str) -> str:
        return f"oci-archive:{base / 'target'}:{name}"


class TestDir(TransportConformance):
    def ref(self, base: Path, name: str) -> str:
        return f"dir:{base / 'target'}"


class TestDockerArchive(TransportConformance):
    supports_index = False
    supports_artifacts = False
    preserves_manifest = False

    def ref(self, base: Path, name: str) -> str:
        return f"docker-archive:{base / 'target'}:example.com/conformance:{name}"

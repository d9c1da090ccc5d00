"""oci_runtime: runtime-spec bundles from image configs, a runc/crun wrapper and
systemd-managed system containers. Not implemented yet: see the project issues."""

__all__: list[str] = []

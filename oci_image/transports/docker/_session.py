"""From options and configuration files to clients: registries.conf (mirrors,
rewrites, insecure, blocked), credentials (explicit, auth files, helpers) and TLS, for
one side of a copy. Every source or destination owns its clients and closes them."""

from __future__ import annotations

import threading
from typing import Final

from ...errors import BlockedRegistryError
from ...interfaces import RegistryOptions
from ...spec import Reference
from ...sysconfig.auth import Credentials, lookup_credentials
from ...sysconfig.registries import RegistriesConfig, load_registries_config
from ._http import RegistryClient

__all__ = ["Session"]

MANIFEST_ACCEPT: Final = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
])


class Session:
    """Clients for the registries one source or destination talks to."""

    def __init__(self, options: RegistryOptions) -> None:
        self.options = options
        self._config: RegistriesConfig | None = None
        self._clients: dict[tuple[str, bool, Credentials | None], RegistryClient] = {}
        self._lock = threading.Lock()

    @property
    def config(self) -> RegistriesConfig:
        if self._config is None:
            self._config = load_registries_config(self.options.registries_conf,
                                                  conf_dir=self.options.registries_conf_dir)
        return self._config

    def check_blocked(self, ref: Reference) -> None:
        entry = self.config.find(ref.name)
        if entry is not None and entry.blocked:
            raise BlockedRegistryError(
                f"registry {ref.domain} is blocked in registries.conf (prefix "
                f"{entry.prefix!r}): {ref}")

    def insecure_for(self, name: str, configured: bool | None = None) -> bool:
        """Plain HTTP / unverified TLS allowed for ``name`` (``host/repository``, so that
        a namespaced ``[[registry]]`` prefix applies)? An explicit ``tls_verify`` wins
        over registries.conf."""
        if self.options.tls_verify is not None:
            return not self.options.tls_verify
        if configured is not None:
            return configured
        entry = self.config.find(name)
        return bool(entry is not None and entry.insecure)

    def credentials_for(self, host: str, repository: str) -> Credentials | None:
        if self.options.no_credentials:
            return None
        if self.options.credentials is not None:
            return self.options.credentials
        return lookup_credentials(host, repository, auth_file=self.options.auth_file,
                                  helpers=self.config.credential_helpers)

    def client(self, host: str, repository: str, *,
               insecure: bool | None = None) -> RegistryClient:
        """The client of ``host`` (shared by every thread; credentials are looked up for
        the repository, so namespaced auth.json keys apply)."""
        insecure_now = self.insecure_for(f"{host}/{repository}" if repository else host,
                                         insecure)
        creds = self.credentials_for(host, repository)
        key = (host, insecure_now, creds)
        with self._lock:
            existing = self._clients.get(key)
            if existing is None:
                existing = RegistryClient(host, self.options, insecure=insecure_now,
                                          credentials=creds)
                self._clients[key] = existing
            return existing

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for c in clients:
            c.close()

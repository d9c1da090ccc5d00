"""Pulling: the manifest from the first pull source that has it (mirrors in
registries.conf order, then the primary location), blobs as resumable streams."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ...errors import (
    BlockedRegistryError,
    ManifestUnknownError,
    NetworkError,
    OCIError,
    RegistryError,
)
from ...interfaces import BlobStream, OpenOptions
from ...spec import Descriptor, Digest, ImageManifest, parse_manifest
from ...sysconfig.registries import pull_sources
from ._blobreader import BlobReader, PartialBlobCache
from ._locations import default_cache_dir, locations
from ._registry import Repository
from ._session import Session

if TYPE_CHECKING:
    from ._reference import DockerReference

__all__ = ["DockerSource"]

log = logging.getLogger(__name__)


def partial_cache(options: OpenOptions) -> PartialBlobCache | None:
    configured = options.registry.partial_blob_dir
    if configured == "":
        return None
    return PartialBlobCache(configured or default_cache_dir() / "partial-blobs")


class DockerSource:
    """An image in a registry, opened for reading."""

    def __init__(self, ref: DockerReference, options: OpenOptions) -> None:
        self._ref = ref
        self._options = options
        self._session = Session(options.registry)
        self._cache = partial_cache(options)
        try:
            self._repo, self._manifest = self._first_source()
        except BaseException:
            self._session.close()
            raise

    def _first_source(self) -> tuple[Repository, tuple[bytes, str]]:
        ref = self._ref.ref
        wanted = str(ref.digest) if ref.digest is not None else (ref.tag or "latest")
        errors: list[OCIError] = []
        sources = pull_sources(self._session.config, ref)
        for source in sources:
            physical = source.reference
            if source.blocked:
                errors.append(BlockedRegistryError(
                    f"pull source {physical.domain} is blocked in registries.conf"))
                continue
            try:
                client = self._session.client(physical.domain, physical.path,
                                              insecure=source.insecure or None)
                repo = Repository(client, physical.path)
                manifest = repo.get_manifest(wanted, ref.digest)
            except (RegistryError, NetworkError) as exc:
                if len(sources) > 1:
                    log.info("pull source %s failed: %s", physical, exc)
                errors.append(exc)
                continue
            self._record(repo, manifest[0], manifest[1])
            return repo, manifest
        if len(errors) == 1:
            raise errors[0]
        last = errors[-1]
        summary = "; ".join(str(e) for e in errors)
        if isinstance(last, ManifestUnknownError):
            raise ManifestUnknownError(f"{self._ref}: no pull source has it: {summary}",
                                       status=last.status, codes=last.codes)
        if isinstance(last, RegistryError):
            raise type(last)(f"{self._ref}: every pull source failed: {summary}",
                             status=last.status, codes=last.codes)
        raise type(last)(f"{self._ref}: every pull source failed: {summary}")

    @property
    def reference(self) -> DockerReference:
        return self._ref

    @property
    def repository(self) -> Repository:
        """Where the manifest actually came from (a mirror, or the primary location)."""
        return self._repo

    def _record(self, repo: Repository, raw: bytes, media_type: str) -> None:
        try:
            parsed = parse_manifest(raw, media_type)
        except OCIError:
            return
        if isinstance(parsed, ImageManifest):
            digests = [parsed.config.digest] + [layer.digest for layer in parsed.layers]
            locations().record(digests, repo.client.host, repo.path)

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        if instance is None:
            return self._manifest
        raw, media_type = self._repo.get_manifest(str(instance), instance)
        self._record(self._repo, raw, media_type)
        return raw, media_type

    def get_blob(self, desc: Descriptor) -> BlobStream:
        what = f"blob {desc.digest} in {self._repo.display}"
        for url in desc.urls:
            if not url.startswith(("https://", "http://")):
                continue
            stream = self._foreign(url, desc)
            if stream is not None:
                return stream
        partial = None
        if self._cache is not None and desc.size >= max(
                1, self._options.registry.partial_blob_min_size):
            partial = self._cache.open(desc.digest, desc.size)
        reader = BlobReader(self._repo.client, f"/v2/{self._repo.path}/blobs/{desc.digest}",
                            self._repo.pull_scopes, desc, what, partial)
        try:
            reader.start()  # the first request: a missing blob fails here, not mid-copy
        except BaseException:
            reader.close()
            raise
        return reader

    def _foreign(self, url: str, desc: Descriptor) -> BlobStream | None:
        """A non-distributable layer from its own URL, without credentials
        (containers/image ``getExternalBlob``)."""
        reader = BlobReader(self._repo.client, url, frozenset(), desc,
                            f"blob {desc.digest} from {url}", None, credentials=False)
        try:
            reader.start()
        except OCIError as exc:
            reader.close()
            log.info("foreign layer URL %s failed: %s", url, exc)
            return None
        return reader

    def list_referrers(self, subject: Digest, artifact_type: str | None = None
                       ) -> list[Descriptor]:
        return self._repo.referrers(subject, artifact_type)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> DockerSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


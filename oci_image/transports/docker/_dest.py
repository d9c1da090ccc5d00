"""Pushing: blobs (``HEAD`` first, then a cross-repository mount when the blob is known
elsewhere on the same registry, else an upload), then manifests by digest (instances of
an index) and by tag. A registry is not transactional: ``commit`` has nothing to do, and
an aborted copy leaves at most unreferenced blobs, which the registry's garbage collector
removes, never a tag pointing at an incomplete image."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ...errors import DigestMismatchError, ManifestUnknownError, OCIError
from ...interfaces import (
    BlobInfo,
    DestinationCapabilities,
    LayerCompression,
    OpenOptions,
)
from ...spec import (
    Descriptor,
    Digest,
    ImageIndex,
    ImageManifest,
    MediaType,
    Readable,
    manifest_digest,
    parse_manifest,
)
from .._common import ensure_verifying
from ._http import raise_for_status
from ._locations import locations
from ._registry import Repository, fallback_tag
from ._session import Session
from ._upload import upload_blob

if TYPE_CHECKING:
    from ._reference import DockerReference

__all__ = ["DockerDestination"]

log = logging.getLogger(__name__)

_CAPABILITIES = DestinationCapabilities(
    supported_manifest_types=None,
    desired_layer_compression=LayerCompression.COMPRESS,
    accepts_foreign_layer_urls=True,
    thread_safe_put_blob=True,
    supports_signatures=False,
)


class DockerDestination:
    """A repository in a registry, opened for writing."""

    def __init__(self, ref: DockerReference, options: OpenOptions) -> None:
        self._ref = ref
        self._options = options
        self._session = Session(options.registry)
        try:
            self._session.check_blocked(ref.ref)
            client = self._session.client(ref.ref.domain, ref.ref.path)
            self._repo = Repository(client, ref.ref.path, push=True)
        except BaseException:
            self._session.close()
            raise
        self.mounted: list[Digest] = []

    @property
    def reference(self) -> DockerReference:
        return self._ref

    @property
    def capabilities(self) -> DestinationCapabilities:
        return _CAPABILITIES

    @property
    def repository(self) -> Repository:
        return self._repo

    # -- blobs ------------------------------------------------------------------------

    def has_blob(self, info: BlobInfo) -> Descriptor | None:
        if info.digest is None:
            return None
        digest = info.digest
        size = self._head(self._repo, digest)
        if size is None and self._mount(digest):
            size = self._head(self._repo, digest)  # the size the registry now has
        if size is None or size < 0:
            return None  # absent, or a size we cannot trust: upload it
        if info.size is not None and size != info.size:
            log.info("%s has %s with size %d, not %d; uploading again", self._repo,
                     digest, size, info.size)
            return None
        locations().record([digest], self._repo.client.host, self._repo.path)
        return Descriptor(info.media_type, digest, size)

    def _head(self, repo: Repository, digest: Digest) -> int | None:
        """The blob's size in ``repo``; ``None`` when absent, -1 when not said."""
        response = repo.client.send("HEAD", f"/v2/{repo.path}/blobs/{digest}",
                                    scopes=repo.scopes)
        if response.status_code == 404:
            return None
        raise_for_status(response, f"blob {digest} in {repo.display}")
        try:
            return int(response.headers.get("content-length", "-1"))
        except ValueError:
            return -1

    def _mount(self, digest: Digest) -> bool:
        """Ask the registry to link the blob from a repository where it was seen."""
        host = self._repo.client.host
        for other in locations().candidates(digest, host, exclude=self._repo.path):
            scopes = self._repo.scopes | {f"repository:{other}:pull"}
            try:
                response = self._repo.client.send(
                    "POST", f"/v2/{self._repo.path}/blobs/uploads/?mount={digest}"
                    f"&from={other}", scopes=scopes)
            except OCIError as exc:
                log.debug("mount of %s from %s failed: %s", digest, other, exc)
                continue
            if response.status_code == 201:
                log.info("mounted %s from %s into %s", digest, other, self._repo.path)
                self.mounted.append(digest)
                return True
            if response.status_code == 202 and "location" in response.headers:
                # the registry started an ordinary upload instead: cancel it
                location = str(response.url.join(response.headers["location"]))
                try:
                    self._repo.client.send("DELETE", location, scopes=scopes, retry=False)
                except OCIError as exc:
                    log.debug("cancelling the upload a mount started failed: %s", exc)
        return False

    def put_blob(self, stream: Readable, info: BlobInfo) -> Descriptor:
        verified = ensure_verifying(stream, info)
        what = f"blob {info.digest or '(new)'} to {self._repo.display}"
        digest, size = upload_blob(self._repo.client, self._repo.path, self._repo.scopes,
                                   verified, info.digest, info.size, what)
        locations().record([digest], self._repo.client.host, self._repo.path)
        return Descriptor(info.media_type, digest, size)

    # -- manifests --------------------------------------------------------------------

    def put_manifest(self, raw: bytes, media_type: str,
                     instance: Digest | None = None) -> None:
        digest = manifest_digest(raw)
        ref = self._ref.ref
        if instance is not None:
            target = str(instance)
        elif ref.digest is not None:
            if manifest_digest(raw, ref.digest.algorithm) != ref.digest:
                raise DigestMismatchError(
                    f"{self._ref}: the manifest to push has digest {digest}, not the "
                    f"digest in the destination reference", name=str(ref.digest),
                    expected=ref.digest, actual=digest)
            target = str(ref.digest)
        else:
            target = ref.tag or "latest"
        response = self._repo.put_manifest(raw, media_type, target)
        self._maybe_update_referrers(raw, media_type, digest, response.headers)

    def _maybe_update_referrers(self, raw: bytes, media_type: str, digest: Digest,
                                headers: object) -> None:
        """A manifest with a ``subject`` on a registry without the referrers API: add
        it to the ``<alg>-<hex>`` fallback index (distribution-spec "pushing manifests
        with subject")."""
        try:
            parsed = parse_manifest(raw, media_type)
        except OCIError:
            return
        if not isinstance(parsed, (ImageManifest, ImageIndex)) or parsed.subject is None:
            return
        if "oci-subject" in getattr(headers, "keys", lambda: [])():
            return
        subject = parsed.subject.digest
        artifact_type = parsed.artifact_type
        if artifact_type is None and isinstance(parsed, ImageManifest):
            artifact_type = parsed.config.media_type
        entry = Descriptor(media_type, digest, len(raw), annotations=parsed.annotations,
                           artifact_type=artifact_type)
        try:
            index = self._repo.fallback_referrers_index(subject)
        except ManifestUnknownError:
            index = None
        entries = [d for d in (index.manifests if index else ()) if d.digest != digest]
        entries.append(entry)
        new = ImageIndex(MediaType.OCI_INDEX, tuple(entries))
        self._repo.put_manifest(new.to_json(), MediaType.OCI_INDEX, fallback_tag(subject))

    def commit(self) -> None:
        """Nothing to do: what was pushed is visible already."""

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> DockerDestination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


"""Registry operations on one repository, shared by the source, the destination and
the reference's ``list_tags``/``delete``/``referrers``: manifest GET/HEAD/PUT/DELETE
with verification, tag listing with ``Link`` pagination, and the referrers API with the
tag-schema fallback."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Final

import httpx

from ...errors import (
    ContentTooLargeError,
    DigestMismatchError,
    ManifestTypeRejectedError,
    ManifestUnknownError,
    RegistryError,
    SpecError,
)
from ...spec import (
    DEFAULT_SIZE_LIMIT,
    Descriptor,
    Digest,
    ImageIndex,
    MediaType,
    manifest_digest,
    parse_manifest,
)
from ._http import RegistryClient, raise_for_status
from ._session import MANIFEST_ACCEPT

__all__ = ["Repository"]

_LINK_NEXT: Final = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_TAGS_LIMIT: Final = 64 << 20
_MAX_TAGS: Final = 1_000_000


class Repository:
    """One repository of one registry, as seen through ``client``."""

    def __init__(self, client: RegistryClient, path: str, *, push: bool = False) -> None:
        self.client = client
        self.path = path
        actions = "pull,push" if push else "pull"
        self.scopes = frozenset({f"repository:{path}:{actions}"})
        self.pull_scopes = frozenset({f"repository:{path}:pull"})

    def __repr__(self) -> str:
        return f"<Repository {self.client.host}/{self.path}>"

    @property
    def display(self) -> str:
        return f"docker://{self.client.host}/{self.path}"

    # -- manifests ------------------------------------------------------------------

    def get_manifest(self, reference: str, expected: Digest | None = None
                     ) -> tuple[bytes, str]:
        """Raw bytes and media type of ``reference`` (a tag or a digest), verified
        against the digest asked for and against ``Docker-Content-Digest``."""
        what = f"manifest {self.display}{_sep(reference)}{reference}"
        response = self.client.send(
            "GET", f"/v2/{self.path}/manifests/{reference}", scopes=self.pull_scopes,
            headers={"Accept": MANIFEST_ACCEPT}, stream=True)
        raise_for_status(response, what, not_found=ManifestUnknownError)
        raw = _read_limited(response, DEFAULT_SIZE_LIMIT, what)
        header = response.headers.get("docker-content-digest")
        if expected is not None:
            actual = manifest_digest(raw, expected.algorithm)
            if actual != expected:
                raise DigestMismatchError(
                    f"{what}: the registry sent a manifest with digest {actual}",
                    name=str(expected), expected=expected, actual=actual)
        if header:
            try:
                announced = Digest.parse(header)
            except SpecError:
                announced = None
            if announced is not None:
                actual = manifest_digest(raw, announced.algorithm)
                if actual != announced:
                    raise DigestMismatchError(
                        f"{what}: Docker-Content-Digest is {announced}, but the body "
                        f"has digest {actual}", name=str(announced),
                        expected=announced, actual=actual)
        content_type = response.headers.get("content-type", "")
        return raw, parse_manifest(raw, content_type).media_type

    def resolve(self, reference: str) -> Digest:
        """The digest of the manifest a tag points to: fetched and hashed, not taken
        from a header (containers/image does the same before deleting)."""
        try:
            return Digest.parse(reference)
        except SpecError:
            pass
        raw, _ = self.get_manifest(reference)
        return manifest_digest(raw)

    def put_manifest(self, raw: bytes, media_type: str, reference: str) -> httpx.Response:
        what = f"manifest {self.display}{_sep(reference)}{reference}"
        response = self.client.send(
            "PUT", f"/v2/{self.path}/manifests/{reference}", scopes=self.scopes,
            headers={"Content-Type": media_type}, content=raw)
        if response.status_code in (400, 415):
            codes, _ = _codes(response)
            if response.status_code == 415 or {"MANIFEST_INVALID", "UNSUPPORTED"} & set(codes):
                raise ManifestTypeRejectedError(
                    f"{what}: the registry does not accept {media_type} "
                    f"(HTTP {response.status_code} {', '.join(codes)})")
        raise_for_status(response, what, not_found=ManifestUnknownError)
        stored = response.headers.get("docker-content-digest")
        if stored:
            try:
                announced = Digest.parse(stored)
            except SpecError:
                announced = None
            if announced is not None and manifest_digest(raw, announced.algorithm) != announced:
                raise RegistryError(f"{what}: the registry stored {announced}, which is not "
                                    f"the digest of what we sent")
        return response

    def delete_manifest(self, digest: Digest) -> None:
        what = f"manifest {self.display}@{digest}"
        response = self.client.send("DELETE", f"/v2/{self.path}/manifests/{digest}",
                                    scopes=frozenset({f"repository:{self.path}:*"}))
        raise_for_status(response, what, not_found=ManifestUnknownError)

    # -- tags -----------------------------------------------------------------------

    def list_tags(self, page_size: int | None = None) -> list[str]:
        """Every tag, following ``Link: <...>; rel="next"`` pages."""
        url = f"/v2/{self.path}/tags/list"
        if page_size:
            url += f"?n={page_size}"
        tags: list[str] = []
        seen_urls: set[str] = set()
        while url:
            if url in seen_urls:
                raise RegistryError(f"{self.display}: tag list pagination loops")
            seen_urls.add(url)
            response = self.client.send("GET", url, scopes=self.pull_scopes, stream=True)
            raise_for_status(response, f"tags of {self.display}")
            body = _read_limited(response, _TAGS_LIMIT, f"tags of {self.display}")
            try:
                data = json.loads(body)
            except ValueError:
                raise RegistryError(f"tags of {self.display}: not JSON") from None
            page = data.get("tags") if isinstance(data, dict) else None
            if page is not None and not (isinstance(page, list)
                                         and all(isinstance(t, str) for t in page)):
                raise RegistryError(f"tags of {self.display}: malformed tag list")
            tags.extend(page or [])
            if len(tags) > _MAX_TAGS:
                raise RegistryError(f"tags of {self.display}: more than {_MAX_TAGS} tags")
            url = ""
            match = _LINK_NEXT.search(response.headers.get("link", ""))
            if match:
                # only path and query: the next page comes from this registry, whatever
                # host the header names (as containers/image)
                target = httpx.URL(match.group(1))
                url = target.raw_path.decode("ascii", "replace")
                if not url.startswith(f"/v2/{self.path}/tags/list"):
                    raise RegistryError(f"tags of {self.display}: a Link to {url!r}")
        return tags

    # -- referrers ------------------------------------------------------------------

    def referrers(self, subject: Digest, artifact_type: str | None = None
                  ) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``subject``: the referrers API, else the
        ``<alg>-<hex>`` tag the distribution-spec fallback maintains."""
        path = f"/v2/{self.path}/referrers/{subject}"
        if artifact_type:
            path += "?" + str(httpx.QueryParams({"artifactType": artifact_type}))
        response = self.client.send("GET", path, scopes=self.pull_scopes, stream=True)
        if response.status_code == 404:
            response.close()
            index = self.fallback_referrers_index(subject)
            entries = list(index.manifests) if index is not None else []
        else:
            raise_for_status(response, f"referrers of {self.display}@{subject}")
            raw = _read_limited(response, DEFAULT_SIZE_LIMIT, "referrers")
            entries = list(ImageIndex.from_json(raw).manifests)
        if artifact_type:
            entries = [d for d in entries if d.artifact_type == artifact_type]
        return entries

    def fallback_referrers_index(self, subject: Digest) -> ImageIndex | None:
        tag = fallback_tag(subject)
        try:
            raw, media_type = self.get_manifest(tag)
        except ManifestUnknownError:
            return None
        if media_type != MediaType.OCI_INDEX:
            raise RegistryError(f"{self.display}:{tag} is not an OCI index")
        return ImageIndex.from_json(raw)


def fallback_tag(subject: Digest) -> str:
    return f"{subject.algorithm}-{subject.encoded}"[:128]


def _sep(reference: str) -> str:
    return "@" if ":" in reference else ":"


def _codes(response: httpx.Response) -> tuple[tuple[str, ...], str]:
    from ._http import error_codes
    return error_codes(response)


def _read_limited(response: httpx.Response, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in _iter(response):
            total += len(chunk)
            if total > limit:
                raise ContentTooLargeError(f"{what}: larger than {limit} bytes")
            chunks.append(chunk)
    except httpx.HTTPError as exc:
        from ._auth import wrap_network_error
        raise wrap_network_error(what, exc) from exc
    finally:
        response.close()
    return b"".join(chunks)


def _iter(response: httpx.Response) -> Iterator[bytes]:
    try:
        yield response.content
    except httpx.ResponseNotRead:
        yield from response.iter_bytes()

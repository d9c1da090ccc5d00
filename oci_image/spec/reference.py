"""Docker image references (``[registry[:port]/]repository[:tag][@digest]``) with the same
grammar and normalisation as distribution/reference's ``ParseNormalizedNamed``."""

from __future__ import annotations

import re
from typing import Final

import attrs

from ..errors import InvalidReferenceError, SpecError
from .digest import Digest

__all__ = ["DEFAULT_DOMAIN", "DEFAULT_TAG", "Reference"]

DEFAULT_DOMAIN: Final = "docker.io"
LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
OFFICIAL_REPO_PREFIX: Final = "library/"
DEFAULT_TAG: Final = "latest"
NAME_TOTAL_LENGTH_MAX: Final = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REMOTE = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_NAME = rf"(?:{_DOMAIN}/)?{_REMOTE}"

_REFERENCE_RE: Final = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?\Z")
_TAG_RE: Final = re.compile(rf"^{_TAG}\Z")
_DOMAIN_RE: Final = re.compile(rf"^{_DOMAIN}\Z")
_IDENTIFIER_RE: Final = re.compile(r"^[a-f0-9]{64}\Z")


@attrs.frozen
class Reference:
    """A normalised reference: ``domain`` is never empty, Docker Hub official images get
    ``library/``. ``tag`` and ``digest`` may both be set."""

    domain: str
    path: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, value: str) -> Reference:
        """Parse a possibly short name such as ``busybox`` or ``quay.io/a/b:1@sha256:...``.

        Raises :class:`InvalidReferenceError` with the reason.
        """
        if not isinstance(value, str) or not value:
            raise InvalidReferenceError("empty image reference")
        if _IDENTIFIER_RE.match(value):
            raise InvalidReferenceError(
                f"invalid repository name ({value}), cannot specify 64-byte hexadecimal strings")
        domain, remainder = _split_domain(value)
        name_part = remainder.split("@", 1)[0]
        if ":" in name_part:
            name_part = name_part.rsplit(":", 1)[0]
        if name_part.lower() != name_part:
            raise InvalidReferenceError(
                f"invalid reference format: repository name ({name_part}) must be lowercase")
        match = _REFERENCE_RE.match(f"{domain}/{remainder}")
        if match is None:
            raise InvalidReferenceError(f"invalid reference format: {value!r}")
        name, tag, digest_text = match.groups()
        if len(name) > NAME_TOTAL_LENGTH_MAX:
            raise InvalidReferenceError(
                f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
        digest = None
        if digest_text:
            try:
                digest = Digest.parse(digest_text)
            except SpecError as exc:
                raise InvalidReferenceError(f"invalid digest in {value!r}: {exc}") from exc
        return cls(domain=domain, path=name[len(domain) + 1:], tag=tag, digest=digest)

    @classmethod
    def parse_named_tagged(cls, value: str) -> Reference:
        """A reference that must be ``name:tag`` (``latest`` added when missing), no digest:
        what ``docker-archive:`` destinations and ``repositories`` files accept."""
        ref = cls.parse(value)
        if ref.digest is not None:
            raise InvalidReferenceError(f"reference {value!r} must not contain a digest")
        return ref.with_default_tag()

    @staticmethod
    def is_valid_tag(tag: str) -> bool:
        return bool(_TAG_RE.match(tag))

    @property
    def name(self) -> str:
        """``domain/path``, the repository name without tag or digest."""
        return f"{self.domain}/{self.path}"

    def with_default_tag(self) -> Reference:
        """Add ``latest`` when there is neither a tag nor a digest."""
        if self.tag is None and self.digest is None:
            return attrs.evolve(self, tag=DEFAULT_TAG)
        return self

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.match(tag):
            raise InvalidReferenceError(f"invalid tag {tag!r}")
        return attrs.evolve(self, tag=tag)

    def with_digest(self, digest: Digest | None) -> Reference:
        return attrs.evolve(self, digest=digest)

    def familiar(self) -> str:
        """The short form users type: ``busybox:latest`` for ``docker.io/library/busybox``."""
        path = self.path
        if self.domain == DEFAULT_DOMAIN:
            if path.startswith(OFFICIAL_REPO_PREFIX) and path.count("/") == 1:
                path = path[len(OFFICIAL_REPO_PREFIX):]
            text = path
        else:
            text = f"{self.domain}/{path}"
        return _suffix(text, self.tag, self.digest)

    def __str__(self) -> str:
        return _suffix(self.name, self.tag, self.digest)


def _suffix(name: str, tag: str | None, digest: Digest | None) -> str:
    if tag is not None:
        name = f"{name}:{tag}"
    if digest is not None:
        name = f"{name}@{digest}"
    return name


def _split_domain(value: str) -> tuple[str, str]:
    i = value.find("/")
    first = value[:i] if i >= 0 else ""
    if i == -1 or (not any(c in first for c in ".:") and first != "localhost"
                   and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, value
    else:
        domain, remainder = first, value[i + 1:]
        if not _DOMAIN_RE.match(domain):
            raise InvalidReferenceError(f"invalid reference format: bad domain {domain!r}")
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder

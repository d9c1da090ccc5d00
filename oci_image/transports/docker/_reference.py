"""``docker://[REGISTRY/]REPOSITORY[:TAG|@DIGEST]`` references (skopeo's syntax, with
Docker Hub normalisation: ``docker://busybox`` is ``docker.io/library/busybox:latest``)."""

from __future__ import annotations

import attrs

from ...errors import InvalidReferenceError
from ...interfaces import ImageDestination, ImageSource, OpenOptions
from ...spec import Descriptor, Digest, Reference
from ._registry import Repository
from ._session import Session

__all__ = ["TRANSPORT", "DockerReference", "DockerTransport"]


@attrs.frozen
class DockerTransport:
    name: str = "docker"

    def parse_reference(self, reference: str) -> DockerReference:
        if not reference.startswith("//"):
            raise InvalidReferenceError(
                f"docker: reference {reference!r} does not start with '//'")
        ref = Reference.parse(reference[2:])
        if ref.tag is not None and ref.digest is not None:
            raise InvalidReferenceError(
                f"docker: reference {reference!r} has both a tag and a digest, which "
                f"the registry protocol cannot express")
        return DockerReference(ref.with_default_tag())


TRANSPORT = DockerTransport()


@attrs.frozen
class DockerReference:
    """An image in a registry: a normalised :class:`Reference` with a tag or a digest."""

    ref: Reference

    @property
    def transport(self) -> DockerTransport:
        return TRANSPORT

    def string_within_transport(self) -> str:
        return "//" + self.ref.familiar()

    def __str__(self) -> str:
        return f"docker:{self.string_within_transport()}"

    def docker_reference(self) -> Reference | None:
        return self.ref

    def open_source(self, options: OpenOptions | None = None) -> ImageSource:
        from ._source import DockerSource

        return DockerSource(self, options or OpenOptions())

    def open_destination(self, options: OpenOptions | None = None) -> ImageDestination:
        from ._dest import DockerDestination

        return DockerDestination(self, options or OpenOptions())

    def _with_repository(self, options: OpenOptions | None, *, push: bool = False
                         ) -> tuple[Session, Repository]:
        session = Session((options or OpenOptions()).registry)
        try:
            session.check_blocked(self.ref)
            client = session.client(self.ref.domain, self.ref.path)
        except BaseException:
            session.close()
            raise
        return session, Repository(client, self.ref.path, push=push)

    def list_tags(self, options: OpenOptions | None = None, *,
                  page_size: int | None = None) -> list[str]:
        """Every tag of the repository (all pages of ``/tags/list``)."""
        session, repo = self._with_repository(options)
        with session_closing(session):
            return repo.list_tags(page_size)

    def delete(self, options: OpenOptions | None = None) -> None:
        """Delete the manifest this reference names (a tag is resolved to its digest
        first, so every tag on that manifest goes, as with skopeo)."""
        session, repo = self._with_repository(options, push=True)
        with session_closing(session):
            reference = str(self.ref.digest) if self.ref.digest else (self.ref.tag or "latest")
            repo.delete_manifest(repo.resolve(reference))

    def referrers(self, subject: Digest | None = None, *, artifact_type: str | None = None,
                  options: OpenOptions | None = None) -> list[Descriptor]:
        """Descriptors of the manifests that refer to ``subject`` (default: this
        reference's manifest) through their ``subject`` field."""
        session, repo = self._with_repository(options)
        with session_closing(session):
            if subject is None:
                subject = repo.resolve(str(self.ref.digest) if self.ref.digest
                                       else (self.ref.tag or "latest"))
            return repo.referrers(subject, artifact_type)


class session_closing:
    def __init__(self, session: Session) -> None:
        self._session = session

    def __enter__(self) -> Session:
        return self._session

    def __exit__(self, *exc: object) -> None:
        self._session.close()

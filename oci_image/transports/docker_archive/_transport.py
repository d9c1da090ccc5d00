from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ...errors import InvalidReferenceError
from ...interfaces import ImageDestination, ImageSource, OpenOptions
from ...spec import Reference

if TYPE_CHECKING:
    from ._dest import DockerArchiveWriter


@attrs.frozen
class DockerArchiveTransport:
    name: str = "docker-archive"

    def parse_reference(self, reference: str) -> DockerArchiveReference:
        path, sep, rest = reference.partition(":")
        if not path:
            raise InvalidReferenceError(
                f"docker-archive reference {reference!r} isn't of the form "
                "<path>[:<reference>]")
        if not sep or not rest:
            return DockerArchiveReference(path)
        if rest.startswith("@"):
            try:
                index = int(rest[1:], 10)
            except ValueError:
                raise InvalidReferenceError(
                    f"docker-archive: invalid source index {rest!r}") from None
            if index < 0:
                raise InvalidReferenceError(f"docker-archive: source index {rest!r} is negative")
            return DockerArchiveReference(path, source_index=index)
        return DockerArchiveReference(path, named=Reference.parse_named_tagged(rest))


TRANSPORT = DockerArchiveTransport()


@attrs.frozen
class DockerArchiveReference:
    """A path, and optionally a ``name:tag`` or a ``@index`` of an image in it."""

    path: str
    named: Reference | None = None
    source_index: int = -1
    #: set when this reference writes into a shared multi-image writer
    writer: DockerArchiveWriter | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def transport(self) -> DockerArchiveTransport:
        return TRANSPORT

    def string_within_transport(self) -> str:
        if self.named is not None:
            return f"{self.path}:{self.named}"
        if self.source_index >= 0:
            return f"{self.path}:@{self.source_index}"
        return self.path

    def __str__(self) -> str:
        return f"docker-archive:{self.string_within_transport()}"

    def docker_reference(self) -> Reference | None:
        return self.named

    def open_source(self, options: OpenOptions | None = None) -> ImageSource:
        from ._source import DockerArchiveSource

        return DockerArchiveSource(self, tmp_dir=options.tmp_dir if options else None)

    def open_destination(self, options: OpenOptions | None = None) -> ImageDestination:
        from ._dest import DockerArchiveDestination, DockerArchiveWriter

        if self.source_index >= 0:
            raise InvalidReferenceError(f"{self}: a source index cannot be a destination")
        tags = [self.named] if self.named is not None else []
        if options is not None:
            tags.extend(t.with_default_tag() for t in options.additional_tags)
        if self.writer is not None:
            return DockerArchiveDestination(self, self.writer, tags, owns_writer=False)
        writer = DockerArchiveWriter(self.path, tmp_dir=options.tmp_dir if options else None)
        return DockerArchiveDestination(self, writer, tags, owns_writer=True)

    def list_tags(self, options: OpenOptions | None = None) -> list[str]:
        """Every ``RepoTags`` entry of every image in the archive."""
        from ._source import read_archive_manifest

        items, index = read_archive_manifest(self.path, options.tmp_dir if options else None)
        index.close()
        return [tag for item in items for tag in item.repo_tags]

from __future__ import annotations

import attrs

from ...errors import InvalidReferenceError
from ...interfaces import ImageDestination, ImageSource, OpenOptions
from ...spec import Reference
from .._common import split_path
from .._layout import format_layout_reference, parse_layout_reference, ref_names


@attrs.frozen
class OCIArchiveTransport:
    name: str = "oci-archive"

    def parse_reference(self, reference: str) -> OCIArchiveReference:
        path, rest = split_path(reference, self.name)
        image, index = parse_layout_reference(rest, self.name)
        return OCIArchiveReference(path=path, image=image, source_index=index)


TRANSPORT = OCIArchiveTransport()


@attrs.frozen
class OCIArchiveReference:
    path: str
    image: str = ""
    source_index: int = -1

    @property
    def transport(self) -> OCIArchiveTransport:
        return TRANSPORT

    def string_within_transport(self) -> str:
        return format_layout_reference(self.path, self.image, self.source_index)

    def __str__(self) -> str:
        return f"oci-archive:{self.string_within_transport()}"

    def docker_reference(self) -> Reference | None:
        return None

    def open_source(self, options: OpenOptions | None = None) -> ImageSource:
        from ._source import OCIArchiveSource

        return OCIArchiveSource(self, tmp_dir=options.tmp_dir if options else None)

    def open_destination(self, options: OpenOptions | None = None) -> ImageDestination:
        from ._dest import OCIArchiveDestination

        if self.source_index >= 0:
            raise InvalidReferenceError(f"{self}: a source index cannot be a destination")
        return OCIArchiveDestination(
            self, tmp_dir=options.tmp_dir if options else None,
            accept_uncompressed=bool(options and options.accept_uncompressed_layers))

    def list_tags(self, options: OpenOptions | None = None) -> list[str]:
        from ._source import open_archive_layout

        index, tar = open_archive_layout(self, options.tmp_dir if options else None)
        tar.close()
        return ref_names(index)

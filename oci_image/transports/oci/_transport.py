from __future__ import annotations

from pathlib import Path

import attrs

from ...errors import InvalidReferenceError
from ...interfaces import ImageDestination, ImageSource, OpenOptions
from ...spec import Reference
from .._common import split_path
from .._layout import (
    DirectoryLayout,
    format_layout_reference,
    parse_layout_reference,
    ref_names,
    resolve_descriptor,
)


@attrs.frozen
class OCITransport:
    name: str = "oci"

    def parse_reference(self, reference: str) -> OCIReference:
        path, rest = split_path(reference, self.name)
        image, index = parse_layout_reference(rest, self.name)
        return OCIReference(path=path, image=image, source_index=index)


TRANSPORT = OCITransport()


@attrs.frozen
class OCIReference:
    """``oci:`` reference: a layout path, and an image name or a source index."""

    path: str
    image: str = ""
    source_index: int = -1

    @property
    def transport(self) -> OCITransport:
        return TRANSPORT

    def string_within_transport(self) -> str:
        return format_layout_reference(self.path, self.image, self.source_index)

    def __str__(self) -> str:
        return f"oci:{self.string_within_transport()}"

    def docker_reference(self) -> Reference | None:
        return None

    def layout(self, options: OpenOptions | None = None) -> DirectoryLayout:
        return DirectoryLayout(Path(self.path),
                               options.shared_blob_dir if options else None)

    def open_source(self, options: OpenOptions | None = None) -> ImageSource:
        from ._source import OCISource

        return OCISource(self, self.layout(options))

    def open_destination(self, options: OpenOptions | None = None) -> ImageDestination:
        from ._dest import OCIDestination

        if self.source_index >= 0:
            raise InvalidReferenceError(
                f"{self}: a source index cannot be used as a destination")
        return OCIDestination(self, self.layout(options),
                              accept_uncompressed=bool(options and
                                                       options.accept_uncompressed_layers))

    def list_tags(self, options: OpenOptions | None = None) -> list[str]:
        """The image names (ref.name annotations) in the layout."""
        return ref_names(self.layout(options).read_index())

    def delete(self, options: OpenOptions | None = None) -> None:
        """Remove the image from index.json, and the blobs no other image uses."""
        layout = self.layout(options)
        with layout.locked():
            index = layout.read_index()
            layout.delete_image(resolve_descriptor(index, self.image, self.source_index,
                                                   str(self)))

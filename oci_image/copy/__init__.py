"""The copy engine: ``copy_image(src, dst, options)``.

Every blob is streamed once, verified against its digest and size while it streams (and,
by default, each layer's uncompressed content against the config's diff_id), and only then
committed by the destination. A copy that fails or is cancelled leaves the destination
as it was: no partial blob, no new index entry.

Use from asyncio with ``await asyncio.to_thread(copy_image, src, dst)``; cancel by setting
the ``cancel`` event from any thread.
"""

from __future__ import annotations

import logging
import threading

from ..interfaces import ImageReference
from ..transports import parse_image_name
from ._image import ImageCopier
from ._options import (
    CopyOptions,
    CopyResult,
    ManifestFormat,
    MultiArch,
    ProgressCallback,
    ProgressEvent,
    ProgressKind,
)

__all__ = [
    "CopyOptions",
    "CopyResult",
    "ManifestFormat",
    "MultiArch",
    "ProgressCallback",
    "ProgressEvent",
    "ProgressKind",
    "copy_image",
]

log = logging.getLogger("oci_image.copy")


def _reference(ref: ImageReference | str) -> ImageReference:
    return parse_image_name(ref) if isinstance(ref, str) else ref


def copy_image(src: ImageReference | str, dst: ImageReference | str,
               options: CopyOptions | None = None, *,
               progress: ProgressCallback | None = None,
               cancel: threading.Event | None = None) -> CopyResult:
    """Copy an image (or an index) from ``src`` to ``dst``.

    ``src`` and ``dst`` are references or ``transport:details`` strings as skopeo takes
    them (``oci:layout:tag``, ``docker-archive:x.tar``, ``dir:path`` ...).
    """
    options = options or CopyOptions()
    src_ref, dst_ref = _reference(src), _reference(dst)
    cancel = cancel or threading.Event()
    with src_ref.open_source(options.source_options) as source, \
            dst_ref.open_destination(options.dest_options) as dest:
        result = ImageCopier(source, dest, options, progress, cancel).copy_top()
    log.info("copied %s:%s to %s:%s (%s)", src_ref.transport.name,
             src_ref.string_within_transport(), dst_ref.transport.name,
             dst_ref.string_within_transport(), result.manifest_digest)
    return result

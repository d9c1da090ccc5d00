"""``oci-archive:PATH[:{REFERENCE|@INDEX}]`` -- an OCI image layout in a tar file.

Reading is done in place (no extraction): blobs are read from the archive with
``pread``. Writing builds a layout in a temporary directory and tars it at commit into a
temporary file renamed over PATH, so the archive is replaced whole (as skopeo does,
PATH holds only the copied image afterwards).
"""

from ._dest import OCIArchiveDestination
from ._source import OCIArchiveSource
from ._transport import TRANSPORT, OCIArchiveReference, OCIArchiveTransport

__all__ = [
    "TRANSPORT",
    "OCIArchiveDestination",
    "OCIArchiveReference",
    "OCIArchiveSource",
    "OCIArchiveTransport",
]

"""``oci:PATH[:{REFERENCE|@INDEX}]`` -- an OCI image layout directory.

Several images live in one layout, named by the ``org.opencontainers.image.ref.name``
annotation of their index.json entry. Writes are safe against concurrent writers of the
same layout (see :mod:`oci_image.transports._layout`).
"""

from ._dest import OCIDestination
from ._source import OCISource
from ._transport import TRANSPORT, OCIReference, OCITransport

__all__ = ["TRANSPORT", "OCIDestination", "OCIReference", "OCISource", "OCITransport"]

"""``docker-archive:PATH[:{NAME:TAG|@INDEX}]`` -- the ``docker save`` tarball format.

Reading takes any number of images (``manifest.json`` items, chosen by tag or by
``@index``), layers plain or compressed, and the legacy ``<id>/layer.tar`` layout.
Writing produces what ``docker load`` and ``podman load`` accept: layers uncompressed,
``manifest.json``, ``repositories`` and the legacy per-layer directories. Several
images go into one archive with :class:`DockerArchiveWriter`.
"""

from ._dest import DockerArchiveDestination, DockerArchiveWriter
from ._source import DockerArchiveSource
from ._transport import TRANSPORT, DockerArchiveReference, DockerArchiveTransport

__all__ = [
    "TRANSPORT",
    "DockerArchiveDestination",
    "DockerArchiveReference",
    "DockerArchiveSource",
    "DockerArchiveTransport",
    "DockerArchiveWriter",
]

"""``dir:PATH`` -- skopeo's debugging directory format: ``manifest.json``, blobs named
by their hex digest, a ``version`` file, ``signature-N`` files, and
``<hex>.manifest.json`` for the instances of an index."""

from ._dest import DirDestination
from ._source import DirSource
from ._transport import TRANSPORT, DirReference, DirTransport

__all__ = ["TRANSPORT", "DirDestination", "DirReference", "DirSource", "DirTransport"]

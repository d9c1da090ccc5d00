"""oci_image: references, digests, manifests, transports and a verifying copy engine for
OCI and Docker images -- containers/image for Python.

Transports are loaded lazily by name, so importing this package imports no transport.
"""

from .errors import OCIError

__all__ = ["OCIError"]
__version__ = "0.1.0"

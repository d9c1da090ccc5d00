"""oci_image: references, digests, manifests, transports and a verifying copy engine for
OCI and Docker images -- containers/image for Python.

The most used names are available here (``oci_image.copy_image``, ``oci_image.CopyOptions``
...) and imported on first use, so that ``import oci_image`` stays cheap and loads no
transport.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import OCIError
from .spec._lazy import lazy_exports

if TYPE_CHECKING:
    from .build import ImageBuilder
    from .copy import CopyOptions, CopyResult, ManifestFormat, MultiArch, copy_image
    from .image import Image, inspect_image, open_image
    from .transports import parse_image_name
    from .validate import validate_image

__all__ = [
    "CopyOptions",
    "CopyResult",
    "Image",
    "ImageBuilder",
    "ManifestFormat",
    "MultiArch",
    "OCIError",
    "copy_image",
    "inspect_image",
    "open_image",
    "parse_image_name",
    "validate_image",
]
__version__ = "0.1.0"

_LAZY = {
    "CopyOptions": "oci_image.copy",
    "CopyResult": "oci_image.copy",
    "ManifestFormat": "oci_image.copy",
    "MultiArch": "oci_image.copy",
    "copy_image": "oci_image.copy",
    "Image": "oci_image.image",
    "inspect_image": "oci_image.image",
    "open_image": "oci_image.image",
    "ImageBuilder": "oci_image.build",
    "parse_image_name": "oci_image.transports",
    "validate_image": "oci_image.validate",
}


if not TYPE_CHECKING:  # (mypy sees the imports above, and flags a name that is not one)
    __getattr__ = lazy_exports(globals(), _LAZY)

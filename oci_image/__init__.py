"""oci_image: references, digests, manifests, transports and a verifying copy engine for
OCI and Docker images -- containers/image for Python.

The most used names are available here (``oci_image.copy_image``, ``oci_image.CopyOptions``
...) and imported on first use, so that ``import oci_image`` stays cheap and loads no
transport.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import OCIError

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'oci_image' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

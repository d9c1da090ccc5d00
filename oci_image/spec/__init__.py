"""Pure data of the OCI image-spec and Docker's formats: digests, media types,
descriptors, platforms, manifests, indexes, image configs and references.

This subpackage is a leaf: it imports only the standard library, ``attrs`` and
``oci_image.errors``. ``oci_storage`` and ``oci_runtime`` use it directly.
"""

from ._json import DEFAULT_SIZE_LIMIT, FrozenDict
from .config import ContainerConfig, HistoryEntry, ImageConfig, RootFS, normalize_oci_config
from .descriptor import Descriptor
from .digest import (
    SUPPORTED_ALGORITHMS,
    Digest,
    DigestHasher,
    Readable,
    VerifiedStream,
    VerifyingReader,
)
from .manifest import (
    AnyManifest,
    ImageIndex,
    ImageManifest,
    Schema1Manifest,
    choose_instance,
    guess_media_type,
    manifest_digest,
    parse_manifest,
    schema1_config,
)
from .mediatype import (
    Compression,
    MediaType,
    compression_of,
    is_docker_schema1,
    is_index,
    is_layer,
    is_manifest,
    is_nondistributable,
    is_single_manifest,
    layer_media_type,
)
from .platform import Platform, host_platform, platform_preferences
from .reference import DEFAULT_DOMAIN, DEFAULT_TAG, Reference

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_SIZE_LIMIT",
    "DEFAULT_TAG",
    "SUPPORTED_ALGORITHMS",
    "AnyManifest",
    "Compression",
    "ContainerConfig",
    "Descriptor",
    "Digest",
    "DigestHasher",
    "FrozenDict",
    "HistoryEntry",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "MediaType",
    "Platform",
    "Readable",
    "Reference",
    "RootFS",
    "Schema1Manifest",
    "VerifiedStream",
    "VerifyingReader",
    "choose_instance",
    "compression_of",
    "guess_media_type",
    "host_platform",
    "is_docker_schema1",
    "is_index",
    "is_layer",
    "is_manifest",
    "is_nondistributable",
    "is_single_manifest",
    "layer_media_type",
    "manifest_digest",
    "normalize_oci_config",
    "parse_manifest",
    "platform_preferences",
    "schema1_config",
]

"""Pure data of the OCI image-spec and Docker's formats: digests, media types,
descriptors, platforms, manifests, indexes, image configs and references.

This subpackage is a leaf: it imports only the standard library, ``attrs`` and
``oci_image.errors``. ``oci_storage`` and ``oci_runtime`` use it directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:
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

#: where each exported name lives: a submodule loads on first use of one of its names,
#: so ``from oci_image.spec import Digest`` does not build the manifest classes
_EXPORTS = {
    "DEFAULT_SIZE_LIMIT": "._json", "FrozenDict": "._json",
    "ContainerConfig": ".config", "HistoryEntry": ".config", "ImageConfig": ".config",
    "RootFS": ".config", "normalize_oci_config": ".config",
    "Descriptor": ".descriptor",
    "SUPPORTED_ALGORITHMS": ".digest", "Digest": ".digest", "DigestHasher": ".digest",
    "Readable": ".digest", "VerifiedStream": ".digest", "VerifyingReader": ".digest",
    "AnyManifest": ".manifest", "ImageIndex": ".manifest", "ImageManifest": ".manifest",
    "Schema1Manifest": ".manifest", "choose_instance": ".manifest",
    "guess_media_type": ".manifest", "manifest_digest": ".manifest",
    "parse_manifest": ".manifest", "schema1_config": ".manifest",
    "Compression": ".mediatype", "MediaType": ".mediatype", "compression_of": ".mediatype",
    "is_docker_schema1": ".mediatype", "is_index": ".mediatype", "is_layer": ".mediatype",
    "is_manifest": ".mediatype", "is_nondistributable": ".mediatype",
    "is_single_manifest": ".mediatype", "layer_media_type": ".mediatype",
    "Platform": ".platform", "host_platform": ".platform",
    "platform_preferences": ".platform",
    "DEFAULT_DOMAIN": ".reference", "DEFAULT_TAG": ".reference", "Reference": ".reference",
}

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


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if not TYPE_CHECKING:  # (mypy sees the imports above, and flags a name that is not one)
    __getattr__ = lazy_exports(globals(), _EXPORTS)

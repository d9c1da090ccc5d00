"""Pure manifest conversions: OCI <-> Docker schema2, list <-> index, schema1 -> schema2,
and the choice of manifest formats and of an index instance. No I/O here.

Generated documents are byte-identical to containers/image's for the same input, so a
conversion made by us and one made by skopeo have the same digest.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ..errors import ConversionError, PreserveDigestsError, SpecError
from ..interfaces import DestinationCapabilities
from ..spec import (
    Compression,
    Descriptor,
    Digest,
    ImageIndex,
    ImageManifest,
    MediaType,
    compression_of,
    is_layer,
    is_nondistributable,
    layer_media_type,
    normalize_oci_config,
)

__all__ = [
    "convert_index",
    "convert_manifest",
    "index_candidates",
    "manifest_candidates",
]

_CONFIG_TYPES = {MediaType.OCI_CONFIG: True, MediaType.DOCKER_CONFIG: False}


def manifest_candidates(source_type: str, caps: DestinationCapabilities, *,
                        forced: str | None, can_modify: bool,
                        zstd_requested: bool) -> list[str]:
    """Manifest types to try writing, most preferred first (containers/image
    ``determineManifestConversion``): the source's own type when the destination takes
    it, then OCI, then Docker schema2. Schema2 is left out when zstd was asked for.

    A forced format (``--format``) is tried even where the destination does not list it
    as preferred (skopeo writes Docker manifests into OCI layouts when told to); a
    destination that truly cannot store it refuses it at ``put_manifest``."""
    if forced is not None:
        if forced != source_type and not can_modify:
            raise PreserveDigestsError(
                f"converting to {forced} would change the manifest digest")
        return [forced]
    ordered = [source_type, MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST]
    out: list[str] = []
    for t in ordered:
        if t in out or not caps.accepts(t):
            continue
        if t != source_type and not can_modify:
            continue
        if t == MediaType.DOCKER_MANIFEST and zstd_requested:
            continue
        out.append(t)
    if not out:
        if not can_modify:
            raise PreserveDigestsError(
                f"the destination does not accept {source_type} manifests, and converting "
                "would change the manifest digest")
        raise ConversionError(f"the destination accepts none of the formats {source_type} "
                              "can be converted to")
    return out


def index_candidates(source_type: str, caps: DestinationCapabilities, *,
                     forced: str | None, can_modify: bool) -> list[str]:
    if forced is not None:
        if forced != source_type and not can_modify:
            raise PreserveDigestsError(f"converting to {forced} would change the index digest")
        return [forced]
    out = [t for t in (source_type, MediaType.OCI_INDEX, MediaType.DOCKER_MANIFEST_LIST)
           if caps.accepts(t) and (t == source_type or can_modify)]
    if not out and not can_modify:
        raise PreserveDigestsError(f"the destination does not accept {source_type}, and "
                                   "converting would change the index digest")
    if not out:
        raise ConversionError(f"the destination does not accept {source_type} or any "
                              "index format it could be converted to")
    return list(dict.fromkeys(out))


def _layer_type(desc: Descriptor, new_compression: Compression | None, to_oci: bool,
                from_oci: bool) -> str:
    mt = desc.media_type
    if not is_layer(mt):
        if to_oci == from_oci and new_compression is None:
            return mt  # an artifact's opaque layer type stays as it is
        raise ConversionError(f"layer {desc.digest} has media type {mt}, which cannot be "
                              f"converted to {'OCI' if to_oci else 'Docker schema2'}")
    compression = new_compression if new_compression is not None else compression_of(mt)
    assert compression is not None
    result = layer_media_type(oci=to_oci, compression=compression,
                              nondistributable=is_nondistributable(mt))
    if result is None:
        raise ConversionError(f"layer {desc.digest} is {compression}-compressed, which a "
                              "Docker schema2 manifest cannot describe")
    return result


def convert_manifest(src: ImageManifest, target_type: str, config: Descriptor,
                     layers: Sequence[tuple[Descriptor, Compression | None]]) -> ImageManifest:
    """``src`` with the copied ``config`` and ``layers`` (each with the compression it
    now has, or None when unchanged), written as ``target_type``."""
    to_oci = target_type == MediaType.OCI_MANIFEST
    from_oci = src.is_oci
    new_layers = tuple(attrs.evolve(d, media_type=_layer_type(d, c, to_oci, from_oci))
                       for d, c in layers)
    config_type = config.media_type
    if to_oci != from_oci:
        if config_type not in _CONFIG_TYPES:
            raise ConversionError(
                f"config media type {config_type} (an artifact?) cannot be converted to "
                f"{target_type}")
        config_type = MediaType.OCI_CONFIG if to_oci else MediaType.DOCKER_CONFIG
        if not to_oci and (src.subject is not None or src.artifact_type):
            raise ConversionError("a Docker schema2 manifest cannot carry subject or "
                                  "artifactType")
        config = Descriptor(config_type, config.digest, config.size)
        new_layers = tuple(Descriptor(d.media_type, d.digest, d.size, urls=d.urls)
                           for d in new_layers)
        return ImageManifest(media_type=target_type, config=config, layers=new_layers)
    return attrs.evolve(src, config=attrs.evolve(config, media_type=config_type),
                        layers=new_layers)


def convert_index(src: ImageIndex, target_type: str, entries: Sequence[Descriptor]
                  ) -> ImageIndex:
    """``src`` with updated ``entries``, as ``target_type`` (OCI index / Docker list)."""
    if target_type == src.media_type:
        return attrs.evolve(src, manifests=tuple(entries))
    if target_type == MediaType.DOCKER_MANIFEST_LIST:
        for e in entries:
            if e.platform is None:
                raise ConversionError(f"index entry {e.digest} has no platform, which a "
                                      "Docker manifest list requires")
            if e.media_type != MediaType.DOCKER_MANIFEST:
                raise ConversionError(f"a Docker manifest list cannot hold {e.media_type}")
        if src.subject is not None or src.artifact_type:
            raise ConversionError("a Docker manifest list cannot carry subject or artifactType")
        return ImageIndex(media_type=target_type,
                          manifests=tuple(Descriptor(e.media_type, e.digest, e.size,
                                                     urls=e.urls, platform=e.platform)
                                          for e in entries))
    return ImageIndex(media_type=target_type, manifests=tuple(entries))




# --- Docker config -> OCI config ---------------------------------------------------


def oci_config_from_docker(raw: bytes) -> bytes:
    """The OCI config containers/image writes when it converts a Docker image to OCI."""
    try:
        return normalize_oci_config(raw)
    except SpecError as exc:
        raise ConversionError(f"cannot convert the config: {exc}") from exc


# --- Docker schema1 -> schema2 ------------------------------------------------------

def schema1_manifest(config_raw: bytes, layers: Sequence[Descriptor]) -> ImageManifest:
    """The schema2 manifest for converted schema1 layers (gzip layer type, as
    containers/image writes it)."""
    config = Descriptor(MediaType.DOCKER_CONFIG, Digest.from_bytes(config_raw),
                        len(config_raw))
    return ImageManifest(media_type=MediaType.DOCKER_MANIFEST, config=config,
                         layers=tuple(layers))


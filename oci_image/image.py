"""A read-only, verified view of one image from any source (go-containerregistry's
``partial``): the derived accessors every transport would otherwise write again.

    with open_image("oci:layout:tag") as img:
        img.digest, img.manifest, img.config, img.inspect()
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ._blobio import read_verified
from .errors import DigestMismatchError, SpecError
from .interfaces import ImageReference, ImageSource, OpenOptions
from .spec import (
    DEFAULT_SIZE_LIMIT,
    Descriptor,
    Digest,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    MediaType,
    Platform,
    Schema1Manifest,
    choose_instance,
    host_platform,
    manifest_digest,
    normalize_oci_config,
    parse_manifest,
    schema1_config,
)
from .spec._json import go_time
from .transports import parse_image_name

__all__ = ["Image", "inspect_image", "open_image"]

_IMAGE_CONFIGS = (MediaType.OCI_CONFIG, MediaType.DOCKER_CONFIG)


class Image:
    """One image of ``source``: the top-level manifest, or (for an index) the instance
    for ``platform`` -- or the index itself when ``resolve_index`` is False."""

    def __init__(self, source: ImageSource, *, platform: Platform | None = None,
                 resolve_index: bool = True) -> None:
        self.source = source
        raw, media_type = source.get_manifest(None)
        parsed = parse_manifest(raw, media_type)
        self.top_raw, self.top_media_type = raw, parsed.media_type
        if isinstance(parsed, ImageIndex) and resolve_index:
            desc = choose_instance(parsed, platform or host_platform())
            raw, media_type = source.get_manifest(desc.digest)
            actual = manifest_digest(raw, desc.digest.algorithm)
            if actual != desc.digest:
                raise DigestMismatchError(
                    f"manifest {desc.digest}: content has digest {actual}",
                    name=str(desc.digest), expected=desc.digest, actual=actual)
            parsed = parse_manifest(raw, media_type)
        self.raw = raw
        self.manifest = parsed
        self._config_raw: bytes | None = None

    @property
    def media_type(self) -> str:
        return self.manifest.media_type

    @property
    def digest(self) -> Digest:
        return manifest_digest(self.raw)

    def config_raw(self) -> bytes | None:
        """The config blob, verified (``None`` for schema1 and indexes)."""
        if not isinstance(self.manifest, ImageManifest):
            return None
        if self._config_raw is None:
            desc = self.manifest.config
            if desc.data is not None:
                self._config_raw = desc.data
            else:
                with contextlib.closing(self.source.get_blob(desc)) as stream:
                    self._config_raw = read_verified(stream, desc, "config",
                                                     DEFAULT_SIZE_LIMIT)
        return self._config_raw

    def config(self) -> ImageConfig | None:
        """The parsed image config; ``None`` for artifacts with other config types."""
        if isinstance(self.manifest, Schema1Manifest):
            return _schema1_config(self.manifest)
        if not isinstance(self.manifest, ImageManifest) or \
                self.manifest.config.media_type not in _IMAGE_CONFIGS:
            return None
        raw = self.config_raw()
        assert raw is not None
        return ImageConfig.from_json(raw)

    def layers(self) -> tuple[Descriptor, ...]:
        """Layer descriptors, base first (for schema1: every fsLayer, empty ones included,
        with unknown sizes shown as 0, as skopeo lists them)."""
        if isinstance(self.manifest, ImageManifest):
            return self.manifest.layers
        if isinstance(self.manifest, Schema1Manifest):
            return tuple(Descriptor(MediaType.DOCKER_LAYER_GZIP, d, 0)
                         for d, _ in self.manifest.layer_entries())
        return ()

    def oci_config_json(self) -> bytes | None:
        """The config as an OCI image config (what ``skopeo inspect --config`` shows):
        Docker configs and schema1 history converted, unknown fields dropped."""
        if isinstance(self.manifest, Schema1Manifest):
            # diff_ids are unknown without reading the layers: empty, as containers/image
            # leaves them (one per non-empty layer)
            unknown = ["" for _, empty in self.manifest.layer_entries() if not empty]
            return normalize_oci_config(schema1_config(self.manifest, unknown))
        raw = self.config_raw()
        if raw is None or not isinstance(self.manifest, ImageManifest) or \
                self.manifest.config.media_type not in _IMAGE_CONFIGS:
            return raw
        return normalize_oci_config(raw)

    def inspect(self, *, name: str | None = None, repo_tags: list[str] | None = None
                ) -> dict[str, Any]:
        """The JSON ``skopeo inspect`` prints."""
        config = self.config()
        out: dict[str, Any] = {}
        if name:
            out["Name"] = name
        # the digest one pulls by: the index's, when the image was chosen from one
        out["Digest"] = str(manifest_digest(self.top_raw))
        out["RepoTags"] = repo_tags or []
        container = config.config if config else None
        out["Created"] = go_time(config.created) if config and config.created else None
        out["DockerVersion"] = config.docker_version if config else ""
        out["Labels"] = dict(container.labels) if container and container.labels else None
        out["Architecture"] = config.architecture if config else ""
        out["Os"] = config.os if config else ""
        if config and config.variant:
            out["Variant"] = config.variant
        layers = self.layers()
        out["Layers"] = [str(d.digest) for d in layers]
        out["LayersData"] = [_layer_data(d) for d in layers]
        out["Env"] = list(container.env) if container and container.env else None
        return out


def _layer_data(desc: Descriptor) -> dict[str, Any]:
    return {"MIMEType": desc.media_type, "Digest": str(desc.digest), "Size": desc.size,
            "Annotations": dict(desc.annotations) or None}


def _schema1_config(s1: Schema1Manifest) -> ImageConfig | None:
    try:
        return ImageConfig.from_json(schema1_config(s1, []))
    except SpecError:
        return None


@contextlib.contextmanager
def open_image(ref: ImageReference | str, options: OpenOptions | None = None, *,
               platform: Platform | None = None, resolve_index: bool = True
               ) -> Iterator[Image]:
    """Open ``ref`` (a reference or ``transport:details``) as an :class:`Image`."""
    reference = parse_image_name(ref) if isinstance(ref, str) else ref
    with reference.open_source(options) as source:
        yield Image(source, platform=platform, resolve_index=resolve_index)


def inspect_image(ref: ImageReference | str, options: OpenOptions | None = None, *,
                  platform: Platform | None = None) -> dict[str, Any]:
    """``skopeo inspect`` as a function."""
    reference = parse_image_name(ref) if isinstance(ref, str) else ref
    with open_image(reference, options, platform=platform) as img:
        docker_ref = reference.docker_reference()
        # RepoTags lists a registry repository's tags (as skopeo does); local
        # transports have none.
        return img.inspect(name=docker_ref.name if docker_ref else None, repo_tags=[])

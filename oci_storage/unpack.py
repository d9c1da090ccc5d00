"""Unpack an image into a plain directory (a rootfs), as ``umoci unpack`` and
``podman image mount`` of a vfs store do: every layer applied in order onto one tree,
whiteouts deleting what lower layers made.

Reads through :class:`~oci_image.interfaces.ImageSource` only, so any transport works
(the caller opens the source: ``parse_image_name("oci:dir:tag").open_source()``).
Every blob is verified (digest and size), every layer's diff_id checked against the
config, and a failure removes the directory it was unpacking into.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import attrs

from oci_image.errors import ManifestTypeRejectedError
from oci_image.interfaces import ImageSource
from oci_image.spec import (
    Digest,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    Platform,
    VerifyingReader,
    choose_instance,
    host_platform,
    manifest_digest,
    parse_manifest,
)

from .apply import AppliedLayer, ApplyLimits, ApplyOptions, WhiteoutMode, apply_layer
from .errors import StorageError

__all__ = ["UnpackedImage", "unpack_image"]

#: the largest image config read into memory
_CONFIG_LIMIT = 8 << 20


@attrs.frozen
class UnpackedImage:
    """What :func:`unpack_image` made: where, from which manifest, with which config."""

    rootfs: Path
    manifest_digest: Digest
    config: ImageConfig
    layers: tuple[AppliedLayer, ...]


def _read_config(source: ImageSource, manifest: ImageManifest) -> bytes:
    desc = manifest.config
    if desc.size > _CONFIG_LIMIT:
        raise StorageError(f"image config {desc.digest} is {desc.size} bytes (limit "
                           f"{_CONFIG_LIMIT})")
    with contextlib.closing(source.get_blob(desc)) as blob:
        reader = VerifyingReader(blob, desc.digest, desc.size)
        data = bytearray()
        while chunk := reader.read(1 << 16):
            data += chunk
    return bytes(data)


def _resolve(source: ImageSource, platform: Platform | None) -> tuple[bytes, ImageManifest]:
    raw, media_type = source.get_manifest()
    parsed = parse_manifest(raw, media_type)
    if isinstance(parsed, ImageIndex):
        chosen = choose_instance(parsed, platform or host_platform())
        raw, media_type = source.get_manifest(chosen.digest)
        parsed = parse_manifest(raw, media_type)
    if not isinstance(parsed, ImageManifest):
        raise ManifestTypeRejectedError(
            f"unpacking {type(parsed).__name__} manifests is not supported")
    return raw, parsed


def unpack_image(source: ImageSource, rootfs: str | os.PathLike[str], *,
                 platform: Platform | None = None, options: ApplyOptions | None = None,
                 limits: ApplyLimits | None = None) -> UnpackedImage:
    """Apply every layer of the image ``source`` serves (the ``platform`` instance of an
    index, by default the host's) onto ``rootfs``, which must not exist or be an empty
    directory. On any error the directory is removed again (emptied, if it existed)."""
    root = Path(rootfs)
    existed = root.is_dir()
    if not existed and os.path.lexists(root):
        raise StorageError(f"unpack: {root} exists and is not a directory")
    if existed and os.listdir(root):
        raise StorageError(f"unpack: {root} is not empty")
    raw, manifest = _resolve(source, platform)
    config = ImageConfig.from_json(_read_config(source, manifest))
    diff_ids = config.rootfs.diff_ids
    if len(diff_ids) != len(manifest.layers):
        raise StorageError(f"the config lists {len(diff_ids)} diff_ids for "
                           f"{len(manifest.layers)} layers")
    if not existed:
        root.mkdir(mode=0o755, parents=True)
    applied: list[AppliedLayer] = []
    try:
        for desc, diff_id in zip(manifest.layers, diff_ids, strict=True):
            with contextlib.closing(source.get_blob(desc)) as blob:
                applied.append(apply_layer(
                    VerifyingReader(blob, desc.digest, desc.size), root,
                    mode=WhiteoutMode.DELETE, options=options, limits=limits,
                    expected_diff_id=diff_id))
    except BaseException:
        if existed:
            for entry in os.scandir(root):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
        else:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return UnpackedImage(root, manifest_digest(raw), config, tuple(applied))

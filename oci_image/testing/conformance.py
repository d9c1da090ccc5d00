"""The conformance suite every transport passes (the fsspec abstract-tests pattern):
subclass :class:`TransportConformance`, say how to build a reference, and pytest collects
the tests::

    class TestOCI(TransportConformance):
        def ref(self, base: Path, name: str) -> str:
            return f"oci:{base / 'layout'}:{name}"

Every test copies seeded random images through the transport and back, and ends in
:func:`oci_image.validate.validate_image`. Transports that cannot hold something (an
index in a docker archive) must refuse it with a typed error and leave the target as it
was.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ..build import BuiltImage
from ..copy import CopyOptions, CopyResult, MultiArch, ProgressEvent, ProgressKind, copy_image
from ..errors import (
    ConversionError,
    CopyCancelledError,
    DigestMismatchError,
    ManifestTypeRejectedError,
    OCIError,
)
from ..image import open_image
from ..spec import Compression, ImageConfig, ImageIndex, ImageManifest, Platform
from ..validate import validate_image
from .random import random_artifact, random_image, random_index

__all__ = ["TransportConformance", "corrupt_blob", "snapshot"]


def snapshot(path: Path) -> dict[str, str] | str | None:
    """The content of a file or directory tree, for before/after comparisons."""
    if not path.exists():
        return None
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    out: dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            p = Path(dirpath, name)
            out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def corrupt_blob(image: BuiltImage, index: int = -1) -> BuiltImage:
    """``image`` with one bit flipped in its ``index``-th layer blob."""
    manifest = ImageManifest.from_json(image.manifest, image.media_type)
    digest = manifest.layers[index].digest
    blob = image.blobs[digest]
    assert isinstance(blob, bytes)
    flipped = bytearray(blob)
    flipped[len(flipped) // 2] ^= 0x01
    blobs = dict(image.blobs)
    blobs[digest] = bytes(flipped)
    return BuiltImage(manifest=image.manifest, media_type=image.media_type, blobs=blobs,
                      platform=image.platform)


def _diff_ids(ref: str) -> tuple[Any, ...]:
    with open_image(ref) as img:
        config = img.config()
        assert config is not None
        return config.rootfs.diff_ids


class TransportConformance:
    """Base class of a transport's conformance tests."""

    #: whether the transport stores manifest lists / indexes
    supports_index: ClassVar[bool] = True
    #: whether OCI artifacts (unknown config types) survive
    supports_artifacts: ClassVar[bool] = True
    #: whether a copy into the transport keeps our gzip OCI manifests byte for byte
    preserves_manifest: ClassVar[bool] = True

    def ref(self, base: Path, name: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def target(self, base: Path) -> Path:
        """The file or directory the transport writes (for before/after snapshots)."""
        return base / "target"

    # helpers ------------------------------------------------------------------------

    def _back(self, base: Path, name: str) -> str:
        return f"oci:{base / 'back'}:{name}"

    def _roundtrip(self, image: BuiltImage, base: Path, options: CopyOptions | None = None
                   ) -> tuple[CopyResult, CopyResult]:
        there = copy_image(image.reference, self.ref(base, "t"), options)
        validate_image(self.ref(base, "t"))
        back = copy_image(self.ref(base, "t"), self._back(base, "t"), options)
        validate_image(self._back(base, "t"))
        return there, back

    # tests --------------------------------------------------------------------------

    def test_image_roundtrip(self, tmp_path: Path) -> None:
        image = random_image(seed=11, layers=3)
        there, back = self._roundtrip(image, tmp_path)
        if self.preserves_manifest:
            assert there.manifest_digest == image.digest
            assert back.manifest_digest == image.digest
        config_blob = image.blobs[ImageManifest.from_json(image.manifest).config.digest]
        assert isinstance(config_blob, bytes)
        original = ImageConfig.from_json(config_blob).rootfs.diff_ids
        assert _diff_ids(self.ref(tmp_path, "t")) == original
        assert _diff_ids(self._back(tmp_path, "t")) == original

    def test_zstd_layers_roundtrip(self, tmp_path: Path) -> None:
        image = random_image(seed=12, layers=2, compression=Compression.ZSTD)
        there, _ = self._roundtrip(image, tmp_path)
        if self.preserves_manifest:
            assert there.manifest_digest == image.digest
        with open_image(self._back(tmp_path, "t")) as img:
            assert isinstance(img.manifest, ImageManifest)
            expected = ImageManifest.from_json(image.manifest).layers
            if self.preserves_manifest:
                assert img.manifest.layers == expected

    def test_recompress_to_zstd(self, tmp_path: Path) -> None:
        image = random_image(seed=13, layers=2)
        options = CopyOptions(compression_format=Compression.ZSTD, compress=True)
        if not self.supports_artifacts:  # docker archives keep layers uncompressed
            options = CopyOptions(compression_format=Compression.ZSTD)
        copy_image(image.reference, self.ref(tmp_path, "t"), options)
        validate_image(self.ref(tmp_path, "t"))
        with open_image(self.ref(tmp_path, "t")) as img:
            assert isinstance(img.manifest, ImageManifest)
            for layer in img.manifest.layers:
                if self.supports_artifacts:
                    assert layer.media_type.endswith("+zstd")
                else:
                    assert "zstd" not in layer.media_type

    def test_index_all(self, tmp_path: Path) -> None:
        index = random_index(seed=14)
        options = CopyOptions(multi_arch=MultiArch.ALL)
        if not self.supports_index:
            before = snapshot(self.target(tmp_path))
            with pytest.raises((ConversionError, ManifestTypeRejectedError)):
                copy_image(index.reference, self.ref(tmp_path, "t"), options)
            assert snapshot(self.target(tmp_path)) == before
            return
        result = copy_image(index.reference, self.ref(tmp_path, "t"), options)
        assert result.manifest_digest == index.digest
        assert len(result.instances) == 3
        report = validate_image(self.ref(tmp_path, "t"))
        assert report.manifests == 4
        back = copy_image(self.ref(tmp_path, "t"), self._back(tmp_path, "t"), options)
        assert back.manifest_digest == index.digest

    def test_index_platform_choice(self, tmp_path: Path) -> None:
        index = random_index(seed=15)
        parsed = ImageIndex.from_json(index.manifest)
        arm64 = next(d for d in parsed.manifests
                     if d.platform and d.platform.architecture == "arm64")
        options = CopyOptions(platform=Platform("linux", "aarch64"))
        result = copy_image(index.reference, self.ref(tmp_path, "t"), options)
        if self.preserves_manifest:
            assert result.manifest_digest == arm64.digest
        with open_image(self.ref(tmp_path, "t")) as img:
            config = img.config()
            assert config is not None
            assert config.architecture == "arm64"

    def test_nondistributable_layers(self, tmp_path: Path) -> None:
        image = random_image(seed=16, layers=2, nondistributable=1)
        copy_image(image.reference, self.ref(tmp_path, "t"))
        with open_image(self.ref(tmp_path, "t")) as img:
            assert isinstance(img.manifest, ImageManifest)
            first = img.manifest.layers[0]
            if self.preserves_manifest:
                # kept by reference, as skopeo does, for destinations that accept URLs
                assert first.urls == ("https://example.com/layers/16-0",)
        validate_image(self.ref(tmp_path, "t"))

    def test_artifact(self, tmp_path: Path) -> None:
        artifact = random_artifact(seed=17)
        if not self.supports_artifacts:
            before = snapshot(self.target(tmp_path))
            with pytest.raises(OCIError):
                copy_image(artifact.reference, self.ref(tmp_path, "t"))
            assert snapshot(self.target(tmp_path)) == before
            return
        result = copy_image(artifact.reference, self.ref(tmp_path, "t"))
        assert result.manifest_digest == artifact.digest
        validate_image(self.ref(tmp_path, "t"))

    def test_corrupt_source_leaves_nothing(self, tmp_path: Path) -> None:
        good = random_image(seed=18, layers=2)
        copy_image(good.reference, self.ref(tmp_path, "t"))
        before = snapshot(self.target(tmp_path))
        bad = corrupt_blob(random_image(seed=19, layers=3), index=1)
        with pytest.raises(DigestMismatchError) as info:
            copy_image(bad.reference, self.ref(tmp_path, "t"))
        layer = ImageManifest.from_json(bad.manifest).layers[1]
        assert str(layer.digest) in str(info.value)
        assert snapshot(self.target(tmp_path)) == before
        validate_image(self.ref(tmp_path, "t"))

    def test_cancel_leaves_nothing(self, tmp_path: Path) -> None:
        image = random_image(seed=20, layers=4, files_per_layer=40, max_file_size=64 << 10)
        before = snapshot(self.target(tmp_path))
        cancel = threading.Event()

        def progress(event: ProgressEvent) -> None:
            if event.kind is ProgressKind.PROGRESS:
                cancel.set()

        with pytest.raises(CopyCancelledError):
            copy_image(image.reference, self.ref(tmp_path, "t"), CopyOptions(jobs=2),
                       progress=progress, cancel=cancel)
        assert snapshot(self.target(tmp_path)) == before

    def test_overwrite_same_name(self, tmp_path: Path) -> None:
        first = random_image(seed=21)
        second = random_image(seed=22)
        copy_image(first.reference, self.ref(tmp_path, "t"))
        result = copy_image(second.reference, self.ref(tmp_path, "t"))
        with open_image(self.ref(tmp_path, "t")) as img:
            if self.preserves_manifest:
                assert img.digest == result.manifest_digest == second.digest
            else:  # the manifest is synthesised on read: compare what it points to
                assert isinstance(img.manifest, ImageManifest)
                written = ImageManifest.from_json(result.manifest)
                assert img.manifest.config.digest == written.config.digest
                assert [d.digest for d in img.manifest.layers] == \
                    [d.digest for d in written.layers]

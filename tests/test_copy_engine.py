"""The copy engine's decisions: formats, compression, platforms, reuse, signatures."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from oci_image.copy import (
    CopyOptions,
    ManifestFormat,
    MultiArch,
    ProgressEvent,
    ProgressKind,
    copy_image,
)
from oci_image.errors import (
    ConversionError,
    CopyError,
    ManifestTypeRejectedError,
    NoMatchingPlatformError,
    PreserveDigestsError,
)
from oci_image.image import open_image
from oci_image.interfaces import OpenOptions
from oci_image.spec import (
    Compression,
    Digest,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    MediaType,
    Platform,
    compression_of,
)
from oci_image.testing.conformance import snapshot
from oci_image.testing.random import random_image, random_index
from oci_image.transports import parse_image_name
from oci_image.transports.oci import OCIDestination, OCIReference
from oci_image.validate import validate_image


def manifest_of(ref: str) -> ImageManifest:
    with open_image(ref) as img:
        assert isinstance(img.manifest, ImageManifest)
        return img.manifest


def config_of(ref: str) -> ImageConfig:
    with open_image(ref) as img:
        config = img.config()
        assert config is not None
        return config


# --- formats ---------------------------------------------------------------------------


def test_format_v2s2_then_back_to_oci(tmp_path: Path) -> None:
    image = random_image(seed=1)
    copy_image(image.reference, f"dir:{tmp_path}/d",
               CopyOptions(manifest_format=ManifestFormat.V2S2))
    docker = manifest_of(f"dir:{tmp_path}/d")
    assert docker.media_type == MediaType.DOCKER_MANIFEST
    assert docker.config.media_type == MediaType.DOCKER_CONFIG
    assert {layer.media_type for layer in docker.layers} == {MediaType.DOCKER_LAYER_GZIP}
    original = ImageManifest.from_json(image.manifest)
    assert docker.config.digest == original.config.digest  # config bytes kept
    assert [d.digest for d in docker.layers] == [d.digest for d in original.layers]
    back = copy_image(f"dir:{tmp_path}/d", f"oci:{tmp_path}/o:x",
                      CopyOptions(manifest_format=ManifestFormat.OCI))
    # The builder writes configs exactly as Go would, so the Docker->OCI config rewrite
    # (which skopeo does) gives the same bytes and the original annotations are the only
    # difference between the manifests.
    assert manifest_of(f"oci:{tmp_path}/o:x").config.digest == original.config.digest
    assert back.media_type == MediaType.OCI_MANIFEST
    validate_image(f"oci:{tmp_path}/o:x")


def test_docker_config_rewritten_like_containers_image(tmp_path: Path) -> None:
    image = random_image(seed=2, oci=False)
    copy_image(image.reference, f"oci:{tmp_path}/o:x")
    written = manifest_of(f"oci:{tmp_path}/o:x")
    assert written.config.media_type == MediaType.OCI_CONFIG
    with open_image(f"oci:{tmp_path}/o:x") as img:
        raw = img.config_raw()
    assert raw is not None
    doc = json.loads(raw)
    assert list(doc)[:3] == ["created", "architecture", "os"]
    assert "config" in doc
    assert "rootfs" in doc


def test_preserve_digests_refuses_conversion(tmp_path: Path) -> None:
    image = random_image(seed=3)
    target = tmp_path / "a.tar"
    with pytest.raises(PreserveDigestsError):
        copy_image(image.reference, f"docker-archive:{target}",
                   CopyOptions(preserve_digests=True))
    assert not target.exists()
    result = copy_image(image.reference, f"oci:{tmp_path}/o:x",
                        CopyOptions(preserve_digests=True))
    assert result.manifest_digest == image.digest


def test_preserve_digests_keeps_uncompressed_layers(tmp_path: Path) -> None:
    image = random_image(seed=4, compression=Compression.NONE)
    result = copy_image(image.reference, f"oci:{tmp_path}/o:x",
                        CopyOptions(preserve_digests=True))
    assert result.manifest_digest == image.digest
    # without it, an oci: destination gzips uncompressed layers, as skopeo does
    other = copy_image(image.reference, f"oci:{tmp_path}/o2:x")
    assert other.manifest_digest != image.digest
    assert all(compression_of(d.media_type) is Compression.GZIP
               for d in manifest_of(f"oci:{tmp_path}/o2:x").layers)
    kept = copy_image(image.reference, f"oci:{tmp_path}/o3:x", CopyOptions(
        dest_options=OpenOptions(accept_uncompressed_layers=True)))
    assert kept.manifest_digest == image.digest


class _RejectsOCI(OCIDestination):
    """An oci: destination that refuses OCI manifests, as some registries do."""

    rejected: list[str]

    def put_manifest(self, raw: bytes, media_type: str, instance: Digest | None = None
                     ) -> None:
        if media_type == MediaType.OCI_MANIFEST:
            self.rejected.append(media_type)
            raise ManifestTypeRejectedError("no OCI here")
        super().put_manifest(raw, media_type, instance)


def test_rejected_format_falls_back(tmp_path: Path) -> None:
    image = random_image(seed=5)
    ref = OCIReference(str(tmp_path / "o"), "x")
    from oci_image.copy._image import ImageCopier
    from oci_image.transports._layout import DirectoryLayout

    dest = _RejectsOCI(ref, DirectoryLayout(tmp_path / "o"))
    dest.rejected = []
    dest._capabilities = type(dest.capabilities)(  # accept both, prefer OCI
        supported_manifest_types=(MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST))
    with image.reference.open_source() as src, dest:
        result = ImageCopier(src, dest, CopyOptions(), None, threading.Event()).copy_top()
    assert dest.rejected == [MediaType.OCI_MANIFEST]
    assert result.media_type == MediaType.DOCKER_MANIFEST
    validate_image(f"oci:{tmp_path}/o:x")


def test_artifact_cannot_become_docker(tmp_path: Path) -> None:
    from oci_image.testing.random import random_artifact

    with pytest.raises(ConversionError, match="cannot be converted"):
        copy_image(random_artifact().reference, f"dir:{tmp_path}/d",
                   CopyOptions(manifest_format=ManifestFormat.V2S2))
    assert not (tmp_path / "d").exists()


# --- compression -----------------------------------------------------------------------


@pytest.mark.parametrize(("source", "wanted"), [
    (Compression.GZIP, Compression.ZSTD),
    (Compression.ZSTD, Compression.GZIP),
    (Compression.NONE, Compression.ZSTD),
])
def test_recompression(tmp_path: Path, source: Compression, wanted: Compression) -> None:
    image = random_image(seed=6, compression=source)
    copy_image(image.reference, f"oci:{tmp_path}/o:x",
               CopyOptions(compression_format=wanted))
    layers = manifest_of(f"oci:{tmp_path}/o:x").layers
    assert {compression_of(d.media_type) for d in layers} == {wanted}
    assert all(d.annotations.get("org.example.layer") is not None for d in layers)
    assert config_of(f"oci:{tmp_path}/o:x").rootfs.diff_ids == \
        ImageConfig.from_json(image.blobs[ImageManifest.from_json(image.manifest).config.digest]
                              ).rootfs.diff_ids  # type: ignore[arg-type]
    validate_image(f"oci:{tmp_path}/o:x")


def test_decompress_to_dir(tmp_path: Path) -> None:
    image = random_image(seed=7, compression=Compression.ZSTD)
    copy_image(image.reference, f"dir:{tmp_path}/d", CopyOptions(decompress=True))
    layers = manifest_of(f"dir:{tmp_path}/d").layers
    assert [d.digest for d in layers] == list(config_of(f"dir:{tmp_path}/d").rootfs.diff_ids)
    assert {d.media_type for d in layers} == {MediaType.OCI_LAYER}


def test_zstd_level_is_used(tmp_path: Path) -> None:
    image = random_image(seed=8, files_per_layer=50, max_file_size=16 << 10)
    sizes = {}
    for level in (1, 19):
        copy_image(image.reference, f"dir:{tmp_path}/l{level}", CopyOptions(
            compress=True, compression_format=Compression.ZSTD, compression_level=level))
        sizes[level] = sum(d.size for d in manifest_of(f"dir:{tmp_path}/l{level}").layers)
    assert sizes[19] < sizes[1]


def test_zstd_never_in_schema2(tmp_path: Path) -> None:
    zstd = random_image(seed=9, compression=Compression.ZSTD)
    with pytest.raises(ConversionError, match="zstd"):
        copy_image(zstd.reference, f"dir:{tmp_path}/a",
                   CopyOptions(manifest_format=ManifestFormat.V2S2))
    with pytest.raises(ConversionError):
        copy_image(random_image(seed=9).reference, f"dir:{tmp_path}/b",
                   CopyOptions(manifest_format=ManifestFormat.V2S2, compress=True,
                               compression_format=Compression.ZSTD))
    # a docker archive stores layers uncompressed, so zstd sources are fine there
    copy_image(zstd.reference, f"docker-archive:{tmp_path}/c.tar")
    for layer in manifest_of(f"docker-archive:{tmp_path}/c.tar").layers:
        assert "zstd" not in layer.media_type
    validate_image(f"docker-archive:{tmp_path}/c.tar")


# --- indexes ---------------------------------------------------------------------------


def test_platform_choice_and_variant_fallback(tmp_path: Path) -> None:
    index = random_index(seed=10)
    parsed = ImageIndex.from_json(index.manifest)
    by_arch = {d.platform.architecture: d for d in parsed.manifests if d.platform}
    # an arm v8 CPU runs arm v7 images when there is no better one
    result = copy_image(index.reference, f"oci:{tmp_path}/o:arm",
                        CopyOptions(platform=Platform("linux", "arm", "v8")))
    assert result.manifest_digest == by_arch["arm"].digest
    with pytest.raises(NoMatchingPlatformError, match="linux/amd64"):
        copy_image(index.reference, f"oci:{tmp_path}/o:win",
                   CopyOptions(platform=Platform("windows", "amd64")))
    assert ref_names(tmp_path / "o") == ["arm"]


def ref_names(layout: Path) -> list[str]:
    ref = parse_image_name(f"oci:{layout}")
    assert isinstance(ref, OCIReference)
    return ref.list_tags()


def test_index_only_copies_a_sparse_index(tmp_path: Path) -> None:
    index = random_index(seed=11)
    result = copy_image(index.reference, f"oci:{tmp_path}/o:i",
                        CopyOptions(multi_arch=MultiArch.INDEX_ONLY))
    assert result.manifest_digest == index.digest
    blobs = list((tmp_path / "o" / "blobs" / "sha256").iterdir())
    assert [b.name for b in blobs] == [index.digest.hex]


def test_docker_list_to_oci_converts_list_and_instances(tmp_path: Path) -> None:
    index = random_index(seed=12, oci=False)
    result = copy_image(index.reference, f"oci:{tmp_path}/o:i",
                        CopyOptions(multi_arch=MultiArch.ALL))
    assert result.media_type == MediaType.OCI_INDEX
    converted = ImageIndex.from_json(result.manifest)
    assert {d.media_type for d in converted.manifests} == {MediaType.OCI_MANIFEST}
    assert [d.platform for d in converted.manifests] == \
        [d.platform for d in ImageIndex.from_json(index.manifest).manifests]
    assert validate_image(f"oci:{tmp_path}/o:i").manifests == 4


def test_oci_index_forced_to_docker_list(tmp_path: Path) -> None:
    index = random_index(seed=13)
    result = copy_image(index.reference, f"dir:{tmp_path}/d",
                        CopyOptions(multi_arch=MultiArch.ALL, manifest_format=ManifestFormat.V2S2))
    assert result.media_type == MediaType.DOCKER_MANIFEST_LIST
    listed = ImageIndex.from_json(result.manifest)
    assert {d.media_type for d in listed.manifests} == {MediaType.DOCKER_MANIFEST}
    validate_image(f"dir:{tmp_path}/d")


# --- reuse, progress, jobs -------------------------------------------------------------


def test_second_copy_reuses_every_blob(tmp_path: Path) -> None:
    image = random_image(seed=14, layers=3)
    first = copy_image(image.reference, f"oci:{tmp_path}/o:a")
    assert (first.blobs_copied, first.blobs_skipped) == (4, 0)
    second = copy_image(f"oci:{tmp_path}/o:a", f"oci:{tmp_path}/o:b")
    assert (second.blobs_copied, second.blobs_skipped) == (0, 4)
    assert ref_names(tmp_path / "o") == ["a", "b"]


def test_progress_events(tmp_path: Path) -> None:
    image = random_image(seed=15, layers=2, files_per_layer=30, max_file_size=64 << 10)
    events: list[ProgressEvent] = []
    lock = threading.Lock()

    def record(event: ProgressEvent) -> None:
        with lock:
            events.append(event)

    copy_image(image.reference, f"oci:{tmp_path}/o:a", progress=record)
    manifest = ImageManifest.from_json(image.manifest)
    for desc in (manifest.config, *manifest.layers):
        kinds = [e.kind for e in events if e.descriptor.digest == desc.digest]
        assert kinds[0] is ProgressKind.STARTED
        assert kinds[-1] is ProgressKind.DONE
        offsets = [e.offset for e in events if e.descriptor.digest == desc.digest
                   and e.kind is ProgressKind.PROGRESS]
        assert offsets == sorted(offsets)
        assert offsets[-1] == desc.size
    assert events[-1].kind is ProgressKind.MANIFEST


@pytest.mark.parametrize("jobs", [1, 2, 16])
def test_jobs(tmp_path: Path, jobs: int) -> None:
    image = random_image(seed=16, layers=5)
    result = copy_image(image.reference, f"oci:{tmp_path}/o:x", CopyOptions(jobs=jobs))
    assert result.manifest_digest == image.digest


def test_jobs_must_be_positive() -> None:
    with pytest.raises(ValueError, match="jobs"):
        CopyOptions(jobs=0)


# --- signatures ------------------------------------------------------------------------


def test_dir_signatures_are_copied_or_refused(tmp_path: Path) -> None:
    image = random_image(seed=17)
    copy_image(image.reference, f"dir:{tmp_path}/signed")
    (tmp_path / "signed" / "signature-1").write_bytes(b"sig one")
    (tmp_path / "signed" / "signature-2").write_bytes(b"sig two")
    copy_image(f"dir:{tmp_path}/signed", f"dir:{tmp_path}/copy")
    assert (tmp_path / "copy" / "signature-1").read_bytes() == b"sig one"
    assert (tmp_path / "copy" / "signature-2").read_bytes() == b"sig two"
    before = snapshot(tmp_path / "o")
    with pytest.raises(CopyError, match="--remove-signatures"):
        copy_image(f"dir:{tmp_path}/signed", f"oci:{tmp_path}/o:x")
    assert snapshot(tmp_path / "o") == before
    # signed images must not change: converting is refused
    with pytest.raises(PreserveDigestsError):
        copy_image(f"dir:{tmp_path}/signed", f"docker-archive:{tmp_path}/a.tar")
    copy_image(f"dir:{tmp_path}/signed", f"oci:{tmp_path}/o:x",
               CopyOptions(remove_signatures=True))
    validate_image(f"oci:{tmp_path}/o:x")


def test_skipping_present_blobs_keeps_the_manifest(tmp_path: Path) -> None:
    """Blobs already in the destination are skipped, but their descriptors (with layer
    annotations) stay as in the source manifest: the copy's digest does not change."""
    image = random_image(seed=77)  # OCI, with layer annotations
    first = copy_image(image.reference, f"oci:{tmp_path}/l:a")
    second = copy_image(image.reference, f"oci:{tmp_path}/l:b")
    assert second.blobs_skipped == first.blobs_copied
    assert first.manifest_digest == second.manifest_digest == image.digest

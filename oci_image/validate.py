"""Check an image completely (go-containerregistry's ``validate``): every manifest and
blob is read and verified against its digest and size, and every layer's uncompressed
digest against the config's diff_ids. Every round trip in the tests ends here.

    report = validate_image("oci:/srv/layout:v1")
"""

from __future__ import annotations

import contextlib

import attrs

from ._blobio import CHUNK, DecompressingReader, PeekReader, detect_compression, read_verified
from .errors import DiffIDMismatchError, DigestMismatchError, SpecError
from .interfaces import ImageReference, ImageSource, OpenOptions
from .spec import (
    DEFAULT_SIZE_LIMIT,
    Descriptor,
    Digest,
    DigestHasher,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    MediaType,
    Schema1Manifest,
    VerifyingReader,
    manifest_digest,
    parse_manifest,
)
from .transports import parse_image_name

__all__ = ["ValidationReport", "validate_image"]


@attrs.frozen
class ValidationReport:
    manifests: int
    blobs: int
    bytes: int
    #: non-distributable layers skipped because the source does not hold them
    foreign_skipped: int = 0


@attrs.define
class _Counter:
    manifests: int = 0
    blobs: int = 0
    bytes: int = 0
    foreign: int = 0


def validate_image(ref: ImageReference | str, options: OpenOptions | None = None, *,
                   check_diff_ids: bool = True) -> ValidationReport:
    """Verify everything ``ref`` holds; raise the first problem as a typed error."""
    reference = parse_image_name(ref) if isinstance(ref, str) else ref
    counter = _Counter()
    with reference.open_source(options) as source:
        raw, media_type = source.get_manifest(None)
        _validate_manifest(source, raw, media_type, None, counter, check_diff_ids)
    return ValidationReport(counter.manifests, counter.blobs, counter.bytes, counter.foreign)


def _validate_manifest(source: ImageSource, raw: bytes, media_type: str,
                       expected: Digest | None, counter: _Counter, check_diff_ids: bool
                       ) -> None:
    if expected is not None:
        actual = manifest_digest(raw, expected.algorithm)
        if actual != expected:
            raise DigestMismatchError(f"manifest {expected}: content has digest {actual}",
                                      name=str(expected), expected=expected, actual=actual)
    parsed = parse_manifest(raw, media_type)
    counter.manifests += 1
    if isinstance(parsed, ImageIndex):
        for desc in parsed.manifests:
            child_raw, child_type = source.get_manifest(desc.digest)
            _validate_manifest(source, child_raw, child_type or desc.media_type, desc.digest,
                               counter, check_diff_ids)
        return
    if isinstance(parsed, Schema1Manifest):
        for digest, _ in parsed.layer_entries():
            _blob(source, Descriptor(MediaType.DOCKER_LAYER_GZIP, digest, 0), None, counter,
                  size_known=False)
        return
    _validate_image(source, parsed, counter, check_diff_ids)


def _validate_image(source: ImageSource, manifest: ImageManifest, counter: _Counter,
                    check_diff_ids: bool) -> None:
    config_desc = manifest.config
    with contextlib.closing(source.get_blob(config_desc)) as stream:
        config_raw = read_verified(stream, config_desc, "config", DEFAULT_SIZE_LIMIT)
    counter.blobs += 1
    counter.bytes += len(config_raw)
    diff_ids: tuple[Digest, ...] | None = None
    if check_diff_ids and config_desc.media_type in (MediaType.OCI_CONFIG,
                                                     MediaType.DOCKER_CONFIG):
        try:
            diff_ids = ImageConfig.from_json(config_raw).rootfs.diff_ids
        except SpecError as exc:
            raise SpecError(f"config {config_desc.digest}: {exc}") from exc
        if len(diff_ids) != len(manifest.layers):
            raise DiffIDMismatchError(
                f"config {config_desc.digest} lists {len(diff_ids)} diff_ids for "
                f"{len(manifest.layers)} layers", name=str(config_desc.digest))
    for i, layer in enumerate(manifest.layers):
        try:
            stream = source.get_blob(layer)
        except LookupError:
            if layer.urls:
                counter.foreign += 1
                continue
            raise
        stream.close()
        _blob(source, layer, diff_ids[i] if diff_ids else None, counter)


def _blob(source: ImageSource, desc: Descriptor, diff_id: Digest | None, counter: _Counter,
          *, size_known: bool = True) -> None:
    with contextlib.closing(source.get_blob(desc)) as stream:
        verified = VerifyingReader(stream, desc.digest, desc.size if size_known else None,
                                   name=f"blob {desc.digest}")
        peek = PeekReader(verified)
        kind = detect_compression(peek.peek(6))
        reader = DecompressingReader(peek, kind) if diff_id is not None else peek
        hasher = DigestHasher()
        while chunk := reader.read(CHUNK):
            hasher.update(chunk)
        verified.read_all_and_verify()
    counter.blobs += 1
    counter.bytes += verified.bytes_read
    if diff_id is not None and hasher.digest() != diff_id:
        raise DiffIDMismatchError(
            f"layer {desc.digest}: uncompressed digest {hasher.digest()} does not match "
            f"diff_id {diff_id}", name=str(desc.digest), expected=diff_id,
            actual=hasher.digest())

"""Copying a whole image or index: the steps, each a small method.

    copy_top           read the top-level manifest; dispatch on index / image
    _copy_index        pick an instance (system), or copy all instances and the index
    _copy_image        plan formats -> read config -> copy blobs in parallel ->
                       build manifest -> write (with format fallbacks) -> signatures
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

import attrs

from .._blobio import read_verified
from ..errors import (
    ConversionError,
    CopyCancelledError,
    CopyError,
    DiffIDMismatchError,
    DigestMismatchError,
    ManifestTypeRejectedError,
    PreserveDigestsError,
    SpecError,
    UnsupportedMediaTypeError,
)
from ..interfaces import (
    AcceptsSignatures,
    BlobInfo,
    ImageDestination,
    ImageSource,
    LayerCompression,
    SupportsSignatures,
)
from ..spec import (
    DEFAULT_SIZE_LIMIT,
    Compression,
    Descriptor,
    Digest,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    MediaType,
    Schema1Manifest,
    choose_instance,
    host_platform,
    is_layer,
    manifest_digest,
    parse_manifest,
    schema1_config,
)
from ._blob import BlobCopier, BlobJob, BlobResult
from ._convert import (
    convert_index,
    convert_manifest,
    index_candidates,
    manifest_candidates,
    oci_config_from_docker,
    schema1_manifest,
)
from ._options import (
    CopyOptions,
    CopyResult,
    MultiArch,
    ProgressCallback,
    ProgressEvent,
    ProgressKind,
)

log = logging.getLogger("oci_image.copy")

_IMAGE_CONFIG_TYPES = (MediaType.OCI_CONFIG, MediaType.DOCKER_CONFIG)


@attrs.frozen
class _Written:
    raw: bytes
    media_type: str
    digest: Digest


class ImageCopier:
    """One copy from ``src`` to ``dest`` (not reusable)."""

    def __init__(self, src: ImageSource, dest: ImageDestination, options: CopyOptions,
                 progress: ProgressCallback | None, cancel: threading.Event) -> None:
        self.src = src
        self.dest = dest
        self.options = options
        self.progress = progress
        self.cancel = cancel
        #: set when one blob failed, to stop the others
        self._abort = threading.Event()
        self.blobs = BlobCopier(src, dest, options, progress, (cancel, self._abort))
        self.copied = 0
        self.skipped = 0
        self._count_lock = threading.Lock()
        self._jobs = options.jobs if dest.capabilities.thread_safe_put_blob else 1
        self._may_modify: bool | None = None

    # --- entry point ---------------------------------------------------------------

    def copy_top(self) -> CopyResult:
        raw, media_type = self.src.get_manifest(None)
        parsed = parse_manifest(raw, media_type)
        instances: tuple[Digest, ...] = ()
        if isinstance(parsed, ImageIndex):
            written, instances = self._copy_index(raw, parsed)
        else:
            written = self._copy_image(raw, parsed, instance=None, list_type=None)
        self._copy_signatures(None, written)
        self.dest.commit()
        return CopyResult(manifest_digest=written.digest, media_type=written.media_type,
                          manifest=written.raw, instances=instances,
                          blobs_copied=self.copied, blobs_skipped=self.skipped)

    # --- indexes -------------------------------------------------------------------

    def _copy_index(self, raw: bytes, index: ImageIndex
                    ) -> tuple[_Written, tuple[Digest, ...]]:
        mode = self.options.multi_arch
        if mode is MultiArch.SYSTEM:
            wanted = self.options.platform or host_platform()
            chosen = choose_instance(index, wanted)
            log.info("chose %s (%s) from the index", chosen.digest, chosen.platform)
            inst_raw, inst_type = self._get_instance(chosen)
            parsed = parse_manifest(inst_raw, inst_type)
            if isinstance(parsed, ImageIndex):
                return self._copy_index(inst_raw, parsed)
            return self._copy_image(inst_raw, parsed, instance=None, list_type=None), ()
        can_modify = self._can_modify()
        forced = self.options.manifest_format.index_type if self.options.manifest_format \
            else None
        list_types = index_candidates(index.media_type, self.dest.capabilities,
                                      forced=forced, can_modify=can_modify)
        entries: list[Descriptor] = list(index.manifests)
        instances: list[Digest] = []
        if mode is MultiArch.ALL:
            for i, desc in enumerate(index.manifests):
                entries[i] = self._copy_instance(desc, list_types[0])
                instances.append(entries[i].digest)
        return self._write_index(raw, index, entries, list_types), tuple(instances)

    def _get_instance(self, desc: Descriptor) -> tuple[bytes, str]:
        raw, media_type = self.src.get_manifest(desc.digest)
        actual = manifest_digest(raw, desc.digest.algorithm)
        if actual != desc.digest:
            raise DigestMismatchError(
                f"manifest {desc.digest}: the source returned content with digest {actual}",
                name=str(desc.digest), expected=desc.digest, actual=actual)
        return raw, media_type or desc.media_type

    def _copy_instance(self, desc: Descriptor, list_type: str) -> Descriptor:
        raw, media_type = self._get_instance(desc)
        parsed = parse_manifest(raw, media_type)
        if isinstance(parsed, ImageIndex):
            raise UnsupportedMediaTypeError(f"nested index {desc.digest} is not supported")
        written = self._copy_image(raw, parsed, instance=desc.digest, list_type=list_type)
        self._copy_signatures(written.digest, written)
        return attrs.evolve(desc, media_type=written.media_type, digest=written.digest,
                            size=len(written.raw))

    def _write_index(self, raw: bytes, index: ImageIndex, entries: Sequence[Descriptor],
                     list_types: Sequence[str]) -> _Written:
        errors: list[Exception] = []
        for list_type in list_types:
            if list_type == index.media_type and tuple(entries) == index.manifests:
                new_raw = raw
            else:
                try:
                    new_raw = convert_index(index, list_type, entries).to_json()
                except ConversionError as exc:
                    errors.append(exc)
                    continue
            if new_raw != raw and not self._can_modify():
                raise PreserveDigestsError("copying the index would change its digest")
            try:
                return self._put_manifest(new_raw, list_type, None)
            except ManifestTypeRejectedError as exc:
                errors.append(exc)
        raise errors[0] if errors else ConversionError("no index format could be written")

    # --- single images -------------------------------------------------------------

    def _can_modify(self) -> bool:
        """Whether manifests may change: not with --preserve-digests, nor for a signed
        image whose signatures are kept (computed once per copy)."""
        if self._may_modify is None:
            signed = isinstance(self.src, SupportsSignatures) and \
                bool(self.src.get_signatures(None))
            self._may_modify = not self.options.preserve_digests and (
                self.options.remove_signatures or not signed)
        return self._may_modify

    def _copy_image(self, raw: bytes, manifest: ImageManifest | Schema1Manifest, *,
                    instance: Digest | None, list_type: str | None) -> _Written:
        if isinstance(manifest, Schema1Manifest):
            return self._copy_schema1(raw, manifest, instance=instance, list_type=list_type)
        can_modify = self._can_modify()
        candidates = self._candidates(manifest.media_type, can_modify, list_type)
        config_raw = self._read_config(manifest.config)
        config = self._parse_config(manifest, config_raw)
        diff_ids = self._expected_diff_ids(manifest, config)
        jobs = {manifest.config.digest: BlobJob(manifest.config, is_config=True,
                                                data=config_raw)}
        for i, layer in enumerate(manifest.layers):
            if layer.urls and self.dest.capabilities.accepts_foreign_layer_urls:
                continue  # non-distributable: left where its URLs point, as skopeo does
            jobs.setdefault(layer.digest, BlobJob(
                layer, can_modify=can_modify and is_layer(layer.media_type),
                expected_diff_id=diff_ids[i] if diff_ids else None))
        # biggest first: the pool finishes sooner when no big blob starts last
        ordered = sorted(jobs.values(), key=lambda j: -j.desc.size)
        results = {job.desc.digest: result
                   for job, result in zip(ordered, self._run(ordered), strict=True)}
        config_desc = results[manifest.config.digest].desc
        layers = [(results[d.digest].desc, results[d.digest].new_compression)
                  if d.digest in results else (d, None) for d in manifest.layers]
        return self._write_manifest(raw, manifest, config_desc, config_raw, layers,
                                    candidates, instance, can_modify)

    def _candidates(self, source_type: str, can_modify: bool, list_type: str | None
                    ) -> list[str]:
        forced = self.options.manifest_format.manifest_type \
            if self.options.manifest_format else None
        if list_type == MediaType.DOCKER_MANIFEST_LIST and forced is None:
            forced = MediaType.DOCKER_MANIFEST if can_modify or source_type == \
                MediaType.DOCKER_MANIFEST else None
        elif list_type == MediaType.OCI_INDEX and forced is None and \
                self.dest.capabilities.supported_manifest_types is not None:
            forced = MediaType.OCI_MANIFEST if MediaType.OCI_MANIFEST in \
                self.dest.capabilities.supported_manifest_types else None
        desire = self.dest.capabilities.desired_layer_compression
        compresses = not self.options.decompress and (
            self.options.compress or desire is LayerCompression.COMPRESS)
        zstd = compresses and self.options.compression_format is Compression.ZSTD
        return manifest_candidates(source_type, self.dest.capabilities, forced=forced,
                                   can_modify=can_modify, zstd_requested=zstd)

    def _read_config(self, desc: Descriptor) -> bytes:
        if desc.data is not None:
            return desc.data
        stream = self.src.get_blob(desc)
        try:
            return read_verified(stream, desc, "config", DEFAULT_SIZE_LIMIT)
        finally:
            stream.close()

    @staticmethod
    def _parse_config(manifest: ImageManifest, raw: bytes) -> ImageConfig | None:
        if manifest.config.media_type not in _IMAGE_CONFIG_TYPES:
            return None
        try:
            return ImageConfig.from_json(raw)
        except SpecError as exc:
            raise SpecError(f"config {manifest.config.digest}: {exc}") from exc

    def _expected_diff_ids(self, manifest: ImageManifest, config: ImageConfig | None
                           ) -> tuple[Digest, ...] | None:
        if config is None or not self.options.verify_diff_ids:
            return None
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise DiffIDMismatchError(
                f"config {manifest.config.digest} lists {len(diff_ids)} diff_ids for "
                f"{len(manifest.layers)} layers", name=str(manifest.config.digest),
                expected=len(manifest.layers), actual=len(diff_ids))
        return diff_ids

    def _write_manifest(self, raw: bytes, manifest: ImageManifest, config: Descriptor,
                        config_raw: bytes, layers: list[tuple[Descriptor, Compression | None]],
                        candidates: Sequence[str], instance: Digest | None,
                        can_modify: bool) -> _Written:
        unchanged = (config == manifest.config
                     and all(c is None and d == o for (d, c), o in zip(layers, manifest.layers,
                                                                       strict=True)))
        errors: list[Exception] = []
        for target in candidates:
            if unchanged and target == manifest.media_type:
                new_raw = raw
            else:
                try:
                    target_config = self._target_config(manifest, target, config, config_raw)
                    new_raw = convert_manifest(manifest, target, target_config,
                                               layers).to_json()
                except ConversionError as exc:
                    errors.append(exc)
                    continue
            if new_raw != raw and not can_modify:
                raise PreserveDigestsError(
                    "the copy would change the manifest (format or layer compression), but "
                    "digests must be preserved (--preserve-digests or a signed image)")
            try:
                return self._put_manifest(new_raw, target, instance)
            except ManifestTypeRejectedError as exc:
                log.debug("destination refused %s: %s", target, exc)
                errors.append(exc)
        raise errors[0] if errors else CopyError("no manifest format could be written")

    def _target_config(self, manifest: ImageManifest, target: str, config: Descriptor,
                       config_raw: bytes) -> Descriptor:
        """The config a ``target``-type manifest points to. Converting a Docker image to
        OCI rewrites the config as an OCI config, exactly as containers/image does (so the
        result has skopeo's digests); the new blob is written here."""
        if not (target == MediaType.OCI_MANIFEST and not manifest.is_oci
                and config.media_type == MediaType.DOCKER_CONFIG):
            return config
        new_raw = oci_config_from_docker(config_raw)
        info = BlobInfo(MediaType.OCI_CONFIG, Digest.from_bytes(new_raw), len(new_raw),
                        is_config=True)
        if self.dest.has_blob(info) is None:
            self.dest.put_blob(io.BytesIO(new_raw), info)
        return Descriptor(MediaType.OCI_CONFIG, info.digest, len(new_raw))  # type: ignore[arg-type]

    def _copy_schema1(self, raw: bytes, s1: Schema1Manifest, *, instance: Digest | None,
                      list_type: str | None) -> _Written:
        can_modify = self._can_modify()
        candidates = self._candidates(s1.media_type, can_modify, list_type)
        entries = s1.layer_entries()
        if candidates[0] == s1.media_type:
            # Kept as it is (``dir:`` takes schema1): copy every fsLayer unchanged.
            unique = dict.fromkeys(d for d, _ in entries)
            self._run([BlobJob(_schema1_desc(d), size_known=False) for d in unique])
            return self._put_manifest(raw, s1.media_type, instance)
        real = [d for d, throwaway in entries if not throwaway]
        unique = dict.fromkeys(real)
        jobs = [BlobJob(_schema1_desc(d), can_modify=True, need_diff_id=True, size_known=False)
                for d in unique]
        by_digest = dict(zip(unique, self._run(jobs), strict=True))
        results = [by_digest[d] for d in real]
        diff_ids = [r.diff_id for r in results if r.diff_id is not None]
        config_raw = schema1_config(s1, diff_ids)
        manifest = schema1_manifest(config_raw, [
            Descriptor(MediaType.DOCKER_LAYER_GZIP, r.desc.digest, r.desc.size)
            for r in results])
        config_info = BlobInfo.from_descriptor(manifest.config, is_config=True)
        if self.dest.has_blob(config_info) is None:
            self.dest.put_blob(io.BytesIO(config_raw), config_info)
        layers = [(d, r.new_compression) for d, r in zip(manifest.layers, results, strict=True)]
        return self._write_manifest(manifest.to_json(), manifest, manifest.config, config_raw,
                                    layers,
                                    [c for c in candidates if c != s1.media_type] or
                                    [MediaType.DOCKER_MANIFEST], instance, can_modify=True)

    # --- blobs, in parallel --------------------------------------------------------

    def _run(self, jobs: Sequence[BlobJob]) -> list[BlobResult]:
        """Copy ``jobs`` with at most ``options.jobs`` at once; return results in order.
        The first failure stops the others; it is raised (the real cause, not the
        cancellations it provoked)."""
        if self._jobs == 1 or len(jobs) == 1:
            return [self._one(j) for j in jobs]
        with ThreadPoolExecutor(max_workers=self._jobs, thread_name_prefix="oci-copy") as pool:
            futures: list[Future[BlobResult]] = [pool.submit(self._one, j) for j in jobs]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done):
                self._abort.set()
                for f in futures:
                    f.cancel()
            wait(futures)
        errors = [f.exception() for f in futures if not f.cancelled()]
        real = [e for e in errors if e is not None and not isinstance(e, CopyCancelledError)]
        if real or any(errors):
            raise (real or [e for e in errors if e is not None])[0]
        return [f.result() for f in futures]

    def _one(self, job: BlobJob) -> BlobResult:
        if self.cancel.is_set() or self._abort.is_set():
            raise CopyCancelledError("copy cancelled")
        result = self.blobs.copy(job)
        with self._count_lock:
            if result.skipped:
                self.skipped += 1
            else:
                self.copied += 1
        return result

    # --- signatures and progress -----------------------------------------------------

    def _copy_signatures(self, instance: Digest | None, written: _Written) -> None:
        if self.options.remove_signatures or not isinstance(self.src, SupportsSignatures):
            return
        signatures = self.src.get_signatures(instance)
        if not signatures:
            return
        if not isinstance(self.dest, AcceptsSignatures) or \
                not self.dest.capabilities.supports_signatures:
            raise CopyError("the source image has signatures, which the destination cannot "
                            "store; use --remove-signatures to copy without them")
        self.dest.put_signatures(signatures, instance)

    def _put_manifest(self, raw: bytes, media_type: str, instance: Digest | None
                      ) -> _Written:
        """Store a manifest (an index instance when ``instance`` is set) and report it."""
        digest = manifest_digest(raw)
        self.dest.put_manifest(raw, media_type, digest if instance else None)
        if self.progress is not None:
            desc = Descriptor(media_type, digest, len(raw))
            self.progress(ProgressEvent(ProgressKind.MANIFEST, desc, len(raw), desc))
        return _Written(raw, media_type, digest)


def _schema1_desc(digest: Digest) -> Descriptor:
    """A descriptor for a schema1 layer; its size is unknown (``size_known=False``)."""
    return Descriptor(MediaType.DOCKER_LAYER_GZIP, digest, 0)

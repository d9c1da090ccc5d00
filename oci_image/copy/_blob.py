"""Copying one blob: the stream pipeline (containers/image ``copyBlobFromStream``, as a
chain of small readers).

    source.get_blob
      -> VerifyingReader(digest, size)       stage 1: verify what the source sends
      -> CancellableReader, CallbackReader   stage 2: cancel and progress
      -> PeekReader                          stage 3: sniff the real compression
      -> [decompress] -> [hash uncompressed] -> [compress]
                                             stage 4: the planned compression change
      -> EndGuard                            stage 5: at EOF, drain+verify the source and
                                                      check the diff_id, *before* the
                                                      destination sees EOF
      -> destination.put_blob                stage 6: verifies its own input and commits

Because every check raises during the destination's last ``read``, a destination that
follows the interface contract never makes a bad blob visible.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import threading
import time
from collections.abc import Callable
from enum import Enum

import attrs

from .._blobio import (
    CHUNK,
    CallbackReader,
    CancellableReader,
    CompressingReader,
    DecompressingReader,
    DecompressingSink,
    PeekReader,
    detect_compression,
)
from ..errors import (
    DiffIDMismatchError,
    NetworkError,
    OCIError,
    RegistryError,
    TransportError,
    is_transient,
)
from ..interfaces import BlobInfo, ImageDestination, ImageSource, LayerCompression
from ..spec import (
    Compression,
    Descriptor,
    Digest,
    DigestHasher,
    Readable,
    VerifiedStream,
    VerifyingReader,
    compression_of,
)
from ._options import CopyOptions, ProgressCallback, ProgressEvent, ProgressKind

__all__ = ["BlobCopier", "BlobJob", "BlobResult", "LayerOp", "plan_layer_op"]

log = logging.getLogger("oci_image.copy")


class LayerOp(Enum):
    PRESERVE = "preserve"
    COMPRESS = "compress"  # from uncompressed, or re-compress into another format
    DECOMPRESS = "decompress"


_COMPRESSIONS = {"gzip": Compression.GZIP, "zstd": Compression.ZSTD}


def plan_layer_op(detected: str, desire: LayerCompression, options: CopyOptions
                  ) -> tuple[LayerOp, Compression | None]:
    """What to do with a layer whose content is ``detected``-compressed (containers/image
    ``blobPipelineCompressionStep``: compress uncompressed, recompress into another
    requested format, decompress, else preserve)."""
    if options.decompress:
        desire = LayerCompression.DECOMPRESS
    elif options.compress:
        desire = LayerCompression.COMPRESS
    wanted = options.compression_format or Compression.GZIP
    if desire is LayerCompression.COMPRESS:
        if detected == "none":
            return LayerOp.COMPRESS, wanted
        current = _COMPRESSIONS.get(detected)
        if current is None or (options.compression_format is not None
                               and current is not options.compression_format):
            return LayerOp.COMPRESS, wanted
    if desire is LayerCompression.DECOMPRESS and detected != "none":
        return LayerOp.DECOMPRESS, Compression.NONE
    return LayerOp.PRESERVE, None


@attrs.frozen
class BlobJob:
    """One blob to copy."""

    desc: Descriptor
    is_config: bool = False
    #: whether the layer's compression may change (False for configs, unknown
    #: media types, --preserve-digests and signed images)
    can_modify: bool = False
    #: diff_id the config promises for this layer (checked when set)
    expected_diff_id: Digest | None = None
    #: the uncompressed digest must be computed (schema1 conversion)
    need_diff_id: bool = False
    #: False when the source does not know the size (schema1): only the digest is checked
    size_known: bool = True
    #: the content, when already read (the config): not read from the source again
    data: bytes | None = attrs.field(default=None, repr=False)

    @property
    def size(self) -> int | None:
        return self.desc.size if self.size_known else None

    def blob_info(self) -> BlobInfo:
        return BlobInfo(self.desc.media_type, self.desc.digest, self.size,
                        is_config=self.is_config)


@attrs.frozen
class BlobResult:
    desc: Descriptor
    #: the compression the blob now has when it changed, None when preserved
    new_compression: Compression | None = None
    diff_id: Digest | None = None
    skipped: bool = False


class _UncompressedTap:
    """Passes compressed bytes through unchanged while decompressing a copy of them
    to hash the uncompressed content (for diff_id checks on preserved layers)."""

    def __init__(self, stream: Readable, kind: str) -> None:
        self._stream = stream
        self._hasher = DigestHasher()
        self._sink = DecompressingSink(kind, self._hasher.update)

    def read(self, n: int = -1, /) -> bytes:
        data = self._stream.read(n)
        if data:
            self._sink.write(data)
        return data

    def finish(self) -> Digest:
        self._sink.close()
        return self._hasher.digest()


class _Digesting(VerifiedStream):
    """Hashes and counts what passes through (a stream the copy changed, whose digest is
    only known at its end). As a :class:`VerifiedStream` with no expectation, it lets the
    destination take the digest from here instead of hashing the bytes again."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self._hasher = DigestHasher()
        self._count = 0

    @property
    def expected_digest(self) -> Digest | None:
        return None

    @property
    def expected_size(self) -> int | None:
        return None

    @property
    def bytes_read(self) -> int:
        return self._count

    @property
    def actual_digest(self) -> Digest:
        return self._hasher.digest()

    def read(self, n: int = -1, /) -> bytes:
        data = self._stream.read(n)
        if data:
            self._hasher.update(data)
            self._count += len(data)
        return data

    def finish(self) -> Digest:
        return self._hasher.digest()


class _EndGuard:
    """Calls ``on_eof`` (which may raise) before reporting EOF to the consumer.

    When a later stage fails (a decompressor choking on corrupt data), ``source`` is
    drained and verified first, so that the error reported is the root cause -- the
    digest mismatch of what the source sent -- rather than its symptom.
    """

    def __init__(self, stream: Readable, on_eof: Callable[[], None],
                 source: VerifyingReader, name: str) -> None:
        self._stream = stream
        self._on_eof = on_eof
        self._source = source
        self._name = name
        self._ended = False

    def read(self, n: int = -1, /) -> bytes:
        if self._ended:
            return b""
        try:
            data = self._stream.read(n)
            if not data and n != 0:
                self._on_eof()
                self._ended = True
        except TransportError as exc:
            if exc.args and str(exc).startswith(self._name):
                raise
            if not isinstance(exc, (NetworkError, RegistryError)):
                # a decompressor choking: a digest mismatch of the source is the real cause
                # (a network failure is its own cause: reading on would only retry it)
                self._source.read_all_and_verify()
            renamed = copy.copy(exc)  # keeps attributes such as a registry status
            renamed.args = (f"{self._name}: {exc}",)
            raise renamed from exc
        return data


class BlobCopier:
    """Copies blobs from one source to one destination (shared by the worker threads)."""

    def __init__(self, src: ImageSource, dest: ImageDestination, options: CopyOptions,
                 progress: ProgressCallback | None,
                 stop_events: tuple[threading.Event, ...]) -> None:
        self._src = src
        self._dest = dest
        self._options = options
        self._progress = progress
        self._stop = stop_events

    def _report(self, kind: ProgressKind, desc: Descriptor, offset: int = 0,
                result: Descriptor | None = None) -> None:
        if self._progress is not None:
            self._progress(ProgressEvent(kind, desc, offset, result))

    def copy(self, job: BlobJob) -> BlobResult:
        reused = self._try_reuse(job)
        if reused is not None:
            self._report(ProgressKind.SKIPPED, job.desc, job.desc.size, reused.desc)
            return reused
        self._report(ProgressKind.STARTED, job.desc)
        attempt = 0
        while True:
            try:
                source = (io.BytesIO(job.data) if job.data is not None
                          else self._src.get_blob(job.desc))
                with contextlib.closing(source) as raw:
                    result = self._stream(job, raw)
                break
            except OCIError as exc:
                if not is_transient(exc) or attempt >= self._options.blob_retries:
                    raise
                attempt += 1
                log.warning("copying %s failed (%s); starting it again (%d/%d)",
                            job.desc.digest, exc, attempt, self._options.blob_retries)
                self._report(ProgressKind.STARTED, job.desc)
                time.sleep(min(2.0 ** (attempt - 1), 10.0))
        self._report(ProgressKind.DONE, job.desc, job.desc.size, result.desc)
        log.info("copied blob %s -> %s", job.desc.digest, result.desc.digest)
        return result

    def _try_reuse(self, job: BlobJob) -> BlobResult | None:
        """Skip the blob when the destination has it already, in the form the copy
        would produce (only predictable when the blob is kept as is, or decompressed
        to its known diff_id)."""
        desc = job.desc
        desire = self._dest.capabilities.desired_layer_compression
        compression = compression_of(desc.media_type)
        op = LayerOp.PRESERVE
        if job.can_modify and compression is not None:
            detected = "none" if compression is Compression.NONE else compression.value
            op, _ = plan_layer_op(detected, desire, self._options)
        # The result keeps the source descriptor's annotations, urls and media type, as
        # a copied blob does: only digest and size come from the destination, so that
        # skipping a blob never changes the manifest.
        if op is LayerOp.PRESERVE and not job.need_diff_id:
            found = self._dest.has_blob(job.blob_info())
            if found is not None:
                return BlobResult(attrs.evolve(desc, digest=found.digest, size=found.size),
                                  None, None, skipped=True)
        if op is LayerOp.DECOMPRESS and job.expected_diff_id is not None:
            found = self._dest.has_blob(BlobInfo(desc.media_type, job.expected_diff_id))
            if found is not None:
                reused = attrs.evolve(desc, digest=found.digest, size=found.size, urls=(),
                                      data=None)
                return BlobResult(reused, Compression.NONE, job.expected_diff_id,
                                  skipped=True)
        return None

    def _stream(self, job: BlobJob, raw: Readable) -> BlobResult:
        desc = job.desc
        what = "config" if job.is_config else "blob"
        verified = VerifyingReader(raw, desc.digest, job.size, name=f"{what} {desc.digest}")
        stream: Readable = CancellableReader(verified, self._stop)
        if self._progress is not None:
            stream = CallbackReader(
                stream, lambda total: self._report(ProgressKind.PROGRESS, desc, total))
        peek = PeekReader(stream)
        detected = detect_compression(peek.peek(6)) if not job.is_config else "none"
        op, target = LayerOp.PRESERVE, None
        if job.can_modify:
            op, target = plan_layer_op(
                detected, self._dest.capabilities.desired_layer_compression, self._options)
        want_diff = (job.expected_diff_id is not None or job.need_diff_id) and not job.is_config

        out: Readable = peek
        tap: _UncompressedTap | _Digesting | None = None
        if op is LayerOp.PRESERVE:
            if want_diff and detected != "none":
                tap = _UncompressedTap(peek, detected)
                out = tap
        else:
            uncompressed = DecompressingReader(peek, detected)
            if want_diff and detected != "none" and op is LayerOp.COMPRESS:
                tap = _Digesting(uncompressed)
                uncompressed = tap
            out = uncompressed
            if op is LayerOp.COMPRESS:
                assert target is not None
                out = CompressingReader(uncompressed, target, self._options.compression_level)
        # What the destination reads: the source's own verification when the bytes are
        # unchanged, else a digest computed here (once: for a decompressed layer the
        # output digest is the diff_id too).
        facts: VerifiedStream = verified
        if op is not LayerOp.PRESERVE:
            out = facts = _Digesting(out)
            if op is LayerOp.DECOMPRESS and want_diff and detected != "none":
                tap = facts

        diff_id: list[Digest] = []

        def at_eof() -> None:
            verified.read_all_and_verify()
            if not want_diff:
                return
            actual = tap.finish() if tap is not None else desc.digest
            if job.expected_diff_id is not None and actual != job.expected_diff_id:
                raise DiffIDMismatchError(
                    f"layer {desc.digest}: uncompressed content has digest {actual}, but "
                    f"the image config lists diff_id {job.expected_diff_id}",
                    name=str(desc.digest), expected=job.expected_diff_id, actual=actual)
            diff_id.append(actual)

        guard = _EndGuard(out, at_eof, verified, f"{what} {desc.digest}")
        stream_for_dest = _Reverified(guard, facts)
        if op is LayerOp.PRESERVE:
            info = job.blob_info()
        else:
            info = BlobInfo(desc.media_type, None, None, is_config=job.is_config)
        stored = self._dest.put_blob(stream_for_dest, info)
        new_desc = attrs.evolve(desc, digest=stored.digest, size=stored.size)
        if op is not LayerOp.PRESERVE:
            new_desc = attrs.evolve(new_desc, urls=(), data=None)
        return BlobResult(new_desc, target, diff_id[0] if diff_id else None)


class _Reverified(VerifiedStream):
    """The stream handed to the destination: reads go through the pipeline (and its
    end-of-stream checks); digest and size come from ``inner``, the stage that verified
    or measured exactly these bytes, so the destination does not hash them again."""

    def __init__(self, stream: Readable, inner: VerifiedStream) -> None:
        self._guarded = stream
        self._inner = inner

    @property
    def expected_digest(self) -> Digest | None:
        return self._inner.expected_digest

    @property
    def expected_size(self) -> int | None:
        return self._inner.expected_size

    @property
    def bytes_read(self) -> int:
        return self._inner.bytes_read

    @property
    def actual_digest(self) -> Digest:
        return self._inner.actual_digest

    def read(self, n: int = -1, /) -> bytes:
        return self._guarded.read(n if n is not None and n >= 0 else CHUNK)

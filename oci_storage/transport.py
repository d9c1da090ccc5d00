"""``containers-storage:[DRIVER@GRAPHROOT+RUNROOT]NAME[:TAG]`` -- images in a
containers/storage store (:mod:`oci_storage.store`), as containers/image's ``storage``
transport.

Reference forms (containers/image 5.23 ``storage_transport.go``):

* ``[DRIVER@GRAPHROOT+RUNROOT:OPT,OPT]`` -- the store (each part optional; missing parts
  come from :func:`~oci_storage.config.load_storage_config`; paths must be absolute;
  driver options are kept in the reference but not used); no bracket: the default store;
* ``NAME[:TAG]`` (``latest`` added when neither tag nor digest), ``NAME@sha256:...``
  (a manifest digest), ``[NAME]@IMAGEID`` (a full or, when the store has it, truncated
  image ID) or a bare ID (prefix) of an image the store has.

The destination keeps layer blobs in temporary files as they arrive (verified) and
applies them in order at :meth:`StorageDestination.commit`, which then records the image
(ID: the config digest's hex, name: the reference's). Nothing is visible in the store
before the commit. The source serves layers as their uncompressed tar (rebuilt from the
tar-split), so its manifest lists each layer by diff_id and uncompressed size, as
containers/image's ``LayerInfosForCopy`` makes the copy do.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Final

import attrs

from oci_image.errors import (
    BlobNotFoundError,
    InvalidReferenceError,
    ManifestNotFoundError,
    ManifestTypeRejectedError,
    SpecError,
)
from oci_image.interfaces import (
    BlobInfo,
    BlobStream,
    DestinationCapabilities,
    OpenOptions,
)
from oci_image.spec import (
    Descriptor,
    Digest,
    ImageConfig,
    ImageManifest,
    MediaType,
    Readable,
    Reference,
    VerifiedStream,
    VerifyingReader,
    guess_media_type,
    is_index,
    manifest_digest,
    parse_manifest,
)

from .config import image_stores, load_storage_config
from .errors import DuplicateIDError, ImageUnknownError, StorageError
from .records import Image, Layer
from .staging import new_staging_dir
from .store import StagedLayer, Store
from .tarsplit import reassemble_stream

__all__ = [
    "TRANSPORT",
    "StorageDestination",
    "StorageReference",
    "StorageSource",
    "StorageTransport",
]

_ID_RE: Final = re.compile(r"[a-f0-9]{64}\Z")
_HEX_RE: Final = re.compile(r"[a-f0-9]+\Z")
#: shortest ID prefix accepted (containers/image ``minimumTruncatedIDLength``)
MIN_TRUNCATED_ID: Final = 3
_CHUNK: Final = 1 << 20


@attrs.frozen
class StoreSpec:
    """The bracketed part of a reference; empty fields mean "the default"."""

    driver: str = ""
    graphroot: str = ""
    runroot: str = ""
    options: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.driver}@" if self.driver else ""
        text += self.graphroot
        if self.runroot:
            text += f"+{self.runroot}"
        if self.options:
            text += ":" + ",".join(self.options)
        return f"[{text}]"

    def open(self) -> Store:
        graph, run, driver = self.graphroot, self.runroot, self.driver
        options = self.options
        if not (graph and run and driver):
            config = load_storage_config()
            graph = graph or str(config.graphroot)
            run = run or str(config.runroot)
            driver = driver or config.driver
            options = options or tuple(config.driver_options)
        return Store.open(graph, run, driver or None, image_stores=image_stores(options))


def _parse_store_spec(spec: str) -> StoreSpec:
    driver = ""
    if "@" in spec:
        driver, spec = spec.split("@", 1)
        if not driver or not spec:
            raise InvalidReferenceError(f"containers-storage: invalid store specifier {spec!r}")
    elif not spec:
        raise InvalidReferenceError("containers-storage: empty store specifier")
    options: tuple[str, ...] = ()
    if ":" in spec:
        spec, opts = spec.split(":", 1)
        options = tuple(opts.split(","))
    graph, _, run = spec.partition("+")
    for path in (graph, run):
        if path and not os.path.isabs(path):
            raise InvalidReferenceError(
                f"containers-storage: path {path!r} is not absolute")
    return StoreSpec(driver, graph, run, options)


def _resolve_id_prefix(spec: StoreSpec | None, prefix: str) -> str | None:
    """The full ID of the image whose ID starts with ``prefix``, if the store has one."""
    try:
        store = (spec or StoreSpec()).open()
        image = store.image(prefix)
    except (StorageError, OSError):
        return None
    return image.id if image.id.startswith(prefix) else None


@attrs.frozen
class StorageTransport:
    name: str = "containers-storage"

    def parse_reference(self, reference: str) -> StorageReference:
        spec: StoreSpec | None = None
        ref = reference
        if ref.startswith("["):
            close = ref.find("]")
            if close < 1:
                raise InvalidReferenceError(
                    f"containers-storage: store specifier in {reference!r} did not end")
            spec = _parse_store_spec(ref[1:close])
            ref = ref[close + 1:]
        if not ref:
            raise InvalidReferenceError(f"containers-storage: {reference!r} names no image")
        image_id = ""
        at = ref.rfind("@")
        if at != -1:
            possible = ref[at + 1:]
            if not possible:
                raise InvalidReferenceError(
                    f"containers-storage: empty trailing digest or ID in {reference!r}")
            is_digest = True
            try:
                Digest.parse(possible)
            except (SpecError, ValueError):
                is_digest = False
            if not is_digest:
                if _ID_RE.match(possible):
                    image_id = possible
                elif (len(possible) >= MIN_TRUNCATED_ID and _HEX_RE.match(possible)
                      and (full := _resolve_id_prefix(spec, possible)) is not None):
                    image_id = full
                else:
                    raise InvalidReferenceError(
                        f"containers-storage: {possible!r} does not look like an image ID "
                        "or digest")
                ref = ref[:at]
        if (not image_id and len(ref) >= MIN_TRUNCATED_ID and not any(c in ref for c in "@:")
                and _HEX_RE.match(ref)):
            full = _resolve_id_prefix(spec, ref)
            if full:
                image_id, ref = full, ""
        named: Reference | None = None
        if ref:
            named = Reference.parse(ref).with_default_tag()
        return StorageReference(spec=spec, named=named, image_id=image_id)


TRANSPORT = StorageTransport()


@attrs.frozen
class StorageReference:
    """An image in a store: a name, an image ID, or both."""

    spec: StoreSpec | None = None
    named: Reference | None = None
    image_id: str = ""

    @property
    def transport(self) -> StorageTransport:
        return TRANSPORT

    def string_within_transport(self) -> str:
        text = str(self.spec) if self.spec is not None else ""
        if self.named is not None:
            text += str(self.named)
        if self.image_id:
            text += f"@{self.image_id}"
        return text

    def __str__(self) -> str:
        return f"{TRANSPORT.name}:{self.string_within_transport()}"

    def docker_reference(self) -> Reference | None:
        return self.named

    def open_store(self) -> Store:
        return (self.spec or StoreSpec()).open()

    def resolve(self, store: Store) -> Image:
        """The image this reference names (as c/image's ``resolveImage``)."""
        try:
            if self.image_id:
                image = store.image(self.image_id)
                if self.named is not None and self.named.tag is not None \
                        and str(self.named) not in image.names:
                    raise ImageUnknownError(f"image {self.image_id} is not named {self.named}")
                return image
            assert self.named is not None
            if self.named.digest is not None:
                image = store.image(str(self.named.digest))
                if not any(Reference.parse(n).name == self.named.name for n in image.names
                           if "@" not in n):
                    raise ImageUnknownError(
                        f"image with digest {self.named.digest} is not named "
                        f"{self.named.name}")
                return image
            return store.image(str(self.named))
        except ImageUnknownError as exc:
            raise ManifestNotFoundError(f"{self}: {exc}") from exc

    def open_source(self, options: OpenOptions | None = None) -> StorageSource:
        return StorageSource(self, self.open_store())

    def open_destination(self, options: OpenOptions | None = None
                         ) -> StorageDestination:
        store = self.open_store()
        tmp = options.tmp_dir if options and options.tmp_dir else str(store.graphroot / "tmp")
        return StorageDestination(self, store, tmp)


# -- source ------------------------------------------------------------------------------


def _image_layers(store: Store, image: Image) -> list[Layer]:
    """The image's layers, bottom first."""
    chain: list[Layer] = []
    layer_id = image.top_layer
    while layer_id:
        layer = store.layer(layer_id)
        chain.append(layer)
        layer_id = layer.parent
    chain.reverse()
    return chain


def _uncompressed_type(manifest_type: str) -> str:
    return MediaType.OCI_LAYER if manifest_type == MediaType.OCI_MANIFEST \
        else MediaType.DOCKER_LAYER


class StorageSource:
    """Reads one image of a store. Thread-safe."""

    def __init__(self, ref: StorageReference, store: Store) -> None:
        self._ref = ref
        self._store = store
        self._image = ref.resolve(store)
        self._layers = _image_layers(store, self._image)
        self._by_digest: dict[str, Layer] = {}
        for layer in self._layers:
            for digest in (layer.compressed_digest, layer.uncompressed_digest):
                if digest:
                    self._by_digest.setdefault(digest, layer)

    @property
    def reference(self) -> StorageReference:
        return self._ref

    @property
    def image(self) -> Image:
        return self._image

    def _big_data(self, key: str) -> bytes | None:
        if key not in self._image.big_data_names:
            return None
        return self._store.image_big_data(self._image.id, key)

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        raw: bytes | None
        if instance is not None:
            raw = self._big_data(f"manifest-{instance}")
            if raw is None:
                raise ManifestNotFoundError(f"{self._ref}: no manifest instance {instance}")
        else:
            raw = None
            named = self._ref.named
            if named is not None and named.digest is not None:
                raw = self._big_data(f"manifest-{named.digest}")
            if raw is None:
                raw = self._big_data("manifest")
            if raw is None:
                raise ManifestNotFoundError(f"{self._ref}: the image has no manifest")
        media_type = guess_media_type(json.loads(raw))
        if is_index(media_type):
            return raw, media_type
        return self._physical_manifest(raw, media_type)

    def _physical_manifest(self, raw: bytes, media_type: str) -> tuple[bytes, str]:
        """The manifest with each layer as this source serves it: uncompressed, by
        diff_id and uncompressed size (unchanged when it already says exactly so).

        As containers/image's ``LayerInfosForCopy`` (storage_src.go), which the copy
        then writes with ``UpdateLayerInfos``, each layer descriptor is rebuilt from the
        layer record alone: the original's annotations and URLs are not kept. They
        described the blob as it was pulled (compressed), not the tar served here, and
        keeping them made a copy out of a store differ from skopeo's (found by
        tests/test_store_podman_pull.py: layer annotations of an image podman pulled
        reappeared in our copy but not in skopeo's)."""
        parsed = parse_manifest(raw, media_type)
        if not isinstance(parsed, ImageManifest):
            raise ManifestTypeRejectedError(
                f"{self._ref}: reading {media_type} manifests is not supported")
        if len(parsed.layers) != len(self._layers):
            raise StorageError(
                f"{self._ref}: the manifest lists {len(parsed.layers)} layers, the image "
                f"has {len(self._layers)}")
        layer_type = _uncompressed_type(media_type)
        layers: list[Descriptor] = []
        for layer in self._layers:
            if not layer.uncompressed_digest or layer.uncompressed_size < 0:
                raise StorageError(f"layer {layer.id}: uncompressed digest or size unknown")
            layers.append(Descriptor(layer_type, Digest.parse(layer.uncompressed_digest),
                                     layer.uncompressed_size))
        if tuple(layers) == parsed.layers:
            return raw, media_type
        return attrs.evolve(parsed, layers=tuple(layers)).to_json(), media_type

    def get_blob(self, desc: Descriptor) -> BlobStream:
        data = self._big_data(str(desc.digest))
        if data is not None:
            return io.BytesIO(data)
        layer = self._by_digest.get(str(desc.digest))
        if layer is None:
            raise BlobNotFoundError(f"{self._ref}: no blob {desc.digest} in the image")
        store = self._store
        tar_split = store.tar_split_path(layer.id)
        if not tar_split.exists():
            raise BlobNotFoundError(f"{self._ref}: layer {layer.id} has no tar-split")
        return _ClosingReader(reassemble_stream(tar_split, store.layer_path(layer.id)))

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> StorageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ClosingReader:
    def __init__(self, stream: Readable) -> None:
        self._stream = stream

    def read(self, n: int = -1, /) -> bytes:
        return self._stream.read(n)

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if callable(close):
            close()


# -- destination -------------------------------------------------------------------------


def _verifying(stream: Readable, info: BlobInfo) -> VerifiedStream:
    if (isinstance(stream, VerifiedStream) and stream.expected_digest == info.digest
            and (info.size is None or stream.expected_size == info.size)):
        return stream
    return VerifyingReader(stream, info.digest, info.size)


_STAGING_PREFIX: Final = "storage-dest-"


def _new_staging_dir(tmp_dir: Path) -> tuple[Path, int]:
    """A private staging directory in ``tmp_dir`` and an fd holding its ``flock`` while
    the destination lives; directories of destinations that are gone are swept (found
    by tests/test_store_crash.py: a killed copy left its blobs in the store's ``tmp``)."""
    return new_staging_dir(tmp_dir, _STAGING_PREFIX)


class StorageDestination:
    """Writes one image into a store at :meth:`commit`; until then layer blobs wait,
    verified, in a private temporary directory."""

    def __init__(self, ref: StorageReference, store: Store, tmp_dir: str) -> None:
        self._ref = ref
        self._store = store
        Path(tmp_dir).mkdir(parents=True, exist_ok=True)
        self._tmp, self._tmp_fd = _new_staging_dir(Path(tmp_dir))
        self._lock = threading.Lock()
        self._blobs: dict[Digest, tuple[Path, int]] = {}
        #: layers already applied (overlay), waiting for their parent at commit
        self._staged: dict[Digest, StagedLayer] = {}
        self._configs: dict[Digest, bytes] = {}
        #: blobs present in the store as a layer's compressed digest -> layer ID
        self._known: dict[Digest, str] = {}
        self._manifest: tuple[bytes, str] | None = None
        self._committed = False

    @property
    def reference(self) -> StorageReference:
        return self._ref

    @property
    def capabilities(self) -> DestinationCapabilities:
        return DestinationCapabilities(thread_safe_put_blob=True)

    def has_blob(self, info: BlobInfo) -> Descriptor | None:
        if info.digest is None:
            return None
        with self._lock:
            if info.digest in self._configs:
                return Descriptor(info.media_type, info.digest, len(self._configs[info.digest]))
            if info.digest in self._blobs:
                return Descriptor(info.media_type, info.digest, self._blobs[info.digest][1])
            if info.digest in self._staged:
                return Descriptor(info.media_type, info.digest,
                                  self._staged[info.digest].applied.compressed_size)
        if info.is_config:
            return None
        for layer in self._store.layer_records.by_compressed_digest(str(info.digest)):
            size = layer.compressed_size
            if layer.incomplete or size <= 0 or not layer.uncompressed_digest:
                continue
            if info.size is not None and info.size != size:
                continue
            with self._lock:
                self._known[info.digest] = layer.id
            return Descriptor(info.media_type, info.digest, size)
        return None

    def put_blob(self, stream: Readable, info: BlobInfo) -> Descriptor:
        reader = _verifying(stream, info)
        if info.is_config:
            data = bytearray()
            while chunk := reader.read(_CHUNK):
                data += chunk
            digest = reader.actual_digest
            with self._lock:
                self._configs[digest] = bytes(data)
            return Descriptor(info.media_type, digest, len(data))
        if self._store.can_stage_layers:
            return self._stage_layer(reader, info)
        fd, name = tempfile.mkstemp(dir=self._tmp, suffix=".blob")
        try:
            with os.fdopen(fd, "wb") as f:
                while chunk := reader.read(_CHUNK):
                    f.write(chunk)
            digest, size = reader.actual_digest, reader.bytes_read
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise
        with self._lock:
            old = self._blobs.get(digest)
            self._blobs[digest] = (Path(name), size)
        if old is not None:
            old[0].unlink(missing_ok=True)
        return Descriptor(info.media_type, digest, size)

    def _stage_layer(self, reader: VerifiedStream, info: BlobInfo) -> Descriptor:
        """Apply the layer now, in the copy's blob thread, so that layers apply in
        parallel (overlay); commit records them in order (Store.put_staged_layer)."""
        staged = self._store.stage_layer(reader)
        try:
            if reader.read(1):  # the verifier's end of stream; nothing may follow
                raise StorageError(f"{self._ref}: data after the end of layer {info.digest}")
            digest, size = reader.actual_digest, reader.bytes_read
        except BaseException:
            staged.discard()
            raise
        with self._lock:
            old = self._staged.get(digest)
            self._staged[digest] = staged
        if old is not None:
            old.discard()
        return Descriptor(info.media_type, digest, size)

    def put_manifest(self, raw: bytes, media_type: str,
                     instance: Digest | None = None) -> None:
        if is_index(media_type) or instance is not None:
            raise ManifestTypeRejectedError(
                f"{self._ref}: storing an index ({media_type}) is not supported")
        parsed = parse_manifest(raw, media_type)
        if not isinstance(parsed, ImageManifest):
            raise ManifestTypeRejectedError(
                f"{self._ref}: storing {media_type} manifests is not supported")
        self._manifest = (raw, media_type)

    def _config(self, manifest: ImageManifest) -> bytes:
        digest = manifest.config.digest
        with self._lock:
            data = self._configs.get(digest)
            staged = self._blobs.get(digest)
        if data is None and staged is not None:
            data = staged[0].read_bytes()
        if data is None:
            with contextlib.suppress(StorageError):  # already stored with another image
                image = self._store.image(f"sha256:{digest.hex}")
                data = self._store.image_records.big_data(image.id, str(digest))
        if data is None:
            raise BlobNotFoundError(f"{self._ref}: the config {digest} was not written")
        return data

    def _layer_stream(self, digest: Digest) -> tuple[Readable, Digest | None]:
        """The blob of a layer and the compressed digest to check it against."""
        with self._lock:
            staged = self._blobs.get(digest)
            known = self._known.get(digest)
        if staged is not None:
            return staged[0].open("rb"), digest
        if known is not None:
            store = self._store
            return (reassemble_stream(store.layer_records.tar_split_path(known),
                                      store.layer_path(known)), None)
        raise BlobNotFoundError(f"{self._ref}: layer {digest} was not written")

    def commit(self) -> None:
        if self._manifest is None:
            raise ManifestNotFoundError(f"{self._ref}: commit without a manifest")
        raw, media_type = self._manifest
        manifest = ImageManifest.from_json(raw, media_type)
        config_raw = self._config(manifest)
        config = ImageConfig.from_json(config_raw)
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise StorageError(
                f"{self._ref}: the config lists {len(diff_ids)} diff_ids for "
                f"{len(manifest.layers)} layers")
        store = self._store
        parent: str | None = None
        for desc, diff_id in zip(manifest.layers, diff_ids, strict=True):
            with self._lock:
                staged = self._staged.pop(desc.digest, None)
            if staged is not None:
                parent = store.put_staged_layer(parent, staged, diff_id=diff_id).id
                with self._lock:  # the same blob again further up: from this layer
                    self._known[desc.digest] = parent
                continue
            stream, compressed = self._layer_stream(desc.digest)
            with self._lock:
                known = self._known.get(desc.digest)
            try:
                parent = store.put_layer(
                    parent, stream, diff_id=diff_id, compressed_digest=compressed,
                    same_blob_as=store.layer(known) if compressed is None and known
                    else None).id
            finally:
                close = getattr(stream, "close", None)
                if callable(close):
                    close()
        if parent is None:
            raise StorageError(f"{self._ref}: images without layers are not supported")
        image_id = manifest.config.digest.hex
        if self._ref.image_id and self._ref.image_id != image_id:
            raise StorageError(
                f"{self._ref}: the image ID would be {image_id}, not {self._ref.image_id}")
        names = (str(self._ref.named),) if self._ref.named is not None else ()
        self._record_image(image_id, parent, names, raw, config_raw)
        self._committed = True

    def _record_image(self, image_id: str, top: str, names: tuple[str, ...], raw: bytes,
                      config_raw: bytes) -> None:
        store, images = self._store, self._store.image_records
        m_digest = manifest_digest(raw)
        # a name moves to the new image, as c/storage's SetNames does
        for name in names:
            with contextlib.suppress(ImageUnknownError):
                holder = store.image(name)
                if holder.id != image_id:
                    images.remove_names(holder.id, [name])
        try:
            store.create_image(image_id, top, names=names, manifest=raw,
                               config=config_raw)
        except DuplicateIDError:
            existing = store.image(image_id)
            if existing.top_layer != top:
                raise
            images.set_big_data(image_id, f"manifest-{m_digest}", raw, digest=str(m_digest))
            images.set_big_data(image_id, "manifest", raw, digest=str(m_digest))
            if names:
                images.add_names(image_id, names)

    def close(self) -> None:
        with self._lock:
            staged, self._staged = list(self._staged.values()), {}
        for layer in staged:
            layer.discard()
        shutil.rmtree(self._tmp, ignore_errors=True)
        if self._tmp_fd >= 0:  # releases the staging dir's lock
            os.close(self._tmp_fd)
            self._tmp_fd = -1
        self._store.close()

    def __enter__(self) -> StorageDestination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""A containers/storage-compatible store: layers applied by a graph driver, image and
layer records podman reads as its own (see docs/storage-format.md).

Composes :mod:`oci_storage.records` (the JSON records and their locks),
:mod:`oci_storage.drivers` (the layer trees) and :mod:`oci_storage.tarsplit` (the
``<id>.tar-split.gz`` kept next to ``layers.json``)::

    with Store.open(graphroot, runroot) as store:
        parent = None
        for blob, diff_id in layers:
            parent = store.put_layer(parent and parent.id, blob, diff_id=diff_id).id
        store.create_image(config_digest.hex, parent, names=("localhost/x:1",),
                           manifest=raw_manifest, config=raw_config)

Locking follows containers/storage: ``storage.lock`` (the graph lock) is held while the
driver is chosen and the store is checked on open; each change holds the record locks
it needs, always in the order layers -> images -> containers, only for the change.

Crash safety, as c/storage: a layer record is saved with the ``incomplete`` flag before
its driver directory is made and cleared once the layer is applied (and set again before
a layer is deleted); opening a store deletes the layers still marked so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Final

import attrs

from oci_image.errors import DiffIDMismatchError, DigestMismatchError
from oci_image.spec import Digest
from oci_image.spec._lazy import lazy_exports

from .drivers import DRIVERS, Driver, select_driver
from .drivers.overlay import OverlayDriver, is_mounted
from .drivers.vfs import VfsDriver
from .errors import (
    DuplicateIDError,
    DuplicateNameError,
    ImageUnknownError,
    LayerInUseError,
    LayerUnknownError,
    StorageError,
)
from .lockfile import LockFile, get_lockfile
from .records import (
    INCOMPLETE_FLAG,
    ZERO_TIME,
    Container,
    ContainerRecords,
    Image,
    ImageRecords,
    Layer,
    LayerRecords,
    MountRecords,
    chain_layer_id,
    format_timestamp,
    parse_timestamp,
    random_id,
)
from .staging import new_staging_dir, release_staging_dir, sweep_stale

if TYPE_CHECKING:
    from oci_image.spec import Readable

    from ._store_types import DeletedImage, ReadOnlyStore
    from .apply import AppliedLayer, ApplyLimits, ApplyOptions, WhiteoutMode, apply_layer
    from .tarsplit import TarSplitWriter

__all__ = ["COMPRESSION_CODES", "Container", "DeletedImage", "StagedLayer", "Store"]

#: ``archive.Compression`` codes stored in a layer's ``compression``
COMPRESSION_CODES: Final = {"none": 0, "bzip2": 1, "gzip": 2, "xz": 3, "zstd": 4}
GRAPH_LOCK: Final = "storage.lock"
#: (a pattern, compiled by ``re`` when an image is first created)
_GO_TIME: Final = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z"

#: what only writing layers needs (the tar reader and tar-split) and two records that
#: reading a store and running a container from it never build, imported on first use:
#: the module where each name lives. They are module attributes all the same
#: (``oci_storage.store.apply_layer``), and a replaced one is used as it is.
_LAZY: Final = {
    "AppliedLayer": ".apply", "ApplyLimits": ".apply", "ApplyOptions": ".apply",
    "WhiteoutMode": ".apply", "apply_layer": ".apply", "TarSplitWriter": ".tarsplit",
    "DeletedImage": "._store_types", "ReadOnlyStore": "._store_types",
}
_WRITERS: Final = ("AppliedLayer", "ApplyLimits", "ApplyOptions", "WhiteoutMode",
                   "apply_layer", "TarSplitWriter")


_lazy = lazy_exports(globals(), _LAZY)
if not TYPE_CHECKING:  # (mypy sees the imports above, and flags a name that is not one)
    __getattr__ = _lazy


def _load(names: Iterable[str] = _WRITERS) -> None:
    """Make ``names`` (of :data:`_LAZY`) globals of this module (those already there,
    loaded or replaced, are kept)."""
    for name in names:
        if name not in globals():
            _lazy(name)


def _go_time(text: str | None) -> str:
    """An RFC 3339 time as Go's ``time.Time`` JSON writes it (trailing zeros dropped)."""
    if not text:
        return format_timestamp()
    match = re.fullmatch(_GO_TIME, text)
    if match is not None:
        frac = (match.group(2) or "").rstrip("0")
        return match.group(1) + (f".{frac}" if frac else "") + "Z"
    return format_timestamp(parse_timestamp(text))


def _sha256(data: bytes) -> str:
    import hashlib  # (not loaded to read a store and run from it: OpenSSL costs ms)

    return "sha256:" + hashlib.sha256(data).hexdigest()


class StagedLayer:
    """A layer applied by :meth:`Store.stage_layer` into a private, locked directory of
    the store's ``tmp``, not yet a layer of the store: :meth:`Store.put_staged_layer`
    moves it into place once its parent is known, :meth:`discard` drops it. A process
    killed meanwhile leaves a directory the next staging sweeps."""

    def __init__(self, path: Path, fd: int, applied: AppliedLayer) -> None:
        self.path = path
        self.applied = applied
        self._fd = fd

    @property
    def diff(self) -> Path:
        return self.path / "diff"

    @property
    def tar_split(self) -> Path:
        return self.path / "tar-split.gz"

    def discard(self) -> None:
        """Remove the staged content (nothing when already moved or discarded)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            release_staging_dir(self.path, fd)

    def __repr__(self) -> str:
        return f"StagedLayer({str(self.path)!r}, diff_id={self.applied.diff_id})"


_STAGED_PREFIX: Final = "staged-layer-"


def _completed(record: Layer, applied: AppliedLayer) -> Layer:
    """``record`` with what applying its layer found, no longer incomplete."""
    return attrs.evolve(
        record,
        compressed_digest=str(applied.compressed_digest),
        compressed_size=applied.compressed_size,
        uncompressed_digest=str(applied.diff_id),
        uncompressed_size=applied.uncompressed_size,
        compression=COMPRESSION_CODES.get(applied.compression, 0),
        uids=sorted(applied.uids), gids=sorted(applied.gids),
        flags={k: v for k, v in record.flags.items() if k != INCOMPLETE_FLAG})


class Store:
    """One store: ``graphroot`` (records, layers) and ``runroot`` (mount counts).
    Open it with :meth:`open`; usable as a context manager."""

    def __init__(self, graphroot: Path, runroot: Path, driver: Driver,
                 image_stores: Iterable[str | os.PathLike[str]] = ()) -> None:
        self.graphroot = graphroot
        self.runroot = runroot
        self.driver = driver
        name = driver.name
        ro = []
        for root in image_stores:
            _load(("ReadOnlyStore",))
            path = Path(root).absolute()
            ro.append(ReadOnlyStore(path, LayerRecords.open(path, name),
                                    ImageRecords.open(path, name), type(driver)(path)))
        #: read-only additional image stores, searched after this one
        self.read_only_stores: tuple[ReadOnlyStore, ...] = tuple(ro)
        driver.read_only = tuple(r.driver for r in ro)
        self.graph_lock: LockFile = get_lockfile(graphroot / GRAPH_LOCK)
        self.layer_records = LayerRecords.open(graphroot, name)
        self.image_records = ImageRecords.open(graphroot, name)
        self.container_records = ContainerRecords.open(graphroot, name)
        self.mount_records = MountRecords.open(runroot, name)

    # -- opening ---------------------------------------------------------------------

    @classmethod
    def open(cls, graphroot: str | os.PathLike[str], runroot: str | os.PathLike[str],
             driver_name: str | None = None, *,
             image_stores: Iterable[str | os.PathLike[str]] = ()) -> Store:
        """Open (creating when needed) the store. ``driver_name=None`` keeps the driver
        the store already uses (the first of :data:`DRIVERS` with a ``<drv>-layers``
        directory), else picks the first one that works here. Layers left incomplete
        by a crash are deleted. ``image_stores``: read-only additional image stores
        (graph roots of stores with the same driver), as storage.conf's
        ``additionalimagestores``: their images are listed, copied out and run, never
        changed."""
        graph = Path(graphroot).absolute()
        run = Path(runroot).absolute()
        for directory in (graph, run):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with get_lockfile(graph / GRAPH_LOCK).exclusive():
            if driver_name is None:
                driver_name = next((d for d in DRIVERS if (graph / f"{d}-layers").is_dir()),
                                   None)
            driver = select_driver(graph, driver_name)
            for sub in ("mounts", "tmp", driver.name):
                (graph / sub).mkdir(mode=0o700, exist_ok=True)
            # as the Go drivers' Init: vfs/dir, overlay/l
            if isinstance(driver, VfsDriver):
                (driver.root / "dir").mkdir(mode=0o700, exist_ok=True)
            elif isinstance(driver, OverlayDriver):
                (driver.root / "l").mkdir(mode=0o700, exist_ok=True)
            store = cls(graph, run, driver, image_stores)
            store._recover()
        return store

    def close(self) -> None:
        """Nothing to release: locks are only held during calls."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.graphroot)!r}, {str(self.runroot)!r}, {self.driver.name!r})"

    def _recover(self) -> None:
        """Delete the layers marked incomplete (as c/s's layer store load does), and
        the staged layers of processes that are gone."""
        sweep_stale(self.graphroot / "tmp", _STAGED_PREFIX)
        with self.layer_records.transaction():
            for layer in self.layer_records.incomplete():
                self._remove_layer(layer.id)

    # -- lookups ---------------------------------------------------------------------

    def layers(self) -> tuple[Layer, ...]:
        """This store's layers, then the read-only stores' (the first of an ID wins)."""
        out = list(self.layer_records.records())
        seen = {r.id for r in out}
        for ro in self.read_only_stores:
            out += [r for r in ro.layer_records.records() if r.id not in seen]
            seen |= {r.id for r in out}
        return tuple(out)

    def images(self) -> tuple[Image, ...]:
        """This store's images, then the read-only stores' (the first of an ID wins)."""
        out = list(self.image_records.records())
        seen = {r.id for r in out}
        for ro in self.read_only_stores:
            out += [r for r in ro.image_records.records() if r.id not in seen]
            seen |= {r.id for r in out}
        return tuple(out)

    def layer(self, ref: str) -> Layer:
        """A layer by ID, name or unique ID prefix (here, then in the read-only
        stores)."""
        try:
            return self.layer_records.get(ref)
        except LayerUnknownError:
            for ro in self.read_only_stores:
                with contextlib.suppress(LayerUnknownError):
                    return ro.layer_records.get(ref)
            raise

    def image(self, ref: str) -> Image:
        """An image by ID, name, unique ID prefix, or (``sha256:...``) a manifest digest
        or its ID as a digest (here, then in the read-only stores)."""
        try:
            return self._image_in(self.image_records, ref)
        except ImageUnknownError:
            for ro in self.read_only_stores:
                with contextlib.suppress(ImageUnknownError):
                    return self._image_in(ro.image_records, ref)
            raise

    def _image_records_of(self, image_id: str) -> ImageRecords:
        for records in (self.image_records, *(r.image_records for r in self.read_only_stores)):
            with records.reading() as snap:
                if image_id in snap.by_id:
                    return records
        raise ImageUnknownError(f"image {image_id!r} is not known")

    def image_big_data(self, image_id: str, key: str) -> bytes | None:
        """A big-data item (``manifest``, ``sha256:<config>``...) of an image, wherever
        the image is."""
        return self._image_records_of(image_id).big_data(image_id, key)

    def tar_split_path(self, layer_id: str) -> Path:
        """The tar-split file of a layer, wherever the layer is."""
        own = self.layer_records.tar_split_path(layer_id)
        if self._layer_by_id(layer_id) is None:
            for ro in self.read_only_stores:
                with ro.layer_records.reading() as snap:
                    if layer_id in snap.by_id:
                        return ro.layer_records.tar_split_path(layer_id)
        return own

    @staticmethod
    def _image_in(records: ImageRecords, ref: str) -> Image:
        with records.reading() as snap:
            found = records._find(snap, ref)
            if found is not None:
                return found
            if ref.startswith("sha256:"):
                hex_ = ref.partition(":")[2]
                found = snap.by_id.get(hex_)
                if found is None:
                    found = next((r for r in snap.records if ref in r.digests), None)
                if found is not None:
                    return found
        raise ImageUnknownError(f"image {ref!r} is not known in {records.path}")

    def layer_path(self, layer_id: str) -> Path:
        """Where the driver keeps the layer's own files (vfs: the full tree; overlay:
        ``diff/``), in this store or a read-only one."""
        driver = self.driver.owner(layer_id)
        if isinstance(driver, OverlayDriver):
            return Path(driver.diff_dir(layer_id))
        if isinstance(driver, VfsDriver):
            return Path(driver.dir(layer_id))
        raise StorageError(f"driver {driver.name} has no layer paths")

    # -- layers ----------------------------------------------------------------------

    def _apply_target(self, layer_id: str) -> tuple[str, WhiteoutMode]:
        _load()
        if isinstance(self.driver, OverlayDriver):
            return self.driver.diff_dir(layer_id), WhiteoutMode.OVERLAY
        if isinstance(self.driver, VfsDriver):
            return self.driver.dir(layer_id), WhiteoutMode.DELETE
        raise StorageError(f"driver {self.driver.name} cannot record tar-split")

    def put_layer(self, parent_id: str | None, stream: Readable, *,
                  diff_id: Digest | None, compressed_digest: Digest | None = None,
                  names: Iterable[str] = (), options: ApplyOptions | None = None,
                  limits: ApplyLimits | None = None, same_blob_as: Layer | None = None
                  ) -> Layer:
        """Apply the layer blob ``stream`` (gzip, zstd, ... or plain tar) on top of
        ``parent_id`` and record it.

        With a ``diff_id`` the layer gets the image layer ID c/image gives it (the chain
        ID); if a complete layer with that ID exists it is returned as is (``stream`` is
        not read). Without one it gets a random ID. A wrong ``diff_id`` or
        ``compressed_digest`` raises and leaves no trace (no record, driver directory
        or tar-split)."""
        _load()
        layers = self.layer_records
        with layers.transaction() as txn:
            parent = txn.get(parent_id) if parent_id else None
            if parent is not None and parent.incomplete:
                raise LayerUnknownError(f"parent layer {parent.id} is incomplete")
            pid = parent.id if parent is not None else None
            layer_id = chain_layer_id(pid, str(diff_id)) if diff_id is not None else random_id()
            existing = self._layer_by_id(layer_id)
            if existing is not None:
                if not existing.incomplete:
                    return existing
                self._remove_layer(layer_id)  # left by a crash (we hold the lock)
            record = txn.create(Layer(id=layer_id, names=tuple(names), parent=pid or "",
                                      flags={INCOMPLETE_FLAG: True}))
            try:
                self.driver.create(layer_id, pid)
                root, mode = self._apply_target(layer_id)
                with TarSplitWriter(layers.tar_split_path(layer_id)) as tar_split:
                    applied = apply_layer(stream, root, mode=mode, options=options,
                                          limits=limits, expected_diff_id=diff_id,
                                          tar_split=tar_split)
                    if (compressed_digest is not None
                            and applied.compressed_digest != compressed_digest):
                        raise DigestMismatchError(
                            f"layer blob digest is {applied.compressed_digest}, expected "
                            f"{compressed_digest}")
            except BaseException:
                self._remove_layer(layer_id)
                raise
            done = _completed(record, applied)
            if same_blob_as is not None:
                # ``stream`` rebuilt ``same_blob_as``'s tar: record the blob it came
                # from, as c/image's LayerOptions.OriginalDigest does
                done = attrs.evolve(done, compressed_digest=same_blob_as.compressed_digest,
                                    compressed_size=same_blob_as.compressed_size,
                                    compression=same_blob_as.compression)
            return txn.update(layer_id, lambda _old: done)

    @property
    def can_stage_layers(self) -> bool:
        """Whether :meth:`stage_layer` works with this store's driver (overlay: yes;
        vfs: no, a vfs layer is a copy of its parent)."""
        return self.driver.supports_staging

    def stage_layer(self, stream: Readable, *, diff_id: Digest | None = None,
                    compressed_digest: Digest | None = None,
                    options: ApplyOptions | None = None,
                    limits: ApplyLimits | None = None) -> StagedLayer:
        """Apply the layer blob ``stream`` without knowing its parent and without any
        lock on the records, so that several layers of an image apply at once (as
        containers/storage stages layers); :meth:`put_staged_layer` then records it.
        Checks as :meth:`put_layer` does; on error nothing is left behind."""
        if not self.driver.supports_staging:
            raise StorageError(f"{self.driver.name}: layers cannot be staged")
        _load()
        path, fd = new_staging_dir(self.graphroot / "tmp", _STAGED_PREFIX)
        try:
            os.mkdir(path / "diff", 0o755)
            with TarSplitWriter(path / "tar-split.gz") as tar_split:
                applied = apply_layer(stream, path / "diff", mode=WhiteoutMode.OVERLAY,
                                      options=options, limits=limits,
                                      expected_diff_id=diff_id, tar_split=tar_split)
                if compressed_digest is not None and \
                        applied.compressed_digest != compressed_digest:
                    raise DigestMismatchError(
                        f"layer blob digest is {applied.compressed_digest}, expected "
                        f"{compressed_digest}")
        except BaseException:
            release_staging_dir(path, fd)
            raise
        return StagedLayer(path, fd, applied)

    def put_staged_layer(self, parent_id: str | None, staged: StagedLayer, *,
                         diff_id: Digest | None = None, names: Iterable[str] = ()) -> Layer:
        """Record ``staged`` as the layer on top of ``parent_id``, with the layer ID
        :meth:`put_layer` would give it. A complete layer with that ID already there is
        returned as is. ``staged`` is used up (moved or discarded) either way. A
        ``diff_id`` other than the staged layer's raises and leaves no trace."""
        applied = staged.applied
        try:
            if diff_id is not None and applied.diff_id != diff_id:
                raise DiffIDMismatchError(
                    f"layer diff_id is {applied.diff_id}, expected {diff_id}")
            layers = self.layer_records
            with layers.transaction() as txn:
                parent = txn.get(parent_id) if parent_id else None
                if parent is not None and parent.incomplete:
                    raise LayerUnknownError(f"parent layer {parent.id} is incomplete")
                pid = parent.id if parent is not None else None
                layer_id = chain_layer_id(pid, str(applied.diff_id))
                existing = self._layer_by_id(layer_id)
                if existing is not None:
                    if not existing.incomplete:
                        return existing
                    self._remove_layer(layer_id)
                record = txn.create(Layer(id=layer_id, names=tuple(names), parent=pid or "",
                                          flags={INCOMPLETE_FLAG: True}))
                try:
                    self.driver.create_from_staged(layer_id, pid, staged.diff,
                                                   root_entry=applied.root_entry)
                    os.replace(staged.tar_split, layers.tar_split_path(layer_id))
                except BaseException:
                    self._remove_layer(layer_id)
                    raise
                done = _completed(record, applied)
                return txn.update(layer_id, lambda _old: done)
        finally:
            staged.discard()

    def _layer_by_id(self, layer_id: str) -> Layer | None:
        with self.layer_records.reading() as snap:
            return snap.by_id.get(layer_id)

    def _remove_layer(self, layer_id: str) -> None:
        """Delete a layer's driver directory, tar-split and record, marking it incomplete
        first (needs the layers lock)."""
        layers = self.layer_records
        known = self._layer_by_id(layer_id) is not None
        if known:
            layers.set_flag(layer_id, INCOMPLETE_FLAG, True)
        self.driver.remove(layer_id)
        layers.tar_split_path(layer_id).unlink(missing_ok=True)
        if known:
            layers.delete(layer_id)

    # -- images ----------------------------------------------------------------------

    def create_image(self, image_id: str, top_layer: str, *, names: Iterable[str] = (),
                     manifest: bytes, manifest_digest: Digest | None = None,
                     config: bytes, config_digest: Digest | None = None,
                     created: str | None = None) -> Image:
        """Record an image as podman's pull does: ``digest`` the manifest digest, big
        data ``sha256:<config>`` (the config), ``manifest-<digest>``, ``manifest`` and an
        empty ``signature-<hex>``, ``metadata`` with the signature sizes. ``created``
        defaults to the config's ``created``."""
        m_digest = manifest_digest or Digest.from_bytes(manifest)
        c_digest = config_digest or Digest.from_bytes(config)
        if c_digest != Digest.from_bytes(config, c_digest.algorithm):
            raise DigestMismatchError(f"config digest is not {c_digest}")
        if created is None:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                value = json.loads(config).get("created")
                created = value if isinstance(value, str) else None
        when = _go_time(created) if created else ZERO_TIME
        name_list = tuple(dict.fromkeys(names))
        history: list[str] = []
        for name in name_list:
            history = [name, *(h for h in history if h != name)]
        metadata = json.dumps({"signatures-sizes": {str(m_digest): []}},
                              separators=(",", ":"))
        with self.layer_records.lockfile.shared(), self.image_records.transaction() as txn:
            top = self.layer_records.get(top_layer)
            if top.incomplete:
                raise LayerUnknownError(f"layer {top.id} is incomplete")
            # Crash safety (as c/s's images.create): the big data is written first and
            # the record, listing it, saved once after; a crash in between leaves at
            # most an unreferenced data dir, never an image without its manifest or
            # config (which a later copy of the same image would not repair).
            with txn.reading() as snap:
                if image_id in snap.by_id:  # checked before touching its data dir
                    raise DuplicateIDError(
                        f"a {txn.kind} with ID {image_id!r} already exists")
            big_data = ((str(c_digest), config, _sha256(config)),
                        (f"manifest-{m_digest}", manifest, str(m_digest)),
                        ("manifest", manifest, str(m_digest)),
                        (f"signature-{m_digest.hex}", b"", _sha256(b"")))
            record = Image(id=image_id, digest=str(m_digest), names=name_list,
                           names_history=tuple(history), top_layer=top.id,
                           metadata=metadata, created=when,
                           big_data_names=tuple(key for key, _, _ in big_data),
                           big_data_sizes={key: len(data) for key, data, _ in big_data},
                           big_data_digests={key: dig for key, _, dig in big_data})
            try:
                for key, data, _ in big_data:
                    self.image_records._write_big_data(record, key, data)
                return txn.create(record)
            except BaseException:
                shutil.rmtree(self.image_records.data_dir(image_id), ignore_errors=True)
                raise

    def delete_image(self, ref: str) -> DeletedImage:
        """Delete the image and, as c/s's ``DeleteImage(commit=true)``, its layers from
        the top down as long as no other image, container or child layer uses them."""
        layers, images, containers = (self.layer_records, self.image_records,
                                      self.container_records)
        _load(("DeletedImage",))
        with layers.transaction(), images.transaction(), containers.transaction():
            image = self.image(ref)
            others = [i for i in images.records() if i.id != image.id]
            used = {i.top_layer for i in others}
            used.update(m for i in others for m in i.mapped_top_layers)
            used.update(c.layer for c in containers.records())
            images.delete(image.id)
            removed: list[str] = []
            layer_id = image.top_layer
            while layer_id and layer_id not in used:
                layer = self._layer_by_id(layer_id)
                if layer is None or layers.children(layer_id):
                    break
                if self.mount_records.count(layer_id) > 0:
                    raise LayerInUseError(f"layer {layer_id} is mounted")
                self._remove_layer(layer_id)
                removed.append(layer_id)
                layer_id = layer.parent
            return DeletedImage(image, tuple(removed))

    @contextlib.contextmanager
    def locked(self) -> Iterator[Store]:
        """Hold the layer, image and container locks (in c/s's order) exclusively."""
        with (self.layer_records.transaction(), self.image_records.transaction(),
              self.container_records.transaction()):
            yield self

    # -- containers ------------------------------------------------------------------

    def containers(self) -> tuple[Container, ...]:
        return self.container_records.records()

    def container(self, ref: str) -> Container:
        """A container by ID, name, its layer's ID or a unique ID prefix."""
        return self.container_records.get(ref)

    def container_run_dir(self, container_id: str) -> Path:
        """c/s's ``ContainerRunDirectory``: ``<runroot>/<drv>-containers/<id>/userdata``."""
        return self.runroot / f"{self.driver.name}-containers" / container_id / "userdata"

    def create_container(self, image_ref: str, *, name: str | None = None,
                         container_id: str | None = None) -> Container:
        """Create a container of the image ``image_ref`` as podman does: a read-write
        layer with a random ID on top of the image's top layer (named ``<name>-layer``
        when the container has a name), and a ``containers.json`` record with podman's
        ``metadata`` (image-name, image-id, name, created-at) and ``flags``
        (``MountLabel``, ``ProcessLabel``, both empty). Nothing is mounted."""
        names = (name,) if name else ()
        cid = container_id or random_id()
        layers, containers = self.layer_records, self.container_records
        with layers.transaction() as txn, self.image_records.lockfile.shared(), \
                containers.transaction():
            image = self.image(image_ref)
            with containers.reading() as snap:
                if cid in snap.by_id:
                    raise DuplicateIDError(f"a container with ID {cid!r} already exists")
                for taken in names:
                    if taken in snap.by_name:
                        raise DuplicateNameError(
                            f"container name {taken!r} is already used by "
                            f"{snap.by_name[taken].id}")
            parent = None
            if image.top_layer:
                top = self.layer(image.top_layer)
                if top.incomplete:
                    raise LayerUnknownError(f"layer {top.id} is incomplete")
                parent = top.id
            layer_id = random_id()
            record = txn.create(Layer(id=layer_id, names=tuple(f"{n}-layer" for n in names),
                                      parent=parent or "", flags={INCOMPLETE_FLAG: True}))
            try:
                self.driver.create(layer_id, parent)
                layers.update(layer_id, lambda _old: attrs.evolve(record, flags={}))
                image_name = (image_ref if image_ref in image.names
                              else image.names[0] if image.names else image.id)
                metadata = json.dumps({"image-name": image_name, "image-id": image.id,
                                       "name": name or "",
                                       "created-at": int(time.time())},
                                      separators=(",", ":"))
                container = containers.create(Container(
                    id=cid, names=names, image=image.id, layer=layer_id, metadata=metadata,
                    flags={"MountLabel": "", "ProcessLabel": ""}))
            except BaseException:
                self._remove_layer(layer_id)
                raise
            # c/s's ContainerDirectory and ContainerRunDirectory
            (containers.data_dir(cid) / "userdata").mkdir(mode=0o700, parents=True,
                                                          exist_ok=True)
            self.container_run_dir(cid).mkdir(mode=0o700, parents=True, exist_ok=True)
            return container

    def _mount_target(self, ref: str) -> tuple[Layer, str]:
        """The layer a mount reference names (a container or a layer) and its mount
        label; needs the layers lock."""
        with self.container_records.reading() as snap:
            found = self.container_records._find(snap, ref)
        if found is not None:
            label = found.flags.get("MountLabel", "")
            return self.layer_records.get(found.layer), label if isinstance(label, str) else ""
        layer = self.layer_records.get(ref)
        return layer, layer.mount_label

    def _really_mounted(self, path: str) -> bool:
        if isinstance(self.driver, OverlayDriver):
            return is_mounted(path)
        return True

    def mount(self, ref: str) -> str:
        """Mount a container's layer (or a layer) and return its rootfs path. Counted in
        ``mountpoints.json`` as c/s does: the first mount mounts through the driver,
        later ones only count."""
        with self.layer_records.transaction():
            layer, label = self._mount_target(ref)
            return self._mount_layer(layer, label)

    def _mount_layer(self, layer: Layer, label: str) -> str:
        with self.mount_records.transaction():
            if layer.incomplete:
                raise LayerUnknownError(f"layer {layer.id} is incomplete")
            with self.mount_records.reading() as snap:
                entry = snap.by_id.get(layer.id)
            if entry is not None and entry.count > 0 and self._really_mounted(entry.path):
                self.mount_records.change(layer.id, entry.path, 1)
                return entry.path
            path = self.driver.mount(layer.id, label)
            # a stale count (the mount vanished) starts again at 1
            self.mount_records.change(layer.id, path, 1 - (entry.count if entry else 0))
            return path

    def mount_count(self, ref: str) -> int:
        """How many times the container's layer (or the layer) is mounted."""
        with self.layer_records.lockfile.shared():
            layer, _ = self._mount_target(ref)
            return self.mount_records.count(layer.id)

    def unmount(self, ref: str, *, force: bool = False) -> bool:
        """Drop one mount reference (all of them with ``force``); the last one really
        unmounts. Returns whether the layer is still mounted afterwards (as c/s's
        ``Unmount``)."""
        with self.layer_records.transaction():
            layer, _ = self._mount_target(ref)
            return self._unmount_layer(layer.id, force)

    def _unmount_layer(self, layer_id: str, force: bool) -> bool:
        with self.mount_records.transaction():
            count = self.mount_records.count(layer_id)
            if count > 1 and not force:
                return self.mount_records.change(layer_id, "", -1) > 0
            self.driver.unmount(layer_id)
            if count:
                self.mount_records.change(layer_id, "", -count)
            return False

    def delete_container(self, ref: str, *, force: bool = False) -> Container:
        """Delete the container: its layer (driver directory and record), its record and
        its data and run directories. A mounted container raises
        :class:`LayerInUseError` unless ``force``, which unmounts it first."""
        layers, containers = self.layer_records, self.container_records
        with layers.transaction(), self.image_records.lockfile.shared(), \
                containers.transaction():
            container = containers.get(ref)
            count = self.mount_records.count(container.layer)
            if count > 0:
                if not force:
                    raise LayerInUseError(f"container {container.id} is mounted "
                                          f"({count} times)")
                self._unmount_layer(container.layer, True)
            if self._layer_by_id(container.layer) is not None or \
                    self.driver.exists(container.layer):
                self._remove_layer(container.layer)
            containers.delete(container.id)
            shutil.rmtree(self.container_run_dir(container.id).parent, ignore_errors=True)
            return container

    def diff(self, ref: str) -> BinaryIO:
        """The changes of a container's layer (or a layer) against its parent, as an
        uncompressed OCI layer tar (whiteouts for deletions) from the driver's diff."""
        with self.layer_records.lockfile.shared():
            layer, _ = self._mount_target(ref)
            return self.driver.diff(layer.id, layer.parent or None)

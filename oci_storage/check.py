"""Consistency checks of a store (``python -m oci_storage check``) and garbage collection
of unused layers (``gc``), built on the public API of :class:`~oci_storage.store.Store`.

:func:`check_store` reports, without changing anything:

* ``layer-parent-missing``: a layer whose parent layer has no record;
* ``image-layer-missing``: an image whose top layer (or one below it) is gone or damaged;
* ``container-image-missing`` / ``container-layer-missing``;
* ``layer-incomplete``: a layer record still marked ``incomplete`` (a crash);
* ``driver-dir-orphan``: a driver directory without a layer record;
* ``layer-dir-missing``: a layer record without its driver directory;
* ``tar-split-missing``: an image layer without its ``<id>.tar-split.gz``;
* ``mount-stale``: a mount count for a layer that is not mounted (or not known).

:func:`repair_store` fixes what can be fixed without losing anything still usable:
removes incomplete layers and orphan driver directories, drops stale mount counts,
deletes the images whose layers are gone (unless a container uses them) and then the
damaged layers nothing uses any more. Open the store with :func:`open_for_check`
(:meth:`Store.open` already deletes incomplete layers on open).
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from .drivers import DRIVERS, select_driver
from .drivers.overlay import OverlayDriver, is_mounted
from .drivers.vfs import VfsDriver
from .errors import LayerInUseError
from .records import INCOMPLETE_FLAG, Layer, MountPoint
from .store import Store

__all__ = ["CheckReport", "Problem", "check_store", "delete_layer", "gc_layers",
           "layer_users", "open_for_check", "remove_layer", "repair_store"]


@attrs.frozen
class Problem:
    """One inconsistency: ``kind`` (see the module doc), the record or directory ID it
    is about, a human message, and whether :func:`repair_store` can fix it."""

    kind: str
    id: str
    message: str
    repairable: bool

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@attrs.frozen
class CheckReport:
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def of_kind(self, kind: str) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.kind == kind)


def open_for_check(graphroot: str | os.PathLike[str], runroot: str | os.PathLike[str],
                   driver_name: str | None = None) -> Store:
    """The store without :meth:`Store.open`'s recovery (which deletes incomplete layers
    and so would hide them). The driver as :meth:`Store.open` picks it."""
    graph, run = Path(graphroot).absolute(), Path(runroot).absolute()
    if not graph.is_dir():
        raise FileNotFoundError(2, "the store's graph root does not exist", str(graph))
    if driver_name is None:
        driver_name = next((d for d in DRIVERS if (graph / f"{d}-layers").is_dir()), None)
    run.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Store(graph, run, select_driver(graph, driver_name))


def _driver_dirs(store: Store) -> list[str]:
    """The layer IDs the driver has a directory for."""
    driver = store.driver
    if isinstance(driver, VfsDriver):
        base = driver.root / "dir"
        skip: set[str] = set()
    elif isinstance(driver, OverlayDriver):
        base, skip = driver.root, {"l"}
    else:  # pragma: no cover - only vfs and overlay exist
        return []
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return []
    return [n for n in names if n not in skip and (base / n).is_dir()]


def _mount_is_stale(store: Store, mount: MountPoint, layers: dict[str, Layer]) -> bool:
    if mount.id not in layers:
        return True
    driver = store.driver
    if isinstance(driver, OverlayDriver):
        return not is_mounted(mount.path)
    if isinstance(driver, VfsDriver):
        # a vfs "mount" is the layer's directory itself
        return os.path.normpath(mount.path) != os.path.normpath(driver.dir(mount.id)) \
            or not driver.exists(mount.id)
    return False  # pragma: no cover


def _chain_ids(layer_id: str, layers: dict[str, Layer]) -> tuple[list[str], str | None]:
    """The IDs from ``layer_id`` down to the bottom layer, and the first missing ID."""
    out: list[str] = []
    current: str = layer_id
    while current:
        if current in out:
            return out, current  # a loop counts as broken
        layer = layers.get(current)
        if layer is None:
            return out, current
        out.append(current)
        current = layer.parent
    return out, None


def _damaged(store: Store, layers: dict[str, Layer]) -> set[str]:
    """Layers that are unusable: incomplete, without driver directory, or on top of
    such a layer or of a missing one."""
    bad = {lid for lid, layer in layers.items()
           if layer.incomplete or not store.driver.exists(lid)}
    for lid in layers:
        chain, missing = _chain_ids(lid, layers)
        if missing is not None or any(c in bad for c in chain):
            bad.add(lid)
    return bad


def check_store(store: Store) -> CheckReport:
    """Everything inconsistent in the store (it is not changed). Read-only image stores
    are not checked (their layers only count as parents)."""
    problems: list[Problem] = []
    with store.locked(), store.mount_records.reading() as mounts:
        layers = {layer.id: layer for layer in store.layer_records.records()}
        images = store.image_records.records()
        containers = store.containers()
        # parents may live in read-only image stores; only this store is checked
        read_only_layers = {r.id for ro in store.read_only_stores
                            for r in ro.layer_records.records()}
        damaged = _damaged(store, layers)
        image_layers: set[str] = set()

        for layer in layers.values():
            if layer.parent and layer.parent not in layers \
                    and layer.parent not in read_only_layers:
                problems.append(Problem("layer-parent-missing", layer.id,
                                        f"layer {layer.id}: parent {layer.parent} is missing",
                                        False))
            if layer.incomplete:
                problems.append(Problem("layer-incomplete", layer.id,
                                        f"layer {layer.id} is marked incomplete", True))
            if not store.driver.exists(layer.id):
                problems.append(Problem("layer-dir-missing", layer.id,
                                        f"layer {layer.id} has no {store.driver.name} "
                                        "directory", True))
        used_by_container = {c.image for c in containers}
        for image in images:
            tops = [image.top_layer, *image.mapped_top_layers] if image.top_layer else []
            for top in tops:
                chain, missing = _chain_ids(top, layers)
                image_layers.update(chain)
                if missing is not None or any(c in damaged for c in chain):
                    why = (f"layer {missing} is missing" if missing is not None
                           else "its layers are damaged")
                    problems.append(Problem("image-layer-missing", image.id,
                                            f"image {image.id}: {why}",
                                            image.id not in used_by_container))
                    break
        image_ids = {i.id for i in images} | {
            r.id for ro in store.read_only_stores for r in ro.image_records.records()}
        for container in containers:
            if container.image and container.image not in image_ids:
                problems.append(Problem("container-image-missing", container.id,
                                        f"container {container.id}: image "
                                        f"{container.image} is missing", False))
            if container.layer not in layers:
                problems.append(Problem("container-layer-missing", container.id,
                                        f"container {container.id}: layer "
                                        f"{container.layer} is missing", False))
        for lid in sorted(image_layers):
            found = layers.get(lid)
            if found is None or found.incomplete:
                continue
            if not store.layer_records.tar_split_path(lid).exists():
                problems.append(Problem("tar-split-missing", lid,
                                        f"image layer {lid} has no tar-split data", False))
        for name in _driver_dirs(store):
            if name not in layers:
                problems.append(Problem("driver-dir-orphan", name,
                                        f"{store.driver.name} directory {name} has no "
                                        "layer record", True))
        for mount in mounts.records:
            if mount.count > 0 and _mount_is_stale(store, mount, layers):
                problems.append(Problem("mount-stale", mount.id,
                                        f"layer {mount.id} has mount count {mount.count} "
                                        "but is not mounted", True))
    return CheckReport(tuple(problems))


def remove_layer(store: Store, layer_id: str) -> None:
    """Delete one layer (record, driver directory, tar-split) the way the store does:
    marked incomplete first, so a crash half-way is recovered on the next open. Does
    not check whether anything uses it."""
    records = store.layer_records
    with records.transaction():
        with records.reading() as snap:
            known = layer_id in snap.by_id
        if known:
            records.set_flag(layer_id, INCOMPLETE_FLAG, True)
        store.driver.remove(layer_id)
        records.tar_split_path(layer_id).unlink(missing_ok=True)
        if known:
            records.delete(layer_id)


def repair_store(store: Store) -> list[str]:
    """Fix what can be fixed safely (see the module doc); what was done, one line each."""
    done: list[str] = []
    with store.locked():
        layers = {layer.id: layer for layer in store.layer_records.records()}
        damaged = _damaged(store, layers)
        containers = store.containers()
        # images whose layers are gone (kept while a container uses them)
        used_by_container = {c.image for c in containers}
        for image in store.image_records.records():
            tops = [image.top_layer, *image.mapped_top_layers] if image.top_layer else []
            broken = False
            for top in tops:
                chain, missing = _chain_ids(top, layers)
                broken = broken or missing is not None or any(c in damaged for c in chain)
            if broken and image.id not in used_by_container:
                store.image_records.delete(image.id)
                done.append(f"deleted image {image.id} (its layers are gone)")
        # damaged layers nothing left uses (incomplete ones always)
        needed: set[str] = set()
        for image in store.image_records.records():
            for top in (image.top_layer, *image.mapped_top_layers):
                if top:
                    needed.update(_chain_ids(top, layers)[0])
        for container in containers:
            needed.update(_chain_ids(container.layer, layers)[0])
        for lid in sorted(damaged):
            layer = layers[lid]
            if lid in needed and not layer.incomplete:
                continue
            if any(m.id == lid and m.count > 0 and not _mount_is_stale(store, m, layers)
                   for m in store.mount_records.records()):
                continue  # really mounted: leave it alone
            remove_layer(store, lid)
            why = "incomplete" if layer.incomplete else "damaged"
            done.append(f"removed {why} layer {lid}")
        # orphan driver directories
        known = {layer.id for layer in store.layer_records.records()}
        for name in _driver_dirs(store):
            if name not in known:
                store.driver.remove(name)
                done.append(f"removed {store.driver.name} directory {name} (no layer record)")
        # stale mount counts
        current = {layer.id: layer for layer in store.layer_records.records()}
        with store.mount_records.transaction():
            mounts = store.mount_records.records()
            keep = [m for m in mounts
                    if m.count > 0 and not _mount_is_stale(store, m, current)]
            if len(keep) != len(mounts):
                for m in mounts:
                    if m not in keep:
                        done.append(f"reset mount count {m.count} of layer {m.id}")
                store.mount_records.write(keep)
    return done


def gc_layers(store: Store) -> tuple[list[str], list[str]]:
    """Remove the layers no image, container or child layer uses (repeatedly, so whole
    unused chains go). Mounted ones are kept. Returns (removed IDs, kept-mounted IDs)."""
    removed: list[str] = []
    mounted: list[str] = []
    with store.locked():
        while True:
            layers = store.layer_records.records()
            used: set[str] = set()
            for image in store.image_records.records():
                used.add(image.top_layer)
                used.update(image.mapped_top_layers)
            used.update(c.layer for c in store.containers())
            used.update(layer.parent for layer in layers)
            victims = [layer.id for layer in layers
                       if layer.id not in used and layer.id not in mounted]
            progress = False
            for lid in victims:
                if store.mount_records.count(lid) > 0:
                    mounted.append(lid)
                    continue
                remove_layer(store, lid)
                removed.append(lid)
                progress = True
            if not progress:
                return removed, mounted


def layer_users(store: Store, layer_id: str) -> list[str]:
    """What uses the layer (images, containers, child layers), as ``kind id`` strings."""
    users: list[str] = [f"image {i.id}" for i in store.image_records.records()
                        if layer_id == i.top_layer or layer_id in i.mapped_top_layers]
    users += [f"container {c.id}" for c in store.containers() if c.layer == layer_id]
    users += [f"layer {layer.id}" for layer in store.layer_records.records()
              if layer.parent == layer_id]
    return users


def delete_layer(store: Store, layer_id: str, *, force: bool = False) -> None:
    """Delete a layer nothing uses; a mounted one only with ``force`` (unmounted first)."""
    with store.locked():
        users = layer_users(store, layer_id)
        if users:
            raise LayerInUseError(f"layer {layer_id} is used by {', '.join(users)}")
        if store.mount_records.count(layer_id) > 0:
            if not force:
                raise LayerInUseError(f"layer {layer_id} is mounted")
            store.unmount(layer_id, force=True)
        remove_layer(store, layer_id)

"""Pull, store, run: the CRI-O / ``podman run`` flow as an API.

:func:`run_image` resolves an image (a name already in the store, or any transport
string, pulled into the store when missing), creates a container layer on top of it,
mounts it, writes a runtime bundle from the image config (:func:`spec_from_image`),
runs it in the foreground with runc and returns the container's exit status. With
``remove=True`` (``--rm``) the container layer, its mount and the bundle go away
afterwards, whatever happened.

The pull goes through :func:`oci_image.copy.copy_image` into the
``containers-storage:`` transport, imported only when a pull is needed, so running an
image already stored does not load the copy engine.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import attrs

from oci_image.spec import ImageConfig
from oci_storage.errors import ImageUnknownError
from oci_storage.records import Image
from oci_storage.store import Store

from ._process import ProcessIO
from .bundle import CONFIG_NAME, Bundle
from .convert import ConvertOptions, spec_from_image
from .errors import ContainerNotFoundError, OCIRuntimeError, RuncError
from .runc import Runc, RunOptions

__all__ = [
    "PreparedContainer",
    "PullPolicy",
    "RunImageOptions",
    "StoreLocation",
    "prepare_container",
    "remove_container",
    "resolve_image",
    "run_image",
    "stop_container",
]


_STOP_SIGNAL = "org.opencontainers.image.stopSignal"

#: ``missing`` (pull only when the store lacks it), ``always``, ``never``
PullPolicy = Literal["missing", "always", "never"]


@attrs.frozen
class StoreLocation:
    """Which store: its graph root, run root and driver (``None``: the one in use, else
    overlay when it works here, else vfs)."""

    graphroot: str
    runroot: str
    driver: str | None = None
    #: read-only additional image stores (graph roots)
    image_stores: tuple[str, ...] = ()

    def open(self) -> Store:
        return Store.open(self.graphroot, self.runroot, self.driver,
                          image_stores=self.image_stores)

    def transport_spec(self, store: Store) -> str:
        return f"[{store.driver.name}@{store.graphroot}+{store.runroot}]"


@attrs.frozen(kw_only=True)
class RunImageOptions:
    """How :func:`run_image` runs.

    * ``store``: where images and container layers live.
    * ``runc``: the runtime (give it a private ``root``).
    * ``convert``: the runtime-config options (the command given to :func:`run_image`
      replaces the image's ``Cmd``, as ``podman run IMAGE CMD...`` does).
    * ``pull``: :data:`PullPolicy`; ``copy_options``: a
      :class:`~oci_image.copy.CopyOptions` for the pull (registry options...).
    * ``name``: the container's name in the store; ``remove``: delete it afterwards.
    * ``io``: the container's stdio (default: the caller's own fds).
    * ``bundle_dir``: where to write the bundle (default: the container's run
      directory in the store's run root, as podman's ``userdata``). Removing the
      container removes only its ``config.json`` from a directory given here (and the
      directory when that leaves it empty).
    """

    store: StoreLocation
    runc: Runc = attrs.field(factory=Runc)
    convert: ConvertOptions = attrs.field(factory=ConvertOptions)
    pull: PullPolicy = "missing"
    copy_options: object | None = None
    name: str | None = None
    remove: bool = True
    io: ProcessIO | None = None
    bundle_dir: str | None = None


def _has_transport(image: str) -> bool:
    head, sep, _ = image.partition(":")
    if not sep or "/" in head or "." in head:
        return False  # "localhost/x:1", "reg.io:5000/x": names, not transports
    from oci_image.transports import known_transports

    return head in known_transports()


def _store_name(image: str) -> tuple[str, str]:
    """The transport string to pull from and the name the image gets in the store: its
    docker reference, else ``localhost/<the transport details, sanitised>:latest``
    (podman names an ``oci:`` image after its path the same way)."""
    if not _has_transport(image):  # a docker reference: no need to load the transports
        from oci_image.spec.reference import Reference

        return f"docker://{image}", str(Reference.parse(image).with_default_tag())
    from oci_image.transports import parse_image_name

    source = image
    docker_ref = parse_image_name(source).docker_reference()
    if docker_ref is not None:
        return source, str(docker_ref)
    details = source.partition(":")[2]
    slug = re.sub(r"[^a-z0-9]+", "-", details.lower()).strip("-") or "image"
    return source, f"localhost/{slug}:latest"


def _pull(source: str, name: str, store: Store, location: StoreLocation,
          copy_options: object | None) -> None:
    """Copy ``source`` into the store as ``name``."""
    from oci_image.copy import CopyOptions, copy_image
    from oci_image.transports import parse_image_name

    dest = parse_image_name(f"containers-storage:{location.transport_spec(store)}{name}")
    if copy_options is not None and not isinstance(copy_options, CopyOptions):
        raise TypeError("copy_options must be an oci_image.copy.CopyOptions")
    import logging  # (running a stored image does not load logging)

    logging.getLogger("oci_runtime.run").info("pulling %s into %s as %s", source, store,
                                              name)
    copy_image(parse_image_name(source), dest, copy_options)


def _local_names(image: str) -> tuple[str, ...]:
    """podman's local names for a short name: ``app:v1`` is also ``localhost/app:v1``
    (what ``podman build -t app:v1`` and ``podman tag`` store)."""
    if _has_transport(image):
        return ()
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return ()  # a domain of its own
    from oci_image.spec.reference import Reference

    with contextlib.suppress(ValueError):
        return (str(Reference.parse(f"localhost/{image}").with_default_tag()),)
    return ()


def resolve_image(image: str, store: Store, location: StoreLocation, *,
                  pull: PullPolicy = "missing", copy_options: object | None = None
                  ) -> tuple[Image, str]:
    """The store's record of ``image`` (a name or ID in the store, or any transport
    string), pulled per ``pull`` (``copy_options``: an oci_image CopyOptions), and the
    name it goes by: its first name when found under the caller's own name or ID (else
    ``image``), or the name it was stored or pulled under (:func:`_store_name`). A
    short name is looked for normalised (``busybox`` is
    ``docker.io/library/busybox:latest``) and, as podman does, under ``localhost/``."""
    if pull != "always" and not _has_transport(image):
        with contextlib.suppress(ImageUnknownError):
            found = store.image(image)  # a name or ID in the store
            return found, (found.names[0] if found.names else image)
    source, name = _store_name(image)
    if pull != "always":
        for candidate in (name, *_local_names(image)):
            with contextlib.suppress(ImageUnknownError):
                return store.image(candidate), candidate
    if pull == "never":
        raise ImageUnknownError(f"image {image!r} is not in the store (pull=never)")
    _pull(source, name, store, location, copy_options)
    return store.image(name), name


@attrs.frozen
class PreparedContainer:
    """A container ready for runc: created in the store, mounted, with its bundle
    written (:func:`prepare_container`). ``id`` is its ID in the store and the ID to
    give runc."""

    id: str
    name: str | None
    image_id: str
    bundle: Bundle
    rootfs: Path


def _bundle_dir(store: Store, container_id: str, options: RunImageOptions) -> Path:
    return Path(options.bundle_dir) if options.bundle_dir else \
        store.container_run_dir(container_id) / "bundle"


def _prepare(store: Store, image: str, command: Sequence[str], options: RunImageOptions
             ) -> PreparedContainer:
    location = options.store
    image_id = resolve_image(image, store, location, pull=options.pull,
                             copy_options=options.copy_options)[0].id
    config_raw = store.image_big_data(image_id, f"sha256:{image_id}")
    if config_raw is None:
        raise OCIRuntimeError(f"image {image_id} has no config in the store")
    config = ImageConfig.from_json(config_raw)
    container = store.create_container(image_id, name=options.name)
    try:
        rootfs = store.mount(container.id)
        process = options.convert.process
        if command:
            process = attrs.evolve(process, cmd=tuple(command))
        if process.terminal is None:
            process = attrs.evolve(process, terminal=False)
        convert = attrs.evolve(options.convert, process=process)
        spec = spec_from_image(config, rootfs, convert)
        bundle = Bundle.create(_bundle_dir(store, container.id, options), spec,
                               rootfs=rootfs)
    except BaseException:
        _remove(store, container.id, options)
        raise
    return PreparedContainer(id=container.id, name=options.name, image_id=image_id,
                             bundle=bundle, rootfs=Path(rootfs))


def _remove(store: Store, container_id: str, options: RunImageOptions) -> None:
    bundle_dir = _bundle_dir(store, container_id, options)
    store.unmount(container_id, force=True)
    store.delete_container(container_id, force=True)
    if options.bundle_dir is None:
        shutil.rmtree(bundle_dir, ignore_errors=True)  # ours, in the container's run dir
    else:  # the caller's directory: only what we wrote, and the directory if now empty
        with contextlib.suppress(FileNotFoundError):
            (bundle_dir / CONFIG_NAME).unlink()
        with contextlib.suppress(OSError):
            bundle_dir.rmdir()


def prepare_container(image: str, command: Sequence[str] = (),
                      options: RunImageOptions | None = None) -> PreparedContainer:
    """Everything :func:`run_image` does before starting runc: resolve (and pull) the
    image, create a container in the store, mount it and write its bundle. Start it
    with ``options.runc`` (``run``, or ``create``/``start``, detached or not) under
    the returned ``id``; :func:`remove_container` undoes it all. On failure nothing is
    left behind."""
    if options is None:
        raise TypeError("prepare_container needs RunImageOptions(store=...)")
    with options.store.open() as store:
        return _prepare(store, image, command, options)


def remove_container(container_id: str, options: RunImageOptions) -> None:
    """Delete the runc container ``container_id`` (``--force``: killed if running; not
    an error when runc does not know it), then unmount it, delete it from the store
    (its layer and run directory) and remove its bundle. ``container_id`` is an ID or
    name in the store."""
    with options.store.open() as store:
        container = store.container(container_id)
        with contextlib.suppress(ContainerNotFoundError):
            options.runc.delete(container.id, force=True)
        _remove(store, container.id, options)


def stop_container(container_id: str, options: RunImageOptions, *,
                   timeout: float = 10.0, stop_signal: int | str | None = None) -> bool:
    """``podman stop``: send the container's stop signal (``stop_signal``, else the
    ``org.opencontainers.image.stopSignal`` annotation of its config, else SIGTERM),
    wait up to ``timeout`` seconds for it to stop, then SIGKILL every process and wait
    until runc reports it stopped. Returns whether it was running. ``container_id`` is
    an ID or name in the store."""
    import time

    with options.store.open() as store:
        cid = store.container(container_id).id
    try:
        state = options.runc.state(cid)
    except ContainerNotFoundError:
        return False
    if state.status not in ("running", "paused", "created"):
        return False
    if stop_signal is None:
        stop_signal = "TERM"
        with contextlib.suppress(OSError, OCIRuntimeError):
            spec = Bundle(Path(state.bundle)).load_config()
            if spec.annotations is not None:
                stop_signal = spec.annotations.get(_STOP_SIGNAL, stop_signal)
    def stopped() -> bool:
        try:
            return options.runc.state(cid).status == "stopped"
        except ContainerNotFoundError:
            return True

    def kill(sig: int | str, all_processes: bool = False) -> None:
        try:
            options.runc.kill(cid, sig, all_processes=all_processes)
        except ContainerNotFoundError:
            pass
        except RuncError:
            if not stopped():  # else it exited meanwhile ("container not running")
                raise

    def wait(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not stopped():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    if state.status == "paused":
        options.runc.resume(cid)
    kill(stop_signal)
    if not wait(timeout):
        kill("KILL", all_processes=True)
        if not wait(5.0):
            raise OCIRuntimeError(f"container {container_id} did not stop after SIGKILL")
    return True


def run_image(image: str, command: Sequence[str] = (), options: RunImageOptions | None = None
              ) -> int:
    """Run ``image`` (a stored name or ID, or any transport string) with ``command``
    (empty: the image's own) in the foreground; return the container's exit status.
    Raises :class:`~oci_runtime.errors.RuncError` when runc itself fails and
    :class:`~oci_image.errors.OCIError` subclasses for pull, store and spec errors.

    For a container in the background, use :func:`prepare_container` and start it
    with ``runc.run(id, bundle, RunOptions(detach=True))``; :func:`stop_container`
    and :func:`remove_container` end it."""
    if options is None:
        raise TypeError("run_image needs RunImageOptions(store=...)")
    with options.store.open() as store:
        prepared = _prepare(store, image, command, options)
        finished = False  # runc run deletes its container when the process exits
        try:
            status = options.runc.run(prepared.id, prepared.bundle.path, RunOptions(),
                                      io=options.io or ProcessIO.inherit())
            finished = True
            return status
        finally:
            if not finished:
                with contextlib.suppress(OCIRuntimeError):
                    options.runc.delete(prepared.id, force=True)
            if options.remove:
                _remove(store, prepared.id, options)
            else:
                store.unmount(prepared.id)

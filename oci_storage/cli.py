"""``python -m oci_storage``: manage a containers/storage store, as the
``containers-storage`` tool does.

    python -m oci_storage [-g GRAPHROOT] [-R RUNROOT] [-s DRIVER] COMMAND ...

    layers [--json]                  images [--json]            containers [--json]
    create IMAGE [--name N]          mount NAME|ID              unmount NAME|ID [--force]
    delete NAME|ID [--force]         diff NAME|ID [-o FILE]     check [--repair]
    gc                               unpack IMAGE ROOTFS [--override-os/-arch/-variant]

``unpack`` takes any transport string (``oci:DIR:TAG``, ``docker://...``) and needs no
store: it applies the image's layers onto a new directory, as ``umoci unpack`` does for
its rootfs. The roots and driver default to storage.conf's (:func:`load_storage_config`). ``--json``
prints the records as containers-storage does (their ``layers.json``/``images.json``/
``containers.json`` form). Errors print one line on stderr and exit with status 1 (a
traceback only with ``--debug``); ``check`` also exits 1 while problems remain.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from oci_image.errors import OCIError

from .check import check_store, delete_layer, gc_layers, open_for_check, repair_store
from .config import image_stores, load_storage_config
from .errors import ContainerUnknownError, ImageUnknownError, LayerUnknownError, StorageError
from .store import Store

__all__ = ["main"]

log = logging.getLogger("oci_storage.cli")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m oci_storage", description=(
        "Manage a containers/storage-compatible store (layers, images, containers)."))
    p.add_argument("-g", "--root", metavar="GRAPHROOT", help="the store's graph root")
    p.add_argument("-R", "--runroot", metavar="RUNROOT", help="the store's run root")
    p.add_argument("-s", "--storage-driver", metavar="DRIVER", help="vfs or overlay")
    p.add_argument("--storage-opt", action="append", default=[], metavar="OPT",
                   help="a driver option; DRIVER.imagestore=PATH adds a read-only image "
                        "store (default: storage.conf's additionalimagestores)")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, what in (("layers", "layers"), ("images", "images"),
                       ("containers", "containers")):
        c = sub.add_parser(name, help=f"list the {what}")
        c.add_argument("--json", "-j", action="store_true", help="print JSON")

    c = sub.add_parser("create", help="create a container of an image; prints its ID")
    c.add_argument("image")
    c.add_argument("--name", "-n", help="the container's name")

    c = sub.add_parser("mount", help="mount a container (or layer); prints the path")
    c.add_argument("ref", metavar="NAME|ID")

    c = sub.add_parser("unmount", aliases=["umount"], help="unmount a container (or layer)")
    c.add_argument("ref", metavar="NAME|ID")
    c.add_argument("--force", "-f", action="store_true", help="drop every mount reference")

    c = sub.add_parser("delete", help="delete a container, image or layer")
    c.add_argument("ref", metavar="NAME|ID")
    c.add_argument("--force", "-f", action="store_true",
                   help="unmount a mounted container or layer first")

    c = sub.add_parser("diff", help="a container's (or layer's) changes as an OCI layer tar")
    c.add_argument("ref", metavar="NAME|ID")
    c.add_argument("-o", "--output", metavar="FILE", help="write here, not to stdout")

    c = sub.add_parser("check", help="check the store's consistency")
    c.add_argument("--repair", action="store_true", help="fix what can be fixed safely")

    sub.add_parser("gc", help="remove layers no image, container or layer uses")

    c = sub.add_parser("unpack", help="unpack an image (any transport) into a new rootfs "
                       "directory")
    c.add_argument("image", metavar="IMAGE", help="TRANSPORT:DETAILS, e.g. oci:DIR:TAG")
    c.add_argument("rootfs", metavar="ROOTFS", help="a new (or empty) directory")
    c.add_argument("--override-os", metavar="OS")
    c.add_argument("--override-arch", metavar="ARCH")
    c.add_argument("--override-variant", metavar="VARIANT")
    return p


def _roots(args: argparse.Namespace) -> tuple[str, str, str | None]:
    root, runroot, driver = args.root, args.runroot, args.storage_driver
    if root is None or runroot is None or driver is None:
        config = load_storage_config()
        if driver is None and root is None:
            driver = config.driver or None  # a given root keeps the driver it uses
        root = root or str(config.graphroot)
        runroot = runroot or str(config.runroot)
    return root, runroot, driver


def _open(args: argparse.Namespace) -> Store:
    root, runroot, driver = _roots(args)
    options = args.storage_opt
    if not options and args.root is None:
        options = load_storage_config().driver_options
    return Store.open(root, runroot, driver, image_stores=image_stores(options))


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=4))


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _cmd_layers(args: argparse.Namespace) -> int:
    with _open(args) as store:
        layers = store.layers()
    if args.json:
        _print_json([layer.to_json() for layer in layers])
        return 0
    rows = [["ID", "PARENT", "SIZE", "NAMES"]]
    rows += [[layer.id, layer.parent[:12], str(layer.uncompressed_size),
              ",".join(layer.names)] for layer in layers]
    _table(rows)
    return 0


def _cmd_images(args: argparse.Namespace) -> int:
    with _open(args) as store:
        images = store.images()
    if args.json:
        _print_json([image.to_json() for image in images])
        return 0
    rows = [["ID", "NAMES", "TOP LAYER", "CREATED"]]
    rows += [[image.id, ",".join(image.names), image.top_layer[:12], image.created]
             for image in images]
    _table(rows)
    return 0


def _cmd_containers(args: argparse.Namespace) -> int:
    with _open(args) as store:
        containers = store.containers()
    if args.json:
        _print_json([container.to_json() for container in containers])
        return 0
    rows = [["ID", "NAMES", "IMAGE", "LAYER"]]
    rows += [[c.id, ",".join(c.names), c.image[:12], c.layer[:12]] for c in containers]
    _table(rows)
    return 0


def _cmd_create(args: argparse.Namespace) -> int:
    with _open(args) as store:
        print(store.create_container(args.image, name=args.name).id)
    return 0


def _cmd_mount(args: argparse.Namespace) -> int:
    with _open(args) as store:
        print(store.mount(args.ref))
    return 0


def _cmd_unmount(args: argparse.Namespace) -> int:
    with _open(args) as store:
        still = store.unmount(args.ref, force=args.force)
    if still:
        print(f"{args.ref} is still mounted", file=sys.stderr)
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    """As containers-storage's ``delete``: a container (with its layer), else an image,
    else a layer. Safer than it: an image a container uses and a layer anything uses
    are refused, an image takes the layers only it used with it (as ``delete-image``),
    and a mounted container or layer needs ``--force``."""
    ref = args.ref
    with _open(args) as store, store.locked():
        try:
            container = store.container(ref)
        except ContainerUnknownError:
            pass
        else:
            store.delete_container(container.id, force=args.force)
            print(container.id)
            return 0
        try:
            image = store.image(ref)
        except ImageUnknownError:
            pass
        else:
            users = [c.id for c in store.containers() if c.image == image.id]
            if users:
                raise StorageError(f"image {image.id} is used by container(s) "
                                   f"{', '.join(users)}")
            deleted = store.delete_image(image.id)
            print(image.id)
            for layer_id in deleted.layers:
                print(layer_id)
            return 0
        try:
            layer = store.layer(ref)
        except LayerUnknownError:
            raise StorageError(f"no container, image or layer {ref!r}") from None
        delete_layer(store, layer.id, force=args.force)
        print(layer.id)
        return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    with _open(args) as store:
        stream = store.diff(args.ref)
    with stream:
        if args.output:
            with open(args.output, "wb") as out:
                shutil.copyfileobj(stream, out)
        else:
            shutil.copyfileobj(stream, sys.stdout.buffer)
            sys.stdout.buffer.flush()
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    root, runroot, driver = _roots(args)
    store = open_for_check(root, runroot, driver)
    report = check_store(store)
    for problem in report.problems:
        print(f"{problem.kind}: {problem.message}")
    if args.repair and not report.ok:
        for action in repair_store(store):
            print(f"repaired: {action}")
        report = check_store(store)
        for problem in report.problems:
            print(f"remaining: {problem.kind}: {problem.message}")
    if report.ok:
        print("ok")
        return 0
    return 1


def _cmd_gc(args: argparse.Namespace) -> int:
    with _open(args) as store:
        removed, mounted = gc_layers(store)
    for layer_id in removed:
        print(f"removed layer {layer_id}")
    for layer_id in mounted:
        print(f"kept mounted layer {layer_id}", file=sys.stderr)
    return 0


def _cmd_unpack(args: argparse.Namespace) -> int:
    # the CLI is a composition root: it reaches transports through oci_image's registry
    # (the library modules of oci_storage never do; see tests/test_architecture.py)
    from oci_image.spec import Platform, host_platform
    from oci_image.transports import parse_image_name

    from .unpack import unpack_image

    platform = None
    if args.override_os or args.override_arch or args.override_variant:
        host = host_platform()
        platform = Platform(args.override_os or host.os,
                            args.override_arch or host.architecture,
                            variant=args.override_variant or (
                                "" if args.override_arch else host.variant))
    with parse_image_name(args.image).open_source() as source:
        unpacked = unpack_image(source, args.rootfs, platform=platform)
    print(unpacked.manifest_digest)
    return 0


_COMMANDS = {
    "layers": _cmd_layers,
    "images": _cmd_images,
    "containers": _cmd_containers,
    "create": _cmd_create,
    "mount": _cmd_mount,
    "unmount": _cmd_unmount,
    "umount": _cmd_unmount,
    "delete": _cmd_delete,
    "diff": _cmd_diff,
    "check": _cmd_check,
    "gc": _cmd_gc,
    "unpack": _cmd_unpack,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except (OCIError, OSError, ValueError, LookupError) as exc:
        if args.debug:
            raise
        print(f"Error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return " ".join(text.split())

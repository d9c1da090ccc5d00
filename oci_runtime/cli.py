"""``python -m oci_runtime``: run images from a store with runc, as ``podman run`` does.

    python -m oci_runtime [--root G] [--runroot R] [--storage-driver D]
                          [--runtime runc] [--runtime-root DIR]
        run [--rm] [--name N] [--pull missing|always|never] [--tls-verify=false]
            [-e K=V] [-u USER] [-w DIR] [--entrypoint CMD] [--read-only]
            [--hostname H] [--memory BYTES] [--pids-limit N]
            IMAGE [COMMAND [ARG...]]
        spec [--rootless]            print runc's default config.json

IMAGE is a name or ID in the store, or any transport string (``docker://...``,
``oci:DIR:TAG``...); a name not in the store is pulled from ``docker://`` (``--pull``).
The store defaults to storage.conf's. ``run`` exits with the container's status; an
error of ours or runc's prints one line and exits 125, as podman does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from oci_image.errors import OCIError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m oci_runtime", description=(
        "Run OCI images from a containers/storage-compatible store with runc."))
    p.add_argument("--root", metavar="GRAPHROOT", help="the store's graph root")
    p.add_argument("--runroot", metavar="RUNROOT", help="the store's run root")
    p.add_argument("--storage-driver", metavar="DRIVER", help="overlay or vfs")
    p.add_argument("--runtime", default="runc", help="runc, crun or a path")
    p.add_argument("--runtime-root", metavar="DIR", help="the runtime's state directory")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run a command in a new container")
    r.add_argument("--rm", action="store_true", help="remove the container afterwards")
    r.add_argument("--name", help="the container's name in the store")
    r.add_argument("--pull", choices=("missing", "always", "never"), default="missing")
    r.add_argument("--tls-verify", default="true", choices=("true", "false"),
                   help="verify registry TLS (false also allows plain HTTP)")
    r.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    r.add_argument("-u", "--user", help="USER[:GROUP], names or IDs")
    r.add_argument("-w", "--workdir", help="the working directory")
    r.add_argument("--entrypoint", help="replace the image's entrypoint")
    r.add_argument("--read-only", action="store_true", help="a read-only rootfs")
    r.add_argument("--hostname")
    r.add_argument("--memory", type=int, metavar="BYTES", help="memory limit")
    r.add_argument("--pids-limit", type=int, metavar="N", help="process limit")
    r.add_argument("image", metavar="IMAGE")
    r.add_argument("args", nargs=argparse.REMAINDER, metavar="COMMAND")

    s = sub.add_parser("spec", help="print runc's default config.json")
    s.add_argument("--rootless", action="store_true")
    return p


def _cmd_spec(args: argparse.Namespace) -> int:
    from .profiles import default_spec, rootless_spec

    spec = rootless_spec() if args.rootless else default_spec()
    sys.stdout.buffer.write(spec.to_json() + b"\n")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .convert import (
        ConvertOptions,
        FilesystemOptions,
        ProcessOptions,
        ResourceLimits,
    )
    from .run import RunImageOptions, StoreLocation, run_image
    from .runc import Runc

    root, runroot, driver = args.root, args.runroot, args.storage_driver
    if root is None or runroot is None:
        from oci_storage.config import load_storage_config

        config = load_storage_config()
        root = root or str(config.graphroot)
        runroot = runroot or str(config.runroot)
        driver = driver or config.driver or None
    process = ProcessOptions(env=args.env, user=args.user, cwd=args.workdir,
                             entrypoint=(args.entrypoint,) if args.entrypoint is not None
                             else None)
    convert = ConvertOptions(
        docker_compatible=True, process=process, hostname=args.hostname,
        filesystem=FilesystemOptions(read_only=args.read_only),
        limits=ResourceLimits(memory=args.memory, pids=args.pids_limit))
    copy_options = None
    if args.tls_verify == "false":
        from oci_image.copy import CopyOptions
        from oci_image.interfaces import OpenOptions, RegistryOptions

        copy_options = CopyOptions(
            source_options=OpenOptions(registry=RegistryOptions(tls_verify=False)))
    command = list(args.args)
    if command[:1] == ["--"]:
        command = command[1:]
    options = RunImageOptions(
        store=StoreLocation(root, runroot, driver),
        runc=Runc(binary=args.runtime, root=args.runtime_root),
        convert=convert, pull=args.pull, copy_options=copy_options, name=args.name,
        remove=args.rm)
    return run_image(args.image, command, options)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        if args.command == "spec":
            return _cmd_spec(args)
        return _cmd_run(args)
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130
    except (OCIError, OSError, ValueError, LookupError) as exc:
        if args.debug:
            raise
        print(f"Error: {' '.join((str(exc) or type(exc).__name__).split())}",
              file=sys.stderr)
        return 125

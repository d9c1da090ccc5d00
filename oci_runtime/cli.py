"""``python -m oci_runtime``: run images from a store with runc, as ``podman run`` does,
and manage system containers, as ``atomic install --system`` did.

    python -m oci_runtime [--root G] [--runroot R] [--storage-driver D]
                          [--runtime runc] [--runtime-root DIR]
        run [--rm | -d] [--name N] [--pull missing|always|never] [--tls-verify=false]
            [-t] [-e K=V] [-u USER] [-w DIR] [--entrypoint CMD] [--read-only]
            [-v HOST:CTR[:ro]] [--tmpfs PATH[:OPTS]] [--cap-add CAP] [--cap-drop CAP]
            [--network none|host] [--hostname H] [--memory BYTES] [--pids-limit N]
            IMAGE [COMMAND [ARG...]]
        ps [--json]                  the store's containers and their runc status
        stop [-t SECONDS] CONTAINER...
        rm [-f] CONTAINER...
        spec [--rootless]            print runc's default config.json
        install --system [--name N] [--set K=V]... [--requires U] [--after U]
                [--wants U] [--quadlet] [LOCATIONS] IMAGE [NAME]
        update [--rebase IMAGE] [--set K=V]... [--force] [LOCATIONS] NAME
        rollback [LOCATIONS] NAME
        uninstall [--remove-image] [LOCATIONS] NAME
        list [--json] [LOCATIONS]

IMAGE is a name or ID in the store, or any transport string (``docker://...``,
``oci:DIR:TAG``...); a name not in the store is pulled from ``docker://`` (``--pull``).
The store defaults to storage.conf's. ``run`` exits with the container's status; an
error of ours or runc's prints one line and exits 125, as podman does.

LOCATIONS are where system containers go (``--checkouts``, ``--unit-dir``,
``--tmpfiles-dir``, ``--quadlet-dir``, ``--host-root``; the host's own directories by
default) and how their units call systemd (``--systemctl auto|never|PATH``: ``auto``
runs ``systemctl`` only when systemd is PID 1 and the units go to the default
directory). Give the same LOCATIONS to every command of one installation.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from oci_image.errors import OCIError

from .errors import InstallError, OCIRuntimeError

if TYPE_CHECKING:
    from .install import Installation, InstallOptions
    from .run import RunImageOptions, StoreLocation
    from .runc import Runc
    from .spec import Mount

__all__ = ["main"]

_DEFAULT_UNIT_DIR = "/etc/systemd/system"


def _add_tls(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tls-verify", default="true", choices=("true", "false"),
                   help="verify registry TLS (false also allows plain HTTP)")


def _locations_parser() -> argparse.ArgumentParser:
    loc = argparse.ArgumentParser(add_help=False)
    g = loc.add_argument_group("system container locations")
    g.add_argument("--checkouts", default="/var/lib/containers/atomic", metavar="DIR",
                   help="the deployments' directory (default %(default)s)")
    g.add_argument("--unit-dir", default=_DEFAULT_UNIT_DIR, metavar="DIR",
                   help="where .service units go (default %(default)s)")
    g.add_argument("--tmpfiles-dir", default="/etc/tmpfiles.d", metavar="DIR",
                   help="where tmpfiles.d files go (default %(default)s)")
    g.add_argument("--quadlet-dir", default="/etc/containers/systemd", metavar="DIR",
                   help="where Quadlet .container files go (default %(default)s)")
    g.add_argument("--host-root", default="/", metavar="DIR",
                   help="prefix of the image's /exports/hostfs files (default /)")
    g.add_argument("--systemctl", default="auto", metavar="auto|never|PATH",
                   help="how to tell systemd (default: auto)")
    g.add_argument("--no-tmpfiles", action="store_true",
                   help="do not run systemd-tmpfiles on the tmpfiles.d file")
    g.add_argument("--systemd-cgroup", action="store_true",
                   help="units run runc with --systemd-cgroup")
    return loc


#: global options that take a value (to find the command word without a parser)
_GLOBAL_VALUES = ("--root", "--runroot", "--storage-driver", "--runtime", "--runtime-root")


def _command_word(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (``None``: none, or not sure)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _GLOBAL_VALUES:
            i += 2
            continue
        if arg.startswith("-"):
            if arg.split("=", 1)[0] in _GLOBAL_VALUES or arg == "--debug":
                i += 1
                continue
            return None  # -h, or something argparse should complain about
        return arg
    return None


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``only`` the global options and that one subcommand
    (what a run needs: building all of them costs milliseconds at every start)."""
    p = argparse.ArgumentParser(prog="python -m oci_runtime", description=(
        "Run OCI images from a containers/storage-compatible store with runc, and "
        "install them as systemd-managed system containers."))
    p.add_argument("--root", metavar="GRAPHROOT", help="the store's graph root")
    p.add_argument("--runroot", metavar="RUNROOT", help="the store's run root")
    p.add_argument("--storage-driver", metavar="DRIVER", help="overlay or vfs")
    p.add_argument("--runtime", default="runc", help="runc, crun or a path")
    p.add_argument("--runtime-root", metavar="DIR", help="the runtime's state directory")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def wanted(*names: str) -> bool:
        return only is None or only in names

    if wanted("run"):
        _add_run(sub)
    if wanted("ps", "stop", "rm"):
        _add_containers(sub)
    if wanted("spec"):
        s = sub.add_parser("spec", help="print runc's default config.json")
        s.add_argument("--rootless", action="store_true")
    if wanted("install", "update", "rollback", "uninstall", "list"):
        _add_system_containers(sub)
    return p


def _add_run(sub: Any) -> None:
    r = sub.add_parser("run", help="run a command in a new container")
    r.add_argument("--rm", action="store_true", help="remove the container afterwards")
    r.add_argument("-d", "--detach", action="store_true",
                   help="run in the background and print the container ID")
    r.add_argument("--name", help="the container's name in the store")
    r.add_argument("--pull", choices=("missing", "always", "never"), default="missing")
    _add_tls(r)
    r.add_argument("-t", "--tty", action="store_true",
                   help="give the container a terminal (this process's own)")
    r.add_argument("-i", "--interactive", action="store_true",
                   help="accepted for podman compatibility: stdin is always passed")
    r.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    r.add_argument("-u", "--user", help="USER[:GROUP], names or IDs")
    r.add_argument("-w", "--workdir", help="the working directory")
    r.add_argument("--entrypoint", help="replace the image's entrypoint")
    r.add_argument("--read-only", action="store_true", help="a read-only rootfs")
    r.add_argument("-v", "--volume", action="append", default=[],
                   metavar="HOST:CONTAINER[:ro|rw]", help="bind-mount a host path")
    r.add_argument("--tmpfs", action="append", default=[], metavar="PATH",
                   help="mount a tmpfs at PATH")
    r.add_argument("--cap-add", action="append", default=[], metavar="CAP")
    r.add_argument("--cap-drop", action="append", default=[], metavar="CAP")
    r.add_argument("--network", "--net", choices=("none", "host"), default="none",
                   help="none: a network namespace with loopback only (default); "
                        "host: the host's")
    r.add_argument("--hostname")
    r.add_argument("--memory", type=int, metavar="BYTES", help="memory limit")
    r.add_argument("--pids-limit", type=int, metavar="N", help="process limit")
    r.add_argument("image", metavar="IMAGE")
    r.add_argument("args", nargs=argparse.REMAINDER, metavar="COMMAND")


def _add_containers(sub: Any) -> None:
    ps = sub.add_parser("ps", help="list the store's containers and their runc status")
    ps.add_argument("--json", action="store_true", help="JSON instead of a table")
    st = sub.add_parser("stop", help="stop running containers (stop signal, then KILL)")
    st.add_argument("-t", "--time", type=float, default=10.0, metavar="SECONDS",
                    help="seconds to wait before SIGKILL (default %(default)s)")
    st.add_argument("containers", nargs="+", metavar="CONTAINER")
    rm = sub.add_parser("rm", help="remove containers (their runc state, mount, layer)")
    rm.add_argument("-f", "--force", action="store_true", help="also running ones")
    rm.add_argument("containers", nargs="+", metavar="CONTAINER")


def _add_system_containers(sub: Any) -> None:
    loc = _locations_parser()
    i = sub.add_parser("install", parents=[loc],
                       help="install an image as a systemd-managed system container")
    i.add_argument("--system", action="store_true", required=True,
                   help="a system container (the only kind this installs)")
    i.add_argument("--name", dest="name_option", metavar="NAME",
                   help="the system container's name (default: the image's)")
    _add_values(i)
    for dep in ("requires", "after", "wants"):
        i.add_argument(f"--{dep}", action="append", default=[], metavar="UNIT",
                       help=f"add {dep.capitalize()}=UNIT to the unit")
    i.add_argument("--quadlet", action="store_true",
                   help="write a Quadlet .container file instead of a .service")
    _add_tls(i)
    i.add_argument("image", metavar="IMAGE")
    i.add_argument("name", nargs="?", metavar="NAME")

    u = sub.add_parser("update", parents=[loc],
                       help="pull again (or --rebase) into the other deployment")
    u.add_argument("--rebase", metavar="IMAGE", help="switch to another image")
    _add_values(u)
    u.add_argument("--force", action="store_true", help="redeploy even when unchanged")
    _add_tls(u)
    u.add_argument("name", metavar="NAME")

    b = sub.add_parser("rollback", parents=[loc], help="switch to the other deployment")
    b.add_argument("name", metavar="NAME")

    x = sub.add_parser("uninstall", parents=[loc], help="remove a system container")
    x.add_argument("--remove-image", action="store_true",
                   help="also delete its images from the store when unused")
    x.add_argument("name", metavar="NAME")

    ls = sub.add_parser("list", parents=[loc], help="list installed system containers")
    ls.add_argument("--json", action="store_true", help="JSON instead of a table")


def _add_values(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a template value (over the image's defaultValues)")


def _store_location(args: argparse.Namespace) -> StoreLocation:
    from .run import StoreLocation

    root, runroot, driver = args.root, args.runroot, args.storage_driver
    if root is None or runroot is None:
        from oci_storage.config import load_storage_config

        config = load_storage_config()
        root = root or str(config.graphroot)
        runroot = runroot or str(config.runroot)
        driver = driver or config.driver or None
    return StoreLocation(root, runroot, driver)


def _copy_options(args: argparse.Namespace) -> Any:
    if getattr(args, "tls_verify", "true") != "false":
        return None
    from oci_image.copy import CopyOptions
    from oci_image.interfaces import OpenOptions, RegistryOptions

    return CopyOptions(
        source_options=OpenOptions(registry=RegistryOptions(tls_verify=False)))


def _cmd_spec(args: argparse.Namespace) -> int:
    from .profiles import default_spec, rootless_spec

    spec = rootless_spec() if args.rootless else default_spec()
    sys.stdout.buffer.write(spec.to_json() + b"\n")
    return 0


def _has_terminal() -> bool:
    """Whether runc's foreground ``terminal: true`` mode finds a terminal to proxy."""
    if any(os.isatty(fd) for fd in (0, 1, 2)):
        return True
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC))
    except OSError:
        return False
    return True


def _volume(value: str) -> Mount:
    """``-v HOST:CONTAINER[:ro|rw]`` as podman takes it (absolute paths; the host path
    must exist: there are no named volumes)."""
    from .spec import Mount

    parts = value.split(":")
    if len(parts) == 2:
        parts.append("rw")
    if len(parts) != 3 or not all(os.path.isabs(p) for p in parts[:2]):
        raise OCIRuntimeError(f"-v {value!r}: expected /HOST/PATH:/CONTAINER/PATH[:ro|rw] "
                              "(named volumes are not supported)")
    if parts[2] not in ("ro", "rw"):
        raise OCIRuntimeError(f"-v {value!r}: unsupported option {parts[2]!r} (ro or rw)")
    if not os.path.exists(parts[0]):
        raise OCIRuntimeError(f"-v {value!r}: {parts[0]} does not exist")
    return Mount.bind(parts[0], parts[1], read_only=parts[2] == "ro")


def _tmpfs(value: str) -> Mount:
    """``--tmpfs PATH[:OPTIONS]`` as podman takes it (``/scratch:rw,size=64m``)."""
    from .spec import Mount

    path, _, opts = value.partition(":")
    if not os.path.isabs(path):
        raise OCIRuntimeError(f"--tmpfs {value!r}: the path must be absolute")
    # podman's defaults first; a later option wins in mount(8) (``exec`` after ``noexec``)
    return Mount.tmpfs(path, ["rw", "nosuid", "nodev", "noexec", "relatime",
                              *(o for o in opts.split(",") if o)])


def _host_network_files() -> list[Mount]:
    """With the host's network, its resolver and hosts files (read-only), as podman."""
    from .spec import Mount

    return [Mount.bind(f, f, read_only=True, recursive=False)
            for f in ("/etc/resolv.conf", "/etc/hosts") if os.path.exists(f)]


def _cmd_run(args: argparse.Namespace) -> int:
    from .convert import (
        ConvertOptions,
        FilesystemOptions,
        ProcessOptions,
        ResourceLimits,
        SecurityOptions,
    )
    from .run import RunImageOptions, run_image

    process = ProcessOptions(env=args.env, user=args.user, cwd=args.workdir,
                             terminal=args.tty,
                             entrypoint=(args.entrypoint,) if args.entrypoint is not None
                             else None)
    convert = ConvertOptions(
        docker_compatible=True, process=process, hostname=args.hostname,
        filesystem=FilesystemOptions(
            read_only=args.read_only,
            mounts=(*(_volume(v) for v in args.volume), *(_tmpfs(t) for t in args.tmpfs),
                    *(_host_network_files() if args.network == "host" else ()))),
        security=SecurityOptions(cap_add=args.cap_add, cap_drop=args.cap_drop),
        namespaces={"network": None} if args.network == "host" else {},
        limits=ResourceLimits(memory=args.memory, pids=args.pids_limit))
    command = list(args.args)
    if command[:1] == ["--"]:
        command = command[1:]
    if args.detach and (args.rm or args.tty):
        raise OCIRuntimeError("-d cannot be combined with --rm or -t (no monitor process "
                              "stays behind to clean up or to hold the terminal); use "
                              "stop and rm")
    if args.tty and not _has_terminal():
        raise OCIRuntimeError("-t: no terminal to give the container (stdin, stdout and "
                              "stderr are not terminals and there is no /dev/tty)")
    options = RunImageOptions(
        store=_store_location(args), runc=_runc(args), convert=convert, pull=args.pull,
        copy_options=_copy_options(args), name=args.name, remove=args.rm)
    if not args.detach:
        return run_image(args.image, command, options)
    from .run import prepare_container, remove_container
    from .runc import RunOptions

    prepared = prepare_container(args.image, command, options)
    try:
        options.runc.run(prepared.id, prepared.bundle.path, RunOptions(detach=True))
    except BaseException:
        with contextlib.suppress(OCIError, OSError):  # the start's error is the one to see
            remove_container(prepared.id, options)
        raise
    print(prepared.id)
    return 0


def _runc(args: argparse.Namespace) -> Runc:
    from .runc import Runc

    return Runc(binary=args.runtime, root=args.runtime_root)


def _run_options(args: argparse.Namespace) -> RunImageOptions:
    from .run import RunImageOptions

    return RunImageOptions(store=_store_location(args), runc=_runc(args))


def _cmd_ps(args: argparse.Namespace) -> int:
    import json

    from .errors import ContainerNotFoundError

    options = _run_options(args)
    with options.store.open() as store:
        containers = store.containers()
        images = {i.id: (i.names[0] if i.names else i.id[:12]) for i in store.images()}
    rows: list[dict[str, Any]] = []
    for c in containers:
        try:
            state = options.runc.state(c.id)
            status, pid = state.status, state.pid
        except ContainerNotFoundError:
            status, pid = "stored", 0
        rows.append({"id": c.id, "names": list(c.names), "image": c.image,
                     "image-name": images.get(c.image, c.image[:12]), "status": status,
                     "pid": pid, "created": c.created})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    _table([("CONTAINER ID", "IMAGE", "STATUS", "CREATED", "NAMES")]
           + [(r["id"][:12], r["image-name"], r["status"], r["created"][:19],
               ",".join(r["names"])) for r in rows])
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    from .run import stop_container

    options = _run_options(args)
    for name in args.containers:
        stop_container(name, options, timeout=args.time)
        print(name)
    return 0


def _cmd_rm(args: argparse.Namespace) -> int:
    from .errors import ContainerNotFoundError
    from .run import remove_container

    options = _run_options(args)
    for name in args.containers:
        if not args.force:
            with options.store.open() as store:
                cid = store.container(name).id
            try:
                status = options.runc.state(cid).status
            except ContainerNotFoundError:
                status = "stored"
            if status in ("running", "paused"):
                raise OCIRuntimeError(f"container {name} is {status}: stop it first or "
                                      "use rm -f")
        remove_container(name, options)
        print(name)
    return 0


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
              .rstrip())


# ---------------------------------------------------------------------------------------
# system containers


def _values(pairs: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InstallError(f"--set {pair!r}: expected KEY=VALUE")
        values[key] = value
    return values


def _systemctl(args: argparse.Namespace) -> str | None:
    choice = args.systemctl
    if choice == "never":
        return None
    if choice != "auto":
        return str(choice)
    systemd_running = os.path.isdir("/run/systemd/system")
    default_dir = os.path.abspath(args.unit_dir) == _DEFAULT_UNIT_DIR
    return "systemctl" if systemd_running and default_dir else None


def _install_options(args: argparse.Namespace, **extra: Any) -> InstallOptions:
    from .install import InstallOptions

    return InstallOptions(
        store=_store_location(args), checkouts=args.checkouts, unit_dir=args.unit_dir,
        tmpfiles_dir=args.tmpfiles_dir, quadlet_dir=args.quadlet_dir,
        host_root=args.host_root, runc=args.runtime, runc_root=args.runtime_root,
        systemd_cgroup=args.systemd_cgroup, systemctl=_systemctl(args),
        tmpfiles_command=None if args.no_tmpfiles else "systemd-tmpfiles",
        values=_values(getattr(args, "set", ())), copy_options=_copy_options(args),
        **extra)


def _default_name(image: str) -> str:
    """Atomic's default: the image's repository basename, without tag or digest."""
    from .run import _has_transport

    rest = image.partition(":")[2] if _has_transport(image) else image
    if rest.startswith("["):  # containers-storage:[DRIVER@ROOT+RUN]NAME
        rest = rest.partition("]")[2]
    rest = rest.lstrip("/").split("@", 1)[0]
    base = rest.rstrip("/").rsplit("/", 1)[-1].split(":", 1)[0]
    for suffix in (".tar.gz", ".tgz", ".tar"):  # oci-archive:/x/etcd.tar
        if base.endswith(suffix) and len(base) > len(suffix):
            base = base[:-len(suffix)]
            break
    return base or image


def _report(verb: str, inst: Installation) -> None:
    print(f"{verb} {inst.name}: deployment {inst.deployment} of {inst.image_name} "
          f"({inst.image_id[:12]}) at {inst.path}")
    if inst.unit_path is not None:
        print(f"  unit: {inst.unit_path}")


def _cmd_install(args: argparse.Namespace) -> int:
    from .install import install

    if args.name is not None and args.name_option is not None \
            and args.name != args.name_option:
        raise InstallError(f"two names given: {args.name!r} and --name {args.name_option!r}")
    name = args.name or args.name_option or _default_name(args.image)
    options = _install_options(args, requires=args.requires, after=args.after,
                               wants=args.wants, quadlet=args.quadlet)
    _report("installed", install(args.image, name, options))
    return 0


def _cmd_update(args: argparse.Namespace) -> int:
    from .install import get_installation, update

    options = _install_options(args)
    before = get_installation(args.name, options)
    after = update(args.name, options, args.rebase, force=args.force)
    if after.deployment == before.deployment:
        print(f"{after.name} is up to date: deployment {after.deployment} of "
              f"{after.image_name} ({after.image_id[:12]})")
    else:
        _report("updated", after)
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from .install import rollback

    _report("rolled back", rollback(args.name, _install_options(args)))
    return 0


def _cmd_uninstall(args: argparse.Namespace) -> int:
    from .install import uninstall

    uninstall(args.name, _install_options(args), remove_image=args.remove_image)
    print(f"uninstalled {args.name}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    import json

    from .install import list_installed

    installed = list_installed(_install_options(args))
    if args.json:
        doc = [{"name": i.name, "deployment": i.deployment, "path": str(i.path),
                "image": i.image, "image-name": i.image_name, "image-id": i.image_id,
                "digest": i.digest, "created": i.created, "values": dict(i.values),
                "unit": str(i.unit_path) if i.unit_path else None}
               for i in installed]
        print(json.dumps(doc, indent=2))
        return 0
    _table([("NAME", "DEPLOYMENT", "IMAGE", "IMAGE ID", "CREATED")]
           + [(i.name, str(i.deployment), i.image_name, i.image_id[:12], i.created)
              for i in installed])
    return 0


#: commands that leave logging unconfigured unless --debug (running a stored image does
#: not import logging at all; a warning still reaches stderr through logging's
#: last-resort handler, without the level and logger name)
_QUIET_COMMANDS = ("run", "ps", "stop", "rm")

_COMMANDS = {"spec": _cmd_spec, "run": _cmd_run, "ps": _cmd_ps, "stop": _cmd_stop,
             "rm": _cmd_rm, "install": _cmd_install,
             "update": _cmd_update, "rollback": _cmd_rollback,
             "uninstall": _cmd_uninstall, "list": _cmd_list}


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_word(argv)
    args = _parser(command if command in _COMMANDS else None).parse_args(argv)
    if args.debug or args.command not in _QUIET_COMMANDS:
        import logging

        logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s",
                            stream=sys.stderr)
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130
    except (OCIError, OSError, ValueError, LookupError) as exc:
        if args.debug:
            raise
        print(f"Error: {' '.join((str(exc) or type(exc).__name__).split())}",
              file=sys.stderr)
        return 125

"""System containers, as Project Atomic's ``atomic install --system``: an image pulled
into a store, checked out as a read-only root filesystem in a deployment directory,
run by runc from a systemd unit.

Layout (``checkouts`` defaults to /var/lib/containers/atomic)::

    <checkouts>/<name>       -> <name>.0     the active deployment (a symlink)
    <checkouts>/<name>.0/    rootfs/ config.json <name>.service tmpfiles-<name>.conf
                             hostfs/ info
    <checkouts>/<name>.1/    the other deployment (after an update)
    <checkouts>/.<name>.N.replaced/      the deployment an update is replacing (until
                                         the new one is active; left only by a crash,
                                         and then sorted out by the next update,
                                         rollback or uninstall: see
                                         :mod:`oci_runtime._recovery`)
    <unit_dir>/<name>.service            (or <quadlet_dir>/<name>.container)
    <tmpfiles_dir>/<name>.conf
    <host_root>/...                      the image's /exports/hostfs files

Image-provided files under ``/exports`` (all optional): ``config.json.template`` (or a
literal ``config.json``), ``manifest.json`` (``defaultValues``, ``installedFilesTemplate``,
``renameFiles``, ``noContainerService``), ``service.template``, ``tmpfiles.template`` and
``hostfs/``. Templates are substituted strictly (see :mod:`oci_runtime._templates`);
see docs/system-containers.md for the variables. The image is untrusted input here:
``/exports`` is read without following symlinks, and hostfs files go only below
``host_root`` (no ``..``, no writing through symlinks, no symlinks pointing out).

Activation is undone on failure: every host file, the unit and the tmpfiles.d file are
changed with a backup (a hard link) until the ``<checkouts>/<name>`` symlink is
switched, so a failed install, update or rollback leaves the previous state in place.

``update`` pulls the image again, except an image that exists only in the store (a
``containers-storage:`` reference, an image ID, a ``localhost/`` name): that is looked
up in the store again. With ``systemctl`` set, a Quadlet installation's service is
``NAME.service`` (what Quadlet generates from ``NAME.container``).

:func:`install`, :func:`update`, :func:`rollback`, :func:`uninstall`,
:func:`list_installed` and :func:`get_installation` are the API; every one takes an
:class:`InstallOptions` and raises :class:`~oci_runtime.errors.InstallError` (or an
:class:`~oci_image.errors.OCIError` of the pull or the store): a file that cannot be
read, written or renamed (an ``OSError``) and a ``systemctl`` or ``systemd-tmpfiles``
that fails or does not finish in :data:`_COMMAND_TIMEOUT` seconds are
``InstallError`` too, naming what failed.

This module holds the options and models, the pull and checkout, rendering a
deployment, its activation and the API; its parts are :mod:`oci_runtime._exports` (the
image's ``/exports``, read as untrusted input), :mod:`oci_runtime._hostfiles` (the
host files: checks, copies, removal, the undo journal), :mod:`oci_runtime._checkouts`
(where the deployments and their ``info`` records are) and
:mod:`oci_runtime._recovery` (an update interrupted by a crash).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import logging
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from oci_image.errors import ManifestNotFoundError, OCIError
from oci_image.spec import FrozenDict, ImageConfig
from oci_image.spec.reference import Reference
from oci_storage.errors import ImageUnknownError
from oci_storage.records import Image
from oci_storage.store import Store

from . import _units
from ._checkouts import INFO_NAME as INFO_NAME
from ._checkouts import deployment_dir, read_info, replaced_dir, tmpfiles_copy, write_info
from ._exports import decode, read_exported, read_manifest, render_hostfs
from ._hostfiles import (
    Journal,
    check_host_files,
    copy_host_files,
    host_path,
    remove_empty_dirs,
    remove_host_files,
)
from ._recovery import recover
from ._templates import all_process_capabilities, host_ids, identifiers, substitute
from .bundle import CONFIG_NAME, write_atomic
from .convert import ConvertOptions, FilesystemOptions, ProcessOptions, spec_from_image
from .errors import InstallError, SpecError
from .run import StoreLocation, _has_transport, _local_names, resolve_image
from .spec import Spec

if TYPE_CHECKING:
    from oci_image.copy import CopyOptions

__all__ = [
    "InstallOptions",
    "Installation",
    "get_installation",
    "install",
    "list_installed",
    "rollback",
    "uninstall",
    "update",
]

log = logging.getLogger("oci_runtime.install")

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
_IMAGE_ID_RE = re.compile(r"[0-9a-f]{64}")
#: seconds ``systemctl`` and ``systemd-tmpfiles`` may take before they are killed
_COMMAND_TIMEOUT: float = 120
#: variables the installer always sets (``--set`` cannot change them)
FORCED_VARIABLES: Final = ("NAME", "DESTDIR", "EXEC_START", "EXEC_STOP", "EXEC_STARTPRE",
                           "EXEC_STOPPOST", "HOST_UID", "HOST_GID", "IMAGE_ID",
                           "IMAGE_NAME")


def _abspath(path: str) -> str:
    return os.path.abspath(path)


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError("expected a list of unit names, not a string")
    return tuple(value)


def _frozen(value: Mapping[str, str]) -> FrozenDict:
    return value if isinstance(value, FrozenDict) else FrozenDict(value)


@attrs.frozen(kw_only=True)
class InstallOptions:
    """Where a system container goes and how it runs.

    * ``store``: the image store the image is pulled into.
    * ``checkouts``: the deployments' directory; ``unit_dir``, ``tmpfiles_dir``,
      ``quadlet_dir``: where the systemd files go; ``host_root``: the prefix of the
      image's ``hostfs`` files (``/`` on a real host, a directory in tests).
    * ``runc`` (binary name or path) and ``runc_root`` (``--root``; ``None``: runc's
      default) and ``systemd_cgroup`` (``--systemd-cgroup``): the commands in the unit.
    * ``values``: ``--set KEY=VALUE`` template values (over the image's defaultValues).
    * ``requires``/``after``/``wants``: ``[Unit]`` dependencies (``etcd.service``).
    * ``quadlet``: write a Quadlet ``.container`` file instead of a ``.service``.
    * ``copy_options``: :class:`~oci_image.copy.CopyOptions` for the pull (registry
      options, e.g. plain HTTP).
    * ``tmpfiles_command``: run as ``CMD --create FILE`` after writing the tmpfiles.d
      file (``--remove`` on uninstall); ``None`` to leave that to the caller.
    * ``systemctl``: when set, ``daemon-reload``, ``enable``, ``try-restart`` and
      ``disable --now`` are run with it (only where systemd is PID 1); for a Quadlet
      installation ``try-restart`` and ``stop`` of ``NAME.service`` (no ``enable``).
    """

    store: StoreLocation
    checkouts: str = attrs.field(default="/var/lib/containers/atomic", converter=_abspath)
    unit_dir: str = attrs.field(default="/etc/systemd/system", converter=_abspath)
    tmpfiles_dir: str = attrs.field(default="/etc/tmpfiles.d", converter=_abspath)
    quadlet_dir: str = attrs.field(default="/etc/containers/systemd", converter=_abspath)
    host_root: str = attrs.field(default="/", converter=_abspath)
    runc: str = "runc"
    runc_root: str | None = attrs.field(
        default=None, converter=attrs.converters.optional(_abspath))
    systemd_cgroup: bool = False
    values: FrozenDict = attrs.field(factory=FrozenDict, converter=_frozen)
    requires: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    after: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    wants: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    quadlet: bool = False
    copy_options: CopyOptions | None = None
    tmpfiles_command: str | None = "systemd-tmpfiles"
    systemctl: str | None = None


@attrs.frozen
class Installation:
    """One deployment of an installed system container (from its ``info`` file)."""

    name: str
    deployment: int
    #: the deployment directory (the bundle: ``config.json`` and ``rootfs/``)
    path: Path
    #: the image as given to :func:`install` (a transport string or a name)
    image: str
    #: its name in the store, its ID there and its manifest digest
    image_name: str
    image_id: str
    digest: str
    #: the ``--set`` values in effect
    values: FrozenDict
    created: str
    #: the active unit (``.service`` or Quadlet ``.container``) and tmpfiles.d file
    unit_path: Path | None
    tmpfiles_path: Path | None
    #: the host files this deployment installs: host path -> sha256 (or ``symlink:T``)
    installed_files: FrozenDict
    requires: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    wants: tuple[str, ...] = ()
    quadlet: bool = False

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @classmethod
    def from_info(cls, directory: Path) -> Installation:
        info = read_info(directory)
        return cls(
            name=info["name"], deployment=int(info["deployment"]), path=directory,
            image=info["image"], image_name=info["image-name"], image_id=info["image-id"],
            digest=info.get("digest", ""), values=FrozenDict(info.get("values", {})),
            created=info.get("created", ""),
            unit_path=Path(info["unit"]) if info.get("unit") else None,
            tmpfiles_path=Path(info["tmpfiles"]) if info.get("tmpfiles") else None,
            installed_files=FrozenDict(info.get("installed-files", {})),
            requires=tuple(info.get("requires", ())), after=tuple(info.get("after", ())),
            wants=tuple(info.get("wants", ())), quadlet=bool(info.get("quadlet", False)))


# ---------------------------------------------------------------------------------------
# small helpers


def _check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name) or re.search(r"\.[0-9]+$", name):
        raise InstallError(f"invalid system container name {name!r} (letters, digits, "
                           "'_.@-'; not ending in .<number>)")


def _active(name: str, options: InstallOptions) -> int | None:
    link = Path(options.checkouts) / name
    try:
        target = os.readlink(link)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InstallError(f"{link} is not a deployment symlink: {exc}") from exc
    match = re.fullmatch(re.escape(name) + r"\.([01])", target)
    if match is None:
        raise InstallError(f"{link} points at {target!r}, not a deployment")
    return int(match.group(1))


def _installed(name: str, options: InstallOptions) -> int:
    """The active deployment of ``name``; InstallError when it is not installed."""
    active = _active(name, options)
    if active is None:
        raise InstallError(f"system container {name} is not installed")
    return active


@contextlib.contextmanager
def _locked(options: InstallOptions) -> Iterator[None]:
    """Exclusive access to the checkouts directory (an flock on the directory)."""
    checkouts = Path(options.checkouts)
    checkouts.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd = os.open(checkouts, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def _os_errors(what: str) -> Iterator[None]:
    """An ``OSError`` (a file the installer could not read, write, rename or remove)
    raised inside as an :class:`InstallError` saying what failed."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, OCIError):
            raise
        raise InstallError(f"{what}: {exc}") from exc


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True,
                                timeout=_COMMAND_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise InstallError(f"{what}: {' '.join(argv)} did not finish within "
                           f"{_COMMAND_TIMEOUT:g} seconds (killed)") from None
    except OSError as exc:
        raise InstallError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    if result.returncode != 0:
        raise InstallError(f"{what}: {' '.join(argv)} failed ({result.returncode}): "
                           f"{result.stderr.strip()}")


def _systemctl(options: InstallOptions, *args: str) -> None:
    if options.systemctl is not None:
        _run([options.systemctl, *args], "systemctl")


def _tmpfiles(options: InstallOptions, mode: str, path: Path) -> None:
    if options.tmpfiles_command is None:
        return
    command = shutil.which(options.tmpfiles_command)
    if command is None:
        raise InstallError(f"{options.tmpfiles_command} is not installed (set "
                           "tmpfiles_command=None to apply tmpfiles.d files yourself)")
    _run([command, mode, str(path)], "tmpfiles")


# ---------------------------------------------------------------------------------------
# pull and checkout


def _pull(image: str, store: Store, options: InstallOptions, *, again: bool
          ) -> tuple[str, str, str]:
    """``image`` in the store: its store name, ID and manifest digest. For an install
    (``again`` false) it is pulled when the store lacks it; for an update it is pulled
    again, unless it exists only locally (:func:`_local_image`): then it is looked up
    in the store again, so an image rebuilt under the same name is picked up."""
    found: tuple[Image, str] | None = None
    if again:
        found = _local_image(image, store, options)
    if found is None:
        with _os_errors(f"pulling {image}"):
            found = resolve_image(image, store, options.store,
                                  pull="always" if again else "missing",
                                  copy_options=options.copy_options)
    record, name = found
    return name, record.id, record.digest


def _local_image(image: str, store: Store, options: InstallOptions
                 ) -> tuple[Image, str] | None:
    """The store's current record of ``image`` and its name, when the image exists only
    in the store and cannot be pulled: a ``containers-storage:`` reference (to this
    store, or with no store given), an image ID or unique ID prefix, a name in the
    ``localhost`` domain (what ``podman build`` makes), or a short name the store has
    only as ``localhost/NAME`` (as :func:`~oci_runtime.run.resolve_image` finds it).
    ``None`` for anything else (a registry, an ``oci:`` layout, an archive, another
    store): that is pulled again. :class:`InstallError` when a local image is gone."""
    if _has_transport(image):
        transport, _, details = image.partition(":")
        if transport != "containers-storage":
            return None
        return _stored_reference(image, details, store, options)
    if not _is_local_name(image, store):
        return None
    try:
        return resolve_image(image, store, options.store, pull="never")
    except ImageUnknownError as exc:
        raise InstallError(f"image {image!r} is not in the store (an image that exists "
                           f"only locally is looked up there, not pulled): {exc}") from exc


def _is_local_name(image: str, store: Store) -> bool:
    """Whether ``image`` (no transport) names an image that exists only locally."""
    if _IMAGE_ID_RE.fullmatch(image):
        return True
    if len(image) >= 3 and re.fullmatch(r"[0-9a-f]+", image):
        with contextlib.suppress(ImageUnknownError):
            if store.image(image).id.startswith(image):
                return True  # a unique ID prefix
    try:
        ref = Reference.parse(image)
    except ValueError:
        return False
    if ref.domain == "localhost":
        return True
    local = _local_names(image)
    if not local:
        return False
    if _in_store(store, str(ref.with_default_tag())):
        return False  # docker.io/library/NAME: pulled from docker.io
    return any(_in_store(store, name) for name in local)


def _in_store(store: Store, ref: str) -> bool:
    try:
        store.image(ref)
    except ImageUnknownError:
        return False
    return True


def _stored_reference(image: str, details: str, store: Store, options: InstallOptions
                      ) -> tuple[Image, str] | None:
    """A ``containers-storage:[STORE]NAME`` reference resolved in ``store`` again when
    it names ``store`` or no store; ``None`` when it names another store (that one is
    copied from again)."""
    from oci_image.transports import parse_image_name
    from oci_storage.transport import StorageReference

    rest = details
    if details.startswith("["):
        given = parse_image_name(image)
        spec = given.spec if isinstance(given, StorageReference) else None
        if spec is not None and spec.graphroot and \
                os.path.realpath(spec.graphroot) != os.path.realpath(store.graphroot):
            return None
        rest = details[details.index("]") + 1:]
    ref = parse_image_name(f"containers-storage:{options.store.transport_spec(store)}{rest}")
    if not isinstance(ref, StorageReference):  # pragma: no cover -- the transport's own
        return None
    try:
        found = ref.resolve(store)
    except ManifestNotFoundError as exc:
        raise InstallError(f"image {image!r} is not in the store (an image that exists "
                           f"only locally is looked up there, not pulled): {exc}") from exc
    name = str(ref.named) if ref.named is not None else (
        found.names[0] if found.names else found.id)
    return found, name


def _checkout(store: Store, options: InstallOptions, image_id: str, rootfs: Path
              ) -> ImageConfig:
    """A real copy of the image's tree at ``rootfs`` (not a mount: it survives reboots and
    store changes, as Atomic's ostree checkouts did)."""
    from oci_image.transports import parse_image_name
    from oci_storage.unpack import unpack_image

    ref = parse_image_name(
        f"containers-storage:{options.store.transport_spec(store)}@{image_id}")
    with ref.open_source() as source:
        unpacked = unpack_image(source, rootfs)
    os.chmod(rootfs, 0o755)  # noqa: S103 -- a rootfs is world-readable, as runc needs
    return unpacked.config


# ---------------------------------------------------------------------------------------
# one deployment


@attrs.frozen
class _Context:
    name: str
    n: int
    directory: Path
    image: str
    image_name: str
    image_id: str
    digest: str
    values: FrozenDict  # the --set values
    uuid: str
    requires: tuple[str, ...]
    after: tuple[str, ...]
    wants: tuple[str, ...]


def _runc_argv(options: InstallOptions) -> list[str]:
    runc = shutil.which(options.runc)
    if runc is None:
        raise InstallError(f"runtime {options.runc!r} not found")
    argv = [os.path.abspath(runc)]
    if options.runc_root is not None:
        argv += ["--root", options.runc_root]
    if options.systemd_cgroup:
        argv.append("--systemd-cgroup")
    return argv


def _values(ctx: _Context, options: InstallOptions, manifest: Mapping[str, Any],
            service_template: str | None) -> dict[str, str]:
    uid, gid = host_ids()
    values: dict[str, str] = {
        "RUN_DIRECTORY": "/run", "STATE_DIRECTORY": "/var/lib", "CONF_DIRECTORY": "/etc",
        "UUID": ctx.uuid, "ALL_PROCESS_CAPABILITIES": all_process_capabilities(),
    }
    runc = _runc_argv(options)
    values["RUNTIME"] = runc[0]
    values.update(manifest.get("defaultValues", {}))
    values.update(ctx.values)
    values.setdefault("PIDFILE", f"{values['RUN_DIRECTORY']}/container-{ctx.name}.pid")
    destdir = str(ctx.directory)
    used = identifiers(service_template) if service_template is not None else set()
    detached = {"EXEC_STOPPOST", "PIDFILE"} <= used  # Atomic's rule for run -d
    if detached:
        # the same path goes into ExecStart= (quoted) and, through the template, into
        # PIDFile= (verbatim: systemd expands % there and needs an absolute path)
        pidfile = values["PIDFILE"]
        if not pidfile.startswith("/") or re.search(r"[%\s\\\"']", pidfile):
            raise InstallError(f"PIDFILE {pidfile!r}: the service template runs the "
                               "container detached with PIDFile=$PIDFILE, which needs an "
                               "absolute path without '%', quotes, backslashes or spaces")
        start = [*runc, "run", "-d", "--pid-file", values["PIDFILE"], "--bundle", destdir,
                 ctx.name]
    else:
        start = [*runc, "run", "--bundle", destdir, ctx.name]
    values.update({
        "NAME": ctx.name, "DESTDIR": destdir, "HOST_UID": uid, "HOST_GID": gid,
        "IMAGE_ID": ctx.image_id, "IMAGE_NAME": ctx.image_name,
        "EXEC_START": _units.command_line(start),
        "EXEC_STOP": _units.command_line([*runc, "kill", ctx.name]),
        "EXEC_STARTPRE": _units.command_line([*runc, "delete", "--force", ctx.name]),
        "EXEC_STOPPOST": _units.command_line([*runc, "delete", "--force", ctx.name]),
    })
    return values


def _spec(ctx: _Context, rootfs: Path, config: ImageConfig, values: Mapping[str, str]
          ) -> Spec:
    template = read_exported(rootfs, "exports/config.json.template")
    literal = read_exported(rootfs, "exports/config.json") if template is None else None
    if template is None and literal is None:
        convert = ConvertOptions(
            filesystem=FilesystemOptions(read_only=True),
            process=ProcessOptions(terminal=False), hostname=ctx.name,
            ref_name=ctx.image_name)
        return spec_from_image(config, rootfs, convert)
    if template is not None:
        text = substitute(decode(template, "/exports/config.json.template"), values,
                          source="/exports/config.json.template")
    else:
        assert literal is not None
        text = decode(literal, "/exports/config.json")
    try:
        spec = Spec.from_json(text)
    except SpecError as exc:
        raise InstallError(f"the image's config.json template: {exc}") from exc
    if spec.root is None or spec.root.path != "rootfs" or not spec.root.readonly:
        raise InstallError("the image's config.json must have root.path 'rootfs' and "
                           "root.readonly true (only read-only system containers are "
                           "supported)")
    if spec.process is not None and spec.process.terminal:
        log.warning("%s: process.terminal set to false (no terminal under systemd)",
                    ctx.name)
        spec = attrs.evolve(spec, process=attrs.evolve(spec.process, terminal=False))
    return spec


def _missing_bind_sources(spec: Spec) -> list[str]:
    out = []
    for mount in spec.mounts or ():
        opts = mount.options or ()
        if (mount.type == "bind" or "bind" in opts or "rbind" in opts) and \
                mount.source and mount.source.startswith("/") and \
                not os.path.lexists(mount.source) and mount.source not in out:
            out.append(mount.source)
    return out


def _unit_file_name(name: str, quadlet: bool) -> str:
    return f"{name}.container" if quadlet else f"{name}.service"


def _deploy(ctx: _Context, store: Store, options: InstallOptions) -> None:
    """Fill ``ctx.directory``: rootfs, config.json, unit, tmpfiles, hostfs, info."""
    with _os_errors(f"preparing deployment {ctx.directory}"):
        _fill_deployment(ctx, store, options)


def _fill_deployment(ctx: _Context, store: Store, options: InstallOptions) -> None:
    ctx.directory.mkdir(mode=0o755)
    rootfs = ctx.directory / "rootfs"
    config = _checkout(store, options, ctx.image_id, rootfs)
    manifest = read_manifest(rootfs)
    raw_service = read_exported(rootfs, "exports/service.template")
    service_template = decode(raw_service, "/exports/service.template") \
        if raw_service is not None else None
    values = _values(ctx, options, manifest, service_template)
    spec = _spec(ctx, rootfs, config, values)
    write_atomic(ctx.directory / CONFIG_NAME, spec.to_json())

    tmpfiles = _render_tmpfiles(rootfs, spec, values)
    if tmpfiles:
        tmpfiles_copy(ctx.directory, ctx.name).write_text(tmpfiles)
    unit_name: str | None = None
    if not manifest.get("noContainerService", False):
        unit_name = _unit_file_name(ctx.name, options.quadlet)
        unit = _render_unit(ctx, spec, options, store, service_template, values)
        (ctx.directory / unit_name).write_text(unit)
    hostfs = render_hostfs(ctx.name, rootfs, ctx.directory, manifest, values)
    write_info(ctx.directory, _info_record(ctx, options, unit_name, bool(tmpfiles), hostfs,
                                           values["RUNTIME"]))


def _render_tmpfiles(rootfs: Path, spec: Spec, values: Mapping[str, str]) -> str:
    """The tmpfiles.d lines: the image's template substituted, or a directory for each
    bind-mount source missing on the host."""
    raw_tmpfiles = read_exported(rootfs, "exports/tmpfiles.template")
    uid, gid = host_ids()
    if raw_tmpfiles is not None:
        return substitute(decode(raw_tmpfiles, "/exports/tmpfiles.template"), values,
                          source="/exports/tmpfiles.template")
    return _units.tmpfiles_directories(_missing_bind_sources(spec), uid, gid)


def _render_unit(ctx: _Context, spec: Spec, options: InstallOptions, store: Store,
                 service_template: str | None, values: Mapping[str, str]) -> str:
    """The Quadlet ``.container`` file, or the service template (the image's or the
    default one) substituted, with the ``[Unit]`` dependencies added."""
    if options.quadlet:
        return _quadlet(ctx, spec, options, store)
    unit = substitute(service_template or _units.DEFAULT_SERVICE_TEMPLATE, values,
                      source="/exports/service.template" if service_template
                      else "the default service template")
    return _units.add_dependencies(unit, requires=ctx.requires, after=ctx.after,
                                   wants=ctx.wants)


def _info_record(ctx: _Context, options: InstallOptions, unit_name: str | None,
                 has_tmpfiles: bool, hostfs: Mapping[str, str], runtime: str
                 ) -> dict[str, Any]:
    """The new deployment's ``info`` (nothing installed on the host yet)."""
    unit_dir = options.quadlet_dir if options.quadlet else options.unit_dir
    return {
        "name": ctx.name, "deployment": ctx.n, "image": ctx.image,
        "image-name": ctx.image_name, "image-id": ctx.image_id, "digest": ctx.digest,
        "values": dict(ctx.values), "uuid": ctx.uuid, "created": _now(),
        "unit": str(Path(unit_dir) / unit_name) if unit_name else None,
        "unit-file": unit_name,
        "tmpfiles": str(Path(options.tmpfiles_dir) / f"{ctx.name}.conf") if has_tmpfiles
        else None,
        "has-container-service": unit_name is not None,
        "hostfs-files": hostfs, "installed-files": {}, "installed-dirs": [],
        "requires": list(ctx.requires), "after": list(ctx.after), "wants": list(ctx.wants),
        "quadlet": options.quadlet, "runtime": runtime, "runtime-root": options.runc_root,
    }


def _quadlet(ctx: _Context, spec: Spec, options: InstallOptions, store: Store) -> str:
    volumes = []
    for mount in spec.mounts or ():
        opts = mount.options or ()
        if (mount.type == "bind" or "bind" in opts or "rbind" in opts) and mount.source:
            volumes.append((mount.source, mount.destination, "ro" in opts))
    global_args = ["--root", str(store.graphroot), "--runroot", str(store.runroot),
                   "--storage-driver", store.driver.name]
    return _units.quadlet_container(
        name=ctx.name, image=ctx.image_id,
        description=f"System container {ctx.name} ({ctx.image_name})",
        global_args=global_args, volumes=volumes, requires=ctx.requires,
        after=ctx.after, wants=ctx.wants)


# ---------------------------------------------------------------------------------------
# activation: host files, unit, tmpfiles, symlink


def _activate(name: str, n: int, previous: int | None, options: InstallOptions
              ) -> Installation:
    """Make deployment ``n`` the active one (``previous`` was): its host files, unit and
    tmpfiles.d file in place, then the symlink switched. Everything is checked first;
    a failure before the switch puts back what was there (the previous deployment
    stays active and intact); the previous deployment's host files that the new one
    lacks are removed only after the switch."""
    new_dir = deployment_dir(options.checkouts, name, n)
    info = read_info(new_dir)
    original_info = (new_dir / INFO_NAME).read_bytes()
    old = read_info(deployment_dir(options.checkouts, name, previous)) \
        if previous is not None else None
    new_files: dict[str, str] = info["hostfs-files"]
    old_files: dict[str, str] = old["installed-files"] if old else {}
    old_dirs: list[str] = old["installed-dirs"] if old else []
    # the unit and the tmpfiles.d file where this deployment recorded them (options may
    # name other directories by now); the previous deployment's are replaced or removed
    unit_path = Path(info["unit"]) if info.get("unit") else None
    tmpfiles_path = Path(info["tmpfiles"]) if info.get("tmpfiles") else None
    old_unit = Path(old["unit"]) if old and old.get("unit") else None
    old_tmpfiles = Path(old["tmpfiles"]) if old and old.get("tmpfiles") else None
    for path, owned_path in ((unit_path, old_unit), (tmpfiles_path, old_tmpfiles)):
        if path is not None and path != owned_path and os.path.lexists(path):
            raise InstallError(f"{path} exists and was not installed by {name}; refusing "
                               "to overwrite it")
    reserved = [p for p in (unit_path, tmpfiles_path, old_unit, old_tmpfiles) if p]
    check_host_files(name, new_dir, new_files, old_files, options.host_root, reserved)
    journal = Journal()
    try:
        created = copy_host_files(new_dir, new_files, options.host_root, journal)
        if unit_path is not None:
            unit_path.parent.mkdir(parents=True, exist_ok=True)
            journal.write(unit_path, (new_dir / info["unit-file"]).read_bytes())
        if old_unit is not None and old_unit != unit_path:
            journal.remove(old_unit)
        if tmpfiles_path is not None:
            tmpfiles_path.parent.mkdir(parents=True, exist_ok=True)
            journal.write(tmpfiles_path, tmpfiles_copy(new_dir, name).read_bytes())
        if old_tmpfiles is not None and old_tmpfiles != tmpfiles_path:
            journal.remove(old_tmpfiles)
        if tmpfiles_path is not None:
            _tmpfiles(options, "--create", tmpfiles_path)
        info["installed-files"] = new_files
        info["installed-dirs"] = sorted(set(created) | set(old_dirs))
        write_info(new_dir, info)
        installation = Installation.from_info(new_dir)
        _switch_symlink(name, n, options)  # the commit point
    except BaseException as exc:
        journal.undo()
        with contextlib.suppress(OSError):
            write_atomic(new_dir / INFO_NAME, original_info)
        if isinstance(exc, OSError):
            raise InstallError(f"activating {new_dir.name} failed (nothing was "
                               f"changed): {exc}") from exc
        raise
    journal.commit()
    if old is not None:
        _remove_previous(name, new_dir, info, old, created, options)
    return installation


def _remove_previous(name: str, new_dir: Path, info: dict[str, Any],
                     old: Mapping[str, Any], created: list[str], options: InstallOptions
                     ) -> None:
    """After the switch to ``new_dir`` (its ``info``): remove the host files of the
    previous deployment (``old``) that the new one lacks and its directories that are
    left empty, and record the directories that remain."""
    old_dirs: list[str] = old["installed-dirs"]
    remove_host_files(old["installed-files"], info["installed-files"], options.host_root)
    remove_empty_dirs(old_dirs, options.host_root)
    dirs = sorted(set(created) | {d for d in old_dirs
                                   if os.path.isdir(host_path(options.host_root, d))})
    if dirs != info["installed-dirs"]:
        info["installed-dirs"] = dirs
        try:
            write_info(new_dir, info)
        except OSError as exc:
            log.warning("%s: could not update %s: %s", name, INFO_NAME, exc)


def _switch_symlink(name: str, n: int, options: InstallOptions) -> None:
    """Point ``<checkouts>/<name>`` at ``<name>.<n>`` atomically (a new symlink renamed
    over the old one)."""
    checkouts = Path(options.checkouts)
    tmp = checkouts / f".{name}.link-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(f"{name}.{n}", tmp)
    try:
        os.replace(tmp, checkouts / name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    try:  # the switch is done: a failure to make it durable is no reason to undo it
        dir_fd = os.open(checkouts, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        log.warning("could not sync %s: %s", checkouts, exc)


# ---------------------------------------------------------------------------------------
# the API


def _service_name(unit_path: Path) -> str:
    """The systemd unit a unit file makes: Quadlet generates ``NAME.service`` from
    ``NAME.container`` (systemd has no ``.container`` units)."""
    return f"{unit_path.stem}.service" if unit_path.suffix == ".container" \
        else unit_path.name


def install(image: str, name: str, options: InstallOptions) -> Installation:
    """Install ``image`` (any transport string, or a name in the store) as the system
    container ``name``: pull (when the store lacks it), check out to ``<name>.0``,
    write config.json, the unit, the tmpfiles.d file and the host files, and point
    ``<checkouts>/<name>`` at the deployment. On failure nothing is left behind."""
    _check_name(name)
    with _os_errors(f"installing {name}"), _locked(options):
        if _active(name, options) is not None or any(
                os.path.lexists(deployment_dir(options.checkouts, name, n))
                for n in (0, 1)):
            raise InstallError(f"system container {name} is already installed")
        unit = Path(options.quadlet_dir if options.quadlet else options.unit_dir) / \
            _unit_file_name(name, options.quadlet)
        for path in (unit, Path(options.tmpfiles_dir) / f"{name}.conf"):
            if os.path.lexists(path):
                raise InstallError(f"{path} already exists")
        with options.store.open() as store:
            image_name, image_id, digest = _pull(image, store, options, again=False)
            ctx = _Context(name=name, n=0,
                           directory=deployment_dir(options.checkouts, name, 0),
                           image=image, image_name=image_name, image_id=image_id,
                           digest=digest, values=options.values, uuid=str(uuid.uuid4()),
                           requires=options.requires, after=options.after,
                           wants=options.wants)
            try:
                _deploy(ctx, store, options)
                installation = _activate(name, 0, None, options)
            except BaseException:
                # _activate undid its own host changes; the deployment goes too
                shutil.rmtree(ctx.directory, ignore_errors=True)
                raise
        _systemctl(options, "daemon-reload")
        if installation.unit_path is not None and not options.quadlet:
            _systemctl(options, "enable", installation.unit_path.name)
        log.info("installed %s from %s (%s)", name, image, image_id)
        return installation


def update(name: str, options: InstallOptions, image: str | None = None, *,
           force: bool = False) -> Installation:
    """Pull the image again (or ``image``, a rebase; an image that exists only in the
    store is looked up there again instead, see :func:`_local_image`), check it out into
    the other deployment, regenerate its files with the recorded ``--set`` values
    updated by ``options.values``, and switch to it. When neither the image nor the
    values changed the installation is left as it is (unless ``force``)."""
    _check_name(name)
    with _os_errors(f"updating {name}"), _locked(options):
        active = _installed(name, options)
        recover(name, active, options.checkouts, options.host_root)
        current = Installation.from_info(deployment_dir(options.checkouts, name, active))
        values = FrozenDict({**current.values, **options.values})
        # the unit stays what it is (a Quadlet file does not turn into a .service)
        options = attrs.evolve(options, quadlet=current.quadlet)
        with options.store.open() as store:
            image_name, image_id, digest = _pull(image or current.image, store, options,
                                                 again=True)
            if not force and image_id == current.image_id and values == current.values:
                log.info("%s: latest version already installed", name)
                return current
            other = 1 - active
            directory = deployment_dir(options.checkouts, name, other)
            ctx = _Context(
                name=name, n=other, directory=directory, image=image or current.image,
                image_name=image_name, image_id=image_id, digest=digest, values=values,
                uuid=str(read_info(current.path).get("uuid", uuid.uuid4())),
                requires=options.requires or current.requires,
                after=options.after or current.after, wants=options.wants or current.wants)
            aside = replaced_dir(options.checkouts, name, other)
            if os.path.lexists(directory):
                os.rename(directory, aside)
            try:
                _deploy(ctx, store, options)
                installation = _activate(name, other, active, options)
            except BaseException:
                # the active deployment was not touched (_activate undoes its own
                # changes); the one this update replaced comes back
                shutil.rmtree(directory, ignore_errors=True)
                if os.path.lexists(aside):
                    with contextlib.suppress(OSError):
                        os.rename(aside, directory)
                raise
            shutil.rmtree(aside, ignore_errors=True)
        _systemctl(options, "daemon-reload")
        if installation.unit_path is not None:
            _systemctl(options, "try-restart", _service_name(installation.unit_path))
        log.info("updated %s to %s (deployment %d)", name, image_id, other)
        return installation


def rollback(name: str, options: InstallOptions) -> Installation:
    """Switch back to the other deployment (its unit, tmpfiles.d file and host files)."""
    _check_name(name)
    with _os_errors(f"rolling back {name}"), _locked(options):
        active = _installed(name, options)
        recover(name, active, options.checkouts, options.host_root)
        other = 1 - active
        if not (deployment_dir(options.checkouts, name, other) / INFO_NAME).is_file():
            raise InstallError(f"system container {name} has no previous deployment to "
                               "roll back to")
        installation = _activate(name, other, active, options)
        _systemctl(options, "daemon-reload")
        if installation.unit_path is not None:
            _systemctl(options, "try-restart", _service_name(installation.unit_path))
        log.info("rolled %s back to deployment %d", name, other)
        return installation


def uninstall(name: str, options: InstallOptions, *, remove_image: bool = False) -> None:
    """Stop the service and remove the unit (first, so it cannot restart), the tmpfiles.d
    file, the host files (unless changed since), both deployments and the symlink; with
    ``remove_image`` also the images of both deployments from the store, unless another
    installation or a container in the store uses them. State the container wrote to
    host directories is kept."""
    _check_name(name)
    with _os_errors(f"uninstalling {name}"), _locked(options):
        active = _active(name, options)
        if active is not None:
            recover(name, active, options.checkouts, options.host_root)
        dirs = [d for d in (deployment_dir(options.checkouts, name, n) for n in (0, 1))
                if os.path.lexists(d)]
        if active is None and not dirs:
            raise InstallError(f"system container {name} is not installed")
        infos = [read_info(d) for d in dirs if (d / INFO_NAME).is_file()]
        current = read_info(deployment_dir(options.checkouts, name, active)) \
            if active is not None else None
        if current is not None and current.get("unit"):
            unit = Path(current["unit"])
            with contextlib.suppress(InstallError):
                if unit.suffix == ".service":
                    _systemctl(options, "disable", "--now", unit.name)
                else:  # Quadlet: its generated unit cannot be enabled or disabled
                    _systemctl(options, "stop", _service_name(unit))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(unit)
            _systemctl(options, "daemon-reload")
        tmpfiles_path = Path(current["tmpfiles"]) if current and current.get("tmpfiles") \
            else Path(options.tmpfiles_dir) / f"{name}.conf"
        if tmpfiles_path.exists():
            with contextlib.suppress(InstallError):
                _tmpfiles(options, "--remove", tmpfiles_path)
            tmpfiles_path.unlink()
        if current is not None:
            remove_host_files(current["installed-files"], (), options.host_root)
            remove_empty_dirs(current["installed-dirs"], options.host_root)
        link = Path(options.checkouts) / name
        if os.path.islink(link):
            link.unlink()
        for d in dirs:
            shutil.rmtree(d)
        for n in (0, 1):
            shutil.rmtree(replaced_dir(options.checkouts, name, n), ignore_errors=True)
        if remove_image:
            _remove_images(name, {i["image-id"] for i in infos}, options)
        log.info("uninstalled %s", name)


def _remove_images(name: str, image_ids: set[str], options: InstallOptions) -> None:
    """Delete ``image_ids`` from the store but those another installation uses (its
    active deployment) or a container in the store was created from (``run -d``,
    podman, a Quadlet service: containers/storage refuses to delete those)."""
    in_use = {i.image_id for i in list_installed(options) if i.name != name}
    with options.store.open() as store:
        used_by = {c.image: c.id for c in store.containers()}
        for image_id in sorted(image_ids - in_use):
            if image_id in used_by:
                log.warning("%s: image %s is used by container %s in the store; not "
                            "removed", name, image_id, used_by[image_id])
                continue
            with contextlib.suppress(ImageUnknownError):
                store.delete_image(image_id)


def get_installation(name: str, options: InstallOptions) -> Installation:
    """The active deployment of ``name``."""
    _check_name(name)
    return Installation.from_info(
        deployment_dir(options.checkouts, name, _installed(name, options)))


def list_installed(options: InstallOptions) -> tuple[Installation, ...]:
    """The active deployment of every installed system container, by name."""
    checkouts = Path(options.checkouts)
    if not checkouts.is_dir():
        return ()
    out = []
    for entry in sorted(checkouts.iterdir()):
        if not entry.is_symlink() or entry.name.startswith("."):
            continue
        with contextlib.suppress(InstallError):
            out.append(get_installation(entry.name, options))
    return tuple(out)

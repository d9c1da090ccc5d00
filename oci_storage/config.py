"""containers/storage's ``storage.conf``, read the way c/storage 1.43 reads it
(``types/options.go``, ``types/utils.go``, ``pkg/config/config.go``).

Which file, and what comes out of it:

* ``CONTAINERS_STORAGE_CONF`` (or the ``path`` argument) names the one file; it must exist.
* Otherwise the *system* file is ``$XDG_CONFIG_HOME/containers/storage.conf`` if that
  exists (yes, even for root), else ``/etc/containers/storage.conf`` if that exists, else
  ``/usr/share/containers/storage.conf`` (a missing one means built-in defaults:
  ``/var/lib/containers/storage``, ``/run/containers/storage``, no driver).
* Root (uid 0) uses the system file. Other users start from rootless defaults derived
  from it (graphroot ``rootless_storage_path`` or ``$XDG_DATA_HOME|~/.local/share`` +
  ``containers/storage``; runroot ``<runtime dir>/containers``; the system driver only if
  it is btrfs/overlay/overlay2/vfs, else ``vfs``; of its driver options only
  ``ignore_chown_errors``, for overlay); then, if ``$XDG_CONFIG_HOME|~/.config`` +
  ``containers/storage.conf`` exists, that file *replaces* everything, with the rootless
  graphroot/runroot filling whatever it leaves unset. No merging otherwise.
* ``STORAGE_DRIVER`` replaces the driver of every file read; ``STORAGE_OPTS``
  (comma-separated, even when empty) replaces the driver options of every file read, and
  (when non-empty) is appended to the rootless defaults.
* ``graphroot``, ``runroot`` and ``rootless_storage_path`` get ``$UID`` replaced by the
  uid, ``$VAR``/``${VAR}`` expanded from the environment, symlinks resolved when the path
  exists, and are made absolute (c/storage's ``GetStore`` does ``filepath.Abs``: relative
  paths are accepted, against the current directory).
* Driver options are the ``driver.key=value`` strings c/storage hands to drivers, in
  c/storage's order and with its duplicates (``[storage.options] size`` yields
  ``overlay.size=`` twice for overlay: once generic, once as the overlay fallback).

A file that is not TOML, or holds a value of the wrong type, raises
:class:`oci_image.errors.ConfigError` naming the file and key, never its contents.
"""

from __future__ import annotations

import os
import pwd
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from oci_image.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_GRAPHROOT",
    "DEFAULT_RUNROOT",
    "SYSTEM_CONFIG_FILE",
    "IDMap",
    "StorageConfig",
    "config_file_path",
    "image_stores",
    "load_storage_config",
]

DEFAULT_RUNROOT = Path("/run/containers/storage")
DEFAULT_GRAPHROOT = Path("/var/lib/containers/storage")
SYSTEM_CONFIG_FILE = Path("/etc/containers/storage.conf")
DEFAULT_CONFIG_FILE = Path("/usr/share/containers/storage.conf")
STORAGE_CONF_ENV = "CONTAINERS_STORAGE_CONF"
_PROC1_COMM = Path("/proc/1/comm")
_ROOTLESS_DRIVERS = frozenset({"btrfs", "overlay", "overlay2", "vfs"})
_UINT32 = 2**32


@attrs.frozen
class IDMap:
    """One ``container:host:size`` range of ``remap-uids`` / ``remap-gids``."""

    container_id: int
    host_id: int
    size: int


def _proxy(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen
class StorageConfig:
    """The store options c/storage 1.43 derives (its ``types.StoreOptions``)."""

    graphroot: Path
    runroot: Path
    driver: str = ""  # "" = let the store pick (root without a configured driver)
    driver_options: tuple[str, ...] = ()  # e.g. ("overlay.mountopt=nodev",)
    rootless_storage_path: Path | None = None
    uid_map: tuple[IDMap, ...] = ()  # from remap-uids
    gid_map: tuple[IDMap, ...] = ()  # from remap-gids
    remap_user: str = ""  # recorded, not resolved against /etc/subuid
    remap_group: str = ""
    root_auto_userns_user: str = ""
    auto_userns_min_size: int = 0  # 0 = unset (c/storage then uses 1024)
    auto_userns_max_size: int = 0  # 0 = unset (c/storage then uses 65536)
    pull_options: Mapping[str, str] = attrs.field(
        factory=dict, converter=_proxy, hash=False)
    disable_volatile: bool = False
    config_files: tuple[Path, ...] = ()  # the files read, in order

    def driver_option(self, key: str) -> str | None:
        """The last value given for ``<driver>.<key>`` (or ``<key>``), else None."""
        found: str | None = None
        for option in self.driver_options:
            name, sep, value = option.partition("=")
            if sep and name.split(".")[-1] == key:
                found = value
        return found


# --- the environment -----------------------------------------------------------------


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _home(env: Mapping[str, str], uid: int) -> str:
    """``homedir.Get``: ``$HOME``, else the passwd entry."""
    home = env.get("HOME", "")
    if home:
        return home
    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return ""


def _eval_symlinks(path: str) -> str | None:
    """Go's ``filepath.EvalSymlinks``: None when the path does not exist."""
    try:
        return os.path.realpath(path, strict=True)
    except OSError:
        return None


def _rootless_uid(env: Mapping[str, str]) -> int:
    value = env.get("_CONTAINERS_ROOTLESS_UID", "")
    if value:
        try:
            return int(value)
        except ValueError:
            return 0  # Go's strconv.Atoi error is ignored
    return os.geteuid()


_VAR = re.compile(r"\$\{([^}]*)\}|\$([*#$@!?0-9-])|\$([A-Za-z_][A-Za-z0-9_]*)")


def _expand(path: str, uid: int, env: Mapping[str, str]) -> str:
    """``expandEnvPath``: ``$UID``, then ``os.ExpandEnv``, then symlinks or Clean."""
    path = path.replace("$UID", str(uid))
    path = _VAR.sub(lambda m: env.get(m.group(1) or m.group(2) or m.group(3), ""), path)
    resolved = _eval_symlinks(path)
    return resolved if resolved is not None else os.path.normpath(path)


def _runtime_dir(uid: int, env: Mapping[str, str], run_user_base: Path) -> str:
    """``getRootlessRuntimeDir`` without side effects (c/storage creates the tmp dir)."""
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg:
        resolved = _eval_symlinks(xdg)
        if resolved is not None:
            return resolved
    try:
        comm: str | None = _PROC1_COMM.read_text()
    except OSError:
        comm = None
    run_user = run_user_base / str(uid)
    if (comm is None or comm == "systemd") and _owned_private(run_user, uid):
        return str(run_user)
    tmp = Path(env.get("TMPDIR") or "/tmp") / f"containers-user-{uid}"  # noqa: S108 (os.TempDir)
    if not tmp.exists() and not tmp.is_symlink():
        return str(tmp)  # c/storage would mkdir it here
    if _owned_private(tmp, uid):
        return str(tmp)
    home = _home(env, uid)
    if not home:
        raise ConfigError("neither XDG_RUNTIME_DIR nor temp dir nor HOME was set non-empty")
    return os.path.join(_eval_symlinks(home) or home, "rundir")


def _owned_private(path: Path, uid: int) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    return st.st_uid == uid and st.st_mode & 0o700 == 0o700 and st.st_mode & 0o066 == 0


def _data_home(env: Mapping[str, str], uid: int) -> str:
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg:
        return xdg
    home = _home(env, uid)
    if not home:
        raise ConfigError("neither XDG_DATA_HOME nor HOME was set non-empty")
    return os.path.join(_eval_symlinks(home) or home, ".local", "share")


def config_file_path(*, env: Mapping[str, str] | None = None, uid: int | None = None,
                     system_config: Path = SYSTEM_CONFIG_FILE,
                     default_config: Path = DEFAULT_CONFIG_FILE) -> Path:
    """The storage.conf a user would edit (c/storage's ``DefaultConfigFile``):
    ``$CONTAINERS_STORAGE_CONF``; for root the system file; else the user's file
    (which need not exist)."""
    e = _environ(env)
    if STORAGE_CONF_ENV in e:
        return Path(e[STORAGE_CONF_ENV])
    uid = _rootless_uid(e) if uid is None else uid
    if uid == 0:
        return _system_file(e, system_config, default_config)
    config_home = e.get("XDG_CONFIG_HOME", "")
    if config_home:
        return Path(config_home) / "containers" / "storage.conf"
    home = _home(e, uid)
    if not home:
        raise ConfigError("cannot determine user's homedir")
    return Path(home) / ".config" / "containers" / "storage.conf"


def _system_file(env: Mapping[str, str], system_config: Path, default_config: Path) -> Path:
    override = system_config
    config_home = env.get("XDG_CONFIG_HOME", "")
    if config_home:
        home_file = Path(config_home) / "containers" / "storage.conf"
        if home_file.exists():
            override = home_file
    return override if override.exists() else default_config


# --- parsing one file ------------------------------------------------------------------


_STORAGE_STR = ("driver", "runroot", "graphroot", "rootless_storage_path")
_OPTIONS_STR = ("size", "remap-uids", "remap-gids", "ignore_chown_errors", "remap-user",
                "remap-group", "root-auto-userns-user", "skip_mount_home", "mount_program",
                "mountopt")
_DRIVER_TABLES: dict[str, tuple[str, ...]] = {
    "aufs": ("mountopt",),
    "btrfs": ("min_space", "size"),
    "overlay": ("ignore_chown_errors", "mountopt", "mount_program", "size", "inodes",
                "skip_mount_home", "force_mask"),
    "vfs": ("ignore_chown_errors",),
    "zfs": ("mountopt", "fsname", "size"),
    "thinpool": ("autoextend_percent", "autoextend_threshold", "basesize", "blocksize",
                 "directlvm_device", "directlvm_device_force", "fs", "log_level",
                 "metadatasize", "min_free_space", "mkfsarg", "mountopt", "size",
                 "use_deferred_deletion", "use_deferred_removal",
                 "xfs_nospace_max_retries"),
}


@attrs.define
class _Options:
    """c/storage's ``StoreOptions`` while it is being built."""

    graphroot: str = ""
    runroot: str = ""
    driver: str = ""
    driver_options: list[str] = attrs.Factory(list)
    rootless_storage_path: str = ""
    uid_map: tuple[IDMap, ...] = ()
    gid_map: tuple[IDMap, ...] = ()
    remap_user: str = ""
    remap_group: str = ""
    root_auto_userns_user: str = ""
    auto_userns_min_size: int = 0
    auto_userns_max_size: int = 0
    pull_options: dict[str, str] = attrs.Factory(dict)
    disable_volatile: bool = False


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, key: str, expected: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key} must be {expected}")

    def table(self, parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
        value = parent.get(key, {})
        if not isinstance(value, dict):
            raise self.error(f"{where}{key}", "a table")
        return value

    def string(self, parent: Mapping[str, Any], key: str, where: str) -> str:
        value = parent.get(key, "")
        if not isinstance(value, str):
            raise self.error(f"{where}{key}", "a string")
        return value

    def strings(self, parent: Mapping[str, Any], key: str, where: str) -> list[str]:
        value = parent.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(f"{where}{key}", "an array of strings")
        return list(value)

    def uint32(self, parent: Mapping[str, Any], key: str, where: str) -> int:
        value = parent.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _UINT32:
            raise self.error(f"{where}{key}", "an unsigned 32-bit integer")
        return value

    def boolean(self, parent: Mapping[str, Any], key: str, where: str) -> bool:
        value = parent.get(key, False)
        if not isinstance(value, bool):
            raise self.error(f"{where}{key}", "a boolean")
        return value


def _parse_id_map(spec: str, setting: str, path: Path) -> tuple[IDMap, ...]:
    """``idtools.ParseIDMap`` of one string: ``cid:hid:size[:cid:hid:size...]``."""
    if not spec:
        return ()
    parts = spec.split(":")
    error = ConfigError(f"{path}: {setting} setting is malformed, expected "
                        '"uint32:uint32:uint32"')
    if len(parts) % 3:
        raise error
    maps = []
    for i in range(0, len(parts), 3):
        try:
            numbers = [int(p, 10) for p in parts[i:i + 3]]
        except ValueError:
            raise error from None
        if any(not 0 <= n < _UINT32 or not p.isdigit() for n, p in zip(numbers, parts[i:i + 3],
                                                                         strict=True)):
            raise error
        maps.append(IDMap(*numbers))
    return tuple(maps)


def _filemode_string(mode: int) -> str:
    """Go's ``os.FileMode.String`` (what ``%s`` of a FileMode prints)."""
    out = "".join(c for i, c in enumerate("dalTLDpSugct?") if mode & (1 << (31 - i)))
    out = out or "-"
    return out + "".join(c if mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))


def _read_file(path: Path, env: Mapping[str, str]) -> _Options:
    """``ReloadConfigurationFile``: one file plus STORAGE_DRIVER / STORAGE_OPTS."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a storage.conf") from None
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    r = _Reader(path)
    storage = r.table(doc, "storage", "")
    s = {k: r.string(storage, k, "storage.") for k in _STORAGE_STR}
    opts = r.table(storage, "options", "storage.")
    w = "storage.options."
    o = {k: r.string(opts, k, w) for k in _OPTIONS_STR}
    image_stores = r.strings(opts, "additionalimagestores", w)
    layer_stores = r.strings(opts, "additionallayerstores", w)
    force_mask = r.uint32(opts, "force_mask", w)
    min_size = r.uint32(opts, "auto-userns-min-size", w)
    max_size = r.uint32(opts, "auto-userns-max-size", w)
    disable_volatile = r.boolean(opts, "disable-volatile", w)
    pull_table = r.table(opts, "pull_options", w)
    pull = {k: r.string(pull_table, k, f"{w}pull_options.") for k in pull_table}
    drv: dict[str, dict[str, str]] = {}
    for table, keys in _DRIVER_TABLES.items():
        t = r.table(opts, table, w)
        drv[table] = {k: r.string(t, k, f"{w}{table}.") for k in keys}

    result = _Options()
    raw_driver = env.get("STORAGE_DRIVER") or s["driver"]
    result.driver = "overlay" if raw_driver == "overlay2" else raw_driver
    result.runroot = s["runroot"]
    result.graphroot = s["graphroot"]
    result.rootless_storage_path = s["rootless_storage_path"]
    # the generic options are prefixed with the driver as written (overlay2 stays overlay2)
    d = result.driver_options
    d += [f"{raw_driver}.imagestore={v}" for v in image_stores]
    d += [f"{raw_driver}.additionallayerstore={v}" for v in layer_stores]
    for key in ("size", "mount_program", "skip_mount_home", "ignore_chown_errors"):
        if o[key]:
            d.append(f"{raw_driver}.{key}={o[key]}")
    if force_mask:
        d.append(f"{raw_driver}.force_mask={force_mask:o}")
    if o["mountopt"]:
        d.append(f"{raw_driver}.mountopt={o['mountopt']}")
    user, group = o["remap-user"], o["remap-group"]
    result.remap_user = user or group
    result.remap_group = group or user
    # c/storage computes maps from remap-user/-group, then overwrites them with these
    result.uid_map = _parse_id_map(o["remap-uids"], "remap-uids", path)
    result.gid_map = _parse_id_map(o["remap-gids"], "remap-gids", path)
    result.root_auto_userns_user = o["root-auto-userns-user"]
    result.auto_userns_min_size = min_size
    result.auto_userns_max_size = max_size
    result.pull_options = pull
    result.disable_volatile = disable_volatile
    d += _graph_driver_options(result.driver, o, force_mask, drv)
    if "STORAGE_OPTS" in env:
        result.driver_options = env["STORAGE_OPTS"].split(",")
    if result.driver_options == [""]:
        result.driver_options = []
    return result


def _graph_driver_options(name: str, o: Mapping[str, str], force_mask: int,
                          drv: Mapping[str, Mapping[str, str]]) -> list[str]:
    """``config.GetGraphDriverOptions``: the driver's own table, falling back to the
    generic ``[storage.options]`` keys. devicemapper (``thinpool``) is not supported."""
    out: list[str] = []

    def pick(table: str, key: str, fallback: str | None = None) -> None:
        value = drv[table][key] or (o[fallback] if fallback else "")
        if value:
            out.append(f"{name}.{key}={value}")

    if name == "aufs":
        pick("aufs", "mountopt", "mountopt")
    elif name == "btrfs":
        if drv["btrfs"]["min_space"]:
            return [f"{name}.min_space={drv['btrfs']['min_space']}"]
        pick("btrfs", "size", "size")
    elif name in ("overlay", "overlay2"):
        pick("overlay", "ignore_chown_errors", "ignore_chown_errors")
        pick("overlay", "mount_program", "mount_program")
        pick("overlay", "mountopt", "mountopt")
        pick("overlay", "size", "size")
        pick("overlay", "inodes")
        pick("overlay", "skip_mount_home", "skip_mount_home")
        if drv["overlay"]["force_mask"]:
            out.append(f"{name}.force_mask={drv['overlay']['force_mask']}")
        elif force_mask:
            out.append(f"{name}.force_mask={_filemode_string(force_mask)}")
    elif name == "vfs":
        pick("vfs", "ignore_chown_errors", "ignore_chown_errors")
    elif name == "zfs":
        if drv["zfs"]["fsname"]:
            out.append(f"{name}.fsname={drv['zfs']['fsname']}")
        pick("zfs", "mountopt", "mountopt")
        pick("zfs", "size", "size")
    return out


# --- putting it together ---------------------------------------------------------------


def _rootless_options(uid: int, system: _Options, env: Mapping[str, str],
                      run_user_base: Path) -> _Options:
    """``getRootlessStorageOpts``."""
    opts = _Options()
    opts.runroot = os.path.join(_runtime_dir(uid, env, run_user_base), "containers")
    opts.pull_options = dict(system.pull_options)
    if system.rootless_storage_path:
        opts.graphroot = _expand(system.rootless_storage_path, uid, env)
    else:
        opts.graphroot = os.path.join(_data_home(env, uid), "containers", "storage")
    if system.driver in _ROOTLESS_DRIVERS:
        opts.driver = system.driver
    if env.get("STORAGE_DRIVER"):
        opts.driver = env["STORAGE_DRIVER"]
    if opts.driver == "overlay2":
        opts.driver = "overlay"
    if opts.driver == "overlay":
        chown = [o for o in system.driver_options if "ignore_chown_errors" in o]
        opts.driver_options = chown[:1]
    if not opts.driver:
        opts.driver = "vfs"
    if env.get("STORAGE_OPTS"):
        opts.driver_options += env["STORAGE_OPTS"].split(",")
    return opts


def load_storage_config(path: Path | str | None = None, *,
                        env: Mapping[str, str] | None = None, uid: int | None = None,
                        system_config: Path = SYSTEM_CONFIG_FILE,
                        default_config: Path = DEFAULT_CONFIG_FILE,
                        run_user_base: Path = Path("/run/user")) -> StorageConfig:
    """The store options c/storage 1.43 gives a process of ``uid`` (default: the
    effective uid, or ``$_CONTAINERS_ROOTLESS_UID``) in environment ``env`` (default: the
    process environment). ``path`` acts like ``CONTAINERS_STORAGE_CONF``: that file is
    read and must exist (``FileNotFoundError`` otherwise)."""
    e = _environ(env)
    if path is not None:
        e = {**e, STORAGE_CONF_ENV: str(path)}
    uid = _rootless_uid(e) if uid is None else uid
    rootless = uid != 0
    read: list[Path] = []

    def load(file: Path) -> _Options:
        read.append(file)
        return _read_file(file, e)

    # loadDefaultStoreOptions: the system options
    if STORAGE_CONF_ENV in e:
        conf = Path(e[STORAGE_CONF_ENV])
        if not conf.exists():
            raise FileNotFoundError(2, "storage.conf does not exist", str(conf))
        system = load(conf)
        user_file = conf
    else:
        system_file = _system_file(e, system_config, default_config)
        system = load(system_file) if system_file.exists() else _Options()
        user_file = system_file if not rootless else config_file_path(env=e, uid=uid)
    system.runroot = system.runroot or str(DEFAULT_RUNROOT)
    system.graphroot = system.graphroot or str(DEFAULT_GRAPHROOT)

    # defaultStoreOptionsIsolated
    opts = _rootless_options(uid, system, e, run_user_base) if rootless else system
    # (for root the user file is the system file, already read: re-reading changes nothing)
    if rootless and user_file.exists():
        default_run, default_graph = opts.runroot, opts.graphroot
        opts = load(user_file)
        if rootless:
            opts.runroot = opts.runroot or default_run
            opts.graphroot = (opts.graphroot or opts.rootless_storage_path
                              or default_graph)
    # GetStore falls back to the built-in roots for whatever is still unset
    runroot = _expand(opts.runroot, uid, e) if opts.runroot else str(DEFAULT_RUNROOT)
    graphroot = _expand(opts.graphroot, uid, e) if opts.graphroot else str(DEFAULT_GRAPHROOT)
    rsp = _expand(opts.rootless_storage_path, uid, e) if opts.rootless_storage_path else None
    return StorageConfig(
        graphroot=Path(os.path.abspath(graphroot)),
        runroot=Path(os.path.abspath(runroot)),
        driver=opts.driver,
        driver_options=tuple(opts.driver_options),
        rootless_storage_path=Path(os.path.abspath(rsp)) if rsp else None,
        uid_map=opts.uid_map,
        gid_map=opts.gid_map,
        remap_user=opts.remap_user,
        remap_group=opts.remap_group,
        root_auto_userns_user=opts.root_auto_userns_user,
        auto_userns_min_size=opts.auto_userns_min_size,
        auto_userns_max_size=opts.auto_userns_max_size,
        pull_options=opts.pull_options,
        disable_volatile=opts.disable_volatile,
        config_files=tuple(dict.fromkeys(read)),
    )


def image_stores(options: Iterable[str]) -> list[str]:
    """The read-only image stores among driver options (``[DRIVER.]imagestore=PATH``,
    which is how containers/storage passes storage.conf's ``additionalimagestores``)."""
    out = []
    for option in options:
        key, sep, value = option.partition("=")
        if sep and key.rpartition(".")[2].lower() in ("imagestore", "additionalimagestore"):
            out.append(value)
    return out

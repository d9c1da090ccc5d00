"""storage.conf as containers/storage 1.43 reads it (oci_storage.config)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from oci_image.errors import ConfigError
from oci_storage.config import IDMap, StorageConfig, config_file_path, load_storage_config
from tests.peers import require

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(tmp_path: Path, env: dict[str, str], uid: int, **kw: object) -> StorageConfig:
    """Never looks at the machine's /etc or /usr/share files."""
    return load_storage_config(
        env=env, uid=uid, system_config=tmp_path / "etc" / "storage.conf",
        default_config=tmp_path / "usr" / "storage.conf", run_user_base=tmp_path / "runuser",
        **kw)  # type: ignore[arg-type]


def test_root_defaults_without_any_file(tmp_path: Path) -> None:
    cfg = load(tmp_path, {}, 0)
    assert cfg.graphroot == Path("/var/lib/containers/storage")
    assert cfg.runroot == Path("/run/containers/storage")
    assert cfg.driver == ""
    assert cfg.driver_options == ()
    assert cfg.config_files == ()


def test_root_prefers_etc_then_usr_share(tmp_path: Path) -> None:
    usr = write(tmp_path / "usr" / "storage.conf", '[storage]\ndriver = "vfs"\n')
    cfg = load(tmp_path, {}, 0)
    assert cfg.driver == "vfs"
    assert cfg.config_files == (usr,)
    etc = write(tmp_path / "etc" / "storage.conf",
                f'[storage]\ndriver = "overlay"\ngraphroot = "{tmp_path}/g"\n')
    cfg = load(tmp_path, {}, 0)
    assert cfg.driver == "overlay"
    assert cfg.config_files == (etc,)
    assert cfg.graphroot == tmp_path / "g"
    assert cfg.runroot == Path("/run/containers/storage")  # unset: built-in default


def test_root_uses_xdg_config_home_file_when_it_exists(tmp_path: Path) -> None:
    write(tmp_path / "etc" / "storage.conf", '[storage]\ndriver = "overlay"\n')
    xdg = write(tmp_path / "cfg" / "containers" / "storage.conf", '[storage]\ndriver = "vfs"\n')
    cfg = load(tmp_path, {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}, 0)
    assert cfg.driver == "vfs"
    assert cfg.config_files == (xdg,)


def test_rootless_defaults(tmp_path: Path) -> None:
    run = tmp_path / "xdgrun"
    run.mkdir()
    env = {"HOME": str(tmp_path / "home"), "XDG_RUNTIME_DIR": str(run)}
    cfg = load(tmp_path, env, 1000)
    assert cfg.graphroot == tmp_path / "home" / ".local" / "share" / "containers" / "storage"
    assert cfg.runroot == run / "containers"
    assert cfg.driver == "vfs"  # 1.43: no rootless-capable system driver -> vfs
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    assert load(tmp_path, env, 1000).graphroot == tmp_path / "data" / "containers" / "storage"


def test_rootless_run_user_dir_needs_private_ownership(tmp_path: Path) -> None:
    uid = os.getuid() or 1000
    run_user = tmp_path / "runuser" / str(uid)
    run_user.mkdir(parents=True, mode=0o700)
    run_user.chmod(0o700)
    env = {"HOME": str(tmp_path), "TMPDIR": str(tmp_path / "t")}
    # /run/user/<uid> is only consulted when /proc/1/comm cannot be read (1.43's check
    # compares "systemd" with the newline-terminated file), so either answer is c/storage's
    cfg = load(tmp_path, env, uid)
    assert cfg.runroot.name == "containers"
    assert cfg.runroot.parent in (run_user, tmp_path / "t" / f"containers-user-{uid}")


def test_rootless_inherits_from_system_file(tmp_path: Path) -> None:
    write(tmp_path / "etc" / "storage.conf", """\
[storage]
driver = "overlay2"
rootless_storage_path = "$HOME/rl/$UID"
[storage.options]
pull_options = {enable_partial_images = "true"}
[storage.options.overlay]
mountopt = "nodev"
ignore_chown_errors = "true"
""")
    run = tmp_path / "run"
    run.mkdir()
    env = {"HOME": str(tmp_path / "h"), "XDG_RUNTIME_DIR": str(run)}
    cfg = load(tmp_path, env, 1234)
    assert cfg.driver == "overlay"
    assert cfg.graphroot == tmp_path / "h" / "rl" / "1234"
    assert cfg.driver_options == ("overlay.ignore_chown_errors=true",)  # only this one
    assert dict(cfg.pull_options) == {"enable_partial_images": "true"}


def test_rootless_user_file_replaces_system_file(tmp_path: Path) -> None:
    write(tmp_path / "etc" / "storage.conf",
          '[storage]\ndriver = "overlay"\n[storage.options]\nmountopt = "nodev"\n')
    user = write(tmp_path / "h" / ".config" / "containers" / "storage.conf",
                 '[storage]\ndriver = "vfs"\nrootless_storage_path = "/srv/rl"\n')
    run = tmp_path / "run"
    run.mkdir()
    env = {"HOME": str(tmp_path / "h"), "XDG_RUNTIME_DIR": str(run)}
    assert config_file_path(env=env, uid=1000) == user
    cfg = load(tmp_path, env, 1000)
    assert cfg.driver == "vfs"
    assert cfg.driver_options == ()
    assert cfg.graphroot == Path("/srv/rl")
    assert cfg.runroot == run / "containers"
    assert cfg.config_files[-1] == user


def test_every_field(tmp_path: Path) -> None:
    conf = write(tmp_path / "s.conf", f"""\
[storage]
driver = "overlay"
graphroot = "{tmp_path}/g/$UID"
runroot = "${{RUNBASE}}/r"
rootless_storage_path = "{tmp_path}/rl"
transient_store = true          # not known to 1.43: ignored
[storage.options]
additionalimagestores = ["/ais1", "/ais2"]
additionallayerstores = ["/als"]
remap-uids = "0:1668442479:65536"
remap-gids = "0:1668442479:65536:65536:1:1"
remap-user = "containers"
root-auto-userns-user = "containers"
auto-userns-min-size = 1024
auto-userns-max-size = 65536
disable-volatile = true
pull_options = {{enable_partial_images = "false", use_hard_links = "false"}}
[storage.options.overlay]
mountopt = "nodev,metacopy=on"
mount_program = "/usr/bin/fuse-overlayfs"
skip_mount_home = "true"
force_mask = "shared"
ignore_chown_errors = "true"
size = "10G"
inodes = "1000"
[storage.options.vfs]
ignore_chown_errors = "false"
[storage.options.thinpool]
basesize = "10G"
""")
    cfg = load_storage_config(conf, env={"RUNBASE": str(tmp_path)}, uid=0)
    assert cfg.graphroot == tmp_path / "g" / "0"
    assert cfg.runroot == tmp_path / "r"
    assert cfg.rootless_storage_path == tmp_path / "rl"
    assert cfg.driver == "overlay"
    assert cfg.driver_options == (
        "overlay.imagestore=/ais1", "overlay.imagestore=/ais2",
        "overlay.additionallayerstore=/als",
        "overlay.ignore_chown_errors=true", "overlay.mount_program=/usr/bin/fuse-overlayfs",
        "overlay.mountopt=nodev,metacopy=on", "overlay.size=10G", "overlay.inodes=1000",
        "overlay.skip_mount_home=true", "overlay.force_mask=shared")
    assert cfg.driver_option("mountopt") == "nodev,metacopy=on"
    assert cfg.uid_map == (IDMap(0, 1668442479, 65536),)
    assert cfg.gid_map == (IDMap(0, 1668442479, 65536), IDMap(65536, 1, 1))
    assert cfg.remap_user == cfg.remap_group == "containers"
    assert cfg.root_auto_userns_user == "containers"
    assert (cfg.auto_userns_min_size, cfg.auto_userns_max_size) == (1024, 65536)
    assert cfg.disable_volatile is True
    assert dict(cfg.pull_options) == {"enable_partial_images": "false",
                                      "use_hard_links": "false"}
    assert cfg.config_files == (conf,)


def test_generic_options_render_like_c_storage(tmp_path: Path) -> None:
    conf = write(tmp_path / "s.conf", """\
[storage]
driver = "overlay2"
[storage.options]
size = "5G"
mountopt = "nodev"
force_mask = 0o755
""")
    cfg = load_storage_config(conf, env={}, uid=0)
    assert cfg.driver == "overlay"
    # generic keys are prefixed with the driver as written, then the overlay fallbacks
    assert cfg.driver_options == (
        "overlay2.size=5G", "overlay2.force_mask=755", "overlay2.mountopt=nodev",
        "overlay.mountopt=nodev", "overlay.size=5G", "overlay.force_mask=-rwxr-xr-x")


def test_vfs_falls_back_to_generic_ignore_chown_errors(tmp_path: Path) -> None:
    conf = write(tmp_path / "s.conf",
                 '[storage]\ndriver = "vfs"\n[storage.options]\nignore_chown_errors = "true"\n')
    cfg = load_storage_config(conf, env={}, uid=0)
    assert cfg.driver_options == ("vfs.ignore_chown_errors=true",
                                  "vfs.ignore_chown_errors=true")


def test_env_overrides(tmp_path: Path) -> None:
    conf = write(tmp_path / "s.conf",
                 '[storage]\ndriver = "overlay"\n[storage.options.overlay]\nmountopt = "nodev"\n')
    cfg = load_storage_config(conf, env={"STORAGE_DRIVER": "vfs"}, uid=0)
    assert cfg.driver == "vfs"
    assert cfg.driver_options == ()
    cfg = load_storage_config(conf, env={"STORAGE_OPTS": "overlay.size=1G,overlay.inodes=9"},
                              uid=0)
    assert cfg.driver_options == ("overlay.size=1G", "overlay.inodes=9")
    assert load_storage_config(conf, env={"STORAGE_OPTS": ""}, uid=0).driver_options == ()
    # CONTAINERS_STORAGE_CONF names the file
    cfg = load_storage_config(env={"CONTAINERS_STORAGE_CONF": str(conf)}, uid=0)
    assert cfg.driver == "overlay"
    assert cfg.config_files == (conf,)
    assert config_file_path(env={"CONTAINERS_STORAGE_CONF": str(conf)}, uid=1000) == conf


def test_rootless_env_overrides(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    env = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(run), "STORAGE_DRIVER": "overlay",
           "STORAGE_OPTS": "overlay.mount_program=/bin/fuse-overlayfs"}
    cfg = load(tmp_path, env, 1000)
    assert cfg.driver == "overlay"
    assert cfg.driver_options == ("overlay.mount_program=/bin/fuse-overlayfs",)


def test_explicit_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_storage_config(tmp_path / "missing.conf", env={}, uid=0)


def test_relative_paths_are_made_absolute_like_getstore(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    conf = write(tmp_path / "s.conf", '[storage]\ngraphroot = "g"\nrunroot = "./r/../r2"\n')
    monkeypatch.chdir(tmp_path)
    cfg = load_storage_config(conf, env={}, uid=0)
    assert cfg.graphroot == tmp_path / "g"
    assert cfg.runroot == tmp_path / "r2"


SECRET = "s3cr3t-value"


@pytest.mark.parametrize("text", [
    f'[storage\ndriver = "{SECRET}"\n',
    f'[storage]\ndriver = ["{SECRET}"]\n',
    f'[storage]\ngraphroot = 7\ndriver = "{SECRET}"\n',
    f'storage = "{SECRET}"\n',
    f'[storage.options]\nadditionalimagestores = "{SECRET}"\n',
    f'[storage.options]\nforce_mask = "{SECRET}"\n',
    "[storage.options]\nauto-userns-min-size = -1\n",
    f'[storage.options]\ndisable-volatile = "{SECRET}"\n',
    "[storage.options.pull_options]\nenable_partial_images = true\n",
    f'[storage.options.overlay]\nmountopt = 1\nmount_program = "{SECRET}"\n',
    f'[storage.options.thinpool]\nbasesize = 10\nfs = "{SECRET}"\n',
    f'[storage.options]\nremap-uids = "0:1:{SECRET}"\n',
    '[storage.options]\nremap-uids = "0:1"\n',
    '[storage.options]\nremap-gids = "0:1:99999999999"\n',
])
def test_malformed_files(tmp_path: Path, text: str) -> None:
    conf = write(tmp_path / "bad.conf", text)
    with pytest.raises(ConfigError) as info:
        load_storage_config(conf, env={}, uid=0)
    assert str(conf) in str(info.value)
    assert SECRET not in str(info.value)


def test_malformed_user_file_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "h" / ".config" / "containers" / "storage.conf", "[storage\n")
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(ConfigError, match=r"storage\.conf"):
        load(tmp_path, {"HOME": str(tmp_path / "h"), "XDG_RUNTIME_DIR": str(run)}, 1000)


def test_non_utf8_file(tmp_path: Path) -> None:
    conf = tmp_path / "bin.conf"
    conf.write_bytes(b'[storage]\ndriver = "\xff"\n')
    with pytest.raises(ConfigError, match=r"bin\.conf"):
        load_storage_config(conf, env={}, uid=0)


@pytest.mark.parametrize("extra_env", [{}, {"STORAGE_OPTS": "vfs.ignore_chown_errors=false"}])
def test_podman_reads_the_same(tmp_path: Path, extra_env: dict[str, str]) -> None:
    podman = require("podman")
    if os.geteuid() != 0:
        pytest.skip("the oracle compares root's view")
    (tmp_path / "ais").mkdir()
    conf = write(tmp_path / "storage.conf", f"""\
[storage]
driver = "vfs"
graphroot = "{tmp_path}/g"
runroot = "{tmp_path}/r"
[storage.options]
additionalimagestores = ["{tmp_path}/ais"]
[storage.options.vfs]
ignore_chown_errors = "true"
""")
    containers_conf = write(tmp_path / "containers.conf", CONTAINERS_CONF)
    env = {**os.environ, "CONTAINERS_CONF": str(containers_conf),
           "CONTAINERS_STORAGE_CONF": str(conf), "TMPDIR": str(tmp_path), **extra_env}
    env.pop("STORAGE_DRIVER", None)
    if not extra_env:
        env.pop("STORAGE_OPTS", None)
    out = subprocess.run([podman, "--tmpdir", str(tmp_path / "tmp"), "info", "--format",
                          "json"], env=env, capture_output=True, check=True, timeout=120)
    store = json.loads(out.stdout)["store"]
    ours = load_storage_config(env=env, uid=0)
    assert store["graphRoot"] == str(ours.graphroot)
    assert store["runRoot"] == str(ours.runroot)
    assert store["graphDriverName"] == ours.driver
    assert store["configFile"] == str(conf)
    expected = dict(o.split("=", 1) for o in ours.driver_options)
    assert store["graphOptions"] == expected

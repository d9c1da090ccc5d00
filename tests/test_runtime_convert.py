"""oci_runtime.convert and oci_runtime.passwd: image config -> runtime config as
image-spec conversion.md says, the caller's overrides, and user resolution confined to
the rootfs (hostile /etc/passwd: symlinks out, FIFOs, devices, directories, huge files)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oci_image.spec import ImageConfig
from oci_runtime import errors
from oci_runtime.bundle import Bundle
from oci_runtime.convert import (
    ALL_CAPABILITIES,
    ConvertOptions,
    FilesystemOptions,
    ProcessOptions,
    ResourceLimits,
    SecurityOptions,
    image_annotations,
    image_args,
    spec_from_image,
)
from oci_runtime.passwd import (
    MAX_FILE_SIZE,
    GroupEntry,
    PasswdEntry,
    ResolvedUser,
    parse_group,
    parse_passwd,
    read_rootfs_file,
    resolve_user,
)
from oci_runtime.profiles import DEFAULT_SECCOMP_PROFILE, default_spec, rootless_spec
from oci_runtime.spec import Hook, Hooks, Mount, Spec
from tests.jsonschema_lite import SchemaStore
from tests.peers import require, require_root

# the runtime-spec schemas and fixtures, vendored (tests/data/specs/SOURCES)
SPECS = Path(__file__).resolve().parent / "data" / "specs" / "runtime-spec"

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment
+nisuser::::::
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:100::/home/bob:/bin/sh
broken:x:notanumber:1::/nowhere:/bin/sh
alice:x:2000:2000:second alice, ignored:/home/alice2:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
GROUP = """\
root:x:0:
daemon:x:1:
users:x:100:alice
wheel:x:10:alice,bob
alice:x:1000:
audio:x:29:bob, alice
staff:x:50:
"""


@pytest.fixture(scope="module")
def schema() -> SchemaStore:
    return SchemaStore(SPECS)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


def image(config: dict[str, Any] | None = None, **top: Any) -> ImageConfig:
    doc = {"architecture": "amd64", "os": "linux",
           "rootfs": {"type": "layers", "diff_ids": []}, "config": config or {}}
    doc.update(top)
    return ImageConfig.from_json(json.dumps(doc).encode())


def convert(img: ImageConfig, rootfs: Path | None, schema: SchemaStore | None = None,
            **options: Any) -> Spec:
    spec = spec_from_image(img, rootfs, ConvertOptions(**options))
    if schema is not None:
        schema.validate(spec.to_dict())
    return spec


# ---------------------------------------------------------------------------------------
# verbatim fields


@pytest.mark.parametrize(("config", "args"), [
    ({"Entrypoint": ["/bin/ep", "-x"], "Cmd": ["a", "b"]}, ("/bin/ep", "-x", "a", "b")),
    ({"Entrypoint": ["/bin/ep"]}, ("/bin/ep",)),
    ({"Cmd": ["/bin/cmd", "1"]}, ("/bin/cmd", "1")),
    ({"Entrypoint": [], "Cmd": ["/bin/cmd"]}, ("/bin/cmd",)),
    ({"Entrypoint": "/bin/sh -c", "Cmd": "echo"}, ("/bin/sh -c", "echo")),  # strslice
])
def test_entrypoint_and_cmd(config: dict[str, Any], args: tuple[str, ...],
                            schema: SchemaStore) -> None:
    spec = convert(image(config), None, schema)
    assert spec.process is not None
    assert spec.process.args == args


def test_no_command_keeps_template_args_or_fails() -> None:
    spec = convert(image({}), None)
    assert spec.process is not None
    assert spec.process.args == ("sh",)
    template = default_spec()
    assert template.process is not None
    bare = attrs.evolve(template, process=attrs.evolve(template.process, args=None))
    with pytest.raises(errors.SpecError, match="no command"):
        convert(image({}), None, base=bare)


@pytest.mark.parametrize(("override", "docker", "args"), [
    (ProcessOptions(cmd=["c2"]), False, ("/ep", "c2")),
    (ProcessOptions(cmd=["c2"]), True, ("/ep", "c2")),
    (ProcessOptions(entrypoint=["/ep2"]), False, ("/ep2", "c1")),  # OCI: Cmd kept
    (ProcessOptions(entrypoint=["/ep2"]), True, ("/ep2",)),  # Docker: Cmd dropped
    (ProcessOptions(entrypoint=["/ep2"], cmd=["c3"]), True, ("/ep2", "c3")),
    (ProcessOptions(entrypoint=[""], cmd=["/bin/x"]), True, ("/bin/x",)),  # [""]: none
    (ProcessOptions(entrypoint=[""]), False, ("", "c1")),  # OCI: verbatim
    (ProcessOptions(args=["/only"], entrypoint=["/ignored"]), True, ("/only",)),
    (ProcessOptions(args=["/only"]), False, ("/only",)),
])
def test_args_overrides(override: ProcessOptions, docker: bool, args: tuple[str, ...]
                        ) -> None:
    img = image({"Entrypoint": ["/ep"], "Cmd": ["c1"]})
    assert image_args(img, override, docker_compatible=docker) == args
    spec = convert(img, None, process=override, docker_compatible=docker)
    assert spec.process is not None
    assert spec.process.args == args


def test_env_and_cwd(rootfs: Path, schema: SchemaStore) -> None:
    img = image({"Env": ["PATH=/image/bin", "A=1", "B=2", "A=dup"], "User": "alice",
                 "WorkingDir": "/srv/app", "Cmd": ["x"]})
    spec = convert(img, rootfs, schema)
    assert spec.process is not None
    # image Env verbatim and first; template defaults only for names it lacks; HOME added
    assert spec.process.env == ("PATH=/image/bin", "A=1", "B=2", "A=dup", "TERM=xterm",
                                "HOME=/home/alice")
    assert spec.process.cwd == "/srv/app"
    spec = convert(img, rootfs, process=ProcessOptions(
        env=["B=3", "NEW=4", "HOME=/custom"], unset_env=["TERM"], cwd="/tmp"))
    assert spec.process is not None
    assert spec.process.env == ("PATH=/image/bin", "A=1", "B=3", "A=dup", "NEW=4",
                                "HOME=/custom")
    assert spec.process.cwd == "/tmp"
    with pytest.raises(errors.SpecError, match="NAME=value"):
        convert(img, rootfs, process=ProcessOptions(env=["JUSTANAME"]))


def test_home_from_image_env_wins_and_no_entry_no_home(rootfs: Path) -> None:
    spec = convert(image({"Env": ["HOME=/h"], "User": "alice"}), rootfs)
    assert spec.process is not None
    assert spec.process.env is not None
    assert [e for e in spec.process.env if e.startswith("HOME=")] == ["HOME=/h"]
    spec = convert(image({"User": "4242"}), rootfs)
    assert spec.process is not None
    assert spec.process.env is not None
    assert not [e for e in spec.process.env if e.startswith("HOME=")]


def test_cwd_defaults() -> None:
    spec = convert(image({}), None)
    assert spec.process is not None
    assert spec.process.cwd == "/"
    spec = convert(image({"WorkingDir": "rel/dir"}), None)
    assert spec.process is not None
    assert spec.process.cwd == "/rel/dir"


# ---------------------------------------------------------------------------------------
# Config.User


@pytest.mark.parametrize(("user", "expected"), [
    ("", ResolvedUser(0, 0, None, "/root")),
    ("alice", ResolvedUser(1000, 1000, (100, 10, 29), "/home/alice")),  # first match wins
    ("bob", ResolvedUser(1001, 100, (10, 29), "/home/bob")),
    ("root", ResolvedUser(0, 0, (), "/root")),
    ("1000", ResolvedUser(1000, 1000, None, "/home/alice")),  # numeric: no additional gids
    ("4242", ResolvedUser(4242, 0, None, None)),  # numeric without passwd entry
    ("alice:staff", ResolvedUser(1000, 50, None, "/home/alice")),  # user:group
    ("alice:777", ResolvedUser(1000, 777, None, "/home/alice")),  # user:gid (no entry)
    ("1001:10", ResolvedUser(1001, 10, None, "/home/bob")),  # uid:gid
    ("4242:4343", ResolvedUser(4242, 4343, None, None)),  # uid:gid, no entries at all
    ("4242:wheel", ResolvedUser(4242, 10, None, None)),  # uid:group
    ("0:0", ResolvedUser(0, 0, None, "/root")),
    ("alice:", ResolvedUser(1000, 1000, (100, 10, 29), "/home/alice")),
])
def test_every_user_form(rootfs: Path, user: str, expected: ResolvedUser) -> None:
    assert resolve_user(user, rootfs) == expected


def test_user_in_the_generated_spec(rootfs: Path, schema: SchemaStore) -> None:
    spec = convert(image({"User": "bob"}), rootfs, schema)
    assert spec.process is not None
    assert spec.process.user is not None
    user = spec.process.user
    assert (user.uid, user.gid, user.additional_gids) == (1001, 100, (10, 29))
    spec = convert(image({"User": "bob"}), rootfs, process=ProcessOptions(user="4242:staff"))
    assert spec.process is not None
    assert spec.process.user is not None
    user = spec.process.user
    assert (user.uid, user.gid, user.additional_gids) == (4242, 50, None)
    assert "additionalGids" not in spec.to_dict()["process"]["user"]


@pytest.mark.parametrize(("user", "missing"), [
    ("mallory", "user 'mallory'"),
    ("mallory:wheel", "user 'mallory'"),
    ("alice:nogroup", "group 'nogroup'"),
    ("1000:nogroup", "group 'nogroup'"),
    ("broken", "user 'broken'"),  # its line has a non-numeric uid: ignored, not root
])
def test_unknown_names_raise_user_not_found(rootfs: Path, user: str, missing: str) -> None:
    with pytest.raises(errors.UserNotFoundError, match=missing) as info:
        convert(image({"User": user}), rootfs)
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, errors.SpecError)


def test_without_rootfs_or_files(tmp_path: Path) -> None:
    assert resolve_user("123:456", None) == ResolvedUser(123, 456, None, None)
    with pytest.raises(errors.UserNotFoundError, match="alice"):
        resolve_user("alice", None)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert resolve_user("", empty) == ResolvedUser(0, 0, None, None)
    assert resolve_user("7", empty) == ResolvedUser(7, 0, None, None)
    with pytest.raises(errors.UserNotFoundError):
        resolve_user("root", empty)
    with pytest.raises(errors.SpecError, match="out of range"):
        resolve_user(str(2**32), empty)
    with pytest.raises(errors.SpecError, match="out of range"):
        resolve_user(f"0:{2**32}", empty)


def test_passwd_parsing() -> None:
    entries = parse_passwd(PASSWD)
    assert entries[0] == PasswdEntry("root", "x", 0, 0, "root", "/root", "/bin/sh")
    assert [e.name for e in entries] == ["root", "daemon", "alice", "bob", "alice", "nobody"]
    assert parse_passwd("short:x:5:6\n") == (PasswdEntry("short", "x", 5, 6, "", "", ""),)
    assert parse_passwd("neg:x:-1:0::/:/bin/sh\nbig:x:4294967296:0::/:/bin/sh\n") == ()
    groups = parse_group(GROUP)
    assert groups[5] == GroupEntry("audio", "x", 29, ("bob", "alice"))
    assert parse_group("g:x:5\n") == (GroupEntry("g", "x", 5, ()),)


names = st.from_regex(r"\A[a-z_][a-z0-9_-]{0,15}\Z")
fields = st.text(st.characters(blacklist_characters=":\n\r", codec="utf-8"), max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_parsers_never_fail_and_yield_valid_ids(garbage: str) -> None:
    for entry in parse_passwd(garbage):
        assert 0 <= entry.uid < 2**32
        assert 0 <= entry.gid < 2**32
        assert entry.name
    for group in parse_group(garbage):
        assert 0 <= group.gid < 2**32
        assert group.name


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(names, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                          fields, fields), min_size=1, max_size=8))
def test_passwd_round_trip_and_first_match_wins(rows: list[tuple[str, int, int, str, str]]
                                                ) -> None:
    text = "".join(f"{n}:x:{u}:{g}:{gecos}:{home}:/bin/sh\n" for n, u, g, gecos, home in rows)
    entries = parse_passwd(text)
    assert entries == tuple(PasswdEntry(n, "x", u, g, gecos, home, "/bin/sh")
                            for n, u, g, gecos, home in rows)
    name, uid, gid, _, _ = rows[0]
    resolved = resolve_user_from_text(text, name)  # rows may repeat the name
    assert (resolved.uid, resolved.gid) == (uid, gid)


def resolve_user_from_text(passwd: str, user: str) -> ResolvedUser:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "etc").mkdir()
        (Path(d) / "etc" / "passwd").write_text(passwd)
        return resolve_user(user, d)


# ---------------------------------------------------------------------------------------
# hostile rootfs: reading /etc/passwd never leaves the rootfs, never hangs


HOST_CANARY = "evil:x:666:666:read from the host:/evil:/bin/sh\n"


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A rootfs in tmp_path/rootfs whose parent has an etc/passwd that a naive join
    would reach through .. or an absolute symlink."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(HOST_CANARY)
    (tmp_path / "etc" / "group").write_text("evilgroup:x:666:evil\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    return root


def assert_no_host_read(rootfs: Path) -> None:
    try:
        resolved = resolve_user("evil", rootfs)
    except (errors.UserNotFoundError, errors.SpecError):
        return
    raise AssertionError(f"read the host's passwd: {resolved}")


@pytest.mark.timeout(20)
def test_absolute_symlink_to_host_file(hostile: Path) -> None:
    (hostile / "etc" / "passwd").symlink_to(hostile.parent / "etc" / "passwd")
    assert_no_host_read(hostile)
    # the same absolute path *inside* the rootfs is what gets read
    inside = hostile / str(hostile.parent / "etc").lstrip("/")
    inside.mkdir(parents=True)
    (inside / "passwd").write_text("inside:x:7:8::/in:/bin/sh\n")
    assert resolve_user("inside", hostile) == ResolvedUser(7, 8, (), "/in")


@pytest.mark.timeout(20)
def test_symlink_to_etc_shadow_reads_the_rootfs_shadow(hostile: Path) -> None:
    (hostile / "etc" / "passwd").symlink_to("/etc/shadow")
    with pytest.raises(errors.UserNotFoundError):
        resolve_user("root", hostile)  # no rootfs /etc/shadow: empty, host's never read
    (hostile / "etc" / "shadow").write_text("shadowed:x:9:9::/s:/bin/sh\n")
    assert resolve_user("shadowed", hostile).uid == 9


@pytest.mark.timeout(20)
def test_relative_symlink_climbing_out(hostile: Path) -> None:
    (hostile / "etc" / "passwd").symlink_to("../../../../../../etc/passwd")
    # naively: tmp_path/etc/passwd (the canary); confined: /etc/passwd again, a loop
    with pytest.raises(errors.SpecError, match="symbolic links"):
        resolve_user("evil", hostile)
    assert_no_host_read(hostile)
    (hostile / "etc" / "passwd").unlink()
    (hostile / "etc" / "passwd").symlink_to("../../../../../../real/passwd")
    (hostile / "real").mkdir()
    (hostile / "real" / "passwd").write_text("real:x:5:5::/r:/bin/sh\n")
    assert resolve_user("real", hostile).uid == 5


@pytest.mark.timeout(20)
def test_symlinked_etc_directory(hostile: Path) -> None:
    (hostile / "etc").rmdir()
    (hostile / "etc").symlink_to("../etc")  # naively tmp_path/etc; confined: a loop
    assert_no_host_read(hostile)
    (hostile / "etc").unlink()
    (hostile / "etc").symlink_to(str(hostile.parent / "etc"))  # absolute, to the host dir
    assert_no_host_read(hostile)
    (hostile / "etc").unlink()
    (hostile / "usr" / "etc").mkdir(parents=True)
    (hostile / "usr" / "etc" / "passwd").write_text("u:x:3:3::/u:/bin/sh\n")
    (hostile / "etc").symlink_to("/usr/etc")  # absolute, resolved inside the rootfs
    assert resolve_user("u", hostile).uid == 3


@pytest.mark.timeout(20)
def test_fifo_does_not_hang(hostile: Path) -> None:
    os.mkfifo(hostile / "etc" / "passwd")
    with pytest.raises(errors.SpecError, match="FIFO"):
        resolve_user("evil", hostile)
    # numeric users read passwd too (for home and gid): same refusal, no hang
    with pytest.raises(errors.SpecError, match="FIFO"):
        resolve_user("0", hostile)


@pytest.mark.timeout(20)
def test_symlink_to_dev_zero(hostile: Path) -> None:
    (hostile / "etc" / "passwd").symlink_to("/dev/zero")
    assert_no_host_read(hostile)  # no /dev/zero in the rootfs: empty database
    assert resolve_user("12", hostile) == ResolvedUser(12, 0, None, None)
    if os.geteuid() != 0:
        pytest.skip("mknod of a device inside the rootfs needs root")
    (hostile / "dev").mkdir()
    os.mknod(hostile / "dev" / "zero", 0o666 | 0o020000, os.makedev(1, 5))
    with pytest.raises(errors.SpecError, match="character device"):
        resolve_user("evil", hostile)


@pytest.mark.timeout(20)
def test_directory_and_huge_file_and_non_directory_parent(hostile: Path) -> None:
    (hostile / "etc" / "passwd").mkdir()
    with pytest.raises(errors.SpecError, match="a directory"):
        resolve_user("evil", hostile)
    (hostile / "etc" / "passwd").rmdir()
    with open(hostile / "etc" / "passwd", "wb") as f:
        f.truncate(MAX_FILE_SIZE + 1)  # sparse: big, but cheap to make
    with pytest.raises(errors.SpecError, match="over the limit"):
        resolve_user("evil", hostile)
    (hostile / "etc" / "passwd").unlink()
    (hostile / "etc").rmdir()
    (hostile / "etc").write_text("not a directory")
    with pytest.raises(errors.SpecError, match="not a directory"):
        resolve_user("evil", hostile)


def test_read_rootfs_file_limits(rootfs: Path) -> None:
    assert read_rootfs_file(rootfs, "/etc/passwd") == PASSWD.encode()
    assert read_rootfs_file(rootfs, "etc/../etc/./passwd") == PASSWD.encode()
    assert read_rootfs_file(rootfs, "/../../etc/passwd") == PASSWD.encode()
    assert read_rootfs_file(rootfs, "/etc/missing") is None
    assert read_rootfs_file(rootfs, "/missing/dir/file") is None
    with pytest.raises(errors.SpecError, match="over the limit"):
        read_rootfs_file(rootfs, "/etc/passwd", limit=10)
    with pytest.raises(errors.SpecError, match="rootfs directory itself"):
        read_rootfs_file(rootfs, "/")


# ---------------------------------------------------------------------------------------
# annotations


def test_annotations(schema: SchemaStore) -> None:
    img = image({"StopSignal": "SIGRTMIN+3", "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                 "Labels": {"org.opencontainers.image.os": "label-wins", "x": "y"}},
                variant="v8", author="A <a@b>", created="2024-01-02T03:04:05.123Z",
                **{"os.version": "10.0", "os.features": ["f1", "f2"]})
    expected = {
        "org.opencontainers.image.os": "label-wins",
        "org.opencontainers.image.architecture": "amd64",
        "org.opencontainers.image.variant": "v8",
        "org.opencontainers.image.os.version": "10.0",
        "org.opencontainers.image.os.features": "f1,f2",
        "org.opencontainers.image.author": "A <a@b>",
        "org.opencontainers.image.created": "2024-01-02T03:04:05.123Z",  # verbatim
        "org.opencontainers.image.stopSignal": "SIGRTMIN+3",
        "org.opencontainers.image.exposedPorts": "80/tcp,53/udp",
        "x": "y",
    }
    assert image_annotations(img) == expected
    spec = convert(img, None, schema)
    assert spec.annotations == expected
    spec = convert(img, None, ref_name="v1.2", annotations={"x": "caller", "z": "1"})
    assert spec.annotations is not None
    assert spec.annotations["org.opencontainers.image.ref.name"] == "v1.2"
    assert spec.annotations["x"] == "caller"
    assert spec.annotations["z"] == "1"
    labelled = image({"Labels": {"org.opencontainers.image.ref.name": "from-label"}})
    assert image_annotations(labelled, ref_name="v1.2")[
        "org.opencontainers.image.ref.name"] == "from-label"
    # empty fields give no annotation at all
    bare = image({}, architecture="", os="")
    assert image_annotations(bare) == {}
    assert convert(bare, None).annotations is None


def test_only_linux_images() -> None:
    with pytest.raises(errors.SpecError, match="windows"):
        convert(image({}, os="windows"), None)


# ---------------------------------------------------------------------------------------
# volumes, mounts, read-only rootfs


def mounts_by_dest(spec: Spec) -> dict[str, Mount]:
    return {m.destination: m for m in spec.mounts or ()}


def test_volumes(schema: SchemaStore, tmp_path: Path) -> None:
    img = image({"Volumes": {"/var/lib/db": {}, "/data": {}, "data/sub": {}}})
    spec = convert(img, None, schema)
    mounts = mounts_by_dest(spec)
    assert [m.destination for m in spec.mounts or ()][-3:] == ["/data", "/data/sub",
                                                               "/var/lib/db"]
    assert mounts["/data"] == Mount(destination="/data", type="tmpfs", source="tmpfs",
                                    options=("rw", "nosuid", "nodev", "noexec", "relatime"))
    spec = convert(img, None, schema, filesystem=FilesystemOptions(
        volumes="none", volume_sources={"/data": str(tmp_path)}))
    mounts = mounts_by_dest(spec)
    assert "/var/lib/db" not in mounts
    assert "/data/sub" not in mounts
    assert mounts["/data"] == Mount(destination="/data", type="bind", source=str(tmp_path),
                                    options=("rbind", "rw"))


def test_read_only_tmpfs_and_binds(schema: SchemaStore) -> None:
    spec = convert(image({"Volumes": {"/cache": {}}}), None, schema,
                   filesystem=FilesystemOptions(
                       read_only=True, tmpfs=["/scratch"],
                       mounts=(Mount.bind("/host/conf", "/etc/app", read_only=True),
                               Mount.bind("/host/cache", "/cache"),
                               Mount(destination="/dev/shm", type="tmpfs", source="shm",
                                     options=("size=1g",)))))
    assert spec.root is not None
    assert spec.root.readonly is True
    mounts = mounts_by_dest(spec)
    for dest in ("/tmp", "/run", "/var/tmp", "/scratch"):
        assert mounts[dest].type == "tmpfs", dest
    assert mounts["/etc/app"].options == ("rbind", "ro")
    assert mounts["/cache"].source == "/host/cache"  # caller mount replaces the volume
    order = [m.destination for m in spec.mounts or ()]
    assert order.index("/dev/shm") < order.index("/dev/mqueue")  # replaced in place
    assert mounts["/dev/shm"].options == ("size=1g",)
    assert len(order) == len(set(order))
    writable = convert(image({}), None)
    assert writable.root is not None
    assert writable.root.readonly is False
    assert "/tmp" not in mounts_by_dest(writable)


# ---------------------------------------------------------------------------------------
# capabilities, limits, hooks, hostname, namespaces, hardened


def caps_of(spec: Spec) -> dict[str, tuple[str, ...] | None]:
    assert spec.process is not None
    assert spec.process.capabilities is not None
    return spec.process.capabilities.all_sets()


def test_capabilities(schema: SchemaStore) -> None:
    spec = convert(image({}), None, schema, security=SecurityOptions(
        cap_add=["net_admin", "CAP_SYS_PTRACE"], cap_drop=["KILL"]))
    sets = caps_of(spec)
    expected = ("CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN", "CAP_SYS_PTRACE")
    assert sets["bounding"] == sets["effective"] == sets["permitted"] == expected
    assert sets["ambient"] == expected  # runc's template has an ambient set
    assert sets["inheritable"] is None  # not created
    spec = convert(image({}), None, security=SecurityOptions(cap_drop=["ALL"],
                                                             cap_add=["CHOWN"]))
    assert caps_of(spec)["bounding"] == ("CAP_CHOWN",)
    spec = convert(image({}), None, security=SecurityOptions(cap_add=["ALL"]))
    runc = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert caps_of(spec)["bounding"] == runc + tuple(c for c in ALL_CAPABILITIES
                                                     if c not in runc)
    assert len(ALL_CAPABILITIES) == len(set(ALL_CAPABILITIES)) == 41
    with pytest.raises(errors.SpecError, match="both added and dropped"):
        convert(image({}), None, security=SecurityOptions(cap_add=["KILL"],
                                                          cap_drop=["cap_kill"]))


def test_limits_hooks_hostname_namespaces(schema: SchemaStore) -> None:
    hooks = Hooks(prestart=(Hook(path="/usr/bin/prep", args=("prep", "x"), timeout=5),),
                  poststop=(Hook(path="/usr/bin/clean"),))
    spec = convert(
        image({}), None, schema,
        limits=ResourceLimits(memory=256 * 2**20, memory_swap=512 * 2**20, pids=100,
                              cpu_quota=50000, cpu_period=100000, cpus="0-1"),
        hooks=hooks, hostname="box",
        namespaces={"network": "/proc/1/ns/net", "ipc": None, "user": "/proc/2/ns/user"})
    assert spec.linux is not None
    assert spec.linux.resources is not None
    res = spec.linux.resources
    assert res.memory is not None
    assert res.memory.limit == 256 * 2**20
    assert res.memory.swap == 512 * 2**20
    assert res.pids is not None
    assert res.pids.limit == 100
    assert res.cpu is not None
    assert (res.cpu.quota, res.cpu.period, res.cpu.cpus) == (
        50000, 100000, "0-1")
    template = default_spec().linux
    assert template is not None
    assert template.resources is not None
    assert res.devices == template.resources.devices
    assert spec.hooks == hooks
    assert spec.hostname == "box"
    ns = {n.type: n.path for n in spec.linux.namespaces or ()}
    assert ns == {"pid": None, "network": "/proc/1/ns/net", "uts": None, "mount": None,
                  "user": "/proc/2/ns/user", **({"cgroup": None} if "cgroup" in ns else {})}
    with pytest.raises(errors.SpecError, match="unknown namespace"):
        convert(image({}), None, namespaces={"netns": "/x"})
    with pytest.raises(errors.SpecError, match="absolute"):
        convert(image({}), None, namespaces={"network": "proc/1/ns/net"})
    # limits on the rootless template (no resources) create them
    rootless = convert(image({}), None, schema, base=rootless_spec(),
                       limits=ResourceLimits(pids=10))
    assert rootless.linux is not None
    assert rootless.linux.resources is not None
    assert rootless.linux.resources.pids is not None
    # hooks are appended to the template's
    twice = convert(image({}), None, base=spec, hooks=hooks)
    assert twice.hooks is not None
    assert twice.hooks.prestart == hooks.prestart * 2


def test_hardened_conversion_recomputes_seccomp_for_final_caps(schema: SchemaStore) -> None:
    if not DEFAULT_SECCOMP_PROFILE.exists():
        pytest.skip(f"{DEFAULT_SECCOMP_PROFILE} is not installed")
    img = image({"Cmd": ["/bin/app"], "User": "1000"})
    plain = convert(img, None, schema, security=SecurityOptions(hardened=True))
    admin = convert(img, None, schema, security=SecurityOptions(hardened=True,
                                                                cap_add=["SYS_ADMIN"]))

    def allowed(spec: Spec) -> set[str]:
        assert spec.linux is not None
        assert spec.linux.seccomp is not None
        return {n for s in spec.linux.seccomp.syscalls or () if s.action == "SCMP_ACT_ALLOW"
                for n in s.names}

    assert "bpf" not in allowed(plain)
    assert "bpf" in allowed(admin)
    assert caps_of(plain)["bounding"] is not None
    assert "CAP_NET_RAW" not in (caps_of(plain)["bounding"] or ())
    assert plain.process is not None
    assert plain.process.user is not None
    assert plain.process.user.uid == 1000


def test_rootless_base_and_docker_mode_validate(rootfs: Path, schema: SchemaStore) -> None:
    img = image({"Entrypoint": ["/ep"], "Cmd": ["c"], "User": "alice:wheel",
                 "Env": ["X=1"], "Volumes": {"/v": {}}, "Labels": {"l": "v"}})
    for options in (
            {"base": rootless_spec()},
            {"docker_compatible": True, "process": ProcessOptions(entrypoint=["/other"])},
            {"process": ProcessOptions(terminal=False), "security": SecurityOptions(
                no_new_privileges=False)}):
        spec = convert(img, rootfs, schema, **options)
        assert spec.root is not None
        assert spec.root.path == "rootfs"
    spec = convert(img, rootfs, process=ProcessOptions(terminal=False))
    assert spec.process is not None
    assert spec.process.terminal is False
    # the result is a plain Spec: it survives its own JSON
    assert Spec.from_json(spec.to_json()) == spec


def test_image_config_bytes_accepted() -> None:
    raw = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/x"]},
                      "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    spec = spec_from_image(raw, None)
    assert spec.process is not None
    assert spec.process.args == ("/x",)


# ---------------------------------------------------------------------------------------
# the real runtime as the oracle: runc runs what we generate


@pytest.mark.peers
@pytest.mark.timeout(120)
def test_runc_runs_a_converted_hardened_bundle(tmp_path: Path) -> None:
    runc = require("runc")
    busybox = require("busybox")
    require_root("runc with a new network namespace and cgroups")
    if not DEFAULT_SECCOMP_PROFILE.exists():
        pytest.skip(f"{DEFAULT_SECCOMP_PROFILE} is not installed")
    linked = subprocess.run(["ldd", busybox], capture_output=True, text=True, check=False)
    if "not a dynamic executable" not in linked.stdout + linked.stderr:
        pytest.skip("busybox is not statically linked (install busybox-static)")
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy(busybox, root / "bin" / "busybox")
    for name in ("sh", "id", "pwd", "touch"):
        (root / "bin" / name).symlink_to("busybox")
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    script = ("id; echo HOME=$HOME; pwd; touch /tmp/ok && echo tmp-writable; "
              "touch /x 2>/dev/null || echo root-read-only")
    img = image({"Entrypoint": ["/bin/sh", "-c"], "Cmd": [script], "User": "bob",
                 "Env": ["PATH=/bin"], "WorkingDir": "/"})
    spec = convert(img, root, process=ProcessOptions(terminal=False),
                   filesystem=FilesystemOptions(read_only=True),
                   security=SecurityOptions(hardened=True))
    bundle = Bundle.create(tmp_path / "bundle", spec, rootfs=root)
    state = tmp_path / "state"
    result = subprocess.run([runc, "--root", str(state), "run", "--bundle", str(bundle.path),
                             f"ocistack-convert-{os.getpid()}"],
                            capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "uid=1001(bob) gid=100(users) groups=10(wheel),29(audio)",
        "HOME=/home/bob", "/", "tmp-writable", "root-read-only"]

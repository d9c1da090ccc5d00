"""oci_runtime.spec, .profiles and .bundle: the config.json model, the runc/podman
profiles, the seccomp profile conversion and bundle writing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oci_runtime import errors
from oci_runtime.bundle import Bundle, write_atomic
from oci_runtime.profiles import (
    DEFAULT_SECCOMP_PROFILE,
    PODMAN_CAPABILITIES,
    PODMAN_MASKED_PATHS,
    PODMAN_READONLY_PATHS,
    default_spec,
    harden,
    load_seccomp_profile,
    rootless_spec,
    seccomp_from_profile,
    to_rootless,
)
from oci_runtime.spec import (
    OCI_VERSION,
    Capabilities,
    Hook,
    Hooks,
    IDMapping,
    Linux,
    Mount,
    Namespace,
    Process,
    Rlimit,
    Root,
    Spec,
    Unknown,
    User,
)
from tests.jsonschema_lite import SchemaStore, ValidationError
from tests.peers import require

# the runtime-spec schemas and fixtures, vendored (tests/data/specs/SOURCES)
SPECS = Path(__file__).resolve().parent / "data" / "specs" / "runtime-spec"
FIXTURES = SPECS / "test"


@pytest.fixture(scope="module")
def schema() -> SchemaStore:
    return SchemaStore(SPECS)


def fixture_files(kind: str, verdict: str) -> list[Path]:
    found = sorted((FIXTURES / kind / verdict).glob("*.json"))
    assert found, f"no runtime-spec fixtures in {FIXTURES / kind / verdict}"
    return found


# ---------------------------------------------------------------------------------------
# the schema validator itself must not be vacuous


@pytest.mark.parametrize("kind", ["config", "state", "features"])
def test_validator_accepts_good_and_rejects_bad_fixtures(schema: SchemaStore, kind: str
                                                         ) -> None:
    schema_file = f"{kind}-schema.json"
    good, bad = fixture_files(kind, "good"), fixture_files(kind, "bad")
    assert good, f"no good {kind} fixtures"
    for path in good:
        schema.validate(json.loads(path.read_text()), schema_file)
    for path in bad:
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            continue  # invalid-json.json: bad before any schema
        assert not schema.is_valid(doc, schema_file), path.name


def test_validator_catches_typical_mistakes(schema: SchemaStore) -> None:
    good = default_spec().to_dict()
    schema.validate(good)
    broken: list[dict[str, Any]] = []
    for path, value in ((("process", "user", "uid"), -1),
                        (("process", "rlimits", 0, "type"), "NOFILE"),
                        (("linux", "namespaces", 0, "type"), "pidns"),
                        (("mounts", 0, "options"), "nosuid"),
                        (("process", "capabilities", "bounding"), [1]),
                        (("ociVersion",), 1)):
        doc = json.loads(json.dumps(good))
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        broken.append(doc)
    doc = json.loads(json.dumps(good))
    del doc["root"]["path"]
    broken.append(doc)
    for doc in broken:
        with pytest.raises(ValidationError):
            schema.validate(doc)


# ---------------------------------------------------------------------------------------
# model: round trip, unknown fields, errors


@pytest.mark.parametrize("path", fixture_files("config", "good") + [
    p for p in fixture_files("config", "bad") if p.name != "invalid-json.json"],
    ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_round_trip_is_exact(path: Path) -> None:
    raw = path.read_bytes()
    spec = Spec.from_json(raw)
    assert spec.to_dict() == json.loads(raw)
    again = Spec.from_json(spec.to_json())
    assert again == spec
    assert again.to_dict() == json.loads(raw)


def test_spec_example_is_typed() -> None:
    spec = Spec.from_json((FIXTURES / "config" / "good" / "spec-example.json").read_bytes())
    assert spec.process is not None
    assert spec.process.user is not None
    assert spec.process.user.uid == 1
    assert spec.process.user.additional_gids == (5, 6)
    assert spec.linux is not None
    assert spec.linux.seccomp is not None
    assert spec.linux.seccomp.syscalls is not None
    assert spec.linux.namespace("pid") == Namespace(type="pid")
    assert spec.hooks is not None
    assert spec.hooks.poststart is not None
    # members we do not model are kept, typed ones are not duplicated in extra
    assert spec.linux.extra["timeOffsets"]["monotonic"] == {"secs": 172800, "nanosecs": 0}
    assert "cwd" not in spec.process.extra
    assert not spec.process.extra
    assert "namespaces" not in spec.linux.extra


def test_unknown_members_survive_at_every_level() -> None:
    doc = default_spec().to_dict()
    doc["x-top"] = {"nested": [1, 2, {"a": None}]}
    doc["process"]["x-process"] = "p"
    doc["process"]["user"]["x-user"] = 1
    doc["process"]["capabilities"]["x-caps"] = True
    doc["process"]["rlimits"][0]["x-rlimit"] = []
    doc["root"]["x-root"] = 1.5
    doc["mounts"][1]["x-mount"] = "m"
    doc["linux"]["x-linux"] = {"k": "v"}
    doc["linux"]["resources"]["x-res"] = 0
    doc["linux"]["resources"]["devices"][0]["x-dev"] = "d"
    doc["linux"]["namespaces"][0]["x-ns"] = "n"
    doc["linux"]["intelRdt"] = {"closID": "guaranteed_group"}
    doc["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "x-seccomp": 1,
                               "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
                                             "x-syscall": 2,
                                             "args": [{"index": 0, "value": 1,
                                                       "op": "SCMP_CMP_EQ", "x-arg": 3}]}]}
    doc["hooks"] = {"prestart": [{"path": "/bin/true", "x-hook": 1}], "x-hooks": 2}
    raw = json.dumps(doc).encode()
    spec = Spec.from_json(raw)
    assert spec.to_dict() == doc
    assert spec.extra["x-top"] == {"nested": [1, 2, {"a": None}]}
    assert Spec.from_json(spec.to_json()).to_dict() == doc
    # an edited spec keeps the unknown members of what was not edited
    edited = attrs.evolve(spec, hostname="edited")
    assert edited.to_dict()["x-top"] == doc["x-top"]
    assert edited.to_dict()["linux"]["x-linux"] == {"k": "v"}


def test_absent_and_empty_stay_distinct() -> None:
    doc = {"ociVersion": "1.0.0", "root": {"path": "rootfs"}, "mounts": [],
           "process": {"cwd": "/", "env": [], "capabilities": {"bounding": []}}}
    spec = Spec.from_dict(doc)
    assert spec.mounts == ()
    assert spec.hooks is None
    assert spec.to_dict() == doc


def test_unknown_is_immutable_and_hashable() -> None:
    unknown = Unknown({"a": [1, 2]})
    value = unknown["a"]
    value.append(3)
    assert unknown["a"] == [1, 2]
    assert hash(unknown) == hash(Unknown({"a": [1, 2]}))
    assert unknown == {"a": [1, 2]}
    assert hash(default_spec()) == hash(default_spec())


@pytest.mark.parametrize(("doc", "message"), [
    ({"root": {"path": "r"}}, "ociVersion is required"),
    ({"ociVersion": "1.0.0", "process": {"args": ["sh"]}}, "config.process.cwd is required"),
    ({"ociVersion": "1.0.0", "mounts": [{"type": "tmpfs"}]},
     "config.mounts[0].destination is required"),
    ({"ociVersion": "1.0.0", "linux": {"namespaces": [{"type": "pidns"}]}},
     "config.linux.namespaces[0].type must be one of"),
    ({"ociVersion": "1.0.0", "linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}]}},
     "config.linux.namespaces: duplicate type pid"),
    ({"ociVersion": "1.0.0", "process": {"cwd": "/", "rlimits": [
        {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
        {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}]}},
     "config.process.rlimits: duplicate type RLIMIT_NOFILE"),
    ({"ociVersion": "1.0.0", "process": {"cwd": "/", "user": {"uid": 2**32}}},
     "config.process.user.uid must be in"),
    ({"ociVersion": "1.0.0", "process": {"cwd": "/", "user": {"uid": True}}},
     "config.process.user.uid must be an integer"),
    ({"ociVersion": "1.0.0", "process": {"cwd": "/", "user": {"uid": 1.5}}},
     "must be an integer"),
    ({"ociVersion": "1.0.0", "linux": {"seccomp": {"defaultAction": "ALLOW"}}},
     "config.linux.seccomp.defaultAction must be one of"),
    ({"ociVersion": "1.0.0", "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                                                   "syscalls": [{"names": [],
                                                                 "action": "SCMP_ACT_ALLOW"}]}}},
     "config.linux.seccomp.syscalls[0].names must have at least 1"),
    ({"ociVersion": "1.0.0", "annotations": {"a": 1}}, "config.annotations['a']"),
    ({"ociVersion": "1.0.0", "process": []}, "config.process must be a JSON object"),
    ({"ociVersion": "1.0.0", "linux": {"rootfsPropagation": "rshared"}},
     "rootfsPropagation must be one of"),
])
def test_invalid_configs_name_the_member(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.SpecError, match=message.replace("[", r"\[").replace(
            "]", r"\]").replace("(", r"\(")):
        Spec.from_json(json.dumps(doc))


def test_invalid_documents() -> None:
    for raw in (b"", b"[]", b"{", b'{"ociVersion": NaN}', b"\xff"):
        with pytest.raises(errors.SpecError):
            Spec.from_json(raw)
    with pytest.raises(errors.SpecError, match="over the limit"):
        Spec.from_json(b'{"ociVersion": "1.0.0"}' + b" " * 100, limit=50)
    # SpecError is a ValueError and part of the one tree
    assert issubclass(errors.SpecError, ValueError)


ids = st.integers(min_value=0, max_value=2**32 - 1)
text = st.text(st.characters(codec="utf-8"), max_size=12)
texts = st.lists(text, max_size=4).map(tuple)
paths = st.from_regex(r"\A/[a-z0-9/._-]{0,20}\Z")


def opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


specs = st.builds(
    Spec,
    oci_version=st.sampled_from(["1.0.0", "1.1.0", "1.2.1"]),
    process=opt(st.builds(
        Process, cwd=paths, args=opt(texts), env=opt(texts), terminal=opt(st.booleans()),
        user=opt(st.builds(User, uid=ids, gid=ids, umask=opt(ids),
                           additional_gids=opt(st.lists(ids, max_size=3).map(tuple)))),
        capabilities=opt(st.builds(Capabilities.of, st.lists(
            st.sampled_from(PODMAN_CAPABILITIES), unique=True, max_size=3))),
        rlimits=opt(st.lists(st.builds(Rlimit, type=st.sampled_from(
            ["RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE"]), hard=st.integers(0, 2**64 - 1),
            soft=st.integers(0, 2**64 - 1)), unique_by=lambda r: r.type, max_size=3).map(
                tuple)),
        no_new_privileges=opt(st.booleans()), oom_score_adj=opt(st.integers(-1000, 1000)))),
    root=opt(st.builds(Root, path=text, readonly=opt(st.booleans()))),
    hostname=opt(text),
    mounts=opt(st.lists(st.builds(Mount, destination=paths, type=opt(text),
                                  source=opt(text), options=opt(texts)),
                        max_size=3).map(tuple)),
    hooks=opt(st.builds(Hooks, poststop=opt(st.lists(st.builds(
        Hook, path=paths, args=opt(texts), timeout=opt(st.integers(1, 100))),
        max_size=2).map(tuple)))),
    annotations=opt(st.dictionaries(text, text, max_size=3)),
    linux=opt(st.builds(
        Linux,
        namespaces=opt(st.lists(st.builds(Namespace, type=st.sampled_from(
            ["pid", "network", "mount", "user", "cgroup"]), path=opt(paths)),
            unique_by=lambda n: n.type, max_size=4).map(tuple)),
        uid_mappings=opt(st.lists(st.builds(IDMapping, container_id=ids, host_id=ids,
                                            size=ids), max_size=2).map(tuple)),
        cgroups_path=opt(text), sysctl=opt(st.dictionaries(text, text, max_size=2)),
        masked_paths=opt(st.lists(paths, max_size=3).map(tuple)))),
)


@settings(max_examples=150, deadline=None)
@given(specs)
def test_any_model_round_trips_through_json(spec: Spec) -> None:
    assert Spec.from_json(spec.to_json()) == spec
    assert Spec.from_json(spec.to_json(indent=None)).to_dict() == spec.to_dict()


# ---------------------------------------------------------------------------------------
# profiles: runc's default and rootless configs, podman's hardening


def runc_spec(tmp_path: Path, *flags: str) -> dict[str, Any]:
    runc = require("runc")
    subprocess.run([runc, "spec", *flags], cwd=tmp_path, check=True, capture_output=True,
                   timeout=60)
    out: dict[str, Any] = json.loads((tmp_path / "config.json").read_text())
    return out


def test_default_spec_equals_runc_spec(tmp_path: Path) -> None:
    expected = runc_spec(tmp_path)
    ours = default_spec(oci_version=expected["ociVersion"]).to_dict()
    assert ours == expected
    # the only difference with our own default is the version we declare
    assert default_spec().oci_version == OCI_VERSION
    assert default_spec().to_dict() | {"ociVersion": expected["ociVersion"]} == expected


def test_rootless_spec_equals_runc_spec_rootless(tmp_path: Path) -> None:
    expected = runc_spec(tmp_path, "--rootless")
    ours = rootless_spec(oci_version=expected["ociVersion"]).to_dict()
    assert ours == expected


def test_rootless_transform_details() -> None:
    spec = rootless_spec(uid=1000, gid=1001, cgroup_namespace=True)
    assert spec.linux is not None
    assert spec.linux.uid_mappings == (IDMapping(container_id=0, host_id=1000, size=1),)
    assert spec.linux.gid_mappings == (IDMapping(container_id=0, host_id=1001, size=1),)
    assert [ns.type for ns in spec.linux.namespaces or ()] == [
        "pid", "ipc", "uts", "mount", "cgroup", "user"]
    assert spec.linux.resources is None
    mounts = {m.destination: m for m in spec.mounts or ()}
    assert mounts["/sys"].options == ("rbind", "nosuid", "noexec", "nodev", "ro")
    assert "gid=5" not in (mounts["/dev/pts"].options or ())
    assert mounts["/proc"].options is None
    # applying it twice changes nothing more
    assert to_rootless(spec, uid=1000, gid=1001) == spec


def test_default_spec_cgroup_namespace() -> None:
    with_ns = default_spec(cgroup_namespace=True)
    without = default_spec(cgroup_namespace=False)
    assert with_ns.linux is not None
    assert without.linux is not None
    assert with_ns.linux.namespace("cgroup") is not None
    assert without.linux.namespace("cgroup") is None


@pytest.fixture(scope="module")
def podman_profile() -> dict[str, Any]:
    if not DEFAULT_SECCOMP_PROFILE.exists():
        pytest.skip(f"{DEFAULT_SECCOMP_PROFILE} is not installed (containers-common)")
    return load_seccomp_profile()


def test_generated_profiles_validate(schema: SchemaStore, podman_profile: dict[str, Any]
                                     ) -> None:
    for spec in (default_spec(), default_spec(cgroup_namespace=True), rootless_spec(),
                 rootless_spec(uid=1000, gid=1000),
                 harden(default_spec(), seccomp_profile=podman_profile),
                 harden(rootless_spec(), seccomp_profile=podman_profile, arch="aarch64"),
                 harden(default_spec(), seccomp_profile=None)):
        schema.validate(spec.to_dict())
        schema.validate(json.loads(spec.to_json()))


def test_harden_uses_podman_defaults(podman_profile: dict[str, Any]) -> None:
    spec = harden(default_spec(), seccomp_profile=podman_profile, arch="x86_64")
    assert spec.process is not None
    assert spec.process.capabilities is not None
    caps = spec.process.capabilities
    assert caps.bounding == caps.effective == caps.permitted == PODMAN_CAPABILITIES
    assert caps.ambient is None
    assert caps.inheritable is None
    assert "CAP_NET_RAW" not in PODMAN_CAPABILITIES
    assert len(PODMAN_CAPABILITIES) == 11
    assert spec.linux is not None
    assert spec.linux.masked_paths is not None
    assert spec.linux.masked_paths[:len(PODMAN_MASKED_PATHS)] == PODMAN_MASKED_PATHS
    assert spec.linux.readonly_paths == PODMAN_READONLY_PATHS
    seccomp = spec.linux.seccomp
    assert seccomp is not None
    assert seccomp.default_action == "SCMP_ACT_ERRNO"
    assert seccomp.default_errno_ret == 38
    assert seccomp.architectures == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")
    allowed = {n for s in seccomp.syscalls or () if s.action == "SCMP_ACT_ALLOW"
               for n in s.names}
    denied = {n for s in seccomp.syscalls or () if s.action == "SCMP_ACT_ERRNO"
              for n in s.names}
    # plain syscalls allowed; CAP_SYS_ADMIN-only ones denied explicitly with EPERM
    assert {"read", "write", "openat", "mount"} <= allowed
    gated = {"bpf", "open_by_handle_at", "delete_module", "acct", "settimeofday"}
    assert not gated & allowed
    assert gated <= denied
    assert "chroot" in allowed  # CAP_SYS_CHROOT is in podman's set
    assert "arch_prctl" in allowed  # includes.arches amd64
    assert "s390_runtime_instr" not in allowed  # includes.arches s390x
    # conversion drops Docker-only members
    dumped = json.dumps(seccomp.to_dict())
    assert "comment" not in dumped
    assert "includes" not in dumped
    assert "archMap" not in dumped


def test_seccomp_conversion_rules() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                     "subArchitectures": ["SCMP_ARCH_X86"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "comment": "always"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_PTRACE"]}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "excludes": {"caps": ["CAP_SYS_PTRACE"]}},
            {"names": ["both"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_PTRACE", "CAP_SYS_ADMIN"]}},
            {"name": "arch_prctl", "action": "SCMP_ACT_ALLOW",
             "includes": {"arches": ["amd64"]}},
            {"names": ["not_on_arm"], "action": "SCMP_ACT_ALLOW",
             "excludes": {"arches": ["arm64"]}},
            {"names": ["new_kernel"], "action": "SCMP_ACT_ALLOW",
             "includes": {"minKernel": "6.9"}},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
        ],
    }

    def names(seccomp: Any) -> list[tuple[str, str, int | None]]:
        return [(s.names[0], s.action, s.errno_ret) for s in seccomp.syscalls]

    amd = seccomp_from_profile(profile, capabilities=["CAP_SYS_PTRACE"], arch="x86_64",
                               kernel="6.1.0-13-amd64")
    assert amd.architectures == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86")
    assert amd.default_errno_ret == 1
    assert names(amd) == [("read", "SCMP_ACT_ALLOW", None), ("ptrace", "SCMP_ACT_ALLOW", None),
                          ("arch_prctl", "SCMP_ACT_ALLOW", None),
                          ("not_on_arm", "SCMP_ACT_ALLOW", None),
                          ("personality", "SCMP_ACT_ALLOW", None)]
    assert amd.syscalls is not None
    assert amd.syscalls[-1].args is not None
    assert amd.syscalls[-1].args[0].value == 8
    assert amd.syscalls[-1].args[0].value_two is None
    arm = seccomp_from_profile(profile, capabilities=["CAP_SYS_PTRACE", "CAP_SYS_ADMIN"],
                               arch="aarch64", kernel="6.10")
    assert arm.architectures == ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")
    assert names(arm) == [("read", "SCMP_ACT_ALLOW", None), ("ptrace", "SCMP_ACT_ALLOW", None),
                          ("both", "SCMP_ACT_ALLOW", None),
                          ("new_kernel", "SCMP_ACT_ALLOW", None),
                          ("personality", "SCMP_ACT_ALLOW", None)]
    none = seccomp_from_profile(profile, capabilities=[], arch="ppc64le", kernel="5.10")
    assert none.architectures is None  # no archMap entry: libseccomp's native arch
    assert ("ptrace", "SCMP_ACT_ERRNO", 13) in names(none)
    with pytest.raises(errors.SpecError, match="both 'name' and 'names'"):
        seccomp_from_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}, capabilities=[])
    with pytest.raises(errors.SpecError, match="defaultAction"):
        seccomp_from_profile({"syscalls": []}, capabilities=[])
    with pytest.raises(errors.SpecError, match="must be one of"):
        seccomp_from_profile({"defaultAction": "SCMP_ACT_NOPE"}, capabilities=[])


def test_load_seccomp_profile_errors(tmp_path: Path) -> None:
    with pytest.raises(errors.SpecError, match="does not exist"):
        load_seccomp_profile(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(errors.SpecError, match="JSON object"):
        load_seccomp_profile(tmp_path / "bad.json")


# ---------------------------------------------------------------------------------------
# bundles


def test_bundle_create_and_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bundle = Bundle.create("b", default_spec())
    assert bundle.path == tmp_path / "b"
    assert (tmp_path / "b" / "rootfs").is_dir()
    assert bundle.load_config() == default_spec()
    assert json.loads((tmp_path / "b" / "config.json").read_text()) == default_spec().to_dict()
    assert sorted(p.name for p in bundle.path.iterdir()) == ["config.json", "rootfs"]
    monkeypatch.chdir("/")
    assert bundle.rootfs_path() == tmp_path / "b" / "rootfs"


def test_bundle_with_rootfs_elsewhere(tmp_path: Path) -> None:
    rootfs = tmp_path / "somewhere" / "root"
    rootfs.mkdir(parents=True)
    bundle = Bundle.create(tmp_path / "bundle", default_spec(), rootfs=rootfs)
    spec = bundle.load_config()
    assert spec.root == Root(path=str(rootfs), readonly=True)
    assert bundle.rootfs_path() == rootfs
    inside = tmp_path / "bundle2" / "fs"
    inside.mkdir(parents=True)
    assert Bundle.create(tmp_path / "bundle2", default_spec(),
                         rootfs=inside).load_config().root == Root(path="fs", readonly=True)
    with pytest.raises(errors.SpecError, match="not a directory"):
        Bundle.create(tmp_path / "bundle3", default_spec(), rootfs=tmp_path / "nope")


def test_config_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = Bundle.create(tmp_path, default_spec())
    before = bundle.config_path.read_bytes()
    fsynced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsynced.append(fd), real_fsync(fd))[1])
    bundle.write_config(rootless_spec())
    assert len(fsynced) == 2  # the file, then the directory
    assert bundle.load_config() == rootless_spec()

    def boom(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        bundle.write_config(default_spec())
    assert bundle.config_path.read_bytes() != before  # still the rootless one, whole
    assert bundle.load_config() == rootless_spec()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "rootfs"]
    with pytest.raises(OSError, match="disk on fire"):
        write_atomic(tmp_path / "other", b"x")
    assert not (tmp_path / "other").exists()

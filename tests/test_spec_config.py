"""Image configurations, OCI and Docker (oci_image.spec.config)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oci_image.errors import ContentTooLargeError, SpecError
from oci_image.spec import (
    DEFAULT_SIZE_LIMIT,
    ContainerConfig,
    Digest,
    HistoryEntry,
    ImageConfig,
    Platform,
    RootFS,
)
from oci_image.testing import strategies as ocist

DIFF1 = "sha256:c6f988f4874bb0add23a778f753c65efe992244e148a1d2ec2a8b664fb66bbd1"
DIFF2 = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

# the example of the image-spec's config.md
OCI_CONFIG: dict[str, Any] = {
    "created": "2015-10-31T22:22:56.015925234Z",
    "author": "Alyssa P. Hacker <alyspdev@example.com>",
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "User": "alice",
        "ExposedPorts": {"8080/tcp": {}},
        "Env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "FOO=oci_is_a",
            "BAR=well_written_spec",
        ],
        "Entrypoint": ["/bin/my-app-binary"],
        "Cmd": ["--foreground", "--config", "/etc/my-app.d/default.cfg"],
        "Volumes": {"/var/job-result-data": {}, "/var/log/my-app-logs": {}},
        "WorkingDir": "/home/alice",
        "Labels": {
            "com.example.project.git.url": "https://example.com/project.git",
            "com.example.project.git.commit": "45a939b2999782a3f005621a8d0f29aa387e1d6b",
        },
        "StopSignal": "SIGRTMIN+3",
    },
    "rootfs": {"diff_ids": [DIFF1, DIFF2], "type": "layers"},
    "history": [
        {
            "created": "2015-10-31T22:22:54.690851953Z",
            "created_by": "/bin/sh -c #(nop) ADD file:a3bc1e842b69636f9df5256c49c5374fb4eef1e2"
                          "81fe3f282c65fb853ee171c5 in /",
        },
        {
            "created": "2015-10-31T22:22:55.613815829Z",
            "created_by": "/bin/sh -c #(nop) CMD [\"sh\"]",
            "empty_layer": True,
        },
        {
            "created": "2015-10-31T22:22:56.329850019Z",
            "created_by": "/bin/sh -c apk add curl",
            "author": "alice",
            "comment": "install curl",
        },
    ],
}

# as written by the Docker daemon (classic builder)
DOCKER_CONFIG: dict[str, Any] = {
    "architecture": "arm",
    "variant": "v7",
    "config": {
        "Hostname": "",
        "Domainname": "",
        "User": "",
        "AttachStdin": False,
        "Tty": False,
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": "/bin/sh -c echo hello",
        "Image": "sha256:" + "1" * 64,
        "Volumes": None,
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": None,
        "ArgsEscaped": True,
        "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000},
        "Shell": ["/bin/bash", "-c"],
    },
    "container": "3b7c6a7e0f0e4f1c2a5c8f9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b",
    "container_config": {
        "Hostname": "3b7c6a7e0f0e",
        "Cmd": ["/bin/sh", "-c", "#(nop) ", "CMD [\"/bin/sh\"]"],
        "Image": "sha256:" + "1" * 64,
    },
    "created": "2023-05-09T23:11:10.132147526Z",
    "docker_version": "20.10.23",
    "history": [
        {"created": "2023-05-09T23:11:09.9Z", "created_by": "/bin/sh -c #(nop) ADD file:x in /"},
        {"created": "2023-05-09T23:11:10.1Z", "created_by": "/bin/sh -c #(nop)  CMD [\"/bin/sh\"]",
         "empty_layer": True},
    ],
    "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": [DIFF1]},
}


def dump(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_parse_oci_config() -> None:
    c = ImageConfig.from_json(dump(OCI_CONFIG))
    assert c.architecture == "amd64"
    assert c.os == "linux"
    assert c.created == "2015-10-31T22:22:56.015925234Z"
    assert c.author == "Alyssa P. Hacker <alyspdev@example.com>"
    assert c.config.user == "alice"
    assert c.config.exposed_ports == ("8080/tcp",)
    assert c.config.env[1:] == ("FOO=oci_is_a", "BAR=well_written_spec")
    assert c.config.entrypoint == ("/bin/my-app-binary",)
    assert c.config.cmd == ("--foreground", "--config", "/etc/my-app.d/default.cfg")
    assert c.config.volumes == ("/var/job-result-data", "/var/log/my-app-logs")
    assert c.config.working_dir == "/home/alice"
    assert c.config.labels["com.example.project.git.url"] == "https://example.com/project.git"
    assert c.config.stop_signal == "SIGRTMIN+3"
    assert c.rootfs == RootFS(type="layers", diff_ids=(Digest.parse(DIFF1),
                                                        Digest.parse(DIFF2)))
    assert all(isinstance(d, Digest) for d in c.rootfs.diff_ids)
    assert len(c.history) == 3
    assert c.history[1] == HistoryEntry(created="2015-10-31T22:22:55.613815829Z",
                                        created_by="/bin/sh -c #(nop) CMD [\"sh\"]",
                                        empty_layer=True)
    assert c.history[2].author == "alice"
    assert c.history[2].comment == "install curl"
    assert c.non_empty_history() == 2 == len(c.rootfs.diff_ids)
    assert c.platform == Platform(os="linux", architecture="amd64")
    assert c.docker_version == ""


def test_parse_docker_config() -> None:
    c = ImageConfig.from_json(dump(DOCKER_CONFIG))
    assert (c.os, c.architecture, c.variant) == ("linux", "arm", "v7")
    assert c.platform == Platform("linux", "arm", "v7")
    assert c.docker_version == "20.10.23"
    assert c.created == "2023-05-09T23:11:10.132147526Z"
    # Cmd given as a plain string is Docker's strslice with one element
    assert c.config.cmd == ("/bin/sh -c echo hello",)
    assert c.config.entrypoint is None
    assert c.config.on_build is None
    assert c.config.volumes == ()
    assert c.config.labels == {}
    assert c.config.args_escaped is True
    assert c.config.shell == ("/bin/bash", "-c")
    assert c.config.healthcheck == {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000}
    assert c.rootfs.diff_ids == (Digest.parse(DIFF1),)
    assert [h.empty_layer for h in c.history] == [False, True]
    assert c.non_empty_history() == 1


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("echo hi", ("echo hi",)), ([], ()), (["a", "b"], ("a", "b")),
])
def test_strslice_fields(value: object, expected: tuple[str, ...] | None) -> None:
    for key, attr in [("Cmd", "cmd"), ("Entrypoint", "entrypoint"), ("Shell", "shell"),
                      ("OnBuild", "on_build")]:
        c = ImageConfig.from_json(dump({"config": {key: value}}))
        assert getattr(c.config, attr) == expected


def test_minimal_config_defaults() -> None:
    c = ImageConfig.from_json(b"{}")
    assert c == ImageConfig()
    assert c.config == ContainerConfig()
    assert c.rootfs == RootFS(type="layers", diff_ids=())
    assert c.created is None
    null_members = ImageConfig.from_json(dump({
        "config": None, "rootfs": None, "history": None, "created": None}))
    assert null_members == ImageConfig()


WRONG_TYPES: list[Any] = [
    {"architecture": 1},
    {"os": ["linux"]},
    {"variant": 7},
    {"os.version": 10},
    {"os.features": "win32k"},
    {"os.features": [1]},
    {"created": 1446330176},
    {"author": {}},
    {"docker_version": 20},
    {"config": []},
    {"config": "x"},
    {"config": {"User": 0}},
    {"config": {"Env": "A=b"}},
    {"config": {"Env": [1]}},
    {"config": {"Cmd": 5}},
    {"config": {"Cmd": [1]}},
    {"config": {"Entrypoint": {"a": "b"}}},
    {"config": {"Shell": [None]}},
    {"config": {"Labels": {"a": 1}}},
    {"config": {"Labels": []}},
    {"config": {"ExposedPorts": ["80/tcp"]}},
    {"config": {"Volumes": "/data"}},
    {"config": {"WorkingDir": 1}},
    {"config": {"StopSignal": 15}},
    {"config": {"ArgsEscaped": "true"}},
    {"rootfs": []},
    {"rootfs": {"type": 1}},
    {"rootfs": {"diff_ids": DIFF1}},
    {"rootfs": {"diff_ids": [1]}},
    {"rootfs": {"diff_ids": ["nope"]}},
    {"rootfs": {"diff_ids": [DIFF1.upper()]}},
    {"rootfs": {"diff_ids": ["sha384:" + "a" * 96]}},
    {"history": {}},
    {"history": [1]},
    {"history": ["entry"]},
    {"history": [{"created": 1}]},
    {"history": [{"created_by": ["sh"]}]},
    {"history": [{"empty_layer": "yes"}]},
    {"history": [{"author": False}]},
    {"history": [{"comment": 0}]},
]


@pytest.mark.parametrize("doc", WRONG_TYPES, ids=lambda d: json.dumps(d)[:60])
def test_wrong_types_are_spec_errors(doc: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        ImageConfig.from_json(dump(doc))
    # the same mistake inside an otherwise valid config
    merged = {**OCI_CONFIG}
    for key, value in doc.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    with pytest.raises(SpecError):
        ImageConfig.from_json(dump(merged))


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"[]", b"null", b"\"config\"", b"42", b"{", b"{\"os\": \"linux\",}",
    b"\xff\xfe\xfa", b"[" * 100_000,
])
def test_not_an_object_is_a_spec_error(raw: bytes) -> None:
    with pytest.raises(SpecError):
        ImageConfig.from_json(raw)


def test_size_limit() -> None:
    raw = dump(OCI_CONFIG)
    assert ImageConfig.from_json(raw, limit=len(raw)).os == "linux"
    with pytest.raises(ContentTooLargeError):
        ImageConfig.from_json(raw, limit=len(raw) - 1)
    big = dump({**OCI_CONFIG, "author": "x" * DEFAULT_SIZE_LIMIT})
    with pytest.raises(ContentTooLargeError) as info:
        ImageConfig.from_json(big)
    assert isinstance(info.value, SpecError)
    assert ImageConfig.from_json(big, limit=None).author == "x" * DEFAULT_SIZE_LIMIT


def test_to_json_exact_bytes() -> None:
    c = ImageConfig(
        architecture="amd64", os="linux", created="2024-01-01T00:00:00Z",
        config=ContainerConfig(env=("A=<b>&c",), cmd=("sh",)),
        rootfs=RootFS(diff_ids=(Digest.parse(DIFF1),)),
        history=(HistoryEntry(created_by="ADD x", empty_layer=False),),
    )
    assert c.to_json() == (
        b'{"created":"2024-01-01T00:00:00Z","architecture":"amd64","os":"linux",'
        b'"config":{"Env":["A=\\u003cb\\u003e\\u0026c"],"Cmd":["sh"]},'
        b'"rootfs":{"type":"layers","diff_ids":["' + DIFF1.encode() + b'"]},'
        b'"history":[{"created_by":"ADD x"}]}'
    )


def test_to_json_of_parsed_oci_config_is_equivalent() -> None:
    c = ImageConfig.from_json(dump(OCI_CONFIG))
    assert ImageConfig.from_json(c.to_json()) == c
    assert json.loads(c.to_json()) == OCI_CONFIG | {"rootfs": {"type": "layers",
                                                              "diff_ids": [DIFF1, DIFF2]}}


@given(ocist.image_configs())
def test_round_trip(c: ImageConfig) -> None:
    raw = c.to_json()
    assert ImageConfig.from_json(raw) == c
    assert ImageConfig.from_json(raw).to_json() == raw


_CONFIG_KEYS = ["architecture", "os", "variant", "os.version", "os.features", "created",
                "author", "config", "rootfs", "history", "docker_version"]
_CONTAINER_KEYS = ["User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes",
                   "WorkingDir", "Labels", "StopSignal", "ArgsEscaped", "Shell",
                   "Healthcheck", "OnBuild"]


def _config_like() -> st.SearchStrategy[dict[str, Any]]:
    values = ocist.json_values(max_leaves=8)
    container = st.dictionaries(st.sampled_from(_CONTAINER_KEYS), values, max_size=5)
    rootfs = st.fixed_dictionaries({}, optional={
        "type": values, "diff_ids": st.one_of(values, st.lists(
            st.one_of(ocist.digest_strings(), values), max_size=3))})
    history = st.lists(st.dictionaries(
        st.sampled_from(["created", "created_by", "author", "comment", "empty_layer"]),
        values, max_size=3), max_size=3)
    special = {"config": st.one_of(container, values), "rootfs": st.one_of(rootfs, values),
               "history": st.one_of(history, values)}
    return st.lists(st.sampled_from(_CONFIG_KEYS), unique=True, max_size=6).flatmap(
        lambda keys: st.fixed_dictionaries({k: special.get(k, values) for k in keys}))


@given(st.one_of(st.binary(max_size=200), ocist.json_values().map(dump),
                 _config_like().map(dump)))
def test_fuzz_only_spec_errors(raw: bytes) -> None:
    try:
        c = ImageConfig.from_json(raw)
    except SpecError:
        return
    assert isinstance(c, ImageConfig)

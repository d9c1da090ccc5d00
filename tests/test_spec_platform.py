"""Platforms: normalisation, parsing, matching and preferences (oci_image.spec.platform)."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given

from oci_image.errors import SpecError
from oci_image.spec import Descriptor, Platform, host_platform, platform_preferences
from oci_image.testing import strategies as ocist

HEX64 = "0123456789abcdef" * 4


@pytest.mark.parametrize(("given_", "expected"), [
    (("linux", "x86_64", ""), ("linux", "amd64", "")),
    (("linux", "x86-64", ""), ("linux", "amd64", "")),
    (("linux", "amd64", ""), ("linux", "amd64", "")),
    (("linux", "amd64", "v1"), ("linux", "amd64", "")),
    (("linux", "amd64", "v3"), ("linux", "amd64", "v3")),
    (("linux", "i386", ""), ("linux", "386", "")),
    (("linux", "i686", ""), ("linux", "386", "")),
    (("linux", "aarch64", ""), ("linux", "arm64", "v8")),
    (("linux", "arm64", ""), ("linux", "arm64", "v8")),
    (("linux", "arm64", "v8"), ("linux", "arm64", "v8")),
    (("linux", "arm64", "8"), ("linux", "arm64", "v8")),
    (("linux", "arm64", "v8.0"), ("linux", "arm64", "v8")),
    (("linux", "armhf", ""), ("linux", "arm", "v7")),
    (("linux", "armel", ""), ("linux", "arm", "v6")),
    (("linux", "armv7l", ""), ("linux", "arm", "v7")),
    (("linux", "armv6l", ""), ("linux", "arm", "v6")),
    (("linux", "armv5tel", ""), ("linux", "arm", "v5")),
    (("linux", "arm", ""), ("linux", "arm", "v7")),
    (("linux", "arm", "7"), ("linux", "arm", "v7")),
    (("linux", "arm", "v6"), ("linux", "arm", "v6")),
    (("linux", "armhf", "v6"), ("linux", "arm", "v6")),
    (("Linux", "AMD64", ""), ("linux", "amd64", "")),
    (("macos", "arm64", ""), ("darwin", "arm64", "v8")),
    (("windows", "amd64", ""), ("windows", "amd64", "")),
    (("linux", "ppc64le", ""), ("linux", "ppc64le", "")),
    (("linux", "s390x", ""), ("linux", "s390x", "")),
    (("linux", "riscv64", ""), ("linux", "riscv64", "")),
    (("linux", "mips64le", ""), ("linux", "mips64le", "")),
])
def test_normalisation_table(given_: tuple[str, str, str],
                             expected: tuple[str, str, str]) -> None:
    os_name, arch, variant = given_
    p = Platform(os=os_name, architecture=arch, variant=variant).normalized()
    assert (p.os, p.architecture, p.variant) == expected


def test_normalisation_keeps_other_fields() -> None:
    p = Platform(os="windows", architecture="x86_64", os_version="10.0.17763.5458",
                 os_features=("win32k",), features=("sse4",)).normalized()
    assert p == Platform(os="windows", architecture="amd64", os_version="10.0.17763.5458",
                         os_features=("win32k",), features=("sse4",))


@given(ocist.platforms())
def test_normalisation_is_idempotent(p: Platform) -> None:
    once = p.normalized()
    assert once.normalized() == once
    assert once.matches(p)
    assert p.matches(once)


@pytest.mark.parametrize(("text", "expected"), [
    ("linux/arm/7", Platform("linux", "arm", "v7")),
    ("linux/arm/v7", Platform("linux", "arm", "v7")),
    ("linux/arm", Platform("linux", "arm", "v7")),
    ("linux/amd64", Platform("linux", "amd64")),
    ("linux/x86_64", Platform("linux", "amd64")),
    ("LINUX/X86_64", Platform("linux", "amd64")),
    ("linux/aarch64", Platform("linux", "arm64", "v8")),
    ("linux/arm64", Platform("linux", "arm64", "v8")),
    ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
    ("windows/amd64", Platform("windows", "amd64")),
    ("linux/s390x", Platform("linux", "s390x")),
])
def test_parse(text: str, expected: Platform) -> None:
    assert Platform.parse(text) == expected


@pytest.mark.parametrize("text", ["", "linux", "linux/", "/amd64", "linux//v7",
                                  "linux/arm/v7/extra", "linux/arm/"])
def test_parse_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="invalid platform"):
        Platform.parse(text)


@pytest.mark.parametrize(("platform", "text"), [
    (Platform("linux", "arm", "v7"), "linux/arm/v7"),
    (Platform("linux", "amd64"), "linux/amd64"),
])
def test_str(platform: Platform, text: str) -> None:
    assert str(platform) == text
    assert Platform.parse(text) == platform


@pytest.mark.parametrize(("instance", "wanted", "expected"), [
    (Platform("linux", "arm64"), Platform("linux", "arm64", "v8"), True),
    (Platform("linux", "arm64", "v8"), Platform("linux", "arm64"), True),
    (Platform("linux", "aarch64"), Platform("linux", "arm64", "v8"), True),
    (Platform("linux", "x86_64"), Platform("linux", "amd64"), True),
    (Platform("linux", "amd64", "v3"), Platform("linux", "amd64"), True),
    (Platform("linux", "amd64"), Platform("linux", "amd64", "v3"), False),
    (Platform("linux", "amd64"), Platform("linux", "arm64"), False),
    (Platform("windows", "amd64"), Platform("linux", "amd64"), False),
    (Platform("linux", "arm", "v7"), Platform("linux", "arm"), True),
    (Platform("linux", "armhf"), Platform("linux", "arm", "v7"), True),
    (Platform("linux", "arm", "v6"), Platform("linux", "arm", "v7"), False),
    (Platform("linux", "arm", "v7"), Platform("linux", "arm", "v6"), False),
    (Platform("linux", "arm", "v8"), Platform("linux", "arm64"), False),
    (Platform("Linux", "AMD64"), Platform("linux", "amd64"), True),
])
def test_matches(instance: Platform, wanted: Platform, expected: bool) -> None:
    assert instance.matches(wanted) is expected


@pytest.mark.parametrize(("wanted", "expected"), [
    ("linux/arm/v8", ["linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
    ("linux/arm/v7", ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
    ("linux/arm", ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
    ("linux/arm/v6", ["linux/arm/v6", "linux/arm/v5"]),
    ("linux/arm/v5", ["linux/arm/v5"]),
    ("linux/arm64", ["linux/arm64/v8", "linux/arm64"]),
    ("linux/amd64", ["linux/amd64"]),
    ("linux/x86_64", ["linux/amd64"]),
    ("windows/amd64", ["windows/amd64"]),
])
def test_platform_preferences(wanted: str, expected: list[str]) -> None:
    prefs = platform_preferences(Platform.parse(wanted))
    assert [str(p) for p in prefs] == expected


def test_platform_preferences_normalise_and_keep_os() -> None:
    prefs = platform_preferences(Platform("Linux", "armhf"))
    assert [str(p) for p in prefs] == ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
    assert all(p.os == "linux" for p in prefs)


@given(ocist.platforms())
def test_preferences_start_with_the_wanted_platform(p: Platform) -> None:
    prefs = platform_preferences(p)
    assert prefs[0] == p.normalized()
    assert prefs[0].matches(p)
    assert len(set(prefs)) == len(prefs)


def test_host_platform_is_normalised() -> None:
    host = host_platform()
    assert host == host.normalized()
    assert host.architecture
    if sys.platform.startswith("linux"):
        assert host.os == "linux"


def test_to_json_field_order() -> None:
    p = Platform(os="windows", architecture="amd64", variant="v3",
                 os_version="10.0.17763.5458", os_features=("win32k",), features=("f",))
    assert list(p.to_json()) == ["architecture", "os", "os.version", "os.features",
                                 "variant", "features"]
    assert Platform("linux", "amd64").to_json() == {"architecture": "amd64", "os": "linux"}


def _descriptor_with_platform(platform: object) -> dict[str, object]:
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": f"sha256:{HEX64}", "size": 1, "platform": platform}


@given(ocist.platforms())
def test_platform_json_round_trip_through_descriptor(p: Platform) -> None:
    d = Descriptor.from_json(json.loads(json.dumps(_descriptor_with_platform(p.to_json()))))
    assert d.platform == p


@pytest.mark.parametrize("platform", [
    "linux/amd64",
    ["linux"],
    {"os": 1, "architecture": "amd64"},
    {"os": "linux", "architecture": ["amd64"]},
    {"os": "linux", "architecture": "arm", "variant": 7},
    {"os": "windows", "architecture": "amd64", "os.version": 10},
    {"os": "windows", "architecture": "amd64", "os.features": "win32k"},
    {"os": "windows", "architecture": "amd64", "os.features": [1]},
    {"os": "linux", "architecture": "amd64", "features": {"a": "b"}},
])
def test_platform_wrong_types_are_spec_errors(platform: object) -> None:
    with pytest.raises(SpecError):
        Descriptor.from_json(_descriptor_with_platform(platform))

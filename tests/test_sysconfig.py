"""oci_image.sysconfig: registries.conf, short names, auth files and credential helpers,
certs.d -- each against files in tmp_path only, plus skopeo 1.9.3 as an oracle where it
can read the same files without a network."""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from oci_image.errors import (
    ConfigError,
    CredentialHelperError,
    InvalidReferenceError,
    ShortNameError,
)
from oci_image.spec.reference import Reference
from oci_image.sysconfig import auth, certs, registries
from oci_image.sysconfig.auth import Credentials, login, logout, lookup_credentials
from oci_image.sysconfig.registries import (
    RegistriesConfig,
    is_blocked,
    is_insecure,
    load_registries_config,
    parse_registries_conf,
    pull_sources,
    resolve_short_name,
)
from tests.peers import require, run_tool

DIGEST = "sha256:" + "ab" * 32


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# == registries.conf: which files ===========================================================


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    return tmp_path / "etc"


def load(etc: Path, home: Path, path: str | Path | None = None,
         **env: str) -> RegistriesConfig:
    return load_registries_config(path, env={"HOME": str(home), **env},
                                  system_path=etc / "registries.conf",
                                  system_dir=etc / "registries.conf.d")


def paths(etc: Path, home: Path, path: str | Path | None = None,
          **env: str) -> registries.RegistriesConfPaths:
    return registries.registries_conf_paths(path, env={"HOME": str(home), **env},
                                            system_path=etc / "registries.conf",
                                            system_dir=etc / "registries.conf.d")


USER_CONF = ".config/containers/registries.conf"
USER_DIR = ".config/containers/registries.conf.d"


def test_system_file_and_both_drop_in_dirs_when_the_user_has_no_file(etc: Path,
                                                                      home: Path) -> None:
    found = paths(etc, home)
    assert found.conf == etc / "registries.conf"
    assert not found.explicit
    assert found.drop_in_dirs == (etc / "registries.conf.d", home / USER_DIR)


def test_the_user_file_replaces_the_system_file_and_its_drop_ins(etc: Path,
                                                                 home: Path) -> None:
    write(home / USER_CONF, 'unqualified-search-registries = ["user.example"]\n')
    write(etc / "registries.conf", 'unqualified-search-registries = ["system.example"]\n')
    write(etc / "registries.conf.d/a.conf", 'short-name-mode = "disabled"\n')
    found = paths(etc, home)
    assert found.conf == home / USER_CONF
    assert found.drop_in_dirs == (home / USER_DIR,)
    config = load(etc, home)
    assert config.unqualified_search_registries == ("user.example",)
    assert config.short_name_mode == "permissive"
    assert config.sources == (str(home / USER_CONF),)


def test_explicit_path_beats_environment_and_keeps_both_drop_in_dirs(etc: Path, home: Path,
                                                                     tmp_path: Path) -> None:
    arg = write(tmp_path / "arg.conf", 'unqualified-search-registries = ["arg.example"]\n')
    env_file = write(tmp_path / "env.conf", 'unqualified-search-registries = ["env.example"]\n')
    write(home / USER_CONF, 'unqualified-search-registries = ["user.example"]\n')
    write(etc / "registries.conf.d/10.conf", 'short-name-mode = "enforcing"\n')
    write(home / USER_DIR / "20.conf", 'credential-helpers = ["pass"]\n')
    config = load(etc, home, arg, CONTAINERS_REGISTRIES_CONF=str(env_file))
    assert config.unqualified_search_registries == ("arg.example",)
    # c/image reads the system and the user drop-ins next to an explicit file
    assert config.short_name_mode == "enforcing"
    assert config.credential_helpers == ("pass",)
    assert config.sources == (str(arg), str(etc / "registries.conf.d/10.conf"),
                              str(home / USER_DIR / "20.conf"))


def test_environment_variables_in_c_image_order(etc: Path, home: Path, tmp_path: Path) -> None:
    first = write(tmp_path / "first.conf", "")
    second = write(tmp_path / "second.conf", "")
    assert paths(etc, home, CONTAINERS_REGISTRIES_CONF=str(first),
                 REGISTRIES_CONFIG_PATH=str(second)).conf == first
    found = paths(etc, home, REGISTRIES_CONFIG_PATH=str(second))
    assert (found.conf, found.explicit) == (second, True)
    # set but empty: the lookup stops there and the default applies
    found = paths(etc, home, CONTAINERS_REGISTRIES_CONF="", REGISTRIES_CONFIG_PATH=str(second))
    assert (found.conf, found.explicit) == (etc / "registries.conf", False)


def test_conf_dir_replaces_both_drop_in_dirs(etc: Path, home: Path, tmp_path: Path) -> None:
    found = registries.registries_conf_paths(
        conf_dir=tmp_path / "d", env={"HOME": str(home)}, system_path=etc / "r.conf",
        system_dir=etc / "r.conf.d")
    assert found.drop_in_dirs == (tmp_path / "d",)


def test_missing_default_file_is_empty_but_missing_explicit_file_is_an_error(
        etc: Path, home: Path, tmp_path: Path) -> None:
    config = load(etc, home)
    assert config == RegistriesConfig()
    assert config.credential_helpers == ("containers-auth.json",)
    assert config.short_name_mode == "permissive"
    missing = tmp_path / "nope.conf"
    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        load(etc, home, missing)
    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        load(etc, home, CONTAINERS_REGISTRIES_CONF=str(missing))


def test_drop_ins_merge_in_name_order(etc: Path, home: Path) -> None:
    write(etc / "registries.conf", """
unqualified-search-registries = ["main.example"]
credential-helpers = ["main-helper"]
[[registry]]
location = "a.example"
insecure = true
[[registry]]
location = "b.example"
[aliases]
one = "main.example/one"
two = "main.example/two"
""")
    drop = etc / "registries.conf.d"
    write(drop / "20-second.conf", """
[[registry]]
location = "a.example"
blocked = true
[aliases]
two = ""
""")
    write(drop / "10-first.conf", """
unqualified-search-registries = ["first.example"]
short-name-mode = "disabled"
[[registry]]
location = "c.example"
[aliases]
three = "first.example/three"
""")
    write(drop / "30-not-a-drop-in.txt", "this is = not toml [")
    (drop / "40-dir.conf").mkdir()
    write(drop / "40-dir.conf" / "x.conf", "not = toml [")
    write(home / USER_DIR / "50-user.conf", "unqualified-search-registries = []\n")
    config = load(etc, home)
    assert [r.prefix for r in config.registries] == ["a.example", "b.example", "c.example"]
    a = config.find("a.example/x")
    assert a is not None
    assert (a.blocked, a.insecure) == (True, False)  # replaced as a whole
    assert config.unqualified_search_registries == ()  # an empty list is a setting too
    assert config.search_origin == str(home / USER_DIR / "50-user.conf")
    assert config.credential_helpers == ("main-helper",)
    assert config.short_name_mode == "disabled"
    assert config.aliases["one"].value == Reference.parse("main.example/one")
    assert config.aliases["two"].value is None
    assert config.aliases["three"].origin == str(drop / "10-first.conf")
    assert config.sources == (str(etc / "registries.conf"), str(drop / "10-first.conf"),
                              str(drop / "20-second.conf"),
                              str(home / USER_DIR / "50-user.conf"))


def test_empty_credential_helpers_fall_back_to_auth_files() -> None:
    assert parse_registries_conf("credential-helpers = []\n").credential_helpers == (
        "containers-auth.json",)


def test_drop_in_in_v1_format_is_rejected(etc: Path, home: Path) -> None:
    drop_in = write(etc / "registries.conf.d/v1.conf",
                    '[registries.search]\nregistries = ["quay.io"]\n')
    with pytest.raises(ConfigError, match=re.escape(str(drop_in)) + ".*v2 format"):
        load(etc, home)


def test_malformed_drop_in_is_named(etc: Path, home: Path) -> None:
    write(etc / "registries.conf", "")
    drop_in = write(home / USER_DIR / "bad.conf", "[[registry]\n")
    with pytest.raises(ConfigError, match=re.escape(str(drop_in))):
        load(etc, home)


# == registries.conf: v1 and validation ==================================================


def test_v1_tables_are_converted() -> None:
    config = parse_registries_conf("""
[registries.search]
registries = ["quay.io", "docker.io"]
[registries.insecure]
registries = ["insecure.example:5000/"]
[registries.block]
registries = ["blocked.example", "insecure.example:5000"]
""")
    assert config.unqualified_search_registries == ("quay.io", "docker.io")
    assert [(r.prefix, r.location, r.insecure, r.blocked) for r in config.registries] == [
        ("blocked.example", "blocked.example", False, True),
        ("insecure.example:5000", "insecure.example:5000", True, True)]


def test_empty_v1_tables_do_not_count_as_v1() -> None:
    config = parse_registries_conf('unqualified-search-registries = ["a.example"]\n'
                                   "[registries.search]\nregistries = []\n")
    assert config.unqualified_search_registries == ("a.example",)


@pytest.mark.parametrize("v2", [
    'unqualified-search-registries = ["quay.io"]',
    'short-name-mode = "enforcing"',
    '[aliases]\nx = "quay.io/x"',
    '[[registry]]\nlocation = "quay.io"',
])
def test_mixing_v1_and_v2_is_rejected(v2: str) -> None:
    with pytest.raises(ConfigError, match="mixing sysregistry v1/v2"):
        parse_registries_conf(f'{v2}\n[registries.block]\nregistries = ["x.example"]\n')


@pytest.mark.parametrize(("text", "message"), [
    ("[[registry]]\ninsecure = true", "both location and prefix are unset"),
    ('[[registry]]\nprefix = "example.com"', "location is unset and prefix"),
    ('[[registry]]\nlocation = "https://example.com"', "URI schemes are not supported"),
    ('[[registry]]\nprefix = "http://example.com"\nlocation = "x.example"',
     "URI schemes are not supported"),
    ('[[registry]]\nlocation = "a.example"\npull-from-mirror = "all"',
     "pull-from-mirror must not be set for a non-mirror"),
    ('[[registry]]\nlocation = "a.example"\n[[registry.mirror]]\ninsecure = true',
     "mirror location is unset"),
    ('[[registry]]\nlocation = "a.example"\nmirror-by-digest-only = true\n'
     '[[registry.mirror]]\nlocation = "m.example"\npull-from-mirror = "tag-only"',
     "mirror-by-digest-only for the registry"),
    ('[[registry]]\nlocation = "a.example"\n[[registry.mirror]]\nlocation = "m.example"\n'
     'pull-from-mirror = "sometimes"', "unsupported pull-from-mirror value"),
    ('[[registry]]\nprefix = "*.example.com/ns"', "wildcarded prefix"),
    ('[[registry]]\nprefix = "*.example.com:5000"', "wildcarded prefix"),
    ('[[registry]]\nlocation = "a.example"\ninsecure = true\n'
     '[[registry]]\nprefix = "b.example"\nlocation = "a.example"',
     "conflicting 'insecure'"),
    ('[[registry]]\nlocation = "a.example"\n'
     '[[registry]]\nprefix = "b.example"\nlocation = "a.example"\nblocked = true',
     "conflicting 'blocked'"),
    ('unqualified-search-registries = ["quay.io/ns"]', "unqualified-search-registries entry"),
    ('unqualified-search-registries = ["http://quay.io"]', "URI schemes"),
    ('short-name-mode = "prompt"', "invalid short-name mode"),
    ('[aliases]\n"quay.io/x" = "quay.io/x"', "must not contain registry"),
    ('[aliases]\n"x:1" = "quay.io/x"', "must not contain tag"),
    ('[aliases]\nx = "x"', "must contain registry and repository"),
    ('[aliases]\nx = "quay.io/x:1"', "must not contain tag"),
    (f'[aliases]\nx = "quay.io/x@{DIGEST}"', "must not contain digest"),
    ("[aliases]\nx = 1", "must be a string"),
    ('[[registry]]\nlocation = "a.example"\ninsecure = "yes"', "'insecure' must be a boolean"),
    ('registry = "a.example"', "'registry' must be an array of tables"),
    ('unqualified-search-registries = "quay.io"', "must be an array of strings"),
    ("[registries]\nsearch = 1", r"\[registries.search\] must be a table"),
    ("[[registry]\n", "invalid TOML"),
])
def test_invalid_files_raise_config_error_naming_the_file(tmp_path: Path, text: str,
                                                          message: str) -> None:
    path = write(tmp_path / "registries.conf", text + "\n")
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ".*" + message):
        load_registries_config(path, env={"HOME": str(tmp_path)},
                               system_dir=tmp_path / "none")


def test_every_bad_alias_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"(?s)must not contain registry.*must not contain tag"):
        parse_registries_conf('[aliases]\n"a.io/x" = "quay.io/x"\ny = "quay.io/y:1"\n')


def test_normalisation_defaults_and_duplicates() -> None:
    config = parse_registries_conf("""
unqualified-search-registries = ["quay.io/", "localhost:5000"]
unknown-key = "ignored"
[[registry]]
location = "b.example/ns//"
[[registry]]
prefix = "a.example"
location = "first.example"
[[registry]]
prefix = "a.example"
location = "second.example"
[[registry]]
prefix = "*.wild.example"
[aliases]
"docker-alias" = "docker.io/alpine"
""")
    assert config.unqualified_search_registries == ("quay.io", "localhost:5000")
    assert [(r.prefix, r.location) for r in config.registries] == [
        ("*.wild.example", ""), ("a.example", "first.example"), ("b.example/ns", "b.example/ns")]
    assert config.aliases["docker-alias"].value == Reference.parse("docker.io/library/alpine")


# == prefix matching =========================================================================


MATCHING = """
[[registry]]
location = "example.com"
[[registry]]
location = "example.com/foo"
[[registry]]
prefix = "example.com/foo/bar:1"
location = "tagged.example"
[[registry]]
prefix = "*.example.org"
[[registry]]
prefix = "*.deep.example.org"
location = "deep.example"
[[registry]]
location = "localhost:5000"
"""


@pytest.mark.parametrize(("name", "prefix"), [
    ("example.com", "example.com"),
    ("example.com/x/y", "example.com"),
    ("example.com:5000/x", "example.com"),  # c/image's documented quirk
    ("example.com@" + DIGEST, "example.com"),
    ("example.com/foo", "example.com/foo"),
    ("example.com/foo/bar", "example.com/foo"),
    ("example.com/foo:tag", "example.com/foo"),
    ("example.com/foo@" + DIGEST, "example.com/foo"),
    ("example.com/foobar", "example.com"),
    ("example.com/foo/bar:1", "example.com/foo/bar:1"),
    ("example.com/foo/bar:10", "example.com/foo"),
    ("example.comx/foo", None),
    ("example.com.evil/foo", None),
    ("a.example.org/x", "*.example.org"),
    ("a.b.example.org:5000/x", "*.example.org"),
    ("a.example.org", "*.example.org"),
    ("x.deep.example.org/y", "*.deep.example.org"),
    ("example.org/x", None),
    ("a.example.org.evil.net/x", None),
    ("evil.net/a.example.org", None),
    ("localhost:5000/x", "localhost:5000"),
    ("localhost:50000/x", None),
    ("localhost/x", None),
])
def test_longest_prefix_match(name: str, prefix: str | None) -> None:
    found = parse_registries_conf(MATCHING).find(name)
    assert (found.prefix if found else None) == prefix


# == pull sources =============================================================================


def sources(config: RegistriesConfig, ref: str) -> list[tuple[str, str, bool, bool, bool]]:
    return [(str(s.reference), s.endpoint_host, s.insecure, s.is_mirror, s.blocked)
            for s in pull_sources(config, Reference.parse(ref))]


MIRRORS = """
[[registry]]
prefix = "example.com/foo"
location = "primary.example/bar"
insecure = true
[[registry.mirror]]
location = "all.example/m"
[[registry.mirror]]
location = "digest.example"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tag.example:5000/t"
pull-from-mirror = "tag-only"
insecure = true

[[registry]]
location = "docker.io"
mirror-by-digest-only = true
[[registry.mirror]]
location = "hub-mirror.example"
[[registry.mirror]]
location = "second-hub-mirror.example/x"
"""


def test_no_matching_registry_gives_the_reference_itself() -> None:
    assert sources(RegistriesConfig(), "alpine") == [
        ("docker.io/library/alpine", "registry-1.docker.io", False, False, False)]
    assert sources(RegistriesConfig(), "quay.io/a/b:1") == [
        ("quay.io/a/b:1", "quay.io", False, False, False)]


def test_mirrors_by_pull_from_mirror_for_a_tag() -> None:
    assert sources(parse_registries_conf(MIRRORS), "example.com/foo/img:1") == [
        ("all.example/m/img:1", "all.example", False, True, False),
        ("tag.example:5000/t/img:1", "tag.example:5000", True, True, False),
        ("primary.example/bar/img:1", "primary.example", True, False, False)]


def test_mirrors_by_pull_from_mirror_for_a_digest() -> None:
    assert sources(parse_registries_conf(MIRRORS), f"example.com/foo/img@{DIGEST}") == [
        (f"all.example/m/img@{DIGEST}", "all.example", False, True, False),
        (f"digest.example/img@{DIGEST}", "digest.example", False, True, False),
        (f"primary.example/bar/img@{DIGEST}", "primary.example", True, False, False)]


def test_mirror_by_digest_only() -> None:
    config = parse_registries_conf(MIRRORS)
    assert sources(config, "alpine:3") == [
        ("docker.io/library/alpine:3", "registry-1.docker.io", False, False, False)]
    assert sources(config, f"alpine:3@{DIGEST}") == [
        (f"hub-mirror.example/library/alpine:3@{DIGEST}", "hub-mirror.example", False, True,
         False),
        (f"second-hub-mirror.example/x/library/alpine:3@{DIGEST}",
         "second-hub-mirror.example", False, True, False),
        (f"docker.io/library/alpine:3@{DIGEST}", "registry-1.docker.io", False, False, False)]


def test_wildcard_prefix_keeps_the_name_and_rewrites_for_mirrors() -> None:
    config = parse_registries_conf("""
[[registry]]
prefix = "*.corp.example"
insecure = true
[[registry.mirror]]
location = "cache.example/corp"
""")
    assert sources(config, "a.corp.example/ns/img:1") == [
        ("cache.example/corp/ns/img:1", "cache.example", False, True, False),
        ("a.corp.example/ns/img:1", "a.corp.example", True, False, False)]


def test_blocked_registry_with_a_mirror() -> None:
    config = parse_registries_conf("""
[[registry]]
location = "blocked.example"
blocked = true
[[registry.mirror]]
location = "mirror.example"
[[registry]]
location = "blocked-mirror.example"
blocked = true
[[registry]]
location = "other.example"
[[registry.mirror]]
location = "blocked-mirror.example/x"
""")
    ref = Reference.parse("blocked.example/img:1")
    assert is_blocked(config, ref)
    assert not is_blocked(config, Reference.parse("other.example/img"))
    assert sources(config, "blocked.example/img:1") == [
        ("mirror.example/img:1", "mirror.example", False, True, False),
        ("blocked.example/img:1", "blocked.example", False, False, True)]
    assert sources(config, "other.example/img:1")[0][4]


def test_rewrite_to_a_non_canonical_reference_is_a_config_error() -> None:
    config = parse_registries_conf('[[registry]]\nprefix = "example.com"\n'
                                   'location = "docker.io"\n')
    with pytest.raises(ConfigError, match="not a canonical reference"):
        pull_sources(config, Reference.parse("example.com/alpine:1"))


def test_is_insecure_and_endpoint_for_host() -> None:
    config = parse_registries_conf(MIRRORS + '[[registry]]\nlocation = "plain.example:5000"\n'
                                   "insecure = true\n")
    assert is_insecure(config, "plain.example:5000")
    assert is_insecure(config, "plain.example:5000/a/b")
    assert not is_insecure(config, "plain.example")
    assert not is_insecure(config, "docker.io")
    assert registries.endpoint_for_host("docker.io") == "registry-1.docker.io"
    assert registries.endpoint_for_host("quay.io:443") == "quay.io:443"


# == short names ===============================================================================


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "short-name-aliases.conf"


SEARCH = """
unqualified-search-registries = ["quay.io", "docker.io"]
[aliases]
fedora = "registry.fedoraproject.org/fedora"
"library/busybox" = "docker.io/library/busybox"
"""


def resolve(name: str, text: str, cache: Path, **kwargs: object) -> tuple[list[str], str]:
    res = resolve_short_name(name, parse_registries_conf(text), aliases_cache_path=cache,
                             **kwargs)  # type: ignore[arg-type]
    return [str(c) for c in res.candidates], res.rule


@pytest.mark.parametrize(("name", "short"), [
    ("fedora", True), ("fedora:39", True), ("library/fedora", True), (f"img@{DIGEST}", True),
    ("quay.io/x", False), ("localhost/x", False), ("localhost:5000/x:1", False),
    ("host:5000/x", False), ("docker.io/alpine", False), ("UPPER", False),
])
def test_is_short_name(name: str, short: bool) -> None:
    assert registries.is_short_name(name) is short


@pytest.mark.parametrize(("name", "expected"), [
    ("quay.io/a/b", "quay.io/a/b:latest"),
    ("localhost/x", "localhost/x:latest"),
    ("localhost:5000/x:1", "localhost:5000/x:1"),
    ("docker.io/alpine", "docker.io/library/alpine:latest"),
    (f"quay.io/a@{DIGEST}", f"quay.io/a@{DIGEST}"),
])
def test_fully_qualified_names_pass_through(cache: Path, name: str, expected: str) -> None:
    assert resolve(name, 'short-name-mode = "enforcing"\n' + SEARCH, cache) == (
        [expected], "fully-qualified")


@pytest.mark.parametrize(("name", "expected"), [
    ("fedora", "registry.fedoraproject.org/fedora:latest"),
    ("fedora:39", "registry.fedoraproject.org/fedora:39"),
    (f"fedora@{DIGEST}", f"registry.fedoraproject.org/fedora@{DIGEST}"),
    (f"fedora:39@{DIGEST}", f"registry.fedoraproject.org/fedora:39@{DIGEST}"),
    ("library/busybox:1", "docker.io/library/busybox:1"),
])
def test_alias_wins_and_keeps_tag_and_digest(cache: Path, name: str, expected: str) -> None:
    res = resolve_short_name(name, parse_registries_conf(SEARCH, origin="R"),
                             aliases_cache_path=cache)
    assert [str(c) for c in res.candidates] == [expected]
    assert res.alias_used
    assert res.origin == "R"
    assert "as an alias (R)" in res.description()


def test_search_registries_in_order(cache: Path) -> None:
    assert resolve("alpine", SEARCH, cache) == (
        ["quay.io/alpine:latest", "docker.io/library/alpine:latest"], "search-registries")
    assert resolve(f"ns/img@{DIGEST}", SEARCH, cache) == (
        [f"quay.io/ns/img@{DIGEST}", f"docker.io/ns/img@{DIGEST}"], "search-registries")


def test_no_alias_and_no_search_registries(cache: Path) -> None:
    with pytest.raises(ShortNameError, match=r"'alpine'.*defined in 'R'"):
        resolve_short_name("alpine", parse_registries_conf("", origin="R"),
                           aliases_cache_path=cache)
    with pytest.raises(ShortNameError, match=r"no containers-registries\.conf"):
        resolve_short_name("alpine", RegistriesConfig(), aliases_cache_path=cache)


def test_short_name_modes(cache: Path) -> None:
    enforcing = 'short-name-mode = "enforcing"\n' + SEARCH
    with pytest.raises(ShortNameError, match="ambiguous"):
        resolve("alpine", enforcing, cache)
    one = 'unqualified-search-registries = ["quay.io"]\nshort-name-mode = "enforcing"\n'
    assert resolve("alpine", one, cache) == (["quay.io/alpine:latest"], "search-registries")
    assert len(resolve("alpine", SEARCH, cache)[0]) == 2  # permissive
    assert len(resolve("alpine", SEARCH, cache, mode="disabled", interactive=True,
                       choose=lambda c: pytest.fail("no prompt when disabled"))[0]) == 2
    with pytest.raises(ShortNameError):
        resolve("alpine", SEARCH, cache, mode="enforcing")


def test_interactive_choice_is_marked_for_recording(cache: Path) -> None:
    asked: list[Sequence[Reference]] = []

    def choose(candidates: Sequence[Reference]) -> Reference:
        asked.append(candidates)
        return candidates[1]

    config = parse_registries_conf('short-name-mode = "enforcing"\n' + SEARCH)
    res = resolve_short_name("alpine:3", config, aliases_cache_path=cache, interactive=True,
                             choose=choose)
    assert [str(c) for c in asked[0]] == ["quay.io/alpine:3", "docker.io/library/alpine:3"]
    assert (res.rule, res.record, res.short_name) == ("user-selection", True, "alpine")
    assert res.short_name is not None
    assert [str(c) for c in res.candidates] == ["docker.io/library/alpine:3"]
    registries.record_alias(res.short_name, res.candidates[0], aliases_cache_path=cache)
    assert resolve("alpine", SEARCH, cache) == (["docker.io/library/alpine:latest"], "alias")


def test_alias_cache_takes_precedence(cache: Path) -> None:
    written = registries.record_alias("fedora", "quay.io/fedora/fedora",
                                      aliases_cache_path=cache)
    assert written == cache
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert resolve("fedora", SEARCH, cache) == (["quay.io/fedora/fedora:latest"], "alias")
    res = resolve_short_name("fedora", parse_registries_conf(SEARCH), aliases_cache_path=cache)
    assert res.origin == str(cache)


def test_empty_alias_in_the_cache_hides_the_config_alias(cache: Path) -> None:
    write(cache, '[aliases]\nfedora = ""\n')
    assert resolve("fedora", SEARCH, cache)[1] == "search-registries"


def test_record_and_remove_alias_keep_other_entries(cache: Path) -> None:
    registries.record_alias("a", Reference.parse("quay.io/a/a:1"), aliases_cache_path=cache)
    registries.record_alias("b/c", "docker.io/b/c", aliases_cache_path=cache)
    registries.record_alias("a", "quay.io/a/new", aliases_cache_path=cache)
    assert registries._read_alias_cache(cache)[0] == {"a": "quay.io/a/new",
                                                      "b/c": "docker.io/b/c"}
    registries.remove_alias("a", aliases_cache_path=cache)
    assert registries._read_alias_cache(cache)[0] == {"b/c": "docker.io/b/c"}
    with pytest.raises(ShortNameError, match="not found"):
        registries.remove_alias("a", aliases_cache_path=cache)
    assert sorted(p.name for p in cache.parent.iterdir()) == [cache.name,
                                                              cache.name + ".lock"]


@pytest.mark.parametrize(("name", "value"), [
    ("quay.io/x", "quay.io/x"), ("x:1", "quay.io/x"), ("x", "x"), ("x", "quay.io/x:1"),
    ("Not Valid", "quay.io/x"),
])
def test_record_alias_rejects_bad_names_and_values(cache: Path, name: str, value: str) -> None:
    with pytest.raises(ShortNameError):
        registries.record_alias(name, value, aliases_cache_path=cache)
    assert not cache.exists()


def test_malformed_alias_cache_is_named(cache: Path) -> None:
    write(cache, "[aliases\n")
    with pytest.raises(ConfigError, match=re.escape(str(cache))):
        resolve("fedora", SEARCH, cache)


def test_invalid_short_names(cache: Path) -> None:
    with pytest.raises(InvalidReferenceError):
        resolve("Alpine", SEARCH, cache)
    with pytest.raises(InvalidReferenceError):
        resolve("", SEARCH, cache)


def test_aliases_cache_path(tmp_path: Path) -> None:
    user = {"_CONTAINERS_ROOTLESS_UID": "1000", "HOME": str(tmp_path)}
    assert registries.short_name_aliases_path(user) == (
        tmp_path / ".cache/containers/short-name-aliases.conf")
    assert registries.short_name_aliases_path({**user, "XDG_CACHE_HOME": "/x"}) == Path(
        "/x/containers/short-name-aliases.conf")
    assert registries.short_name_aliases_path({"_CONTAINERS_ROOTLESS_UID": "0"}) == Path(
        "/var/cache/containers/short-name-aliases.conf")


def test_default_cache_path_comes_from_env(tmp_path: Path) -> None:
    env = {"_CONTAINERS_ROOTLESS_UID": "1000", "HOME": str(tmp_path)}
    registries.record_alias("x", "quay.io/x", env=env)
    assert (tmp_path / ".cache/containers/short-name-aliases.conf").exists()
    res = resolve_short_name("x", RegistriesConfig(), env=env)
    assert res.rule == "alias"


def test_local_candidates(cache: Path) -> None:
    config = parse_registries_conf(SEARCH)
    assert [str(r) for r in registries.local_candidates("fedora:1", config,
                                                         aliases_cache_path=cache)] == [
        "registry.fedoraproject.org/fedora:1", "localhost/fedora:1", "quay.io/fedora:1",
        "docker.io/library/fedora:1"]
    assert [str(r) for r in registries.local_candidates("quay.io/x", config,
                                                         aliases_cache_path=cache)] == [
        "quay.io/x:latest"]


# == auth files ============================================================================


def auth_entry(user: str, password: str = "pw", **extra: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode(), **extra}


def write_json(path: Path, document: object) -> Path:
    return write(path, json.dumps(document))


HELPER = f"""#!{sys.executable}
# A docker-credential-* helper keeping its store in $HELPER_DB and logging to $HELPER_LOG.
import json, os, sys
action, data = sys.argv[1], sys.stdin.read()
with open(os.environ["HELPER_LOG"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), action, data]) + "\\n")
mode = os.environ.get("HELPER_FAIL", "")
if mode == "json":
    print(json.dumps({{"Username": "u", "Secret": "leaked-secret"}})); sys.exit(1)
if mode == "text":
    print("the keyring is locked"); sys.exit(1)
if mode == "garbage":
    print("not json"); sys.exit(0)
db_path = os.environ["HELPER_DB"]
db = json.load(open(db_path)) if os.path.exists(db_path) else {{}}
if action == "get":
    if data not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps({{"ServerURL": data, "Username": db[data][0], "Secret": db[data][1]}}))
elif action == "store":
    creds = json.loads(data)
    db[creds["ServerURL"]] = [creds["Username"], creds["Secret"]]
    json.dump(db, open(db_path, "w"))
elif action == "erase":
    if data not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    del db[data]
    json.dump(db, open(db_path, "w"))
elif action == "list":
    print(json.dumps({{k: v[0] for k, v in db.items()}}))
"""


class AuthEnv:
    """A private HOME, XDG_RUNTIME_DIR and PATH with fake credential helpers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.run = root / "run"
        self.bin = root / "bin"
        for d in (self.home, self.run, self.bin):
            d.mkdir()
        self.db = root / "helper-db.json"
        self.log = root / "helper-log"
        self.env = {"HOME": str(self.home), "XDG_RUNTIME_DIR": str(self.run),
                    "PATH": f"{self.bin}:{os.environ.get('PATH', os.defpath)}",
                    "HELPER_DB": str(self.db), "HELPER_LOG": str(self.log)}
        for name in ("fake", "other"):
            script = self.bin / f"docker-credential-{name}"
            script.write_text(HELPER)
            script.chmod(0o755)

    @property
    def runtime_auth(self) -> Path:
        return self.run / "containers" / "auth.json"

    @property
    def config_auth(self) -> Path:
        return self.home / ".config" / "containers" / "auth.json"

    @property
    def docker_config(self) -> Path:
        return self.home / ".docker" / "config.json"

    @property
    def dockercfg(self) -> Path:
        return self.home / ".dockercfg"

    def store(self, server: str, user: str, secret: str) -> None:
        db = json.loads(self.db.read_text()) if self.db.exists() else {}
        db[server] = [user, secret]
        self.db.write_text(json.dumps(db))

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def lookup(self, registry: str, repository: str | None = None,
               **kwargs: object) -> Credentials | None:
        return lookup_credentials(registry, repository, env=self.env,
                                  **kwargs)  # type: ignore[arg-type]

    def user(self, registry: str, repository: str | None = None,
             **kwargs: object) -> str | None:
        found = self.lookup(registry, repository, **kwargs)
        return found.username if found else None


@pytest.fixture
def a(tmp_path: Path) -> AuthEnv:
    return AuthEnv(tmp_path)


def test_chain_order(a: AuthEnv) -> None:
    files = [a.runtime_auth, a.config_auth, a.docker_config]
    for n, path in enumerate(files):
        write_json(path, {"auths": {"quay.io": auth_entry(f"user{n}")}})
    write_json(a.dockercfg, {"quay.io": auth_entry("user3")})
    for n, path in enumerate([*files, a.dockercfg]):
        assert a.user("quay.io") == f"user{n}"
        path.unlink()
    assert a.lookup("quay.io") is None


def test_chain_paths(a: AuthEnv, tmp_path: Path) -> None:
    chain = auth.auth_file_chain(env=a.env)
    assert [(f.path, f.legacy) for f in chain] == [
        (a.runtime_auth, False), (a.config_auth, False), (a.docker_config, False),
        (a.dockercfg, True)]
    env = {**a.env, "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
           "DOCKER_CONFIG": str(tmp_path / "dc")}
    del env["XDG_RUNTIME_DIR"]
    assert [f.path for f in auth.auth_file_chain(env=env)] == [
        Path(f"/run/containers/{os.getuid()}/auth.json"),
        tmp_path / "xdg/containers/auth.json", tmp_path / "dc/config.json", a.dockercfg]


def test_explicit_auth_file_is_the_only_file(a: AuthEnv, tmp_path: Path) -> None:
    write_json(a.docker_config, {"auths": {"quay.io": auth_entry("docker")}})
    explicit = write_json(tmp_path / "explicit.json", {"auths": {}})
    assert [f.path for f in auth.auth_file_chain(auth_file=explicit, env=a.env)] == [explicit]
    assert a.lookup("quay.io", auth_file=explicit) is None
    env_file = write_json(tmp_path / "env.json", {"auths": {"quay.io": auth_entry("env")}})
    a.env["REGISTRY_AUTH_FILE"] = str(env_file)
    assert a.user("quay.io") == "env"
    assert a.lookup("quay.io", auth_file=explicit) is None  # the argument beats the variable


def test_missing_runtime_dir_is_skipped_for_lookup(a: AuthEnv, tmp_path: Path) -> None:
    a.env["XDG_RUNTIME_DIR"] = str(tmp_path / "missing")
    write_json(a.config_auth, {"auths": {"quay.io": auth_entry("config")}})
    assert a.user("quay.io") == "config"
    with pytest.raises(ConfigError, match="XDG_RUNTIME_DIR"):
        login("quay.io", Credentials("u", "p"), env=a.env)


def test_most_specific_key_first(a: AuthEnv) -> None:
    write_json(a.runtime_auth, {"auths": {
        "quay.io": auth_entry("host"), "quay.io/ns": auth_entry("ns"),
        "quay.io/ns/repo": auth_entry("repo"), "localhost:5000/x": auth_entry("local")}})
    assert a.user("quay.io", "ns/repo") == "repo"
    assert a.user("quay.io/ns/repo") == "repo"
    assert a.user("quay.io", "ns/other") == "ns"
    assert a.user("quay.io", "nsx/repo") == "host"
    assert a.user("quay.io") == "host"
    assert a.user("localhost:5000", "x/y") == "local"
    assert a.lookup("localhost:5000", "y") is None


def test_a_namespaced_entry_in_a_later_file_loses_to_the_host_in_an_earlier_one(
        a: AuthEnv) -> None:
    write_json(a.runtime_auth, {"auths": {"quay.io": auth_entry("early-host")}})
    write_json(a.config_auth, {"auths": {"quay.io/ns/repo": auth_entry("late-repo")}})
    assert a.user("quay.io", "ns/repo") == "early-host"


@pytest.mark.parametrize(("key", "registry"), [
    ("https://index.docker.io/v1/", "docker.io"),
    ("index.docker.io", "docker.io"),
    ("registry-1.docker.io", "docker.io"),
    ("docker.io", "registry-1.docker.io"),
    ("https://quay.io/v2/", "quay.io"),
    ("http://localhost:5000", "localhost:5000"),
])
def test_key_normalisation(a: AuthEnv, key: str, registry: str) -> None:
    write_json(a.docker_config, {"auths": {key: auth_entry("normalised")}})
    assert a.user(registry, "library/alpine") == "normalised"


def test_plain_keys_with_a_path_are_not_stripped(a: AuthEnv) -> None:
    write_json(a.docker_config, {"auths": {"quay.io/ns": auth_entry("ns")}})
    assert a.lookup("quay.io", "other/x") is None


def test_legacy_dockercfg(a: AuthEnv) -> None:
    write_json(a.dockercfg, {"https://quay.io/v1/": auth_entry("legacy"),
                             "example.com/ns": auth_entry("namespaced")})
    assert a.user("quay.io", "a/b") == "legacy"
    # legacy files know hosts only: every key is cut down to its host
    assert a.user("example.com", "other/x") == "namespaced"


def test_entry_decoding(a: AuthEnv) -> None:
    write_json(a.runtime_auth, {"auths": {
        "token.example": auth_entry("user", "", identitytoken="refresh"),
        "token-only.example": {"identitytoken": "refresh"},
        "colonless.example": {"auth": base64.b64encode(b"nocolon").decode()},
        "empty.example": {},
        "null.example": None,
        "nul.example": auth_entry("user", "pass\x00\x00"),
        "colon.example": auth_entry("user", "pa:ss"),
    }})
    found = a.lookup("token.example")
    assert found == Credentials("user", "", "refresh")
    assert a.lookup("token-only.example") is None  # c/image needs user: in auth
    assert a.lookup("colonless.example") is None
    assert a.lookup("empty.example") is None
    assert a.lookup("null.example") is None
    assert a.lookup("nul.example") == Credentials("user", "pass")
    assert a.lookup("colon.example") == Credentials("user", "pa:ss")


def test_an_empty_entry_goes_on_with_the_next_file(a: AuthEnv) -> None:
    write_json(a.runtime_auth, {"auths": {"quay.io": {}}})
    write_json(a.docker_config, {"auths": {"quay.io": auth_entry("docker")}})
    assert a.user("quay.io") == "docker"


@pytest.mark.parametrize("document", [
    "{not json s3cr3t-in-file",
    '["s3cr3t-in-file"]',
    '{"auths": ["s3cr3t-in-file"]}',
    '{"auths": {"quay.io": "s3cr3t-in-file"}}',
    '{"auths": {"quay.io": {"auth": 5}}}',
    '{"credHelpers": {"quay.io": 5}}',
    '{"auths": {"quay.io": {"auth": "s3cr3t-in-file!!"}}}',
])
def test_malformed_files_are_named_without_their_contents(a: AuthEnv, document: str) -> None:
    write(a.config_auth, document)
    with pytest.raises(ConfigError) as info:
        a.lookup("quay.io")
    assert str(a.config_auth) in str(info.value)
    assert "s3cr3t" not in str(info.value)
    assert "s3cr3t" not in repr(info.value)


def test_unknown_keys_and_go_field_case_are_accepted(a: AuthEnv) -> None:
    write_json(a.runtime_auth, {"Auths": {"quay.io": {"Auth": auth_entry("cased")["auth"]}},
                                "HttpHeaders": {"X": "y"}, "psFormat": 1})
    assert a.user("quay.io") == "cased"


# == credential helpers =========================================================================


def test_cred_helpers_entry_wins_and_gets_the_host_on_stdin(a: AuthEnv) -> None:
    a.store("quay.io", "from-helper", "helper-secret")
    write_json(a.runtime_auth, {"credHelpers": {"quay.io": "fake"},
                                "auths": {"quay.io": auth_entry("from-file")}})
    assert a.lookup("quay.io", "ns/repo") == Credentials("from-helper", "helper-secret")
    assert a.calls() == [["docker-credential-fake", "get", "quay.io"]]


def test_helper_not_found_goes_on_with_the_next_file(a: AuthEnv) -> None:
    write_json(a.runtime_auth, {"credHelpers": {"quay.io": "fake"},
                                "auths": {"quay.io": auth_entry("same-file")}})
    write_json(a.docker_config, {"auths": {"quay.io": auth_entry("next-file")}})
    assert a.user("quay.io") == "next-file"


@pytest.mark.parametrize(("mode", "message"), [
    ("json", "output withheld"), ("text", "the keyring is locked"),
    ("garbage", "other than a JSON object")])
def test_helper_failure(a: AuthEnv, mode: str, message: str) -> None:
    write_json(a.runtime_auth, {"credHelpers": {"quay.io": "fake"}})
    write_json(a.docker_config, {"auths": {"quay.io": auth_entry("docker")}})
    a.env["HELPER_FAIL"] = mode
    with pytest.raises(CredentialHelperError, match=message) as info:
        a.lookup("quay.io")
    assert "docker-credential-fake" in str(info.value)
    assert "leaked-secret" not in str(info.value)


def test_missing_helper_program_is_an_error(a: AuthEnv) -> None:
    write_json(a.runtime_auth, {"credHelpers": {"quay.io": "absent"}})
    with pytest.raises(CredentialHelperError, match="docker-credential-absent"):
        a.lookup("quay.io")


def test_token_user_from_a_helper_is_an_identity_token(a: AuthEnv) -> None:
    a.store("quay.io", "<token>", "refresh-token")
    write_json(a.runtime_auth, {"credHelpers": {"quay.io": "fake"}})
    found = a.lookup("quay.io")
    assert found == Credentials("<token>", identity_token="refresh-token")
    assert "refresh-token" not in repr(found)


def test_creds_store_is_used_with_dockers_hub_server_name(a: AuthEnv) -> None:
    a.store("https://index.docker.io/v1/", "hub-user", "hub-secret")
    a.store("quay.io", "quay-user", "quay-secret")
    write_json(a.docker_config, {"credsStore": "fake", "auths": {
        "https://index.docker.io/v1/": {}, "quay.io": auth_entry("file-user"),
        "example.com": auth_entry("file-only")}})
    assert a.lookup("docker.io", "library/alpine") == Credentials("hub-user", "hub-secret")
    assert a.user("quay.io") == "quay-user"  # the store beats auths, as in docker
    assert a.user("example.com") == "file-only"  # not in the store: auths
    assert [c[2] for c in a.calls()] == ["https://index.docker.io/v1/", "quay.io",
                                         "example.com"]


def test_cred_helpers_beat_creds_store(a: AuthEnv) -> None:
    a.store("quay.io", "store-user", "s")
    write_json(a.docker_config, {"credsStore": "other", "credHelpers": {"quay.io": "fake"}})
    assert a.user("quay.io") == "store-user"
    assert [c[0] for c in a.calls()] == ["docker-credential-fake"]


def test_uninstalled_creds_store_is_skipped(a: AuthEnv) -> None:
    write_json(a.docker_config, {"credsStore": "desktop",
                                 "auths": {"quay.io": auth_entry("file-user")}})
    assert a.user("quay.io") == "file-user"


def test_external_helpers_in_order(a: AuthEnv) -> None:
    a.store("quay.io", "helper-user", "s")
    write_json(a.runtime_auth, {"auths": {"quay.io": auth_entry("file-user")}})
    assert a.user("quay.io", helpers=["containers-auth.json", "fake"]) == "file-user"
    assert a.user("quay.io", helpers=["fake", "containers-auth.json"]) == "helper-user"
    assert a.user("quay.io", "ns/x", helpers=["fake"]) == "helper-user"
    assert a.calls()[-1] == ["docker-credential-fake", "get", "quay.io"]
    assert a.lookup("example.com", helpers=["fake"]) is None


def test_a_failing_helper_does_not_hide_credentials_of_the_next(a: AuthEnv) -> None:
    write_json(a.runtime_auth, {"auths": {"quay.io": auth_entry("file-user")}})
    assert a.user("quay.io", helpers=["absent", "containers-auth.json"]) == "file-user"
    with pytest.raises(CredentialHelperError, match="absent"):
        a.lookup("example.com", helpers=["absent", "containers-auth.json"])


@pytest.mark.parametrize("name", ["../evil", "a/b", ""])
def test_helper_names_with_paths_are_refused(a: AuthEnv, name: str) -> None:
    with pytest.raises(CredentialHelperError, match="invalid credential helper name"):
        a.lookup("quay.io", helpers=[name])


# == login / logout =============================================================================


def test_login_writes_a_private_file_atomically(a: AuthEnv) -> None:
    path = login("quay.io", Credentials("alice", "s3cret"), env=a.env)
    assert path == a.runtime_auth
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"auths": {"quay.io": auth_entry("alice", "s3cret")}}
    assert a.lookup("quay.io") == Credentials("alice", "s3cret")
    assert [p.name for p in path.parent.iterdir()] == ["auth.json"]


def test_login_keeps_every_other_key(a: AuthEnv, tmp_path: Path) -> None:
    target = write_json(tmp_path / "auth.json", {
        "auths": {"other.example": {"auth": "b3RoZXI6eA==", "email": "x@example.com"},
                  "quay.io": {"auth": "b2xkOm9sZA==", "identitytoken": "old"}},
        "credsStore": "desktop", "HttpHeaders": {"User-Agent": "x"}, "psFormat": "table"})
    target.chmod(0o644)
    login("quay.io", Credentials("new", "pw", "tok"), auth_file=target, env=a.env)
    document = json.loads(target.read_text())
    assert document == {
        "auths": {"other.example": {"auth": "b3RoZXI6eA==", "email": "x@example.com"},
                  "quay.io": auth_entry("new", "pw", identitytoken="tok")},
        "credsStore": "desktop", "HttpHeaders": {"User-Agent": "x"}, "psFormat": "table"}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_login_namespaced_and_by_environment(a: AuthEnv, tmp_path: Path) -> None:
    a.env["REGISTRY_AUTH_FILE"] = str(tmp_path / "deep" / "er" / "auth.json")
    path = login("quay.io/ns/repo", Credentials("repo-user", "p"), env=a.env)
    assert path == tmp_path / "deep" / "er" / "auth.json"
    assert a.user("quay.io", "ns/repo") == "repo-user"
    assert a.lookup("quay.io", "ns/other") is None


@pytest.mark.parametrize("key", ["https://quay.io", "quay.io/a:1", f"quay.io/a@{DIGEST}",
                                 "", "quay.io/"])
def test_invalid_keys(a: AuthEnv, key: str) -> None:
    with pytest.raises(ConfigError):
        login(key, Credentials("u", "p"), env=a.env)
    with pytest.raises(ConfigError):
        a.lookup(key)
    assert not a.runtime_auth.exists()


def test_login_through_a_cred_helpers_entry(a: AuthEnv) -> None:
    original = {"credHelpers": {"quay.io": "fake"}}
    write_json(a.runtime_auth, original)
    assert login("quay.io", Credentials("helper-user", "top-secret"), env=a.env) == \
        a.runtime_auth
    assert json.loads(a.runtime_auth.read_text()) == original
    assert json.loads(a.db.read_text()) == {"quay.io": ["helper-user", "top-secret"]}
    assert a.lookup("quay.io") == Credentials("helper-user", "top-secret")
    # c/image: only an entry for exactly the key counts; a namespaced one cannot be used
    login("quay.io/ns", Credentials("u", "p"), env=a.env)
    assert list(json.loads(a.runtime_auth.read_text())["auths"]) == ["quay.io/ns"]
    write_json(a.runtime_auth, {"credHelpers": {"quay.io/ns": "fake"}})
    with pytest.raises(ConfigError, match="namespaced"):
        login("quay.io/ns", Credentials("u", "p"), env=a.env)


def test_failing_store_does_not_leak_the_secret(a: AuthEnv) -> None:
    write_json(a.runtime_auth, {"credHelpers": {"quay.io": "fake"}})
    a.env["HELPER_FAIL"] = "text"
    with pytest.raises(CredentialHelperError) as info:
        login("quay.io", Credentials("u", "top-secret"), env=a.env)
    assert "top-secret" not in str(info.value)


def test_logout(a: AuthEnv) -> None:
    login("quay.io", Credentials("u", "p"), env=a.env)
    login("quay.io/ns", Credentials("n", "p"), env=a.env)
    document = json.loads(a.runtime_auth.read_text())
    document["credsStore"] = "desktop"
    write_json(a.runtime_auth, document)
    assert logout("quay.io", env=a.env)
    assert not logout("quay.io", env=a.env)
    assert json.loads(a.runtime_auth.read_text()) == {
        "auths": {"quay.io/ns": auth_entry("n", "p")}, "credsStore": "desktop"}
    assert a.lookup("quay.io") is None
    assert a.user("quay.io", "ns/x") == "n"


def test_logout_through_a_cred_helpers_entry(a: AuthEnv) -> None:
    a.store("quay.io", "u", "p")
    write_json(a.runtime_auth, {"credHelpers": {"quay.io": "fake"}})
    assert logout("quay.io", env=a.env)
    assert json.loads(a.db.read_text()) == {}
    assert not logout("quay.io", env=a.env)


def test_logout_all(a: AuthEnv) -> None:
    a.store("helped.example", "u", "p")
    write_json(a.runtime_auth, {"auths": {"quay.io": auth_entry("u")},
                                "credHelpers": {"helped.example": "fake"},
                                "HttpHeaders": {"X": "y"}})
    assert logout(all=True, env=a.env)
    assert json.loads(a.runtime_auth.read_text()) == {"auths": {}, "HttpHeaders": {"X": "y"}}
    assert json.loads(a.db.read_text()) == {}
    assert not logout("", all=True, env=a.env)
    with pytest.raises(ConfigError):
        logout("quay.io", all=True, env=a.env)
    with pytest.raises(ConfigError):
        logout(env=a.env)


def test_logout_without_a_file(a: AuthEnv) -> None:
    assert not logout("quay.io", env=a.env)
    assert not a.runtime_auth.exists()


def test_secrets_are_never_shown(a: AuthEnv) -> None:
    creds = Credentials("user", "pass-word-123", "token-456")
    assert "pass-word-123" not in repr(creds)
    assert "token-456" not in str(creds)
    write_json(a.runtime_auth, {"auths": {"quay.io": {"auth": "!!!"}}})
    with pytest.raises(ConfigError) as info:
        a.lookup("quay.io")
    assert "!!!" not in str(info.value)


# == certs.d =================================================================================


class PKI:
    """A CA, a server certificate for localhost and a client certificate, as PEM files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = self._cert("test CA", self.ca_key.public_key(), ca=True)
        self.server_key = ec.generate_private_key(ec.SECP256R1())
        self.server = self._cert("localhost", self.server_key.public_key(), san=True)
        self.client_key = ec.generate_private_key(ec.SECP256R1())
        self.client = self._cert("test client", self.client_key.public_key())

    def _cert(self, name: str, public_key: ec.EllipticCurvePublicKey, *, ca: bool = False,
              san: bool = False) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        return builder.sign(self.ca_key, hashes.SHA256())

    @staticmethod
    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    @staticmethod
    def key_pem(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password
            else serialization.NoEncryption())
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8, encryption)

    def host_dir(self, root: Path, host: str, *, client: bool = True) -> Path:
        directory = root / host
        directory.mkdir(parents=True)
        (directory / "ca.crt").write_bytes(self.pem(self.ca))
        if client:
            (directory / "client.cert").write_bytes(self.pem(self.client))
            (directory / "client.key").write_bytes(self.key_pem(self.client_key))
        return directory


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


def common_name(der: bytes) -> str:
    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def has_ca(context: ssl.SSLContext, pki: PKI) -> bool:
    return pki.ca.public_bytes(serialization.Encoding.DER) in context.get_ca_certs(
        binary_form=True)


def test_certs_d_ca_is_loaded(pki: PKI, tmp_path: Path) -> None:
    pki.host_dir(tmp_path / "certs.d", "registry.example:5000")
    context = certs.tls_context("registry.example:5000", certs_d_dirs=[str(tmp_path / "certs.d")])
    assert has_ca(context, pki)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert certs.certs_dirs_for("registry.example:5000",
                                certs_d_dirs=[str(tmp_path / "certs.d")]) == [
        tmp_path / "certs.d" / "registry.example:5000"]
    other = certs.tls_context("registry.example", certs_d_dirs=[str(tmp_path / "certs.d")])
    assert not has_ca(other, pki)


def test_first_existing_root_is_the_only_one_read(pki: PKI, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "other.example").mkdir(parents=True)
    (first / "host.example").mkdir(parents=True)  # exists, empty: wins over second
    pki.host_dir(second, "host.example")
    roots = [str(tmp_path / "missing"), str(first), str(second)]
    assert certs.certs_dirs_for("host.example", certs_d_dirs=roots) == [
        first / "host.example"]
    assert not has_ca(certs.tls_context("host.example", certs_d_dirs=roots), pki)
    assert certs.certs_dirs_for("nowhere.example", certs_d_dirs=roots) == []


def test_default_roots_start_with_the_users(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert certs.default_certs_d_dirs(env) == [
        tmp_path / ".config/containers/certs.d", Path("/etc/containers/certs.d"),
        Path("/etc/docker/certs.d")]
    (tmp_path / ".config/containers/certs.d/h.example").mkdir(parents=True)
    assert certs.certs_dirs_for("h.example", env=env) == [
        tmp_path / ".config/containers/certs.d/h.example"]


def test_cert_dir_is_used_directly(pki: PKI, tmp_path: Path) -> None:
    directory = pki.host_dir(tmp_path, "flat")
    assert certs.certs_dirs_for("any.example", cert_dir=str(directory)) == [directory]
    assert has_ca(certs.tls_context("any.example", cert_dir=str(directory)), pki)


@pytest.mark.parametrize(("files", "message"), [
    (["client.cert"], "missing key client.key for client certificate client.cert"),
    (["client.key"], "missing client certificate client.cert for key client.key"),
])
def test_unpaired_client_files(pki: PKI, tmp_path: Path, files: list[str],
                               message: str) -> None:
    for name in files:
        (tmp_path / name).write_bytes(pki.pem(pki.client) if name.endswith(".cert")
                                      else pki.key_pem(pki.client_key))
    with pytest.raises(ConfigError, match=message + ".*" + re.escape(str(tmp_path))):
        certs.tls_context("h", cert_dir=str(tmp_path))


def test_mismatched_or_encrypted_keys(pki: PKI, tmp_path: Path) -> None:
    (tmp_path / "a.cert").write_bytes(pki.pem(pki.client))
    (tmp_path / "a.key").write_bytes(pki.key_pem(pki.server_key))
    with pytest.raises(ConfigError, match=r"a\.cert"):
        certs.tls_context("h", cert_dir=str(tmp_path))
    (tmp_path / "a.key").write_bytes(pki.key_pem(pki.client_key, b"passphrase"))
    with pytest.raises(ConfigError, match=r"a\.cert"):
        certs.tls_context("h", cert_dir=str(tmp_path))


def test_unparsable_ca_files_are_skipped(pki: PKI, tmp_path: Path) -> None:
    (tmp_path / "0-garbage.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n"
                                             b"-----END CERTIFICATE-----\n")
    (tmp_path / "1-empty.crt").write_bytes(b"")
    (tmp_path / "2-ca.crt").write_bytes(b"junk\n" + pki.pem(pki.ca) + b"trailing")
    os.symlink(tmp_path / "missing", tmp_path / "3-dangling.crt")
    assert has_ca(certs.tls_context("h", cert_dir=str(tmp_path)), pki)


def test_verify_false(pki: PKI, tmp_path: Path) -> None:
    context = certs.tls_context("h", cert_dir=str(tmp_path), verify=False)
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname
    (tmp_path / "x.cert").write_bytes(pki.pem(pki.client))
    with pytest.raises(ConfigError):
        certs.tls_context("h", cert_dir=str(tmp_path), verify=False)


@pytest.fixture
def mtls_server(pki: PKI, tmp_path: Path) -> Iterator[tuple[int, list[str]]]:
    """A TLS server on localhost that requires a client certificate from the test CA."""
    (tmp_path / "server.pem").write_bytes(pki.pem(pki.server) +
                                          pki.key_pem(pki.server_key))
    (tmp_path / "ca.pem").write_bytes(pki.pem(pki.ca))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "server.pem")
    server_context.load_verify_locations(tmp_path / "ca.pem")
    server_context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                try:
                    with server_context.wrap_socket(conn, server_side=True) as tls:
                        seen.append(common_name(tls.getpeercert(binary_form=True) or b""))
                        tls.sendall(b"ok")
                except (ssl.SSLError, OSError):
                    seen.append("rejected")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], seen
    listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
    listener.close()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_client_certificate_and_ca_work_in_a_handshake(pki: PKI, tmp_path: Path,
                                                       mtls_server: tuple[int, list[str]]) -> None:
    port, seen = mtls_server
    root = tmp_path / "certs.d"
    pki.host_dir(root, f"localhost:{port}")
    context = certs.tls_context(f"localhost:{port}", certs_d_dirs=[str(root)])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.recv(2) == b"ok"
    assert seen == ["test client"]
    plain = certs.tls_context(f"localhost:{port}", certs_d_dirs=[str(tmp_path / "none")])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            pytest.raises(ssl.SSLCertVerificationError):
        plain.wrap_socket(raw, server_hostname="localhost")


# == skopeo 1.9.3 (containers/image 5.22) as an oracle ==========================================


def skopeo_get_login(a: AuthEnv, key: str, *flags: str) -> str | None:
    """The user name ``skopeo login --get-login`` finds for ``key`` in ``a``'s files, with
    a private HOME (and so a private registries.conf), never the machine's."""
    write(a.home / ".config/containers/registries.conf", "unqualified-search-registries = []\n")
    env = {k: v for k, v in a.env.items() if k != "REGISTRY_AUTH_FILE"}
    result = subprocess.run([require("skopeo"), "login", "--get-login", *flags, key],
                            env=env, capture_output=True, timeout=120, check=False)
    if result.returncode != 0:
        assert b"not logged into" in result.stderr, result.stderr
        return None
    return result.stdout.decode().strip()


CHAIN_KEYS = ["quay.io", "quay.io/ns/repo", "quay.io/ns", "quay.io/other/x", "docker.io",
              "docker.io/library/alpine", "legacy.example", "legacy.example/a/b",
              "helped.example", "helped.example/ns/x", "url.example:5000/x", "nobody.example"]


def write_chain(a: AuthEnv) -> None:
    write_json(a.runtime_auth, {"auths": {"quay.io/ns": auth_entry("runtime-ns"),
                                          "quay.io/ns/repo": {}}})
    write_json(a.config_auth, {"auths": {"quay.io": auth_entry("config-host"),
                                         "quay.io/ns/repo": auth_entry("config-repo")},
                               "credHelpers": {"helped.example": "fake"}})
    write_json(a.docker_config, {"auths": {
        "https://index.docker.io/v1/": auth_entry("hub"),
        "https://url.example:5000/v2/": auth_entry("url"),
        "helped.example": auth_entry("shadowed-by-helper")}})
    write_json(a.dockercfg, {"https://legacy.example/v1/": auth_entry("legacy"),
                             "quay.io": auth_entry("legacy-quay")})
    a.store("helped.example", "helper", "secret")


@pytest.mark.peers
def test_lookup_chain_agrees_with_skopeo(a: AuthEnv) -> None:
    write_chain(a)
    for key in CHAIN_KEYS:
        assert a.user(key) == skopeo_get_login(a, key), key


@pytest.mark.peers
def test_docker_config_and_xdg_config_home_agree_with_skopeo(a: AuthEnv,
                                                             tmp_path: Path) -> None:
    # One key per file: `skopeo login` (containers/common) also moves $DOCKER_CONFIG's file
    # to the front of the chain, which c/image itself and skopeo copy do not.
    a.env["DOCKER_CONFIG"] = str(tmp_path / "dc")
    a.env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    write_json(tmp_path / "dc/config.json", {"auths": {"quay.io": auth_entry("dc")}})
    write_json(tmp_path / "xdg/containers/auth.json",
               {"auths": {"example.com/ns": auth_entry("xdg")}})
    write_json(a.docker_config, {"auths": {"ignored.example": auth_entry("ignored")}})
    write_json(a.config_auth, {"auths": {"ignored.example": auth_entry("ignored")}})
    for key in ["quay.io", "quay.io/ns/x", "example.com/ns/x", "example.com",
                "ignored.example"]:
        assert a.user(key) == skopeo_get_login(a, key), key
    assert a.user("quay.io") == "dc"
    assert a.user("example.com/ns/x") == "xdg"


@pytest.mark.peers
def test_skopeo_reads_what_login_writes(a: AuthEnv, tmp_path: Path) -> None:
    target = tmp_path / "written.json"
    login("quay.io", Credentials("alice", "pw"), auth_file=target, env=a.env)
    login("localhost:5000/ns/repo", Credentials("bob", "pw2", "token"), auth_file=target,
          env=a.env)
    for key, user in [("quay.io", "alice"), ("quay.io/a/b", "alice"),
                      ("localhost:5000/ns/repo", "bob"), ("localhost:5000/ns/other", None)]:
        assert skopeo_get_login(a, key, "--authfile", str(target)) == user, key


@pytest.mark.peers
def test_we_read_what_skopeo_logout_writes(a: AuthEnv, tmp_path: Path) -> None:
    target = tmp_path / "auth.json"
    login("quay.io", Credentials("alice", "pw"), auth_file=target, env=a.env)
    login("quay.io/ns", Credentials("ns-user", "pw"), auth_file=target, env=a.env)
    run_tool([require("skopeo"), "logout", "--authfile", str(target), "quay.io"], env=a.env)
    assert a.lookup("quay.io", "x/y", auth_file=target) is None
    assert a.user("quay.io", "ns/y", auth_file=target) == "ns-user"


@pytest.mark.peers
def test_documented_differences_from_skopeo(a: AuthEnv, tmp_path: Path) -> None:
    # skopeo 1.9.3 goes on with the default files after an explicit one; c/image 5.24+ and
    # we do not
    write_json(a.docker_config, {"auths": {"quay.io": auth_entry("docker")}})
    explicit = write_json(tmp_path / "explicit.json", {"auths": {}})
    assert skopeo_get_login(a, "quay.io", "--authfile", str(explicit)) == "docker"
    assert a.lookup("quay.io", auth_file=explicit) is None
    # c/image ignores docker's credsStore; we ask its helper
    a.store("store.example", "store-user", "s")
    write_json(a.docker_config, {"credsStore": "fake"})
    assert skopeo_get_login(a, "store.example") is None
    assert a.user("store.example") == "store-user"

"""The real peer tools as fixtures and helpers (see ../shared/guides/peers.md).

Every peer runs with private state only: skopeo in a private mount namespace whose
``/var/lib`` is an empty tmpfs (so its blob-info cache never touches the host), with a
private policy file and registries.conf; podman with ``--root/--runroot/--tmpdir`` in the
test's directory. Nothing here reads or writes /var/lib/containers, /etc/containers,
/run/runc or ~/.docker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import pytest

REQUIRE = os.environ.get("OCI_REQUIRE_PEERS") == "1"


def require(tool: str) -> str:
    """The path of ``tool``; skip (or fail under OCI_REQUIRE_PEERS=1) when missing."""
    path = shutil.which(tool)
    if path is None:
        message = f"peer tool {tool!r} is not installed (run `make test` as root to install it)"
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_root(reason: str) -> None:
    if os.geteuid() != 0:
        if REQUIRE:
            pytest.fail(f"must run as root: {reason}")
        pytest.skip(f"needs root: {reason}")


@attrs.frozen
class Skopeo:
    """Runs the real skopeo with private configuration and an empty blob cache."""

    home: Path

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "HOME": str(self.home),
            "TMPDIR": str(self.home / "tmp"),
            "CONTAINERS_REGISTRIES_CONF": str(self.home / "registries.conf"),
            "REGISTRY_AUTH_FILE": str(self.home / "auth.json"),
            "XDG_RUNTIME_DIR": str(self.home / "run"),
        })
        return env

    def argv(self, *args: str) -> list[str]:
        skopeo = require("skopeo")
        base = [skopeo, "--policy", str(self.home / "policy.json"), *args]
        if os.geteuid() == 0 and shutil.which("unshare"):
            script = ('mount -t tmpfs tmpfs /var/lib && mkdir -p /var/lib/containers/cache '
                      '&& exec "$0" "$@"')
            return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, *base]
        return base

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(self.argv(*args), env=self._env(), capture_output=True,
                                timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(
                f"skopeo {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stderr.decode(errors='replace')}")
        return result

    def copy(self, src: str, dst: str, *flags: str) -> None:
        self.run("copy", "--quiet", *flags, src, dst)

    def inspect_raw(self, ref: str, *flags: str) -> bytes:
        return self.run("inspect", "--raw", *flags, ref).stdout

    def inspect(self, ref: str, *flags: str) -> dict[str, object]:
        out: dict[str, object] = json.loads(self.run("inspect", *flags, ref).stdout)
        return out

    def manifest_digest(self, path: Path) -> str:
        return self.run("manifest-digest", str(path)).stdout.decode().strip()


@pytest.fixture
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    require("skopeo")
    home = tmp_path_factory.mktemp("skopeo-home")
    (home / "tmp").mkdir()
    (home / "run").mkdir()
    (home / "policy.json").write_text(
        json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    (home / "registries.conf").write_text('unqualified-search-registries = []\n')
    return Skopeo(home)


def run_tool(argv: Sequence[str], *, env: dict[str, str] | None = None,
             cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[bytes]:
    require(argv[0])
    result = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n"
                             f"{result.stderr.decode(errors='replace')}")
    return result


@attrs.frozen
class Podman:
    """podman with a private store and the containers.conf this host needs."""

    root: Path

    def argv(self, *args: str) -> list[str]:
        base = [require("podman"), "--root", str(self.root / "root"),
                "--runroot", str(self.root / "runroot"), "--tmpdir", str(self.root / "tmp"),
                "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", *args]
        if os.geteuid() == 0 and shutil.which("unshare"):
            # as root, podman updates /var/lib/containers/cache/blob-info-cache-v1.boltdb
            # whatever --root says: give it a private /var/lib, with a blob-info cache
            # that lives as long as this store (as a user's podman keeps its own)
            cache = self.root / "blob-info-cache"
            cache.mkdir(exist_ok=True)
            script = ('mount -t tmpfs tmpfs /var/lib && mkdir -p /var/lib/containers/cache '
                      '&& mount --bind "$OCI_PODMAN_CACHE" /var/lib/containers/cache '
                      '&& exec "$0" "$@"')
            return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, *base]
        return base

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"CONTAINERS_CONF": str(self.root / "containers.conf"),
                    "CONTAINERS_REGISTRIES_CONF": str(self.root / "registries.conf"),
                    "CONTAINERS_STORAGE_CONF": str(self.root / "storage.conf"),
                    "REGISTRY_AUTH_FILE": str(self.root / "auth.json"),
                    "HOME": str(self.root), "XDG_RUNTIME_DIR": str(self.root / "xdg"),
                    "OCI_PODMAN_CACHE": str(self.root / "blob-info-cache")})
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return run_tool(self.argv(*args), env=self.env())


@pytest.fixture
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    require("podman")
    require_root("podman with a private root-owned store")
    root = tmp_path_factory.mktemp("podman")
    for d in ("root", "runroot", "tmp", "xdg"):
        (root / d).mkdir()
    (root / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        'netns = "none"\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        'runtime = "runc"\n')
    (root / "registries.conf").write_text("unqualified-search-registries = []\n")
    (root / "auth.json").write_text('{"auths": {}}')  # REGISTRY_AUTH_FILE must exist
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{root / "root"}"\n'
        f'runroot = "{root / "runroot"}"\n')
    yield Podman(root)
    subprocess.run(Podman(root).argv("system", "reset", "--force"), env=Podman(root).env(),
                   capture_output=True, timeout=120, check=False)

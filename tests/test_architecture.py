"""The layering of docs/architecture.md, as tests."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("oci_image", "oci_storage", "oci_runtime")


def imports_of(path: Path) -> set[str]:
    """Absolute module names imported by a file (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    module_parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if module_parts[-1] == "__init__":
        module_parts.pop()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module_parts[: len(module_parts) - node.level + (
                    1 if path.name == "__init__.py" else 0)]
                prefix = ".".join(base)
                names.add(f"{prefix}.{node.module}" if node.module else prefix)
            elif node.module:
                names.add(node.module)
    return names


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_storage_and_runtime_do_not_import_httpx() -> None:
    code = ("import sys, oci_storage, oci_runtime, oci_image, oci_image.copy, oci_image.image, "
            "oci_image.validate, oci_image.cli, oci_image.sysconfig.auth, "
            "oci_image.sysconfig.registries, oci_image.sysconfig.certs, "
            "oci_image.testing.registry\n"
            "from oci_image.transports import get_transport\n"
            "for name in ('oci', 'oci-archive', 'docker-archive', 'dir'): get_transport(name)\n"
            "print('httpx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_importing_oci_image_loads_no_transport() -> None:
    code = ("import sys, oci_image, oci_image.spec\n"
            "print(sorted(m for m in sys.modules if m.startswith('oci_image.transports')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_spec_is_a_leaf() -> None:
    allowed_external = {"attrs"}
    for path in python_files("oci_image/spec"):
        for name in imports_of(path):
            top = name.split(".")[0]
            if top in PACKAGES:
                assert name.startswith(("oci_image.spec", "oci_image.errors")), (path, name)
            else:
                assert top in allowed_external or top in sys.stdlib_module_names, (path, name)


def test_transports_do_not_import_each_other() -> None:
    transports = ROOT / "oci_image" / "transports"
    names = [p.name for p in transports.iterdir() if p.is_dir() and not p.name.startswith("_")]
    for name in names:
        for path in (transports / name).rglob("*.py"):
            for imported in imports_of(path):
                if imported.startswith("oci_image.transports."):
                    other = imported.split(".")[2]
                    assert other == name or other.startswith("_"), (path, imported)


def test_only_the_copy_engine_and_views_know_transports_by_import() -> None:
    """oci_image.copy reaches transports only through the registry (parse_image_name)."""
    for path in python_files("oci_image/copy"):
        for imported in imports_of(path):
            if imported.startswith("oci_image.transports"):
                assert imported in ("oci_image.transports", "oci_image.transports._common"), \
                    (path, imported)


#: oci_runtime modules that pull images (through the copy engine and the transport
#: registry) into an oci_storage store before running or installing them
RUNTIME_COMPOSITION = ("oci_runtime/cli.py", "oci_runtime/run.py",
                       "oci_runtime/install.py")


def test_storage_and_runtime_use_only_spec_and_errors_of_oci_image() -> None:
    for package in ("oci_storage", "oci_runtime"):
        for path in python_files(package):
            for imported in imports_of(path):
                if path.name == "cli.py" and imported == "oci_image.transports":
                    # a CLI is a composition root: it parses transport strings through
                    # the registry (never a transport's own module)
                    continue
                if path.relative_to(ROOT).as_posix() in RUNTIME_COMPOSITION and \
                        imported in ("oci_image.transports", "oci_image.copy"):
                    # pull-then-run: these modules compose the three packages
                    continue
                if imported.startswith("oci_image"):
                    # _blobio: the bounded (de)compressing streams, shared with storage
                    assert imported.startswith(("oci_image.spec", "oci_image.errors",
                                                "oci_image.interfaces",
                                                "oci_image._blobio")), (path, imported)


def test_transport_registry_is_sorted_and_loads() -> None:
    from oci_image.transports import _BUILTIN, get_transport

    assert list(_BUILTIN) == sorted(_BUILTIN)
    for name in _BUILTIN:
        assert get_transport(name).name == name


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_resolve_and_typed(package: str) -> None:
    module = importlib.import_module(package)
    assert (ROOT / package / "py.typed").exists()
    for name in getattr(module, "__all__", []):
        assert hasattr(module, name), name


def test_every_error_is_an_oci_error_and_documented() -> None:
    from oci_image import errors

    doc = errors.__doc__ or ""
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not isinstance(cls, type):
            continue  # is_transient
        assert issubclass(cls, errors.OCIError)
        assert name in doc, f"{name} missing from the tree in the errors docstring"


def test_only_the_docker_transport_imports_httpx() -> None:
    for package in PACKAGES:
        for path in python_files(package):
            if "transports/docker" in path.as_posix():
                continue
            assert not any(n.split(".")[0] == "httpx" for n in imports_of(path)), path


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, (package, name)
    assert sorted(module.__all__) == sorted(getattr(module, "_EXPORTS", module.__all__))

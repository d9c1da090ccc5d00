"""The transport registry: a sorted table of ``name -> "module:attribute"``, imported
lazily, so that importing ``oci_image`` never imports a transport (or httpx) it does
not use, and so that ``oci_image`` reaches other packages (``oci_storage``) only through
an import string.

``parse_image_name("oci:/srv/layout:v1")`` splits at the first colon and hands the rest to
the named transport, exactly as containers/image's ``alltransports.ParseImageName``.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, cast

from ..errors import InvalidReferenceError, UnknownTransportError
from ..interfaces import ImageReference, ImageTransport

__all__ = [
    "get_transport",
    "known_transports",
    "parse_image_name",
    "register_transport",
]

# Keep sorted (a test checks): name -> "module:attribute" of an ImageTransport instance.
_BUILTIN: Final[dict[str, str]] = {
    "containers-storage": "oci_storage.transport:TRANSPORT",
    "dir": "oci_image.transports.dir:TRANSPORT",
    "docker": "oci_image.transports.docker:TRANSPORT",
    "docker-archive": "oci_image.transports.docker_archive:TRANSPORT",
    "oci": "oci_image.transports.oci:TRANSPORT",
    "oci-archive": "oci_image.transports.oci_archive:TRANSPORT",
}

_table: dict[str, str | ImageTransport] = dict(_BUILTIN)
_lock = threading.Lock()


def known_transports() -> Mapping[str, str | ImageTransport]:
    """A read-only view of the registry (import strings until first use)."""
    return MappingProxyType(_table)


def register_transport(transport: ImageTransport | str, name: str | None = None, *,
                       clobber: bool = False) -> None:
    """Add a transport (an instance, or a ``"module:attribute"`` string with ``name``)."""
    if isinstance(transport, str):
        if name is None:
            raise TypeError("a name is required when registering an import string")
        key = name
    else:
        key = name or transport.name
    with _lock:
        if key in _table and not clobber:
            raise ValueError(f"transport {key!r} is already registered")
        _table[key] = transport


def get_transport(name: str) -> ImageTransport:
    """The transport registered under ``name``; :class:`UnknownTransportError` if none."""
    with _lock:
        entry = _table.get(name)
    if entry is None:
        raise UnknownTransportError(
            f"unknown transport {name!r} (known: {', '.join(sorted(_table))})")
    if isinstance(entry, str):
        module_name, _, attribute = entry.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UnknownTransportError(
                f"transport {name!r} is not available: {exc}") from exc
        transport = cast(ImageTransport, getattr(module, attribute))
        with _lock:
            _table[name] = transport
        return transport
    return entry


def parse_image_name(image_name: str) -> ImageReference:
    """Parse ``transport:details`` (as skopeo does) into a reference."""
    name, sep, rest = image_name.partition(":")
    if not sep:
        raise InvalidReferenceError(
            f"invalid image name {image_name!r}: expected transport:details")
    return get_transport(name).parse_reference(rest)


def format_reference(ref: ImageReference) -> str:
    """``transport:details``, the inverse of :func:`parse_image_name`."""
    return f"{ref.transport.name}:{ref.string_within_transport()}"

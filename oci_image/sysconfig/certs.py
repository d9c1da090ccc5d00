"""TLS settings for one registry host from ``certs.d`` directories, as containers/image
5.23 reads them (``docker/docker_client.go`` ``dockerCertDir``,
``pkg/tlsclientconfig/tlsclientconfig.go``, ``docs/containers-certs.d.5.md``).

The directory used is ``cert_dir`` itself when given (skopeo ``--cert-dir``), else the
first ``<root>/<host[:port]>`` that exists among the roots
``$HOME/.config/containers/certs.d``, ``/etc/containers/certs.d``, ``/etc/docker/certs.d``
(or the caller's ``certs_d_dirs``). Only that one directory is read, in file name order:

* ``*.crt`` are CA certificates, added to the system trust store (certificates that do
  not parse are skipped, as Go's ``AppendCertsFromPEM`` does);
* ``*.cert`` + ``*.key`` with the same stem are a client certificate and its key; either
  one without the other is a :class:`ConfigError`.

The host is the name in the image reference: ``docker.io``, not ``registry-1.docker.io``.

Where we differ: Python's ``SSLContext`` holds one client certificate per key type, so
with several pairs of one type the first in name order is offered (Go picks among all
of them by the server's request); encrypted keys are an error instead of a prompt.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from ..errors import ConfigError
from ._env import home_dir

__all__ = ["SYSTEM_CERTS_D_DIRS", "certs_dirs_for", "default_certs_d_dirs", "tls_context"]

log = logging.getLogger(__name__)

SYSTEM_CERTS_D_DIRS: Final = (Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))
_PEM_CERTIFICATE: Final = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n(.*?)-----END CERTIFICATE-----", re.DOTALL)


def default_certs_d_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """The per-host roots in the order c/image tries them: the user's, then the system's."""
    return [home_dir(env) / ".config" / "containers" / "certs.d", *SYSTEM_CERTS_D_DIRS]


def certs_dirs_for(host: str, *, cert_dir: str | os.PathLike[str] | None = None,
                   certs_d_dirs: Sequence[str | os.PathLike[str]] | None = None,
                   env: Mapping[str, str] | None = None) -> list[Path]:
    """The directory :func:`tls_context` reads for ``host`` (``host[:port]``): ``[cert_dir]``,
    or the first existing ``<root>/<host>``, or ``[]`` when there is none."""
    if cert_dir is not None:
        return [Path(cert_dir)]
    if not host or "/" in host or host in (".", ".."):
        raise ConfigError(f"invalid registry host {host!r} for a certs.d directory")
    roots = [Path(r) for r in certs_d_dirs] if certs_d_dirs is not None \
        else default_certs_d_dirs(env)
    for root in roots:
        candidate = root / host
        try:
            candidate.stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError as exc:
            log.debug("skipping certs directory %s: %s", candidate, exc.strerror)
            continue
        return [candidate]
    return []


def tls_context(host: str, *, cert_dir: str | None = None,
                certs_d_dirs: Sequence[str] | None = None, verify: bool = True,
                env: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """A client context for ``host``: the system trust store plus the directory's CAs and
    client certificate. ``verify=False`` checks neither the chain nor the host name (the
    files are still read, and a broken pair is still an error, as in c/image)."""
    if verify:
        context = ssl.create_default_context()
    else:
        # nothing is verified, so the system trust store is not loaded (it costs ~30 ms)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    for directory in certs_dirs_for(host, cert_dir=cert_dir, certs_d_dirs=certs_d_dirs,
                                    env=env):
        _load_directory(context, directory)
    return context


def _load_directory(context: ssl.SSLContext, directory: Path) -> None:
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    except PermissionError as exc:
        log.debug("skipping certs directory %s: %s", directory, exc.strerror)
        return
    present = set(names)
    pairs: list[tuple[Path, Path]] = []
    for name in names:
        if name.endswith(".crt"):
            _add_cas(context, directory / name)
        elif name.endswith(".cert"):
            key = name.removesuffix(".cert") + ".key"
            if key not in present:
                raise ConfigError(f"missing key {key} for client certificate {name} in "
                                  f"{directory}. Note that CA certificates should use the "
                                  "extension .crt")
            pairs.append((directory / name, directory / key))
        elif name.endswith(".key"):
            cert = name.removesuffix(".key") + ".cert"
            if cert not in present:
                raise ConfigError(f"missing client certificate {cert} for key {name} in "
                                  f"{directory}")
    for cert_path, key_path in pairs:  # check every pair, in name order
        _load_pair(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), cert_path, key_path)
    for cert_path, key_path in reversed(pairs):  # the first pair ends up in place
        _load_pair(context, cert_path, key_path)


def _add_cas(context: ssl.SSLContext, path: Path) -> None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # a dangling link, or deleted meanwhile
        log.warning("cannot read certificate %s: no such file", path)
        return
    except OSError as exc:
        raise ConfigError(f"reading certificate {path}: {exc.strerror}") from exc
    added = 0
    for block in _PEM_CERTIFICATE.findall(data):
        try:
            der = base64.b64decode(block.replace(b"\r", b"").replace(b"\n", b""),
                                   validate=True)
            context.load_verify_locations(cadata=der)
            added += 1
        except (binascii.Error, ssl.SSLError, ValueError):
            continue
    log.debug("%d CA certificates from %s", added, path)


def _no_password() -> bytes:
    return b""


def _load_pair(context: ssl.SSLContext, cert_path: Path, key_path: Path) -> None:
    try:
        context.load_cert_chain(cert_path, key_path, password=_no_password)
    except ssl.SSLError as exc:
        raise ConfigError(f"loading client certificate {cert_path} with key {key_path}: "
                          f"{exc.reason or exc}") from None
    except OSError as exc:
        raise ConfigError(f"loading client certificate {cert_path} with key {key_path}: "
                          f"{exc.strerror}") from exc

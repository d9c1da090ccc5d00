"""``python -m oci_image`` / ``oci-image``: skopeo-compatible commands.

    oci-image copy [flags] SOURCE DESTINATION
    oci-image inspect [--raw] [--config] IMAGE
    oci-image manifest-digest MANIFEST-FILE
    oci-image list-tags IMAGE
    oci-image delete IMAGE

Flags keep skopeo's names where the meaning is the same. Messages and progress go to
stderr (so ``docker-archive:/dev/stdout`` can be piped); errors print one line and exit
with status 1 (a traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from . import __version__
from .errors import ConfigError, InvalidReferenceError, OCIError
from .interfaces import OpenOptions, RegistryOptions, SupportsDelete, SupportsListTags
from .spec import Compression, Platform, Reference, host_platform, manifest_digest
from .spec._json import dumps

__all__ = ["main"]

log = logging.getLogger("oci_image.cli")


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {value!r}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oci-image", description=(
        "Copy, inspect and manage OCI and Docker images without a daemon "
        "(skopeo-compatible)."))
    p.add_argument("--version", action="version", version=f"oci-image {__version__}")
    _global_flags(p, suppress=False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("copy", help="copy an image from one location to another")
    c.add_argument("source")
    c.add_argument("destination")
    c.add_argument("-a", "--all", action="store_true",
                   help="copy every image of a list, and the list (--multi-arch=all)")
    c.add_argument("--multi-arch", choices=["system", "all", "index-only"],
                   help="which images of a list to copy (default: system)")
    c.add_argument("-f", "--format", choices=["oci", "v2s2"], help="manifest format")
    c.add_argument("--dest-compress", action="store_true",
                   help="compress layers even if the destination keeps them as they are")
    c.add_argument("--dest-decompress", action="store_true", help="decompress layers")
    c.add_argument("--dest-compress-format", choices=["gzip", "zstd"],
                   help="compression format for layers that are (re)compressed")
    c.add_argument("--dest-compress-level", type=int, help="compression level")
    c.add_argument("--dest-oci-accept-uncompressed-layers", action="store_true",
                   help="let oci:/oci-archive: destinations keep uncompressed layers")
    c.add_argument("--preserve-digests", action="store_true",
                   help="fail instead of making any change that alters a digest")
    c.add_argument("--remove-signatures", action="store_true",
                   help="do not copy signatures")
    c.add_argument("--image-parallel-copies", type=int, default=6, metavar="N",
                   help="blobs copied at once (default 6, as skopeo)")
    c.add_argument("--digestfile", help="write the digest of the written manifest here")
    c.add_argument("--additional-tag", action="append", default=[], metavar="NAME:TAG",
                   help="additional tags (docker-archive: destinations)")
    c.add_argument("--src-shared-blob-dir", help="oci: source blob directory")
    c.add_argument("--dest-shared-blob-dir", help="oci: destination blob directory")
    c.add_argument("--no-verify-diff-ids", dest="verify_diff_ids", action="store_false",
                   help="do not check layers against the config's diff_ids")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    c.add_argument("--progress", choices=["auto", "tty", "json", "lines", "none"],
                   default="auto",
                   help="progress output on stderr (auto: a bar on a terminal, else lines)")
    _retry_flags(c)
    c.add_argument("--partial-blob-dir", metavar="DIR",
                   help="keep partly downloaded blobs here so that an interrupted pull "
                        "resumes (default ~/.cache/ocistack/partial-blobs; '' disables)")
    c.add_argument("--partial-blob-min-size", type=int, metavar="BYTES",
                   help="only blobs this large use the partial-blob cache (default 64 MiB)")
    _registry_flags(c, "src-")
    _registry_flags(c, "dest-")

    i = sub.add_parser("inspect", help="show an image's metadata")
    i.add_argument("image")
    i.add_argument("--raw", action="store_true", help="the raw manifest (or config)")
    i.add_argument("--config", action="store_true", help="the image config")
    i.add_argument("-n", "--no-tags", action="store_true",
                   help="do not list the repository's tags (RepoTags)")

    m = sub.add_parser("manifest-digest", help="the digest of a manifest file")
    m.add_argument("manifest")

    lt = sub.add_parser("list-tags", help="list the tags (names) of a layout or archive")
    lt.add_argument("image")

    d = sub.add_parser("delete", help="delete an image")
    d.add_argument("image")
    for command in (i, lt, d):
        _retry_flags(command)
        _registry_flags(command, "")

    li = sub.add_parser("login", help="store credentials for a registry in auth.json")
    li.add_argument("registry", help="HOST[:PORT][/NAMESPACE/REPO]")
    li.add_argument("-u", "--username")
    li.add_argument("-p", "--password")
    li.add_argument("--password-stdin", action="store_true",
                    help="read the password from standard input")
    li.add_argument("--get-login", action="store_true",
                    help="print the user name stored for the registry")
    li.add_argument("--authfile", help="auth file to write (default: the containers one)")
    li.add_argument("--cert-dir", help="TLS certificates for the registry")
    li.add_argument("--tls-verify", type=_bool, nargs="?", const=True, default=None,
                    metavar="BOOL",
                    help="require HTTPS and verify certificates (default true)")
    li.add_argument("--verify", type=_bool, default=True, metavar="BOOL",
                    help="check the credentials with the registry before storing them")
    lo = sub.add_parser("logout", help="remove stored credentials")
    lo.add_argument("registry", nargs="?")
    lo.add_argument("-a", "--all", action="store_true", help="remove every credential")
    lo.add_argument("--authfile", help="auth file to edit")
    for command in (c, i, m, lt, d, li, lo):  # global flags also work after the command
        _global_flags(command, suppress=True)
    return p


def _retry_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--retry-times", type=int, default=None, metavar="N",
                   help="retries of each registry request (default 3)")
    p.add_argument("--retry-delay", type=_duration, default=None, metavar="DURATION",
                   help="fixed delay between retries, e.g. 5s, 500ms, 1m (default: "
                        "exponential backoff)")


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}


def _duration(value: str) -> float:
    """A Go-style duration as skopeo takes it (``5s``, ``500ms``, ``1m30s``) or seconds."""
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|)", value.strip())
    if not parts or "".join(n + u for n, u in parts) != value.strip():
        raise argparse.ArgumentTypeError(f"invalid duration {value!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def _registry_flags(p: argparse.ArgumentParser, prefix: str) -> None:
    """skopeo's per-side registry flags: ``--src-creds`` etc. (``prefix`` is ``src-``,
    ``dest-`` or empty)."""
    side = {"src-": "source ", "dest-": "destination ", "": ""}[prefix]
    if prefix:  # copy: --authfile sets both sides, --src-authfile one
        p.add_argument(f"--{prefix}authfile", metavar="PATH", help=f"{side}auth file")
    else:
        p.add_argument("--authfile", metavar="PATH", help="auth file")
    p.add_argument(f"--{prefix}creds", metavar="USER[:PASSWORD]",
                   help=f"{side}registry credentials")
    p.add_argument(f"--{prefix}username", help=f"{side}registry user name")
    p.add_argument(f"--{prefix}password", help=f"{side}registry password")
    p.add_argument(f"--{prefix}no-creds", action="store_true",
                   help=f"access the {side}registry anonymously")
    p.add_argument(f"--{prefix}registry-token", metavar="TOKEN",
                   help=f"bearer token for the {side}registry")
    p.add_argument(f"--{prefix}cert-dir", metavar="DIR",
                   help=f"*.crt, *.cert and *.key files for the {side}registry")
    p.add_argument(f"--{prefix}tls-verify", type=_bool, nargs="?", const=True,
                   default=None, metavar="BOOL",
                   help=f"require HTTPS and verify certificates for the {side}registry "
                        "(default: true, unless registries.conf says insecure)")
    if prefix == "src-":
        p.add_argument("--authfile", metavar="PATH", help="auth file for both sides")


def _partial(args: argparse.Namespace, options: RegistryOptions) -> RegistryOptions:
    import attrs

    if args.partial_blob_dir is not None:
        options = attrs.evolve(options, partial_blob_dir=args.partial_blob_dir)
    if args.partial_blob_min_size is not None:
        options = attrs.evolve(options, partial_blob_min_size=args.partial_blob_min_size)
    return options


def _registry_options(args: argparse.Namespace, prefix: str) -> RegistryOptions:
    from .sysconfig.auth import Credentials

    def get(name: str) -> Any:
        return getattr(args, (prefix + name).replace("-", "_"), None)

    creds = None
    if get("creds"):
        if get("username") or get("password"):
            raise ConfigError(
                f"--{prefix}creds and --{prefix}username/--{prefix}password conflict")
        creds = Credentials.parse(get("creds"))
    elif get("username"):
        if get("password") is None:
            raise ConfigError(f"--{prefix}username needs --{prefix}password")
        creds = Credentials(get("username"), get("password"))
    elif get("password") is not None:
        raise ConfigError(f"--{prefix}password needs --{prefix}username")
    kw: dict[str, Any] = {}
    if getattr(args, "retry_times", None) is not None:
        kw["retry_times"] = args.retry_times
    if getattr(args, "retry_delay", None) is not None:
        kw["retry_delay"] = args.retry_delay
    return RegistryOptions(
        auth_file=get("authfile") or getattr(args, "authfile", None),
        credentials=creds,
        no_credentials=bool(get("no_creds")),
        registry_token=get("registry_token"),
        cert_dir=get("cert_dir"),
        tls_verify=get("tls_verify"),
        registries_conf=getattr(args, "registries_conf", None),
        registries_conf_dir=getattr(args, "registries_conf_dir", None),
        **kw)


def _global_flags(p: argparse.ArgumentParser, *, suppress: bool) -> None:
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    p.add_argument("--debug", action="store_true", default=default(False),
                   help="debug logging and tracebacks")
    p.add_argument("--override-os", metavar="OS", default=default(None),
                   help="use OS instead of the host's")
    p.add_argument("--override-arch", metavar="ARCH", default=default(None),
                   help="use ARCH instead of the host's architecture")
    p.add_argument("--override-variant", metavar="VARIANT", default=default(None),
                   help="use VARIANT instead of the host's architecture variant")
    p.add_argument("--tmpdir", default=default(None), help="directory for temporary files")
    p.add_argument("--registries-conf", metavar="PATH", default=default(None),
                   help="registries.conf to use instead of the system one")
    p.add_argument("--registries-conf-dir", metavar="DIR", default=default(None),
                   help="registries.conf.d drop-in directory to use instead of the "
                        "system and user ones")
    p.add_argument("--insecure-policy", action="store_true", default=default(False),
                   help="accepted for skopeo compatibility (no signature policy yet)")


def _platform(args: argparse.Namespace) -> Platform | None:
    if not (args.override_os or args.override_arch or args.override_variant):
        return None
    host = host_platform()
    return Platform(os=args.override_os or host.os,
                    architecture=args.override_arch or host.architecture,
                    variant=args.override_variant or
                    ("" if args.override_arch else host.variant)).normalized()


def _cmd_copy(args: argparse.Namespace) -> int:
    from .copy import CopyOptions, ManifestFormat, MultiArch, copy_image
    from .transports import parse_image_name

    multi = MultiArch(args.multi_arch) if args.multi_arch else (
        MultiArch.ALL if args.all else MultiArch.SYSTEM)
    tags = tuple(Reference.parse_named_tagged(t) for t in args.additional_tag)
    options = CopyOptions(
        multi_arch=multi,
        platform=_platform(args),
        manifest_format=ManifestFormat(args.format) if args.format else None,
        compress=args.dest_compress,
        decompress=args.dest_decompress,
        compression_format=Compression(args.dest_compress_format)
        if args.dest_compress_format else None,
        compression_level=args.dest_compress_level,
        preserve_digests=args.preserve_digests,
        remove_signatures=args.remove_signatures,
        jobs=max(1, args.image_parallel_copies),
        verify_diff_ids=args.verify_diff_ids,
        source_options=OpenOptions(tmp_dir=args.tmpdir, shared_blob_dir=args.src_shared_blob_dir,
                                   registry=_partial(args, _registry_options(args, "src-"))),
        dest_options=OpenOptions(tmp_dir=args.tmpdir, shared_blob_dir=args.dest_shared_blob_dir,
                                 accept_uncompressed_layers=args.dest_oci_accept_uncompressed_layers,
                                 additional_tags=tags,
                                 registry=_registry_options(args, "dest-")),
    )
    src, dst = parse_image_name(args.source), parse_image_name(args.destination)
    mode = "none" if args.quiet else args.progress
    if mode == "auto":
        mode = "tty" if sys.stderr.isatty() else "lines"
    renderer = _renderer(mode, sys.stderr)
    cancel = threading.Event()
    try:
        result = copy_image(src, dst, options, progress=renderer, cancel=cancel)
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        if isinstance(renderer, _Bar):
            renderer.finish()
    if args.digestfile:
        Path(args.digestfile).write_text(str(result.manifest_digest))
    if mode in ("lines", "tty"):
        print(f"Wrote manifest {result.manifest_digest} ({result.blobs_copied} blobs "
              f"copied, {result.blobs_skipped} already present)", file=sys.stderr)
    return 0


def _renderer(mode: str, stream: IO[str]) -> Any:
    from .copy import ProgressEvent, ProgressKind

    if mode == "none":
        return None
    if mode == "json":
        lock = threading.Lock()

        def emit(event: ProgressEvent) -> None:
            record: dict[str, Any] = {"event": event.kind.value,
                                      "digest": str(event.descriptor.digest),
                                      "mediaType": event.descriptor.media_type,
                                      "size": event.descriptor.size, "offset": event.offset}
            if event.result is not None:
                record["stored"] = str(event.result.digest)
            if event.kind is ProgressKind.PROGRESS:
                now = time.monotonic()
                key = str(event.descriptor.digest)
                if now - last.get(key, 0.0) < 0.2:
                    return
                last[key] = now
            with lock:
                stream.write(json.dumps(record) + "\n")
                stream.flush()

        last: dict[str, float] = {}
        return emit
    if mode == "lines":
        def lines(event: ProgressEvent) -> None:
            d = event.descriptor
            what = "config" if "config" in d.media_type else (
                "manifest" if event.kind is ProgressKind.MANIFEST else "blob")
            if event.kind is ProgressKind.STARTED:
                stream.write(f"Copying {what} {d.digest}\n")
            elif event.kind is ProgressKind.SKIPPED:
                stream.write(f"Copying {what} {d.digest} skipped: already exists\n")
            elif event.kind is ProgressKind.MANIFEST:
                stream.write(f"Writing manifest {d.digest}\n")
            stream.flush()
        return lines
    return _Bar(stream)


class _Bar:
    """One self-rewriting line: blobs done, bytes moved, throughput."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._offsets: dict[str, int] = {}
        self._sizes: dict[str, int] = {}
        self._done = 0
        self._start = time.monotonic()
        self._last = 0.0

    def __call__(self, event: Any) -> None:
        from .copy import ProgressKind

        key = str(event.descriptor.digest)
        with self._lock:
            if event.kind is ProgressKind.MANIFEST:
                return
            self._sizes[key] = event.descriptor.size
            self._offsets[key] = event.offset
            if event.kind in (ProgressKind.DONE, ProgressKind.SKIPPED):
                self._done += 1
            now = time.monotonic()
            if event.kind is ProgressKind.PROGRESS and now - self._last < 0.1:
                return
            self._last = now
            moved = sum(self._offsets.values())
            total = sum(self._sizes.values())
            rate = moved / max(now - self._start, 1e-6)
            self._stream.write(f"\rCopying blobs: {self._done}/{len(self._sizes)} done, "
                               f"{_mib(moved)} / {_mib(total)} ({_mib(rate)}/s)   ")
            self._stream.flush()

    def finish(self) -> None:
        self._stream.write("\n")
        self._stream.flush()


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _cmd_inspect(args: argparse.Namespace) -> int:
    from .image import inspect_image, open_image
    from .transports import parse_image_name

    ref = parse_image_name(args.image)
    options = OpenOptions(tmp_dir=args.tmpdir, registry=_registry_options(args, ""))
    if args.raw or args.config:
        with open_image(ref, options, platform=_platform(args),
                        resolve_index=args.config) as img:
            if args.raw and not args.config:
                sys.stdout.buffer.write(img.top_raw)
                return 0
            if args.raw:  # the config blob as stored (nothing for schema1, as skopeo)
                sys.stdout.buffer.write(img.config_raw() or b"")
                return 0
            converted = img.oci_config_json()
            if converted is None:
                raise OCIError(f"{args.image}: the image has no config")
            print(dumps(json.loads(converted), indent=4).decode())
            return 0
    info = inspect_image(ref, options, platform=_platform(args))
    if not args.no_tags and isinstance(ref, SupportsListTags) \
            and ref.transport.name == "docker":
        info["RepoTags"] = ref.list_tags(options)
    print(json.dumps(info, indent=4))
    return 0


def _cmd_manifest_digest(args: argparse.Namespace) -> int:
    print(manifest_digest(Path(args.manifest).read_bytes()))
    return 0


def _cmd_list_tags(args: argparse.Namespace) -> int:
    from .transports import parse_image_name

    ref = parse_image_name(args.image)
    if not isinstance(ref, SupportsListTags):
        raise InvalidReferenceError(
            f"transport {ref.transport.name!r} does not support listing tags")
    tags = ref.list_tags(OpenOptions(tmp_dir=args.tmpdir,
                                     registry=_registry_options(args, "")))
    out: dict[str, Any] = {}
    docker_ref = ref.docker_reference()
    if docker_ref is not None:
        out["Repository"] = docker_ref.name
    out["Tags"] = tags
    print(json.dumps(out, indent=4))
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    from .transports import parse_image_name

    ref = parse_image_name(args.image)
    if not isinstance(ref, SupportsDelete):
        raise InvalidReferenceError(f"transport {ref.transport.name!r} does not support delete")
    ref.delete(OpenOptions(tmp_dir=args.tmpdir, registry=_registry_options(args, "")))
    return 0


def _cmd_login(args: argparse.Namespace) -> int:
    from .sysconfig import auth

    if args.get_login:
        found = auth.lookup_credentials(*_split_registry(_strip_url(args.registry)),
                                        auth_file=args.authfile)
        if found is None:
            raise OCIError(f"not logged into {args.registry}")
        print(found.username)
        return 0
    registry = _strip_url(args.registry)
    if args.password_stdin and not args.username:
        raise ConfigError("--password-stdin needs --username")
    username = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password is not None:
        password = args.password
    else:
        import getpass

        password = getpass.getpass("Password: ")
    creds = auth.Credentials(username, password)
    if args.verify:
        from .transports.docker import verify_login

        verify_login(registry, creds,
                     RegistryOptions(cert_dir=args.cert_dir, tls_verify=args.tls_verify,
                                     registries_conf=args.registries_conf,
                                     registries_conf_dir=args.registries_conf_dir))
    path = auth.login(registry, creds, auth_file=args.authfile)
    print(f"Login Succeeded! (credentials stored in {path})", file=sys.stderr)
    return 0


def _strip_url(value: str) -> str:
    """``https://quay.io/`` -> ``quay.io`` (skopeo's login accepts URLs); docker's
    ``https://index.docker.io/v1/`` is ``docker.io``."""
    for scheme in ("https://", "http://"):
        if value.startswith(scheme):
            value = value[len(scheme):]
            value = value.split("/", 1)[0]  # a URL names a registry, not a repository
    value = value.rstrip("/")
    return "docker.io" if value in ("index.docker.io", "registry-1.docker.io") else value


def _split_registry(value: str) -> tuple[str, str | None]:
    host, _, repo = value.partition("/")
    return host, repo or None


def _cmd_logout(args: argparse.Namespace) -> int:
    from .sysconfig import auth

    if not args.all and not args.registry:
        raise InvalidReferenceError("logout needs a registry or --all")
    removed = auth.logout(_strip_url(args.registry or ""), auth_file=args.authfile,
                          all=args.all)
    if not removed and not args.all:
        raise OCIError(f"not logged into {args.registry}")
    print("Removed login credentials" + (" for all registries" if args.all
                                         else f" for {args.registry}"), file=sys.stderr)
    return 0


_COMMANDS = {
    "copy": _cmd_copy,
    "inspect": _cmd_inspect,
    "manifest-digest": _cmd_manifest_digest,
    "list-tags": _cmd_list_tags,
    "delete": _cmd_delete,
    "login": _cmd_login,
    "logout": _cmd_logout,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130
    except (OCIError, OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"Error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Hostile OCI layers, built in memory, for the layer-application tests.

Every case is a function of ``outside`` (an absolute sentinel directory next to the layer
root, whose content must never change) returning the layers to apply in order and what
must happen: an :class:`UnsafeArchiveError` naming an entry, a :class:`LayerLimitError`,
or containment (applied, nothing outside changed, plus an optional check of the root).
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import attrs
import zstandard

BLOCK = 512


class TarBuilder:
    """Writes tar entries with arbitrary names, types and link names (PAX format)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(  # noqa: SIM115  (closed by build())
            fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name: str, kind: bytes, *, mode: int, uid: int = 0, gid: int = 0,
              mtime: int = 1_600_000_000, linkname: str = "",
              pax: dict[str, str] | None = None) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.mtime = mtime
        ti.linkname = linkname
        if pax:
            ti.pax_headers = dict(pax)
        return ti

    def file(self, name: str, data: bytes = b"", *, mode: int = 0o644,
             **kw: object) -> TarBuilder:
        ti = self._info(name, tarfile.REGTYPE, mode=mode, **kw)  # type: ignore[arg-type]
        ti.size = len(data)
        self.tar.addfile(ti, io.BytesIO(data))
        return self

    def dir(self, name: str, *, mode: int = 0o755, **kw: object) -> TarBuilder:
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode=mode, **kw))  # type: ignore[arg-type]
        return self

    def symlink(self, name: str, target: str, **kw: object) -> TarBuilder:
        self.tar.addfile(self._info(name, tarfile.SYMTYPE, mode=0o777, linkname=target,
                                    **kw))  # type: ignore[arg-type]
        return self

    def hardlink(self, name: str, target: str, *, mode: int = 0o644,
                 **kw: object) -> TarBuilder:
        self.tar.addfile(self._info(name, tarfile.LNKTYPE, mode=mode, linkname=target,
                                    **kw))  # type: ignore[arg-type]
        return self

    def device(self, name: str, kind: bytes = tarfile.CHRTYPE, major: int = 0,
               minor: int = 0, *, mode: int = 0o666) -> TarBuilder:
        ti = self._info(name, kind, mode=mode)
        ti.devmajor, ti.devminor = major, minor
        self.tar.addfile(ti)
        return self

    def fifo(self, name: str, *, mode: int = 0o644) -> TarBuilder:
        self.tar.addfile(self._info(name, tarfile.FIFOTYPE, mode=mode))
        return self

    def whiteout(self, name: str) -> TarBuilder:
        return self.file(name)

    def raw(self, data: bytes) -> TarBuilder:
        """Append raw bytes (not block-aligned unless the caller makes them so)."""
        assert self.tar.fileobj is not None
        self.tar.fileobj.write(data)
        self.tar.offset += len(data)
        return self

    def build(self, *, close: bool = True) -> bytes:
        """The tar bytes; ``close=False`` leaves out the end-of-archive blocks."""
        if close:
            self.tar.close()
        return self.buf.getvalue()


def itn(n: int, digits: int, fmt: int) -> bytes:
    """A tar number field: octal when it fits (and ``fmt`` is USTAR), else GNU base-256
    (two's complement for negative numbers), like tarfile's private ``itn``."""
    if fmt == tarfile.USTAR_FORMAT or 0 <= n < 1 << (3 * (digits - 1)):
        return b"%0*o" % (digits - 1, n) + b"\0"
    value = n % (1 << (8 * (digits - 1)))
    return bytes([0xFF if n < 0 else 0x80]) + value.to_bytes(digits - 1, "big")


def header(name: str, size_field: bytes, kind: bytes = tarfile.REGTYPE) -> bytes:
    """A raw ustar header block with a hand-written 12-byte size field."""
    ti = tarfile.TarInfo(name)
    ti.type = kind
    block = bytearray(ti.tobuf(format=tarfile.USTAR_FORMAT)[:BLOCK])
    block[124:136] = size_field
    block[148:156] = b" " * 8
    checksum = sum(block)
    block[148:156] = b"%06o\x00 " % checksum
    return bytes(block)


def pax_header(records: dict[str, str], *, claimed_size: int | None = None) -> bytes:
    """A raw PAX extended header (type ``x``) with its body padded to a block."""
    body = b""
    for key, value in records.items():
        item = f" {key}={value}\n".encode()
        length = len(item) + len(str(len(item)))
        if len(str(length)) != len(str(len(item))):
            length = len(item) + len(str(length))
        body += str(length).encode() + item
    size = len(body) if claimed_size is None else claimed_size
    head = header("././@PaxHeader", itn(size, 12, tarfile.GNU_FORMAT), tarfile.XHDTYPE)
    return head + body + b"\0" * (-len(body) % BLOCK)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=1).compress(data)


@functools.lru_cache(maxsize=4)
def gzip_zeros(total: int) -> bytes:
    """A gzip stream of ``total`` zero bytes, compressed in pieces (a bomb)."""
    import zlib

    c = zlib.compressobj(1, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    piece = b"\0" * (1 << 20)
    out = []
    for _ in range(total // len(piece)):
        out.append(c.compress(piece))
    out.append(c.flush())
    return b"".join(out)


@functools.lru_cache(maxsize=4)
def tar_bomb(file_size: int) -> bytes:
    """A gzip-compressed tar with one file of ``file_size`` zeros, built in pieces."""
    import zlib

    ti = tarfile.TarInfo("bomb")
    ti.size = file_size
    c = zlib.compressobj(1, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    out = [c.compress(ti.tobuf(format=tarfile.USTAR_FORMAT))]
    piece = b"\0" * (1 << 20)
    for _ in range(file_size // len(piece)):
        out.append(c.compress(piece))
    out.append(c.compress(b"\0" * (1024 + (-file_size % BLOCK))))
    out.append(c.flush())
    return b"".join(out)


# --------------------------------------------------------------------------- sentinel


def make_sentinel(outside: Path) -> None:
    """Files with known content, a symlink and a nested dir: what an escape would hit."""
    outside.mkdir()
    (outside / "secret").write_bytes(b"top secret\n")
    (outside / "x").write_bytes(b"x\n")
    (outside / "sub").mkdir()
    (outside / "sub" / "file").write_bytes(b"nested\n")
    (outside / "etc").mkdir()
    (outside / "etc" / "passwd").write_bytes(b"root:x:0:0::/root:/bin/sh\n")
    os.symlink("secret", outside / "link-to-secret")
    os.chmod(outside / "secret", 0o600)


def snapshot(top: Path, exclude: Path) -> dict[str, tuple[object, ...]]:
    """Everything under ``top`` except the ``exclude`` subtree: names, types, modes,
    owners, link counts, sizes, mtimes, contents and link targets."""
    result: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != exclude
                       and not str(here / d).startswith(str(exclude) + os.sep)]
        for name in [*dirnames, *filenames, "."]:
            p = here / name if name != "." else here
            if p == exclude:
                continue
            st = os.lstat(p)
            info: tuple[object, ...] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                        st.st_uid, st.st_gid, st.st_nlink, st.st_mtime_ns)
            if stat.S_ISREG(st.st_mode):
                info += (st.st_size, p.read_bytes())
            elif stat.S_ISLNK(st.st_mode):
                info += (os.readlink(p),)
            elif stat.S_ISDIR(st.st_mode):
                info += (tuple(sorted(os.listdir(p))),)
            result[str(p.relative_to(top))] = info
    return result


# --------------------------------------------------------------------------- the corpus


@attrs.frozen
class Case:
    #: layers to apply in order (the last is the hostile one, earlier ones set up)
    layers: list[bytes]
    #: "unsafe", "limit" or "contained"
    expect: str
    #: for "unsafe": the entry name the error must carry
    entry: str | None = None
    #: for "contained": a check of the root after applying
    check: Callable[[Path], None] | None = None
    #: ApplyLimits keyword arguments
    limits: dict[str, int] = attrs.field(factory=dict)


def _rel(outside: Path) -> str:
    return str(outside).lstrip("/")


def _exists_in_root(*parts: str) -> Callable[[Path], None]:
    def check(root: Path) -> None:
        assert os.path.lexists(root.joinpath(*parts)), parts
    return check


def corpus(outside: Path) -> dict[str, Case]:
    """The named hostile layers; ``outside`` is the absolute sentinel directory, which is
    the root's sibling's (``<tmp>/outside`` vs ``<tmp>/base/root``)."""
    o = str(outside)
    cases: dict[str, Case] = {}
    t = TarBuilder

    cases["traversal"] = Case([t().file("../../outside/x", b"pwned").build()],
                              "unsafe", "../../outside/x")
    cases["traversal-inner"] = Case([t().dir("a").file("a/../../../outside/x", b"p").build()],
                                    "unsafe", "a/../../../outside/x")
    cases["absolute"] = Case([t().file(o + "/x", b"pwned").file("/etc/x", b"e").build()],
                             "contained",
                             check=_exists_in_root(_rel(outside), "x"))
    cases["symlink-then-write"] = Case(
        [t().symlink("link", "/").file("link" + o + "/secret", b"pwned")
         .file("link/etc/passwd", b"pwned").build()],
        "contained", check=_exists_in_root(_rel(outside), "secret"))
    cases["symlink-abs-to-outside-then-write"] = Case(
        [t().symlink("link", o).file("link/secret", b"pwned").dir("link/sub")
         .file("link/sub/file", b"pwned").build()],
        "contained", check=_exists_in_root(_rel(outside), "sub", "file"))
    cases["symlink-dotdot-chain"] = Case(
        [t().symlink("up", "..").symlink("up2", "up/up/..").dir("a")
         .symlink("a/b", "../up2/../..").file("up/up/up/outside/secret", b"pwned")
         .file("a/b/outside/x", b"pwned").build()],
        "contained", check=_exists_in_root("outside", "secret"))
    cases["symlink-relative-escape"] = Case(
        [t().dir("d").symlink("d/esc", "../../../outside").file("d/esc/secret", b"pwned")
         .build()],
        "contained", check=_exists_in_root("outside", "secret"))
    cases["symlink-escape-across-layers"] = Case(
        [t().symlink("esc", "../../outside").build(),
         t().file("esc/secret", b"pwned").build()],
        "contained", check=_exists_in_root("outside", "secret"))
    cases["symlink-loop"] = Case(
        [t().symlink("a", "b").symlink("b", "a").file("a/x", b"pwned").build()],
        "unsafe", "a/x")
    cases["symlink-self-loop"] = Case(
        [t().symlink("s", "s/x").file("s/y", b"pwned").build()], "unsafe", "s/y")
    cases["symlink-to-root-as-parent"] = Case(
        [t().symlink("here", ".").symlink("slash", "/").file("here/slash/here/f", b"ok")
         .build()],
        "contained", check=_exists_in_root("f"))
    cases["hardlink-escape"] = Case(
        [t().hardlink("h", "../../outside/secret").build()], "unsafe", "h")
    cases["hardlink-absolute"] = Case(
        [t().hardlink("h", o + "/secret").build()], "unsafe", "h")
    cases["hardlink-via-symlink"] = Case(
        [t().symlink("l", o).hardlink("h", "l/secret").build()], "unsafe", "h")
    cases["hardlink-via-dotdot-symlink"] = Case(
        [t().symlink("l", "../../outside").hardlink("h", "l/secret").build()], "unsafe", "h")
    cases["hardlink-to-escaping-symlink"] = Case(
        [t().symlink("s", o + "/secret").hardlink("h", "s").build()],
        "contained", check=lambda root: _is_symlink(root / "h", o + "/secret"))
    cases["hardlink-forward"] = Case(
        [t().hardlink("h", "later").file("later", b"x").build()], "unsafe", "h")
    cases["hardlink-to-directory"] = Case(
        [t().dir("d").hardlink("h", "d").build()], "unsafe", "h")
    cases["root-symlink-dot"] = Case(
        [t().symlink(".", o).file("x", b"pwned").build()], "unsafe", ".")
    cases["root-symlink-dot-slash"] = Case(
        [t().symlink("./", o).file("x", b"pwned").build()], "unsafe", "./")
    cases["root-symlink-slash"] = Case(
        [t().symlink("/", o).file("x", b"pwned").build()], "unsafe", "/")
    cases["root-file"] = Case([t().file(".", b"pwned").build()], "unsafe", ".")
    cases["root-hardlink"] = Case(
        [t().file("f", b"x").hardlink("./", "f").build()], "unsafe", "./")
    cases["whiteout-through-symlink"] = Case(
        [t().symlink("link", o).build(), t().whiteout("link/.wh.secret")
         .whiteout("link/.wh.sub").build()],
        "contained")
    cases["whiteout-through-relative-symlink"] = Case(
        [t().symlink("link", "../../outside").build(), t().whiteout("link/.wh.secret")
         .whiteout("link/sub/.wh.file").build()],
        "contained")
    cases["opaque-through-symlink"] = Case(
        [t().symlink("link", o).symlink("rel", "../../outside").build(),
         t().whiteout("link/.wh..wh..opq").whiteout("rel/.wh..wh..opq").build()],
        "contained")
    cases["whiteout-dotdot"] = Case([t().whiteout("../.wh.outside").build()],
                                    "unsafe", "../.wh.outside")
    cases["whiteout-empty-name"] = Case([t().whiteout("d/.wh.").build()], "unsafe", "d/.wh.")
    cases["whiteout-dot-dot-name"] = Case([t().whiteout(".wh...").build()], "unsafe",
                                          ".wh...")
    cases["non-directory-parent"] = Case([t().file("f", b"x").file("f/x", b"y").build()],
                                         "unsafe", "f/x")
    cases["decompression-bomb"] = Case([tar_bomb(64 << 20)], "limit",
                                       limits={"max_bytes": 8 << 20})
    cases["zero-bomb"] = Case([gzip_zeros(64 << 20)], "limit", limits={"max_bytes": 8 << 20})
    cases["entry-count"] = Case(
        [_many_files(50)], "limit", limits={"max_entries": 20})
    cases["lying-size-short"] = Case(
        [t().file("ok", b"fine").raw(header("liar", itn(10000, 12,
                                                                tarfile.USTAR_FORMAT))
                                     + b"a" * 100).build(close=False)],
        "unsafe", "liar")
    cases["negative-size"] = Case(
        [header("neg", itn(-1024, 12, tarfile.GNU_FORMAT)) + b"\0" * 2048],
        "unsafe", "neg")
    cases["negative-pax-size"] = Case(
        [pax_header({"size": "-512"}) + header("neg", itn(0, 12, tarfile.USTAR_FORMAT))
         + b"\0" * 2048],
        "unsafe", "neg")
    cases["huge-pax-header"] = Case(
        [pax_header({"comment": "A" * (2 << 20)}) + header("f", b"%011o\0" % 0)
         + b"\0" * 1024],
        "limit")
    cases["pax-header-claims-gigabytes"] = Case(
        [pax_header({"path": "x"}, claimed_size=10 << 30) + b"\0" * 4096], "limit")
    cases["pax-header-chain"] = Case(
        [b"".join(pax_header({"comment": "c"}) for _ in range(64))
         + header("f", b"%011o\0" % 0) + b"\0" * 1024],
        "limit")
    cases["long-name"] = Case([t().file("a/" * 3000 + "f", b"x").build()], "limit")
    cases["garbage-after-end"] = Case(
        [t().file("f", b"x").build() + b"\0" * 512 + b"garbage" + b"\0" * 505], "unsafe")
    cases["corrupt-header-midstream"] = Case(
        [t().file("f", b"x").build(close=False) + b"\xff" * 512 + b"\0" * 1024], "unsafe")
    cases["gnu-sparse"] = Case(
        [header("sparse", b"%011o\0" % 0, tarfile.GNUTYPE_SPARSE) + b"\0" * 1024],
        "unsafe", "sparse")
    cases["unknown-type"] = Case(
        [header("weird", b"%011o\0" % 0, b"V") + b"\0" * 1024], "unsafe", "weird")
    return cases


def _is_symlink(path: Path, target: str) -> None:
    assert path.is_symlink()
    assert os.readlink(path) == target


def _many_files(n: int) -> bytes:
    b = TarBuilder()
    for i in range(n):
        b.file(f"f{i}", b"")
    return b.build()

"""Content digests (``algorithm:hex``), streaming hashers and the one verifying reader.

Every blob read anywhere in the project goes through :class:`VerifyingReader`: it never
reads more than the announced size (plus one byte, to notice a longer stream), and at the
end of the stream it raises :class:`~oci_image.errors.SizeMismatchError` or
:class:`~oci_image.errors.DigestMismatchError` instead of returning EOF. A consumer that
stores data must therefore read to EOF before it commits anything: that is how "nothing
unverified reaches the destination" is enforced in one place.
"""

from __future__ import annotations

import abc
import re
from typing import Final, Protocol

import attrs

from ..errors import DigestMismatchError, SizeMismatchError, SpecError, UnsupportedDigestError

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "Digest",
    "DigestHasher",
    "Readable",
    "VerifiedStream",
    "VerifyingReader",
]

#: algorithm name -> length of its lowercase hex encoding
SUPPORTED_ALGORITHMS: Final = {"sha256": 64, "sha512": 128}

_ALGORITHM_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*\Z")
_ENCODED_RE = re.compile(r"^[a-zA-Z0-9=_-]+\Z")
_HEX_RE = re.compile(r"^[a-f0-9]+\Z")


class Readable(Protocol):
    """The part of a binary file object the library reads from."""

    def read(self, size: int = -1, /) -> bytes: ...


class VerifiedStream(abc.ABC):
    """A stream that verifies itself: its last ``read`` raises instead of returning EOF
    when the content does not match ``expected_digest``/``expected_size``. After EOF,
    ``actual_digest`` and ``bytes_read`` describe what was read.

    Destinations accept a stream of this type as already verified (and do not hash it a
    second time); any other stream they wrap in a :class:`VerifyingReader`.
    """

    @property
    @abc.abstractmethod
    def expected_digest(self) -> Digest | None: ...

    @property
    @abc.abstractmethod
    def expected_size(self) -> int | None: ...

    @property
    @abc.abstractmethod
    def bytes_read(self) -> int: ...

    @property
    @abc.abstractmethod
    def actual_digest(self) -> Digest: ...

    @abc.abstractmethod
    def read(self, n: int = -1, /) -> bytes: ...


@attrs.frozen(order=True)
class Digest:
    """A validated content digest such as ``sha256:e3b0c4...``.

    Build one with :meth:`parse`, :meth:`from_bytes` or a :class:`DigestHasher`;
    ``str(d)`` is the canonical ``algorithm:hex`` form.
    """

    algorithm: str
    hex: str

    def __attrs_post_init__(self) -> None:
        _validate(self.algorithm, self.hex)

    @classmethod
    def parse(cls, value: object) -> Digest:
        """Parse ``algorithm:hex``; raise :class:`SpecError` when it is malformed and
        :class:`UnsupportedDigestError` for a well-formed digest of an unknown algorithm."""
        if isinstance(value, Digest):
            return value
        if not isinstance(value, str):
            raise SpecError(f"digest must be a string, not {type(value).__name__}")
        algorithm, sep, encoded = value.partition(":")
        if not sep:
            raise SpecError(f"invalid digest {value!r}: missing ':'")
        return cls(algorithm, encoded)

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of ``data``."""
        h = DigestHasher(algorithm)
        h.update(data)
        return h.digest()

    @classmethod
    def from_stream(cls, stream: Readable, algorithm: str = "sha256",
                    chunk_size: int = 1 << 20) -> tuple[Digest, int]:
        """Read ``stream`` to EOF; return its digest and length."""
        h = DigestHasher(algorithm)
        size = 0
        while chunk := stream.read(chunk_size):
            h.update(chunk)
            size += len(chunk)
        return h.digest(), size

    @property
    def encoded(self) -> str:
        """The part after the colon (the spec's name for :attr:`hex`)."""
        return self.hex

    def hasher(self) -> DigestHasher:
        """A fresh hasher of this digest's algorithm."""
        return DigestHasher(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def short(self, length: int = 12) -> str:
        """The first ``length`` hex characters, for messages."""
        return self.hex[:length]


def _validate(algorithm: str, encoded: str) -> None:
    if not isinstance(algorithm, str) or not _ALGORITHM_RE.match(algorithm):
        raise SpecError(f"invalid digest algorithm {algorithm!r}")
    if not isinstance(encoded, str) or not _ENCODED_RE.match(encoded):
        raise SpecError(f"invalid digest {algorithm}:{encoded!r}: bad encoding")
    length = SUPPORTED_ALGORITHMS.get(algorithm)
    if length is None:
        raise UnsupportedDigestError(
            f"unsupported digest algorithm {algorithm!r} (supported: "
            f"{', '.join(SUPPORTED_ALGORITHMS)})"
        )
    if len(encoded) != length or not _HEX_RE.match(encoded):
        raise SpecError(
            f"invalid {algorithm} digest {algorithm}:{encoded}: expected {length} lowercase "
            "hex characters"
        )


class DigestHasher:
    """A streaming hasher that produces a :class:`Digest`."""

    __slots__ = ("_algorithm", "_h")

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in SUPPORTED_ALGORITHMS:
            raise UnsupportedDigestError(f"unsupported digest algorithm {algorithm!r}")
        import hashlib  # (here: loading OpenSSL costs ms, and parsing digests never hashes)

        self._algorithm = algorithm
        self._h = hashlib.new(algorithm)

    @property
    def algorithm(self) -> str:
        return self._algorithm

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> Digest:
        return Digest(self._algorithm, self._h.hexdigest())


class VerifyingReader(VerifiedStream):
    """Wrap ``stream``; yield its bytes; fail at EOF unless they match ``digest`` and ``size``.

    ``size`` may be ``None`` when unknown (the digest is still checked). The reader never
    asks the underlying stream for more than ``size + 1`` bytes in total, so a stream that
    is longer than announced cannot exhaust memory or disk. After the end has been
    verified, :attr:`verified` is true; any later read returns ``b""``.

    ``name`` is used in error messages (defaults to the digest).
    """

    def __init__(self, stream: Readable, digest: Digest | None, size: int | None, *,
                 name: str | None = None) -> None:
        if size is not None and size < 0:
            raise SpecError(f"negative size {size} for {name or digest}")
        self._stream = stream
        self._expected = digest
        self._size = size
        self._name = name or (str(digest) if digest else "blob")
        self._hasher = DigestHasher(digest.algorithm if digest else "sha256")
        self._count = 0
        self._done = False
        self._error: Exception | None = None
        self._actual: Digest | None = None

    @property
    def expected_digest(self) -> Digest | None:
        return self._expected

    @property
    def expected_size(self) -> int | None:
        return self._size

    @property
    def bytes_read(self) -> int:
        return self._count

    @property
    def verified(self) -> bool:
        return self._done and self._error is None

    @property
    def actual_digest(self) -> Digest:
        """The digest of what was read; only valid once the stream ended."""
        if self._actual is None:
            raise RuntimeError("stream not read to the end yet")
        return self._actual

    def read(self, n: int = -1, /) -> bytes:
        if self._error is not None:
            raise self._error
        if self._done:
            return b""
        want = n if n is not None and n >= 0 else 1 << 20
        if self._size is not None:
            # Allow one byte past the announced size so that a longer stream is noticed.
            want = min(want, self._size + 1 - self._count)
        data = self._stream.read(want) if want > 0 else b""
        if data:
            self._count += len(data)
            if self._size is not None and self._count > self._size:
                self._fail(SizeMismatchError(
                    f"{self._name}: content is longer than the expected {self._size} bytes",
                    name=self._name, expected=self._size, actual=self._count))
            self._hasher.update(data)
            return data
        if n == 0:
            return b""
        self._finish()
        return b""

    def read_all_and_verify(self) -> None:
        """Read and discard the rest of the stream, then verify."""
        while self.read(1 << 20):
            pass

    def _finish(self) -> None:
        self._done = True
        self._actual = self._hasher.digest()
        if self._size is not None and self._count != self._size:
            self._fail(SizeMismatchError(
                f"{self._name}: expected {self._size} bytes, got {self._count}",
                name=self._name, expected=self._size, actual=self._count))
        if self._expected is not None and self._actual != self._expected:
            self._fail(DigestMismatchError(
                f"{self._name}: digest mismatch: expected {self._expected}, "
                f"got {self._actual}",
                name=self._name, expected=self._expected, actual=self._actual))

    def _fail(self, error: Exception) -> None:
        self._error = error
        self._done = True
        raise error

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


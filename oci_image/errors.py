"""The one exception tree of ``oci_image`` (``oci_storage`` and ``oci_runtime`` hang
their own branches from the same root)::

    OCIError(Exception)
    ├── InvalidReferenceError(OCIError, ValueError)   a malformed image or transport reference
    │   └── ShortNameError                            a short name that cannot be resolved safely
    ├── ConfigError(OCIError, ValueError)             a malformed registries.conf / auth.json / ...
    │   └── CredentialHelperError                     a docker-credential-* helper failed
    ├── SpecError(OCIError, ValueError)               malformed manifest / index / config / JSON
    │   ├── UnsupportedMediaTypeError                 a media type we cannot use here
    │   ├── UnsupportedDigestError                    a digest algorithm we cannot verify
    │   └── ContentTooLargeError                      a manifest or config over its size limit
    ├── VerificationError(OCIError, ValueError)       content does not match what was promised
    │   ├── DigestMismatchError                       expected, actual, name
    │   ├── SizeMismatchError                         expected, actual, name
    │   └── DiffIDMismatchError                       a layer's uncompressed digest vs config
    ├── NotFoundError(OCIError, LookupError)
    │   ├── ManifestNotFoundError                     no such image / tag / instance
    │   │   └── ManifestUnknownError(RegistryError, ManifestNotFoundError)
    │   ├── BlobNotFoundError
    │   │   └── BlobUnknownError(RegistryError, BlobNotFoundError)
    │   ├── NameUnknownError(RegistryError, NotFoundError)   no such repository
    │   └── NoMatchingPlatformError                   no instance of an index fits the platform
    ├── TransportError(OCIError)                      I/O with a source or destination
    │   ├── UnknownTransportError(TransportError, ValueError)
    │   ├── ArchiveError                              bad layout / archive / dir contents
    │   ├── UnsafePathError(ArchiveError)             a path that points outside its container
    │   ├── ManifestTypeRejectedError                 the destination refuses a manifest type
    │   ├── RegistryError                             a registry answered with an error
    │   │   │                                         (status, codes, retry_after)
    │   │   ├── AuthenticationError                   no or wrong credentials (401), 401 loops
    │   │   ├── AccessDeniedError                     authenticated, but not allowed (403, DENIED)
    │   │   └── TooManyRequestsError                  429, still after every retry
    │   ├── NetworkError                              connection, TLS or timeout failure
    │   └── BlockedRegistryError                      registries.conf blocks this registry
    └── CopyError(OCIError)                           the copy itself cannot go on
        ├── ConversionError                           a format change that cannot be made
        ├── PreserveDigestsError(ConversionError)     --preserve-digests forbids a change
        └── CopyCancelledError                        the caller's cancel event was set

``oci_storage.errors.StorageError`` and ``oci_runtime.errors.OCIRuntimeError`` are further
branches of ``OCIError``.

Messages name the object concerned (a digest, a path, a transport string) and never contain
credentials. ``OSError`` about a path the caller gave us propagates unchanged.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "ArchiveError",
    "AuthenticationError",
    "BlobNotFoundError",
    "BlobUnknownError",
    "BlockedRegistryError",
    "ConfigError",
    "ContentTooLargeError",
    "ConversionError",
    "CopyCancelledError",
    "CopyError",
    "CredentialHelperError",
    "DiffIDMismatchError",
    "DigestMismatchError",
    "InvalidReferenceError",
    "ManifestNotFoundError",
    "ManifestTypeRejectedError",
    "ManifestUnknownError",
    "NameUnknownError",
    "NetworkError",
    "NoMatchingPlatformError",
    "NotFoundError",
    "OCIError",
    "PreserveDigestsError",
    "RegistryError",
    "ShortNameError",
    "SizeMismatchError",
    "SpecError",
    "TooManyRequestsError",
    "TransportError",
    "UnknownTransportError",
    "UnsafePathError",
    "UnsupportedDigestError",
    "UnsupportedMediaTypeError",
    "VerificationError",
    "is_transient",
]


class OCIError(Exception):
    """Root of every error raised on purpose by oci_image, oci_storage and oci_runtime."""


class InvalidReferenceError(OCIError, ValueError):
    """An image reference or a transport reference string is malformed."""


class ShortNameError(InvalidReferenceError):
    """A short name (``alpine``) that cannot be resolved to one registry safely
    (``short-name-mode = "enforcing"`` with several candidates and no terminal)."""


class ConfigError(OCIError, ValueError):
    """A configuration file (registries.conf, auth.json, certs.d, storage.conf) is
    malformed; the message names the file."""


class CredentialHelperError(ConfigError):
    """A ``docker-credential-*`` helper failed or answered nonsense."""


class SpecError(OCIError, ValueError):
    """A manifest, index, config or other spec document is malformed."""


class UnsupportedMediaTypeError(SpecError):
    """A media type that cannot be used where it was found."""


class UnsupportedDigestError(SpecError):
    """A digest whose algorithm we cannot compute (only sha256 and sha512 are)."""


class ContentTooLargeError(SpecError):
    """A manifest, index or config larger than the configured limit."""


class VerificationError(OCIError, ValueError):
    """Content does not match the digest or size it was announced with.

    ``name`` says which blob (usually its expected digest), ``expected`` and ``actual``
    are the two values compared.
    """

    def __init__(self, message: str, *, name: str = "", expected: object = None,
                 actual: object = None) -> None:
        super().__init__(message)
        self.name = name
        self.expected = expected
        self.actual = actual


class DigestMismatchError(VerificationError):
    """The content hashes to another digest than announced."""


class SizeMismatchError(VerificationError):
    """The content is longer or shorter than announced."""


class DiffIDMismatchError(VerificationError):
    """A layer's uncompressed content does not match the diff_id in the image config."""


class NotFoundError(OCIError, LookupError):
    """Something asked for does not exist."""


class ManifestNotFoundError(NotFoundError):
    """No image, tag or manifest instance by that name or digest."""


class BlobNotFoundError(NotFoundError):
    """A blob referenced by a manifest is missing."""


class NoMatchingPlatformError(NotFoundError):
    """No instance of a manifest list / index matches the wanted platform."""


class TransportError(OCIError):
    """A failure reading from or writing to a source or destination."""


class UnknownTransportError(TransportError, ValueError):
    """A ``transport:details`` string names a transport that is not registered."""


class ArchiveError(TransportError):
    """An OCI layout, archive or ``dir:`` directory has invalid contents."""


class UnsafePathError(ArchiveError):
    """A path inside an archive or layout points outside of it."""


class ManifestTypeRejectedError(TransportError):
    """The destination cannot store a manifest of this media type (another may work)."""


class RegistryError(TransportError):
    """A registry answered a request with an error.

    ``status`` is the HTTP status (``None`` when there was no answer), ``codes`` the
    ``errors[].code`` values of the body (``("MANIFEST_UNKNOWN",)``), ``retry_after`` the
    seconds a 429/503 asked us to wait. Messages never contain credentials or tokens.
    """

    def __init__(self, message: str, *, status: int | None = None,
                 codes: tuple[str, ...] = (), retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes
        self.retry_after = retry_after


class AuthenticationError(RegistryError):
    """No credentials, wrong credentials, or a registry that keeps answering 401."""


class AccessDeniedError(RegistryError):
    """The credentials were accepted but do not allow this (403, ``DENIED``, a token
    without the scope asked for)."""


class TooManyRequestsError(RegistryError):
    """429 Too Many Requests, still after every retry the budget allowed."""


class ManifestUnknownError(RegistryError, ManifestNotFoundError):
    """The registry has no such tag or manifest (``MANIFEST_UNKNOWN``, 404)."""


class BlobUnknownError(RegistryError, BlobNotFoundError):
    """The registry has no such blob (``BLOB_UNKNOWN``, 404)."""


class NameUnknownError(RegistryError, NotFoundError):
    """The registry has no such repository (``NAME_UNKNOWN``)."""


class NetworkError(TransportError):
    """A connection, TLS or timeout failure talking to a registry, after every retry."""


class BlockedRegistryError(TransportError):
    """registries.conf marks the registry (or the mirror's only source) as blocked."""


class CopyError(OCIError):
    """A copy cannot be carried out as asked."""


class ConversionError(CopyError):
    """A manifest or layer format change that cannot be made."""


class PreserveDigestsError(ConversionError):
    """``preserve_digests`` was asked for, but the copy would have to change a digest."""


class CopyCancelledError(CopyError):
    """The copy was cancelled by the caller."""


#: HTTP statuses worth trying again
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """Whether doing the same thing again may succeed: a network failure, or a registry
    answer such as 429 or 503 (not an authentication, not-found or verification
    failure)."""
    if isinstance(exc, NetworkError):
        return True
    if isinstance(exc, RegistryError):
        return exc.status in TRANSIENT_STATUSES or bool(
            {"BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID", "TOOMANYREQUESTS"} & set(exc.codes))
    return False

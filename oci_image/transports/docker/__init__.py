"""``docker://`` -- images in registries speaking the OCI distribution-spec / Docker
registry v2 API, as skopeo reads and writes them.

Layers: :mod:`._reference` (the transport string), :mod:`._session` (options and config
files to clients), :mod:`._http` (one endpoint: TLS, ping, auth, redirects, retries, error
mapping), :mod:`._auth` (challenges and tokens), :mod:`._registry` (manifest, tag and
referrer operations on a repository), :mod:`._blobreader` (resumable downloads and the
partial-blob cache), :mod:`._upload` (monolithic, streamed and chunked uploads),
:mod:`._locations` (where blobs were seen, for cross-repository mounts), and the
:mod:`._source` / :mod:`._dest` that the copy engine uses. This package is the only one
that imports httpx.
"""

from ...interfaces import RegistryOptions
from ...sysconfig.auth import Credentials
from ._dest import DockerDestination
from ._reference import TRANSPORT, DockerReference, DockerTransport
from ._source import DockerSource

__all__ = ["TRANSPORT", "DockerDestination", "DockerReference", "DockerSource",
           "DockerTransport", "verify_login"]


def verify_login(registry: str, credentials: Credentials,
                 options: RegistryOptions | None = None) -> None:
    """Check ``credentials`` against ``registry`` (``HOST[:PORT][/REPO]``) the way
    ``skopeo login`` does: an authenticated ``GET /v2/``. Raises
    :class:`~oci_image.errors.AuthenticationError` when they are refused."""
    import attrs

    from ._http import raise_for_status
    from ._session import Session

    host, _, repo = registry.partition("/")
    session = Session(attrs.evolve(options or RegistryOptions(), credentials=credentials,
                                   no_credentials=False))
    try:
        client = session.client(host, repo)
        response = client.send("GET", "/v2/", scopes=frozenset())
        raise_for_status(response, f"login to {host}")
    finally:
        session.close()

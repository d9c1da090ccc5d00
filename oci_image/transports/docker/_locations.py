"""Where blobs were seen: ``digest -> (registry, repository)`` records, so that a push
can ask the registry to mount a blob from another repository instead of uploading it
(containers/image's blob info cache, ``KnownLocations``).

Records come from pulls (every blob of a manifest fetched from a repository exists
there) and from pushes. They live in memory and, unless disabled, in a small SQLite file
in the user's cache directory, so that a push in one run can mount what another run
pushed or pulled. A wrong record costs one refused mount request, nothing more.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from ...spec import Digest

__all__ = ["BlobLocations", "default_cache_dir", "locations"]

log = logging.getLogger(__name__)

_MAX_CANDIDATES = 5


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ocistack`` (``~/.cache/ocistack``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return Path(base) / "ocistack"


class BlobLocations:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._memory: dict[tuple[str, str], dict[str, float]] = {}
        self._db_ok = path is not None

    def _db(self) -> sqlite3.Connection | None:
        if not self._db_ok or self._path is None:
            return None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            conn = sqlite3.connect(self._path, timeout=5)
            # a cache: losing the last records in a crash is harmless, an fsync per copy
            # is not (it was most of a no-op pull's time)
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("CREATE TABLE IF NOT EXISTS locations (digest TEXT, host TEXT, "
                         "repo TEXT, seen REAL, PRIMARY KEY (digest, host, repo))")
            return conn
        except sqlite3.Error as exc:
            log.debug("blob location cache disabled: %s", exc)
            self._db_ok = False
            return None

    def record(self, digests: Iterable[Digest], host: str, repo: str) -> None:
        now = time.time()
        rows = [(str(d), host, repo, now) for d in digests]
        if not rows:
            return
        with self._lock:
            for digest, _, _, _ in rows:
                self._memory.setdefault((digest, host), {})[repo] = now
        conn = self._db()
        if conn is None:
            return
        with contextlib.closing(conn), contextlib.suppress(sqlite3.Error), conn:
            conn.executemany("INSERT OR REPLACE INTO locations VALUES (?, ?, ?, ?)", rows)

    def candidates(self, digest: Digest, host: str, exclude: str) -> list[str]:
        """Repositories of ``host`` that had ``digest``, most recently seen first."""
        seen: dict[str, float] = {}
        with self._lock:
            seen.update(self._memory.get((str(digest), host), {}))
        conn = self._db()
        if conn is not None:
            with contextlib.closing(conn), contextlib.suppress(sqlite3.Error):
                for repo, when in conn.execute(
                        "SELECT repo, seen FROM locations WHERE digest = ? AND host = ?",
                        (str(digest), host)):
                    seen[repo] = max(seen.get(repo, 0.0), when)
        seen.pop(exclude, None)
        return sorted(seen, key=lambda r: -seen[r])[:_MAX_CANDIDATES]


_shared: BlobLocations | None = None
_shared_lock = threading.Lock()


def locations() -> BlobLocations:
    """The process-wide cache (persistent unless ``OCISTACK_NO_BLOB_CACHE`` is set)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            persist = not os.environ.get("OCISTACK_NO_BLOB_CACHE")
            _shared = BlobLocations(
                default_cache_dir() / "blob-locations.sqlite3" if persist else None)
        return _shared

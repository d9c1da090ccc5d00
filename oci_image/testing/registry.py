"""A throw-away local registry for tests, demos and benchmarks: the CNCF distribution
registry (``docker-registry``, Debian package of the same name) serving plain HTTP on a
free loopback port, with its storage in a directory you choose::

    with LocalRegistry(tmp_dir) as reg:
        copy_image(src, f"docker://{reg.host}/demo:1", CopyOptions(
            dest_options=OpenOptions(registry=RegistryOptions(tls_verify=False))))

It binds ``127.0.0.1:0`` and reads the port back from the registry's log, so there is
no race for the port. (``tests/registry.py`` builds TLS and token-auth variants on the
same idea.)
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

__all__ = ["LocalRegistry"]

_LISTENING = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")


class LocalRegistry:
    """``docker-registry serve`` on 127.0.0.1; ``host`` is ``127.0.0.1:PORT``."""

    def __init__(self, directory: str | os.PathLike[str], *,
                 binary: str = "docker-registry", startup_timeout: float = 15.0) -> None:
        self.directory = Path(directory)
        self.binary = shutil.which(binary) or binary
        self.startup_timeout = startup_timeout
        self.host = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalRegistry:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = {
            "version": "0.1",
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.directory / "data")},
                        "delete": {"enabled": True}},
            "http": {"addr": "127.0.0.1:0", "secret": secrets.token_hex(16)},
        }
        path = self.directory / "config.yml"
        path.write_text(json.dumps(config))  # JSON is YAML
        log_path = self.directory / "registry.log"
        # the registry maps REGISTRY_* variables onto its configuration
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with log_path.open("wb") as log:
            self._process = subprocess.Popen([self.binary, "serve", str(path)],
                                             stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            match = _LISTENING.search(log_path.read_bytes())
            if match and self._ready(int(match.group(1))):
                self.host = f"127.0.0.1:{int(match.group(1))}"
                return self
            if self._process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"docker-registry did not start; see {log_path}")

    @staticmethod
    def _ready(port: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/",
                                        timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

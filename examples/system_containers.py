#!/usr/bin/env python3
"""System containers, as ``atomic install --system`` did them, into private directories.

    python examples/system_containers.py OUTPUT_DIR

1. build a busybox image carrying /exports/service.template, /exports/manifest.json
   (defaultValues) and /exports/hostfs/usr/local/bin/hello-ctl, in an OCI layout;
2. install it as system container ``hello`` (pull into a store under OUTPUT_DIR, a
   read-only checkout in OUTPUT_DIR/checkouts/hello.0, config.json, a systemd unit in
   OUTPUT_DIR/units, the host file under OUTPUT_DIR/host) with ``--set GREETING=...``;
3. print the unit and, as root with runc, run its ExecStart line as systemd would and
   print the container's output;
4. uninstall and check that nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oci_image.build import FileEntry, ImageBuilder  # noqa: E402
from oci_image.spec import Platform, host_platform  # noqa: E402
from oci_runtime._units import exec_argv, parse_unit  # noqa: E402
from oci_runtime.install import InstallOptions, install, uninstall  # noqa: E402
from oci_runtime.run import StoreLocation  # noqa: E402

SERVICE = """\
[Unit]
Description=$NAME says $GREETING

[Service]
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
WorkingDirectory=$DESTDIR

[Install]
WantedBy=multi-user.target
"""


def build(layout: Path) -> str:
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    host = host_platform()
    builder = ImageBuilder(platform=Platform(host.os, host.architecture))
    builder.add_layer_from_files({
        "bin/busybox": FileEntry(data=busybox.read_bytes(), mode=0o755),
        "bin/sh": FileEntry(kind="symlink", linkname="busybox"),
        "bin/echo": FileEntry(kind="symlink", linkname="busybox"),
        "exports/service.template": SERVICE.encode(),
        "exports/manifest.json": b'{"defaultValues": {"GREETING": "hello"}}',
        "exports/hostfs/usr/local/bin/hello-ctl": FileEntry(
            data=b"#!/bin/sh\necho hello-ctl\n", mode=0o755),
    })
    builder.config(cmd=["/bin/sh", "-c", "echo container $(hostname) is running"],
                   env=["PATH=/bin"])
    ref = f"oci:{layout}:hello"
    builder.build().write_to(ref)
    return ref


def listing(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for d in ("checkouts", "units", "host", "tmpfiles")
                  for p in (out / d).rglob("*"))


def main() -> None:
    out = Path(sys.argv[1]).absolute()
    for d in ("checkouts", "units", "host", "tmpfiles", "runc"):
        (out / d).mkdir(parents=True, exist_ok=True)
    image = build(out / "layout")
    before = listing(out)
    options = InstallOptions(
        store=StoreLocation(str(out / "graph"), str(out / "run"), "vfs"),
        checkouts=str(out / "checkouts"), unit_dir=str(out / "units"),
        tmpfiles_dir=str(out / "tmpfiles"), host_root=str(out / "host"),
        runc=shutil.which("runc") or "/usr/sbin/runc", runc_root=str(out / "runc"),
        values={"GREETING": "good morning"}, after=("network-online.target",),
        tmpfiles_command="systemd-tmpfiles" if shutil.which("systemd-tmpfiles") else None)
    if os.geteuid() != 0 or shutil.which("runc") is None:
        print("(skipping: installing a system container needs root and runc)")
        return
    inst = install(image, "hello", options)
    print(f"installed hello from {image}: image {inst.image_id[:12]}, "
          f"deployment {inst.path.name}")
    print(f"host files: {sorted(inst.installed_files)}")
    assert inst.unit_path is not None
    unit = inst.unit_path.read_text()
    print(f"--- {inst.unit_path.name}\n{unit}---")
    entries = {k: v for _, k, v in parse_unit(unit)}
    result = subprocess.run(exec_argv(entries["ExecStart"]), cwd=entries["WorkingDirectory"],
                            capture_output=True, text=True, timeout=60, check=False)
    print(f"ExecStart exit status {result.returncode}: {result.stdout.strip()}")
    uninstall("hello", options, remove_image=True)
    print(f"uninstalled; nothing left behind: {listing(out) == before}")


if __name__ == "__main__":
    main()

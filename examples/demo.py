#!/usr/bin/env python3
"""`make demo`: build a small busybox image with the library, then copy it through every
local transport and back, verifying each step -- no daemon, no network.

    python examples/demo.py [OUTPUT_DIR]

1. build: busybox (from Debian's busybox-static) + /etc/passwd + /etc/group, a config
   with Cmd/Env/User/WorkingDir/Labels, two layers;
2. write it to an OCI layout (oci:OUT/layout:demo);
3. copy oci: -> docker-archive: -> dir: -> oci-archive: -> oci: (the round trip), and
   oci: -> dir: recompressed to zstd;
4. print `inspect` output and, for every stop, the manifest and config digests and the
   result of a full validation (every blob re-read and checked against its digest, every
   layer against its diff_id);
5. start a loopback registry (docker-registry), push the image to it, pull it back into
   a new layout, pull again (nothing downloaded) and check the digests;
6. pull it from the registry into a containers/storage-compatible store (overlay when
   it works here, else vfs), create a container from it, mount its rootfs and show a
   file, then clean up.
7. run the image from the store with runc (pull -> store -> run, as podman run does) and
   print what it printed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oci_image.build import FileEntry, ImageBuilder  # noqa: E402
from oci_image.copy import CopyOptions, copy_image  # noqa: E402
from oci_image.image import inspect_image, open_image  # noqa: E402
from oci_image.interfaces import OpenOptions, RegistryOptions  # noqa: E402
from oci_image.spec import Compression, Platform, host_platform  # noqa: E402
from oci_image.testing.registry import LocalRegistry  # noqa: E402
from oci_image.validate import validate_image  # noqa: E402

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


def find_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit("busybox not found: install busybox-static (make peers does, as root)")


def build(busybox: Path) -> ImageBuilder:
    builder = ImageBuilder(platform=Platform(host_platform().os, host_platform().architecture),
                           author="ocistack demo")
    applets = ("sh", "ls", "cat", "echo", "id", "env", "uname", "hostname")
    builder.add_layer_from_files(
        {"bin/busybox": FileEntry(data=busybox.read_bytes(), mode=0o755),
         **{f"bin/{a}": FileEntry(kind="symlink", linkname="busybox") for a in applets}},
        created_by="COPY busybox /bin/busybox")
    builder.add_layer_from_files(
        {"etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n"
                       b"demo:x:1000:1000:Demo User:/home/demo:/bin/sh\n",
         "etc/group": b"root:x:0:\ndemo:x:1000:\n",
         "home/demo/hello.txt": FileEntry(data=b"hello from an image built in Python\n",
                                          uid=1000, gid=1000),
         "home/demo": FileEntry(kind="dir", mode=0o755, uid=1000, gid=1000)},
        created_by="ADD passwd group hello.txt")
    builder.add_empty_history("USER demo")
    builder.config(cmd=["/bin/sh", "-c", "echo hello from $(id -un) in $PWD"],
                   env=["PATH=/bin", "GREETING=hello"], user="demo",
                   working_dir="/home/demo", labels={"org.example.demo": "true"})
    return builder


def report(ref: str) -> dict[str, str]:
    result = validate_image(ref)
    with open_image(ref) as img:
        config = img.config_raw()
        from oci_image.spec import Digest

        return {"reference": ref, "manifest": str(img.digest),
                "media type": img.media_type,
                "config": str(Digest.from_bytes(config)) if config else "-",
                "verified": f"{result.manifests} manifest(s), {result.blobs} blobs, "
                            f"{result.bytes} bytes"}


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-out").resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    image = build(find_busybox()).build()
    print(f"built {image.digest} ({len(image.blobs)} blobs) in memory")

    steps = [
        (image.reference, f"oci:{out}/layout:demo", None),
        (f"oci:{out}/layout:demo", f"docker-archive:{out}/demo.tar:localhost/demo:latest", None),
        (f"docker-archive:{out}/demo.tar", f"dir:{out}/dir", None),
        (f"dir:{out}/dir", f"oci-archive:{out}/demo-oci.tar:demo", None),
        (f"oci-archive:{out}/demo-oci.tar:demo", f"oci:{out}/layout:roundtrip", None),
        (f"oci:{out}/layout:demo", f"dir:{out}/zstd",
         CopyOptions(compress=True, compression_format=Compression.ZSTD)),
    ]
    rows = []
    for src, dst, options in steps:
        result = copy_image(src, dst, options)
        name = src if isinstance(src, str) else "memory"
        print(f"copied {name} -> {dst}: {result.manifest_digest} "
              f"({result.blobs_copied} copied, {result.blobs_skipped} skipped)")
        rows.append(report(dst))

    print("\ninspect oci:layout:demo")
    print(json.dumps(inspect_image(f"oci:{out}/layout:demo"), indent=4))

    print("\nverified digests at every stop:")
    for row in rows:
        print(f"  {row['reference']}")
        for key in ("media type", "manifest", "config", "verified"):
            print(f"      {key:<11} {row[key]}")
    first = rows[0]
    back = next(r for r in rows if r["reference"].endswith(":roundtrip"))
    same_config = len({r["config"] for r in rows}) == 1
    same_manifest = first["manifest"] == back["manifest"]
    print("\nround trip oci -> docker-archive -> dir -> oci-archive -> oci:")
    print(f"    config digest the same at every stop: {same_config}")
    print(f"    manifest digest back where it started: {same_manifest} (the docker-archive "
          "step stores layers uncompressed; gzipping them again is deterministic here)")
    if not same_config:
        raise SystemExit("config digest changed on the way")
    registry_round_trip(out, first["manifest"])


def registry_round_trip(out: Path, manifest: str) -> None:
    """5. push to a loopback registry (docker-registry) and pull back."""
    if shutil.which("docker-registry") is None:
        print("\ndocker-registry is not installed (make peers): registry step skipped")
        return
    plain_http = OpenOptions(registry=RegistryOptions(tls_verify=False))
    with LocalRegistry(out / "registry") as reg:
        remote = f"docker://{reg.host}/demo/busybox:latest"
        print(f"\nregistry: docker-registry on {reg.host}")
        pushed = copy_image(f"oci:{out}/layout:demo", remote,
                            CopyOptions(dest_options=plain_http))
        print(f"pushed oci:layout:demo -> {remote}: {pushed.manifest_digest} "
              f"({pushed.blobs_copied} uploaded)")
        pulled = copy_image(remote, f"oci:{out}/pulled:demo",
                            CopyOptions(source_options=plain_http))
        print(f"pulled {remote} -> oci:pulled:demo: {pulled.manifest_digest} "
              f"({pulled.blobs_copied} downloaded)")
        again = copy_image(remote, f"oci:{out}/pulled:demo",
                           CopyOptions(source_options=plain_http))
        print(f"pulled again: {again.blobs_skipped} blobs already present, "
              f"{again.blobs_copied} downloaded")
        row = report(f"oci:{out}/pulled:demo")
        print(f"    manifest {row['manifest']}  verified {row['verified']}")
        if row["manifest"] != manifest or str(pulled.manifest_digest) != manifest:
            raise SystemExit("the registry round trip changed the manifest")
        print("    manifest digest unchanged through the registry: True")
        store_round_trip(out, remote, plain_http)


def store_round_trip(out: Path, remote: str, plain_http: OpenOptions) -> None:
    """6. pull into a containers/storage-compatible store, create a container, mount it."""
    from oci_storage.store import Store

    graph, run = out / "store", out / "run"
    with Store.open(graph, run) as store:  # picks overlay when a probe mount works
        driver = store.driver.name
    target = f"containers-storage:[{driver}@{graph}+{run}]localhost/demo:latest"
    stored = copy_image(remote, target, CopyOptions(source_options=plain_http))
    print(f"\npulled {remote} -> {target}: {stored.blobs_copied} blobs copied")
    with Store.open(graph, run) as store:
        (image,) = store.images()
        print(f"store: image {image.id[:12]} {list(image.names)}, "
              f"{len(store.layers())} layers ({store.driver.name} driver)")
        container = store.create_container("localhost/demo:latest", name="demo")
        rootfs = Path(store.mount("demo"))
        try:
            print(f"container {container.id[:12]} mounted at {rootfs}")
            print(f"    /etc/passwd: {(rootfs / 'etc/passwd').read_text().splitlines()[0]}")
            print(f"    /bin/busybox: {(rootfs / 'bin/busybox').stat().st_size} bytes")
        finally:
            store.unmount("demo")
        store.delete_container("demo")
    print("    container unmounted and deleted: True")
    run_container(graph, run, driver, out)


def run_container(graph: Path, run: Path, driver: str, out: Path) -> None:
    """7. run the stored image with runc: a container layer, a bundle from the image
    config, runc run, and --rm's cleanup."""
    if os.geteuid() != 0 or shutil.which("runc") is None:
        print("\n(skipping the runc step: it needs root and runc)")
        return
    from oci_runtime import RunImageOptions, StoreLocation, run_image
    from oci_runtime._process import ProcessIO
    from oci_runtime.runc import Runc

    output = out / "container-output.txt"
    options = RunImageOptions(store=StoreLocation(str(graph), str(run), driver),
                              runc=Runc(root=str(out / "runc")),
                              io=ProcessIO(stdout=str(output), stderr=str(output)))
    status = run_image("localhost/demo:latest",
                       ["sh", "-c", "echo hello from runc: $(id -un) on $(hostname)"],
                       options)
    print(f"\nran localhost/demo:latest with runc: exit status {status}")
    print(f"    {output.read_text().strip()}")
    if status != 0:
        raise SystemExit("the container failed")


if __name__ == "__main__":
    main()

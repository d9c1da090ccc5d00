#!/usr/bin/env python3
"""From an image already in the store to ``echo hello`` finished: ours next to
``podman run --rm`` on the same store, image and driver, and bare ``runc run`` on a
prepared bundle as the floor (root only).

A busybox image is copied into a fresh overlay store on a tmpfs; then, alternating,
each --runs times:

* ours, CLI:  ``python -m oci_runtime run --rm IMAGE echo hello`` (a new process:
              Python's start-up and imports included)
* ours, API:  ``run_image(IMAGE, ["echo", "hello"], RunImageOptions(remove=True))`` in a
              running process (how an agent embedding the library pays)
* podman:     ``podman run --rm --net=none IMAGE echo hello`` on the same graph root
              (private /var/lib and containers.conf, runc, cgroupfs: see peers.md)
* runc:       ``runc run`` of a bundle prepared once (the floor: no store work)

    python benchmarks/runtime_bench.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from storage_bench import podman_argv, podman_env, preflight, wipe_store  # noqa: E402

IMAGE = "localhost/bench/busybox:1"


def build_busybox(work: Path) -> str:
    from oci_image.build import FileEntry, ImageBuilder
    from oci_image.spec import Platform, host_platform

    busybox = Path("/bin/busybox")
    if not busybox.is_file():
        raise SystemExit("busybox-static is not installed (scripts/install-peers.sh)")
    host = host_platform()
    builder = ImageBuilder(platform=Platform(host.os, host.architecture))
    builder.add_layer_from_files(
        {"bin/busybox": FileEntry(data=busybox.read_bytes(), mode=0o755),
         **{f"bin/{a}": FileEntry(kind="symlink", linkname="busybox")
            for a in ("sh", "echo")},
         "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n", "etc/group": b"root:x:0:\n"})
    builder.config(cmd=["/bin/sh"], env=["PATH=/bin"])
    builder.build().write_to(f"oci:{work / 'layout'}:bb")
    return f"oci:{work / 'layout'}:bb"


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or done.stdout.strip() != b"hello":
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n"
                         f"{done.stdout.decode()}{done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    preflight("runtime_bench.py needs root (runc, overlay mounts)",
              ("podman", "runc", "unshare"), ("oci_image", "oci_storage", "oci_runtime"))
    from oci_image.copy import copy_image
    from oci_runtime._process import ProcessIO
    from oci_runtime.bundle import Bundle
    from oci_runtime.convert import ConvertOptions, ProcessOptions, spec_from_image
    from oci_runtime.run import RunImageOptions, StoreLocation, run_image
    from oci_runtime.runc import Runc
    from oci_storage.store import Store

    with tempfile.TemporaryDirectory(prefix="runtimebench") as tmp:
        work = Path(tmp)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(work)], check=True)
        try:
            src = build_busybox(work)
            graph, run = work / "graph", work / "run"
            copy_image(src, f"containers-storage:[overlay@{graph}+{run}]{IMAGE}")
            runc_root = work / "runc"
            out = work / "api-out"
            api_opts = RunImageOptions(
                store=StoreLocation(str(graph), str(run), "overlay"),
                runc=Runc(root=str(runc_root)), io=ProcessIO(stdout=str(out)))
            ours = [sys.executable, "-m", "oci_runtime", "--root", str(graph), "--runroot",
                    str(run), "--runtime-root", str(runc_root), "run", "--rm", IMAGE,
                    "echo", "hello"]
            home = work / "podman-home"
            penv = podman_env(home, graph, run, "overlay")
            podman = podman_argv(home, graph, run, "overlay", "run", "--rm", "--net=none",
                                 IMAGE, "echo", "hello")
            # the floor: a bundle on a rootfs unpacked once
            with Store.open(graph, run) as store:
                image = store.image(IMAGE)
                config = store.image_records.big_data(image.id, f"sha256:{image.id}")
                c = store.create_container(image.id)
                rootfs = store.mount(c.id)
            assert config is not None
            spec = spec_from_image(config, rootfs, ConvertOptions(
                process=ProcessOptions(cmd=("echo", "hello"), terminal=False)))
            bundle = Bundle.create(work / "bundle", spec, rootfs=rootfs)
            floor = ["runc", "--root", str(work / "runc-floor"), "run", "--bundle",
                     str(bundle.path), "floor"]
            timed(podman, penv)  # podman's first run initialises its database: untimed
            times: dict[str, list[float]] = {"ours, CLI": [], "ours, API": [], "podman": [],
                                             "runc (floor)": []}
            for i in range(args.runs):
                order = list(times) if i % 2 == 0 else list(reversed(times))
                for case in order:
                    if case == "ours, CLI":
                        times[case].append(timed(ours))
                    elif case == "ours, API":
                        out.unlink(missing_ok=True)
                        start = time.perf_counter()
                        status = run_image(IMAGE, ["echo", "hello"], api_opts)
                        times[case].append(time.perf_counter() - start)
                        if status != 0 or out.read_text() != "hello\n":
                            raise SystemExit("the API run failed")
                    elif case == "podman":
                        times[case].append(timed(podman, penv))
                    else:
                        times[case].append(timed(floor))
            with Store.open(graph, run) as store:
                store.unmount(c.id)
                store.delete_container(c.id)
                left = store.containers()
            pod = statistics.median(times["podman"])
            print(f"busybox image in an overlay store on tmpfs; median of {args.runs} runs")
            print(f"{'case':14} {'seconds':>8} {'vs podman':>10}")
            for case, values in times.items():
                med = statistics.median(values)
                print(f"{case:14} {med:8.3f} {med / pod:10.2f}")
            print(f"containers left in the store: {len(left)}")
        finally:
            wipe_store(work / "graph", work / "run")
            subprocess.run(["umount", "-l", str(work)], check=False)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The store, ours next to podman's and umoci's, in one run on one machine (root only).

Builds the same ~200 MB (gzip), 5-layer image as copy_bench.py into an OCI layout, on a
fresh tmpfs mounted for this run (see the filesystem speed trap in peers.md), and times:

* pull, overlay:  oci:SRC:bench -> a fresh overlay store; ours is
                  ``python -m oci_image copy oci:SRC:bench containers-storage:[overlay@G+R]NAME``,
                  podman's is ``podman pull oci:SRC:bench`` on a private --root/--runroot
* pull, vfs:      the same into vfs stores
* unpack:         layout -> rootfs; ours is ``python -m oci_storage unpack``, umoci's is
                  ``umoci unpack --image SRC:bench BUNDLE`` (which also writes an mtree
                  manifest of the rootfs, as it always does)
* create:         a container on an overlay store, in one process (Store.create_container,
                  median of 20), for an image of 5 one-file layers and for the bench
                  image (5 layers, 388 MiB): the time must not grow with the image

Each case alternates the tools over --runs runs, a fresh destination every run, and
reports median wall seconds, peak RSS and the ratio ours/peer. podman and umoci run in a
private mount namespace with a private /var/lib, like the tests' peers.

    python benchmarks/storage_bench.py [--size-mb 200] [--runs 3] [--cases pull-overlay,...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from copy_bench import build_image_in_child, measure  # noqa: E402

sys.path.insert(0, str(ROOT))

CONTAINERS_CONF = (
    '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
    'netns = "none"\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
    'runtime = "runc"\n')
PRIVATE = ('mount -t tmpfs tmpfs /var/lib && mkdir -p /var/lib/containers/cache '
           '&& exec "$0" "$@"')


def private_ns(argv: list[str]) -> list[str]:
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", PRIVATE, *argv]


def podman_env(home: Path, graph: Path, run: Path, driver: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "tmp").mkdir(exist_ok=True)
    (home / "containers.conf").write_text(CONTAINERS_CONF)
    (home / "registries.conf").write_text("unqualified-search-registries = []\n")
    (home / "storage.conf").write_text(
        f'[storage]\ndriver = "{driver}"\ngraphroot = "{graph}"\nrunroot = "{run}"\n')
    env = dict(os.environ)
    env.update({"CONTAINERS_CONF": str(home / "containers.conf"),
                "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
                "CONTAINERS_STORAGE_CONF": str(home / "storage.conf"),
                "HOME": str(home)})
    return env


def podman_argv(home: Path, graph: Path, run: Path, driver: str, *args: str) -> list[str]:
    return private_ns(["podman", "--root", str(graph), "--runroot", str(run), "--tmpdir",
                       str(home / "tmp"), "--storage-driver", driver, "--cgroup-manager",
                       "cgroupfs", "--events-backend", "file", *args])


def wipe_store(graph: Path, run: Path) -> None:
    """Unmount whatever a driver left mounted under the store, then remove it."""
    for base in (graph, run):
        if not base.exists():
            continue
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text()
                  .splitlines() if line.split()[4].startswith(str(base))]
        for mnt in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mnt], check=False)
        shutil.rmtree(base, ignore_errors=True)


def ours_python() -> list[str]:
    return [sys.executable]


def pull_case(driver: str, src: str, work: Path, runs: int) -> dict[str, object]:
    times: dict[str, list[tuple[float, int]]] = {"ours": [], "podman": []}
    for i in range(runs):
        for tool in (("ours", "podman") if i % 2 == 0 else ("podman", "ours")):
            graph, run = work / f"{tool}-graph", work / f"{tool}-run{i}"
            wipe_store(graph, run)
            if tool == "ours":
                argv = [*ours_python(), "-m", "oci_image", "copy", src,
                        f"containers-storage:[{driver}@{graph}+{run}]localhost/bench:1"]
                env = dict(os.environ, XDG_CACHE_HOME=str(work / "ours-cache"))
            else:
                home = work / "podman-home"
                env = podman_env(home, graph, run, driver)
                argv = podman_argv(home, graph, run, driver, "pull", "-q", src)
            times[tool].append(measure(argv, env))
            wipe_store(graph, run)
    return row(f"pull, {driver}", times, "podman")


def unpack_case(src: str, work: Path, runs: int) -> dict[str, object]:
    layout, tag = src[len("oci:"):].rsplit(":", 1)
    times: dict[str, list[tuple[float, int]]] = {"ours": [], "umoci": []}
    for i in range(runs):
        for tool in (("ours", "umoci") if i % 2 == 0 else ("umoci", "ours")):
            out = work / f"unpack-{tool}"
            shutil.rmtree(out, ignore_errors=True)
            if tool == "ours":
                argv = [*ours_python(), "-m", "oci_storage", "unpack", src, str(out / "rootfs")]
            else:
                argv = ["umoci", "unpack", "--image", f"{layout}:{tag}", str(out)]
            times[tool].append(measure(argv, dict(os.environ)))
            shutil.rmtree(out, ignore_errors=True)
    return row("unpack (layout -> rootfs)", times, "umoci")


def create_case(src: str, small_src: str, work: Path) -> list[dict[str, object]]:
    """Container creation on an overlay store, in one process, small vs big image."""
    code = r"""
import json, statistics, sys, time
from oci_image.copy import copy_image
from oci_image.transports import parse_image_name
from oci_storage.store import Store
spec, src, name = sys.argv[1:4]
copy_image(parse_image_name(src), parse_image_name(f"containers-storage:{spec}{name}"))
graph, run = spec[1:-1].split("@", 1)[1].split("+")
out = []
with Store.open(graph, run, "overlay") as store:
    for i in range(20):
        t = time.perf_counter()
        store.create_container(name)
        out.append(time.perf_counter() - t)
    print(json.dumps({"median": statistics.median(out), "layers": len(store.layers())}))
"""
    rows = []
    for label, image in (("create, 5 tiny layers", small_src), ("create, bench image", src)):
        graph, run = work / "create-graph", work / "create-run"
        wipe_store(graph, run)
        out = subprocess.run([*ours_python(), "-c", code, f"[overlay@{graph}+{run}]", image,
                              "localhost/c:1"], capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            raise SystemExit(f"create case failed:\n{out.stderr}")
        result = json.loads(out.stdout)
        rows.append({"case": label, "ours_s": result["median"]})
        wipe_store(graph, run)
    return rows


def small_image(base: Path) -> str:
    from oci_image.build import ImageBuilder
    from oci_image.spec import Platform

    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    for n in range(5):  # as many layers as the bench image: only the size differs
        builder.add_layer_from_files({f"hello{n}.txt": b"hello\n"})
    builder.config(cmd=["/bin/sh"])
    builder.build().write_to(f"oci:{base / 'small'}:small")
    return f"oci:{base / 'small'}:small"


def row(name: str, times: dict[str, list[tuple[float, int]]], peer: str) -> dict[str, object]:
    out: dict[str, object] = {"case": name, "peer": peer}
    for tool, values in times.items():
        key = "ours" if tool == "ours" else "peer"
        out[f"{key}_s"] = statistics.median(t for t, _ in values)
        out[f"{key}_rss_mib"] = max(r for _, r in values) / 1024
    out["ratio"] = float(out["ours_s"]) / float(out["peer_s"])  # type: ignore[arg-type]
    return out


def print_rows(rows: list[dict[str, object]]) -> None:
    print(f"{'case':28} {'ours s':>7} {'peer':>7} {'peer s':>7} {'ratio':>6} "
          f"{'ours RSS':>9} {'peer RSS':>9}")
    for r in rows:
        if "peer" in r:
            print(f"{r['case']:28} {r['ours_s']:7.2f} {r['peer']:>7} {r['peer_s']:7.2f} "
                  f"{r['ratio']:6.2f} {r['ours_rss_mib']:6.0f} MiB {r['peer_rss_mib']:6.0f} MiB")
        else:
            print(f"{r['case']:28} {float(r['ours_s']) * 1000:6.1f} ms")  # type: ignore[arg-type]


def preflight(root_reason: str, tools: tuple[str, ...], packages: tuple[str, ...]) -> None:
    """Root, the peer tools, and our packages byte-compiled (this machine sets
    PYTHONDONTWRITEBYTECODE: without .pyc files every run would compile them)."""
    if os.geteuid() != 0:
        raise SystemExit(root_reason)
    for tool in tools:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (scripts/install-peers.sh)")
    subprocess.run([sys.executable, "-m", "compileall", "-q",
                    *(str(ROOT / p) for p in packages)], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cases", default="pull-overlay,pull-vfs,unpack,create")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args()
    preflight("storage_bench.py needs root (overlay mounts, podman's private store)",
              ("podman", "umoci", "unshare"), ("oci_image", "oci_storage"))
    cases = args.cases.split(",")
    # podman names an oci: image after its path, which must be a valid repository name
    with tempfile.TemporaryDirectory(prefix="storagebench") as tmp:
        work = Path(tmp.lower().replace("_", "x"))
        work.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6g", "tmpfs", str(work)], check=True)
        try:
            src, compressed, uncompressed = build_image_in_child(work, args.size_mb, args.seed)
            print(f"image: 5 layers, {compressed / 2**20:.0f} MiB compressed, "
                  f"{uncompressed / 2**20:.0f} MiB tar; tmpfs at {work}; {args.runs} runs")
            rows: list[dict[str, object]] = []
            if "pull-overlay" in cases:
                rows.append(pull_case("overlay", src, work, args.runs))
            if "pull-vfs" in cases:
                rows.append(pull_case("vfs", src, work, args.runs))
            if "unpack" in cases:
                rows.append(unpack_case(src, work, args.runs))
            if "create" in cases:
                rows.extend(create_case(src, small_image(work), work))
            print_rows(rows)
            if args.json:
                print(json.dumps(rows, indent=1))
        finally:
            subprocess.run(["umount", "-l", str(work)], check=False)
            if work != Path(tmp):
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--build-only":
        raise SystemExit("use copy_bench.py --build-only")
    main()

#!/usr/bin/env python3
"""Registry transfers, ours next to skopeo's, in one run on one machine.

Starts a private `docker-registry` on a loopback port (plain HTTP, data on the work
directory), builds the same ~200 MB, 5-layer gzip image as copy_bench.py, and times:

* pull:        docker://REG/bench:1 -> oci:OUT:x (a fresh layout every run)
* push:        oci:SRC:bench -> docker://REG/<fresh repository>:1 (nothing to mount:
               our blob-location cache and skopeo's blob-info cache start empty)
* no-op pull:  the pull again into a layout that already has every blob

Each case alternates the two tools over --runs runs and reports median wall seconds,
the ratio ours/skopeo and the peak RSS. With --rate RATE the whole run happens in a
private network namespace whose loopback is shaped to RATE (tc tbf, root only): a
registry across a fast network instead of a CPU-bound loopback. Our pulls verify every
layer's diff_id (a decompression skopeo does not do); the "pull, no diff_id check" row
shows the cost of that check. Partial-blob caching applies to blobs of 64 MiB and more
(none here); the "pull, partial cache forced" row forces it on every layer to show what
it costs.

    python benchmarks/registry_bench.py [--size-mb 200] [--runs 5] [--rate 1gbit]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from copy_bench import build_image_in_child, measure, ours_argv, skopeo_argv  # noqa: E402

sys.path.insert(0, str(ROOT))
from oci_image.testing.registry import LocalRegistry  # noqa: E402


def run_case(name: str, runs: int, ours: list[str], skopeo: list[str], work: Path,
             env: dict[str, str], prepare: dict[str, object] | None = None,
             fresh: bool = True, tools: tuple[str, ...] = ("ours", "skopeo")
             ) -> dict[str, object]:
    results: dict[str, list[tuple[float, int]]] = {t: [] for t in tools}
    if not fresh:  # a no-op case: fill the destinations first, untimed
        for tool in tools:
            out = work / f"out-{tool}"
            if out.exists():
                shutil.rmtree(out)
            out.mkdir()
            args = [a.format(out=out, tag="warm") for a in (ours if tool == "ours" else skopeo)]
            argv = ours_argv(args) if tool == "ours" else skopeo_argv(args, work)
            measure(argv, env)
    for i in range(runs):
        order = tools if i % 2 == 0 else tuple(reversed(tools))
        for tool in order:
            out = work / f"out-{tool}"
            if fresh and out.exists():
                shutil.rmtree(out)
            out.mkdir(exist_ok=True)
            tag = f"{tool}{i}{time.monotonic_ns()}"
            args = [a.format(out=out, tag=tag) for a in (ours if tool == "ours" else skopeo)]
            run_env = dict(env)
            if tool == "ours":
                # an empty cache: no blob-location records, so pushes really upload
                run_env["XDG_CACHE_HOME"] = str(work / f"cache-{tag}")
            argv = ours_argv(args) if tool == "ours" else skopeo_argv(args, work)
            results[tool].append(measure(argv, run_env))
    row: dict[str, object] = {"case": name}
    for tool, values in results.items():
        row[f"{tool}_s"] = statistics.median(t for t, _ in values)
        row[f"{tool}_rss_mib"] = max(r for _, r in values) / 1024
    if "skopeo" in results:
        row["ratio"] = float(row["ours_s"]) / float(row["skopeo_s"])  # type: ignore[arg-type]
    return row


PULL_SNIPPET = """
import shutil, statistics, sys, time
from oci_image.copy import CopyOptions, copy_image
from oci_image.interfaces import OpenOptions, RegistryOptions
opts = CopyOptions(source_options=OpenOptions(registry=RegistryOptions(tls_verify=False)))
src, out = sys.argv[1], sys.argv[2]
times = []
for _ in range(int(sys.argv[3])):
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    copy_image(src, f"oci:{out}:x", opts)
    times.append(time.perf_counter() - t)
print(statistics.median(times))
"""


def pull_in_process(reg: str, work: Path, env: dict[str, str], runs: int) -> float:
    """A full pull through the API in a process that is already running."""
    out = subprocess.run([sys.executable, "-c", PULL_SNIPPET, f"docker://{reg}/bench:1",
                          str(work / "pull-api"), str(runs)], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip())


def shaped(rate: str) -> None:
    """Run this benchmark again inside a private network namespace whose loopback is
    limited to ``rate`` (tc tbf), so the registry is as far away as a fast network."""
    if os.environ.get("OCI_BENCH_SHAPED"):
        return
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("tc")):
        raise SystemExit("--rate needs root, unshare and tc")
    script = ("ip link set lo up && tc qdisc add dev lo root tbf rate \"$OCI_BENCH_RATE\" "
              "burst 256kb latency 100ms && exec \"$0\" \"$@\"")
    env = dict(os.environ, OCI_BENCH_SHAPED="1", OCI_BENCH_RATE=rate)
    os.execvpe("unshare", ["unshare", "-n", "sh", "-c", script, sys.executable,
                           *sys.argv], env)


NOOP_SNIPPET = """
import statistics, sys, time
from oci_image.copy import CopyOptions, copy_image
from oci_image.interfaces import OpenOptions, RegistryOptions
opts = CopyOptions(source_options=OpenOptions(registry=RegistryOptions(tls_verify=False)))
src, dst = sys.argv[1], sys.argv[2]
copy_image(src, dst, opts)
times = []
for _ in range(5):
    t = time.perf_counter()
    copy_image(src, dst, opts)
    times.append(time.perf_counter() - t)
print(statistics.median(times))
"""


def noop_in_process(reg: str, work: Path, env: dict[str, str]) -> float:
    """The no-op re-pull as an agent embedding the library sees it."""
    out = subprocess.run([sys.executable, "-c", NOOP_SNIPPET, f"docker://{reg}/bench:1",
                          f"oci:{work}/noop-api:x"], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", default="/dev/shm" if Path("/dev/shm").is_dir() else None)
    parser.add_argument("--rate", metavar="RATE",
                        help="limit the loopback to RATE (e.g. 1gbit) in a private network "
                             "namespace (root, tc), as a registry across a fast network")
    args = parser.parse_args()
    if args.rate:
        shaped(args.rate)
    for tool in ("skopeo", "docker-registry"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (make peers)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # an installed package has its bytecode compiled; this checkout may not (and
    # PYTHONDONTWRITEBYTECODE may be set), which would add ~0.1 s of compiling per run
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "oci_image")],
                   check=True, stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="oci-regbench-", dir=args.workdir))
    registry = LocalRegistry(work / "registry")
    try:
        src, compressed, uncompressed = build_image_in_child(work, args.size_mb, seed=1)
        reg = registry.start().host
        print(f"image: 5 layers, {compressed / 2**20:.0f} MiB compressed, "
              f"{uncompressed / 2**20:.0f} MiB uncompressed; registry {reg}, "
              f"all on {args.workdir or 'the default tmp dir'}"
              + (f"; loopback limited to {args.rate}" if args.rate else ""))
        seed = subprocess.run(ours_argv(["copy", "--quiet", "--dest-tls-verify=false", src,
                                         f"docker://{reg}/bench:1"]), env=env, check=False)
        if seed.returncode:
            raise SystemExit("seeding the registry failed")
        pull_ours = ["copy", "--quiet", "--src-tls-verify=false", f"docker://{reg}/bench:1",
                     "oci:{out}:x"]
        pull_skopeo = list(pull_ours)
        push = ["copy", "--quiet", "--dest-tls-verify=false", src,
                f"docker://{reg}/push-{{tag}}:1"]
        rows = [
            run_case("pull", args.runs, pull_ours, pull_skopeo, work, env),
            run_case("push", args.runs, push, push, work, env),
            run_case("no-op re-pull", args.runs, pull_ours, pull_skopeo, work, env,
                     fresh=False),
            run_case("pull, no diff_id check", args.runs,
                     [*pull_ours[:2], "--no-verify-diff-ids", *pull_ours[2:]], pull_skopeo,
                     work, env),
            run_case("pull, partial cache forced", args.runs,
                     [*pull_ours[:2], "--partial-blob-min-size", "0", *pull_ours[2:]],
                     pull_skopeo, work, env),
        ]
        in_process = noop_in_process(reg, work, env)
        pull_api = pull_in_process(reg, work, env, args.runs)
        print(f"\n{'case':<28}{'ours s':>9}{'skopeo s':>10}{'ratio':>8}"
              f"{'ours RSS':>11}{'skopeo RSS':>12}")
        for row in rows:
            print(f"{row['case']:<28}{row['ours_s']:>9.2f}{row['skopeo_s']:>10.2f}"
                  f"{row['ratio']:>8.2f}{row['ours_rss_mib']:>8.0f} MiB"
                  f"{row['skopeo_rss_mib']:>8.0f} MiB")
        print(f"\nthrough the API in a running process (no interpreter start, no imports): "
              f"pull {pull_api:.2f} s (ratio {pull_api / float(rows[0]['skopeo_s']):.2f} "
              f"to skopeo's command), no-op re-pull {in_process:.3f} s")
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

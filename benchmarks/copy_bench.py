#!/usr/bin/env python3
"""Copy benchmark: ours (``python -m oci_image copy``) against skopeo, side by side, in
one run, on the same input.

Builds a ~200 MB (compressed), 5-layer image -- random and compressible content, many
small files and a few big ones -- into an OCI layout on a tmpfs, then times each case
``--runs`` times per tool, alternating the tools, and prints the median wall time, the
peak RSS of the copying process, and the ratio ours/skopeo.

Cases: ``oci: -> oci:``, ``oci: -> docker-archive:``, ``oci: -> oci:`` recompressing
gzip -> zstd. A second, larger image (``--scale``) checks that peak RSS stays flat.

skopeo runs in a private mount namespace with an empty blob-info cache (so it cannot
reuse anything between runs), exactly like in the tests.

    python benchmarks/copy_bench.py [--size-mb 200] [--runs 5] [--scale 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oci_image.build import ImageBuilder  # noqa: E402
from oci_image.spec import Digest, MediaType, Platform  # noqa: E402


def build_layer(rng: random.Random, target_compressed: int, out: Path) -> tuple[Digest, int]:
    """A tar with many small files (text-like, compressible), some random ones and a few
    big ones, gzipped (level 6, like Go's default) to about ``target_compressed`` bytes.
    Returns (diff_id, uncompressed size)."""
    buf = io.BytesIO()
    words = [rng.randbytes(rng.randrange(3, 9)).hex() for _ in range(2000)]
    compressed_estimate = 0
    i = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        while compressed_estimate < target_compressed:
            kind = rng.random()
            if kind < 0.55:  # small text-like file, compresses ~4x
                size = rng.randrange(200, 16 << 10)
                data = " ".join(rng.choice(words) for _ in range(size // 8)).encode()[:size]
                compressed_estimate += len(data) // 4
            elif kind < 0.98:  # small random file (a binary, an image...)
                size = rng.randrange(100, 32 << 10)
                data = rng.randbytes(size)
                compressed_estimate += size
            else:  # a big file, half random, half zeros
                size = rng.randrange(1 << 20, 4 << 20)
                data = rng.randbytes(size // 2) + bytes(size - size // 2)
                compressed_estimate += size // 2
            info = tarfile.TarInfo(f"usr/share/bench/d{i % 97}/f{i}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 946684800
            tar.addfile(info, io.BytesIO(data))
            i += 1
    raw = buf.getvalue()
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    out.write_bytes(c.compress(raw) + c.flush())
    return Digest.from_bytes(raw), len(raw)


def build_image(base: Path, size_mb: int, seed: int) -> tuple[str, int, int]:
    rng = random.Random(seed)
    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    uncompressed = 0
    for n in range(5):
        path = base / f"layer{n}.tar.gz"
        diff_id, size = build_layer(rng, size_mb * (1 << 20) // 5, path)
        uncompressed += size
        builder.add_layer_file(path, media_type=MediaType.OCI_LAYER_GZIP, diff_id=diff_id)
    builder.config(cmd=["/bin/sh"])
    image = builder.build()
    layout = base / "src"
    image.write_to(f"oci:{layout}:bench")
    compressed = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
    return f"oci:{layout}:bench", compressed, uncompressed


def build_image_in_child(base: Path, size_mb: int, seed: int) -> tuple[str, int, int]:
    """Build in a child process, so that the memory it takes is not inherited by the
    processes this one forks to measure (their peak RSS would include it)."""
    out = subprocess.run([sys.executable, __file__, "--build-only", str(base), str(size_mb),
                          str(seed)], capture_output=True, text=True, check=True)
    src, compressed, uncompressed = json.loads(out.stdout)
    return src, compressed, uncompressed


def skopeo_argv(args: list[str], home: Path) -> list[str]:
    policy = home / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    base = ["skopeo", "--policy", str(policy), *args]
    if os.geteuid() == 0:
        script = ('mount -t tmpfs tmpfs /var/lib && mkdir -p /var/lib/containers/cache '
                  '&& exec "$0" "$@"')
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, *base]
    return base


def ours_argv(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "oci_image", *args]


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one run."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{err}")
    return elapsed, usage.ru_maxrss


def run_case(name: str, src: str, dest_for: dict[str, str], flags: list[str], runs: int,
             work: Path, env: dict[str, str]) -> dict[str, object]:
    results: dict[str, list[tuple[float, int]]] = {"ours": [], "skopeo": []}
    for i in range(runs):
        for tool in ("ours", "skopeo") if i % 2 == 0 else ("skopeo", "ours"):
            dest = dest_for[tool]
            target = work / f"out-{tool}"
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            target.mkdir()
            args = ["copy", "--quiet", *flags, src, dest.format(out=target)]
            argv = ours_argv(args) if tool == "ours" else skopeo_argv(args, work)
            results[tool].append(measure(argv, env))
    row: dict[str, object] = {"case": name}
    for tool, values in results.items():
        row[f"{tool}_s"] = statistics.median(t for t, _ in values)
        row[f"{tool}_rss_mib"] = max(r for _, r in values) / 1024
    row["ratio"] = float(row["ours_s"]) / float(row["skopeo_s"])  # type: ignore[arg-type]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", type=int, default=2,
                        help="also measure RSS on an image this many times bigger (0: skip)")
    parser.add_argument("--workdir", default="/dev/shm" if Path("/dev/shm").is_dir() else None)
    parser.add_argument("--build-only", nargs=3, metavar=("DIR", "SIZE_MB", "SEED"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        base, size, seed = args.build_only
        print(json.dumps(build_image(Path(base), int(size), int(seed))))
        return
    if shutil.which("skopeo") is None:
        raise SystemExit("skopeo is not installed (make peers)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # an installed package has its bytecode compiled; this checkout may not (and
    # PYTHONDONTWRITEBYTECODE may be set), which would add ~0.1 s of compiling per run
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "oci_image")],
                   check=True, stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="oci-bench-", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        src, compressed, uncompressed = build_image_in_child(work, args.size_mb, seed=1)
        print(f"image: 5 layers, {compressed / 2**20:.0f} MiB compressed, "
              f"{uncompressed / 2**20:.0f} MiB uncompressed (built in "
              f"{time.perf_counter() - t0:.0f} s) on {args.workdir or 'the default tmp dir'}")
        cases = [
            ("oci -> oci", {"ours": "oci:{out}:x", "skopeo": "oci:{out}:x"}, []),
            ("oci -> docker-archive", {"ours": "docker-archive:{out}/a.tar",
                                       "skopeo": "docker-archive:{out}/a.tar"}, []),
            ("oci -> oci gzip->zstd", {"ours": "oci:{out}:x", "skopeo": "oci:{out}:x"},
             ["--dest-compress-format", "zstd"]),
        ]
        rows = [run_case(name, src, dests, flags, args.runs, work, env)
                for name, dests, flags in cases]
        print(f"\n{'case':<24}{'ours s':>9}{'skopeo s':>10}{'ratio':>8}"
              f"{'ours RSS':>11}{'skopeo RSS':>12}")
        for row in rows:
            print(f"{row['case']:<24}{row['ours_s']:>9.2f}{row['skopeo_s']:>10.2f}"
                  f"{row['ratio']:>8.2f}{row['ours_rss_mib']:>8.0f} MiB"
                  f"{row['skopeo_rss_mib']:>8.0f} MiB")
        if args.scale > 1:
            big = work / "big"
            big.mkdir()
            big_src, big_c, _ = build_image_in_child(big, args.size_mb * args.scale, seed=2)
            row = run_case("oci -> oci (scaled)", big_src,
                           {"ours": "oci:{out}:x", "skopeo": "oci:{out}:x"}, [], 1, work, env)
            print(f"\npeak RSS, {big_c / 2**20:.0f} MiB image: ours "
                  f"{row['ours_rss_mib']:.0f} MiB, skopeo {row['skopeo_rss_mib']:.0f} MiB "
                  f"(vs {rows[0]['ours_rss_mib']:.0f} MiB at {compressed / 2**20:.0f} MiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

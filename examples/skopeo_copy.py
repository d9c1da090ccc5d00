#!/usr/bin/env python3
"""A skopeo-like copy script in a dozen lines of API: progress per blob, optional --all.

    python examples/skopeo_copy.py oci:layout:tag docker-archive:out.tar:example/app:1 [--all]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from oci_image.copy import CopyOptions, MultiArch, ProgressEvent, ProgressKind, copy_image


def progress(event: ProgressEvent) -> None:
    if event.kind in (ProgressKind.DONE, ProgressKind.SKIPPED):
        verb = "copied " if event.kind is ProgressKind.DONE else "skipped"
        print(f"{verb} {event.descriptor.digest} ({event.descriptor.size} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("destination")
    parser.add_argument("--all", action="store_true")
    args = parser.parse_args()
    options = CopyOptions(multi_arch=MultiArch.ALL if args.all else MultiArch.SYSTEM)
    result = copy_image(args.source, args.destination, options, progress=progress)
    print(f"wrote {result.media_type} {result.manifest_digest}")


if __name__ == "__main__":
    main()

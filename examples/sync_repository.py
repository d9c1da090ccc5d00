#!/usr/bin/env python3
"""Mirror every tag of a registry repository, like `skopeo sync --src docker`:

    python examples/sync_repository.py docker://SRC/REPO DEST [--tls-verify=false]

DEST is `docker://REGISTRY/REPO` (each tag pushed there, blobs mounted or skipped when
the target already has them) or `oci:DIR` (one layout, one name per tag). Every image
is copied with all its platforms, verified on the way; a tag whose digest is already at
the destination costs one manifest request and no blob transfer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from oci_image.copy import CopyOptions, MultiArch, copy_image
from oci_image.errors import OCIError
from oci_image.interfaces import OpenOptions, RegistryOptions
from oci_image.transports import parse_image_name
from oci_image.transports.docker import DockerReference


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="docker://REGISTRY/REPOSITORY")
    parser.add_argument("destination", help="docker://REGISTRY/REPOSITORY or oci:DIR")
    parser.add_argument("--tls-verify", default="true", choices=["true", "false"],
                        help="for both registries (false: plain HTTP allowed)")
    args = parser.parse_args()

    source = parse_image_name(args.source)
    if not isinstance(source, DockerReference):
        parser.error("the source must be a docker:// repository")
    registry = RegistryOptions(tls_verify=args.tls_verify == "true")
    options = OpenOptions(registry=registry)
    copy_options = CopyOptions(multi_arch=MultiArch.ALL, source_options=options,
                               dest_options=options)
    tags = sorted(source.list_tags(options))
    print(f"{source.ref.name}: {len(tags)} tags")
    failed = 0
    for tag in tags:
        src = f"docker://{source.ref.name}:{tag}"
        dst = f"{args.destination}:{tag}"  # docker://REG/REPO:TAG, or oci:DIR:TAG
        try:
            result = copy_image(src, dst, copy_options)
        except OCIError as exc:
            failed += 1
            print(f"  {tag}: FAILED: {exc}")
            continue
        print(f"  {tag}: {result.manifest_digest} ({result.blobs_copied} blobs copied, "
              f"{result.blobs_skipped} already there)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

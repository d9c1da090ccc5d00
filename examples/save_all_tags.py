#!/usr/bin/env python3
"""Like `podman save -m`: every tagged image of an OCI layout into one docker archive,
each under a name of your choosing (layers shared between images are stored once).

    python examples/save_all_tags.py LAYOUT_DIR ARCHIVE.tar registry.example/prefix
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from oci_image.copy import copy_image
from oci_image.transports import parse_image_name
from oci_image.transports.docker_archive import DockerArchiveWriter
from oci_image.transports.oci import OCIReference


def main() -> None:
    layout, archive, prefix = sys.argv[1:4]
    layout_ref = parse_image_name(f"oci:{layout}")
    assert isinstance(layout_ref, OCIReference)
    tags = layout_ref.list_tags()
    with DockerArchiveWriter(archive) as writer:
        for tag in tags:
            result = copy_image(f"oci:{layout}:{tag}", writer.reference(f"{prefix}:{tag}"))
            print(f"{prefix}:{tag} <- {result.manifest_digest}")
    print(f"wrote {len(tags)} images to {archive}")


if __name__ == "__main__":
    main()

"""Seeded random images for tests (go-containerregistry's ``random``): the same seed
always gives the same bytes, so a failure can be replayed.

    img = random_image(seed=1, layers=3)
    copy_image(img.reference, "oci:/tmp/x:t")
"""

from __future__ import annotations

import random as _random
from collections.abc import Sequence

from ..build import BuiltImage, FileEntry, ImageBuilder, build_index
from ..spec import Compression, Platform

__all__ = ["random_artifact", "random_files", "random_image", "random_index"]


def random_files(rng: _random.Random, count: int, max_size: int) -> dict[str, bytes | FileEntry]:
    """``count`` files with random names (some long, some unicode), contents both random
    and compressible, and a symlink and a hardlink now and then."""
    files: dict[str, bytes | FileEntry] = {}
    dirs = ["", "usr/lib", "etc", "opt/app", "var/" + "x" * 120, "données/ünï"]
    for i in range(count):
        name = f"{rng.choice(dirs)}/f{i}-{rng.randrange(1 << 30):x}".lstrip("/")
        size = rng.randrange(max_size + 1)
        if rng.random() < 0.5:
            data = rng.randbytes(size)
        else:
            word = rng.randbytes(rng.randrange(1, 16))
            data = (word * (size // len(word) + 1))[:size]
        mode = rng.choice([0o644, 0o755, 0o600, 0o4755])
        files[name] = FileEntry(data=data, mode=mode, uid=rng.choice([0, 1000]),
                                gid=rng.choice([0, 1000]))
    names = [n for n in files]
    if names and rng.random() < 0.7:
        target = rng.choice(names)
        files[f"~link-{rng.randrange(1000)}"] = FileEntry(kind="symlink", linkname=target)
    if names and rng.random() < 0.7:
        target = rng.choice(names)
        files[f"~hard-{rng.randrange(1000)}"] = FileEntry(kind="hardlink", linkname=target)
    return files


def random_image(seed: int = 0, *, layers: int = 2, files_per_layer: int = 8,
                 max_file_size: int = 4096, compression: Compression = Compression.GZIP,
                 oci: bool = True, platform: Platform | None = None,
                 nondistributable: int = 0, annotations: bool = True) -> BuiltImage:
    """A random image. ``nondistributable`` of the layers get ``urls`` (and a
    non-distributable media type); their blobs are still included."""
    rng = _random.Random(seed)
    builder = ImageBuilder(platform=platform or Platform("linux", "amd64"), oci=oci)
    for i in range(layers):
        urls = (f"https://example.com/layers/{seed}-{i}",) if i < nondistributable else ()
        layer_annotations = {"org.example.layer": str(i)} if annotations and oci else None
        builder.add_layer_from_files(random_files(rng, files_per_layer, max_file_size),
                                     compression=compression, created_by=f"layer {i}",
                                     urls=urls, annotations=layer_annotations)
    builder.add_empty_history("ENV A=1")
    builder.config(cmd=["/bin/sh", "-c", f"echo {seed}"], env=[f"SEED={seed}", "PATH=/bin"],
                   user=rng.choice(["root", "1000:1000", ""]), working_dir="/",
                   labels={"seed": str(seed)}, exposed_ports=["8080/tcp"])
    if annotations and oci:
        builder.annotate({"org.opencontainers.image.title": f"random-{seed}"})
    return builder.build()


def random_index(seed: int = 0, *, platforms: Sequence[Platform] | None = None,
                 oci: bool = True, **kwargs: object) -> BuiltImage:
    """An index (or Docker list) of one random image per platform."""
    platforms = platforms or [Platform("linux", "amd64"), Platform("linux", "arm64", "v8"),
                              Platform("linux", "arm", "v7")]
    images = [random_image(seed * 100 + i, platform=p, oci=oci, **kwargs)  # type: ignore[arg-type]
              for i, p in enumerate(platforms)]
    return build_index(images, oci=oci)


def random_artifact(seed: int = 0, *,
                    config_media_type: str = "application/vnd.example.config+json",
                    artifact_type: str | None = "application/vnd.example.artifact"
                    ) -> BuiltImage:
    """An OCI artifact: an unknown config media type and opaque layer types."""
    rng = _random.Random(seed)
    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    for i in range(2):
        builder.add_layer(rng.randbytes(rng.randrange(100, 5000)),
                          compression=Compression.NONE,
                          media_type=f"application/vnd.example.part.v{i}")
    builder.artifact(artifact_type=artifact_type, config_media_type=config_media_type,
                     config=b'{"name":"artifact-%d"}' % seed)
    return builder.build()

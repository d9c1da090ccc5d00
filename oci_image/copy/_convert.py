"""Pure manifest conversions: OCI <-> Docker schema2, list <-> index, schema1 -> schema2,
and the choice of manifest formats and of an index instance. No I/O here.

Generated documents are byte-identical to containers/image's for the same input, so a
conversion made by us and one made by skopeo have the same digest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import attrs

from ..errors import ConversionError, NoMatchingPlatformError, PreserveDigestsError
from ..interfaces import DestinationCapabilities
from ..spec import (
    Compression,
    Descriptor,
    Digest,
    ImageIndex,
    ImageManifest,
    MediaType,
    Platform,
    Schema1Manifest,
    compression_of,
    is_docker_schema1,
    is_layer,
    is_nondistributable,
    layer_media_type,
    platform_preferences,
)
from ..spec._json import dumps, go_compact, top_level_members

__all__ = [
    "choose_instance",
    "convert_index",
    "convert_manifest",
    "index_candidates",
    "manifest_candidates",
    "schema1_config",
]

_CONFIG_TYPES = {MediaType.OCI_CONFIG: True, MediaType.DOCKER_CONFIG: False}


def manifest_candidates(source_type: str, caps: DestinationCapabilities, *,
                        forced: str | None, can_modify: bool,
                        zstd_requested: bool) -> list[str]:
    """Manifest types to try writing, most preferred first (containers/image
    ``determineManifestConversion``): the source's own type when the destination takes
    it, then OCI, then Docker schema2. Schema2 is left out when zstd was asked for.

    A forced format (``--format``) is tried even where the destination does not list it
    as preferred (skopeo writes Docker manifests into OCI layouts when told to); a
    destination that truly cannot store it refuses it at ``put_manifest``."""
    if forced is not None:
        if forced != source_type and not can_modify:
            raise PreserveDigestsError(
                f"converting to {forced} would change the manifest digest")
        return [forced]
    ordered = [source_type, MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST]
    out: list[str] = []
    for t in ordered:
        if t in out or not caps.accepts(t):
            continue
        if t != source_type and not can_modify:
            continue
        if t == MediaType.DOCKER_MANIFEST and zstd_requested:
            continue
        out.append(t)
    if not out:
        if not can_modify:
            raise PreserveDigestsError(
                f"the destination does not accept {source_type} manifests, and converting "
                "would change the manifest digest")
        raise ConversionError(f"the destination accepts none of the formats {source_type} "
                              "can be converted to")
    return out


def index_candidates(source_type: str, caps: DestinationCapabilities, *,
                     forced: str | None, can_modify: bool) -> list[str]:
    if forced is not None:
        if forced != source_type and not can_modify:
            raise PreserveDigestsError(f"converting to {forced} would change the index digest")
        return [forced]
    out = [t for t in (source_type, MediaType.OCI_INDEX, MediaType.DOCKER_MANIFEST_LIST)
           if caps.accepts(t) and (t == source_type or can_modify)]
    if not out and not can_modify:
        raise PreserveDigestsError(f"the destination does not accept {source_type}, and "
                                   "converting would change the index digest")
    if not out:
        raise ConversionError(f"the destination does not accept {source_type} or any "
                              "index format it could be converted to")
    return list(dict.fromkeys(out))


def _layer_type(desc: Descriptor, new_compression: Compression | None, to_oci: bool,
                from_oci: bool) -> str:
    mt = desc.media_type
    if not is_layer(mt):
        if to_oci == from_oci and new_compression is None:
            return mt  # an artifact's opaque layer type stays as it is
        raise ConversionError(f"layer {desc.digest} has media type {mt}, which cannot be "
                              f"converted to {'OCI' if to_oci else 'Docker schema2'}")
    compression = new_compression if new_compression is not None else compression_of(mt)
    assert compression is not None
    result = layer_media_type(oci=to_oci, compression=compression,
                              nondistributable=is_nondistributable(mt))
    if result is None:
        raise ConversionError(f"layer {desc.digest} is {compression}-compressed, which a "
                              "Docker schema2 manifest cannot describe")
    return result


def convert_manifest(src: ImageManifest, target_type: str, config: Descriptor,
                     layers: Sequence[tuple[Descriptor, Compression | None]]) -> ImageManifest:
    """``src`` with the copied ``config`` and ``layers`` (each with the compression it
    now has, or None when unchanged), written as ``target_type``."""
    to_oci = target_type == MediaType.OCI_MANIFEST
    from_oci = src.is_oci
    new_layers = tuple(attrs.evolve(d, media_type=_layer_type(d, c, to_oci, from_oci))
                       for d, c in layers)
    config_type = config.media_type
    if to_oci != from_oci:
        if config_type not in _CONFIG_TYPES:
            raise ConversionError(
                f"config media type {config_type} (an artifact?) cannot be converted to "
                f"{target_type}")
        config_type = MediaType.OCI_CONFIG if to_oci else MediaType.DOCKER_CONFIG
        if not to_oci and (src.subject is not None or src.artifact_type):
            raise ConversionError("a Docker schema2 manifest cannot carry subject or "
                                  "artifactType")
        config = Descriptor(config_type, config.digest, config.size)
        new_layers = tuple(Descriptor(d.media_type, d.digest, d.size, urls=d.urls)
                           for d in new_layers)
        return ImageManifest(media_type=target_type, config=config, layers=new_layers)
    return attrs.evolve(src, config=attrs.evolve(config, media_type=config_type),
                        layers=new_layers)


def convert_index(src: ImageIndex, target_type: str, entries: Sequence[Descriptor]
                  ) -> ImageIndex:
    """``src`` with updated ``entries``, as ``target_type`` (OCI index / Docker list)."""
    if target_type == src.media_type:
        return attrs.evolve(src, manifests=tuple(entries))
    if target_type == MediaType.DOCKER_MANIFEST_LIST:
        for e in entries:
            if e.platform is None:
                raise ConversionError(f"index entry {e.digest} has no platform, which a "
                                      "Docker manifest list requires")
            if e.media_type != MediaType.DOCKER_MANIFEST:
                raise ConversionError(f"a Docker manifest list cannot hold {e.media_type}")
        if src.subject is not None or src.artifact_type:
            raise ConversionError("a Docker manifest list cannot carry subject or artifactType")
        return ImageIndex(media_type=target_type,
                          manifests=tuple(Descriptor(e.media_type, e.digest, e.size,
                                                     urls=e.urls, platform=e.platform)
                                          for e in entries))
    return ImageIndex(media_type=target_type, manifests=tuple(entries))


def instance_media_type_for_list(list_type: str) -> str | None:
    """The manifest type instances must have inside a list of ``list_type``."""
    return MediaType.DOCKER_MANIFEST if list_type == MediaType.DOCKER_MANIFEST_LIST else None


def choose_instance(index: ImageIndex, wanted: Platform) -> Descriptor:
    """The first entry matching the most preferred acceptable platform."""
    for candidate in platform_preferences(wanted):
        for desc in index.manifests:
            if desc.platform is not None and desc.platform.matches(candidate):
                return desc
    available = ", ".join(str(d.platform) for d in index.manifests if d.platform) or "none"
    raise NoMatchingPlatformError(
        f"no image in the index matches {wanted} (available: {available}); "
        "choose another with --override-os/--override-arch/--override-variant or copy "
        "all with --all")


# --- Docker config -> OCI config ---------------------------------------------------


def _go_sorted_map(value: object, what: str, *, empty_values: bool) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConversionError(f"config {what} must be an object")
    if not value:
        return None
    keys = sorted(value, key=lambda k: k.encode("utf-8"))
    return {k: ({} if empty_values else value[k]) for k in keys}


def _str_list(value: object, what: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ConversionError(f"config {what} must be an array of strings")
    return value or None


def oci_config_from_docker(raw: bytes) -> bytes:
    """The OCI config containers/image writes when it converts a Docker schema2 image to
    OCI (``OCIConfig()``: the Docker config decoded into the image-spec ``Image`` type,
    dropping Docker-only fields, and encoded again)."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ConversionError(f"config is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConversionError("config is not a JSON object")
    out: dict[str, Any] = {}
    if doc.get("created") is not None:
        out["created"] = go_time(doc["created"])
    if doc.get("author"):
        out["author"] = doc["author"]
    out["architecture"] = doc.get("architecture") or ""
    out["os"] = doc.get("os") or ""
    if doc.get("os.version"):
        out["os.version"] = doc["os.version"]
    features = _str_list(doc.get("os.features"), "os.features")
    if features:
        out["os.features"] = features
    if doc.get("variant"):
        out["variant"] = doc["variant"]
    container = doc.get("config") or {}
    if not isinstance(container, dict):
        raise ConversionError("config.config must be an object")
    cfg: dict[str, Any] = {}
    for key, kind in (("User", "str"), ("ExposedPorts", "set"), ("Env", "list"),
                      ("Entrypoint", "list"), ("Cmd", "list"), ("Volumes", "set"),
                      ("WorkingDir", "str"), ("Labels", "map"), ("StopSignal", "str"),
                      ("ArgsEscaped", "bool")):
        value = container.get(key)
        if kind in ("str", "bool"):
            if value:
                cfg[key] = value
        elif kind == "list":
            items = _str_list(value, key)
            if items:
                cfg[key] = items
        else:
            mapping = _go_sorted_map(value, key, empty_values=kind == "set")
            if mapping:
                cfg[key] = mapping
    out["config"] = cfg
    rootfs = doc.get("rootfs") or {}
    if not isinstance(rootfs, dict):
        raise ConversionError("config.rootfs must be an object")
    out["rootfs"] = {"type": rootfs.get("type") or "",
                     "diff_ids": rootfs.get("diff_ids")}
    history_out = []
    for entry in doc.get("history") or []:
        if not isinstance(entry, dict):
            raise ConversionError("config.history entries must be objects")
        h: dict[str, Any] = {}
        if entry.get("created") is not None:
            h["created"] = go_time(entry["created"])
        for key in ("created_by", "author", "comment", "empty_layer"):
            if entry.get(key):
                h[key] = entry[key]
        history_out.append(h)
    if history_out:
        out["history"] = history_out
    return dumps(out)


# --- Docker schema1 -> schema2 ------------------------------------------------------

_TIME_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")


def go_time(value: object) -> str:
    """A timestamp as Go marshals a ``time.Time`` (RFC 3339 with trimmed nanoseconds)."""
    if not isinstance(value, str) or not value:
        return "0001-01-01T00:00:00Z"
    m = _TIME_RE.match(value)
    if m is None:
        raise ConversionError(f"schema1 history has an invalid timestamp {value!r}")
    base, frac, zone = m.groups()
    frac = (frac or "")[:9].rstrip("0")
    if zone in ("+00:00", "-00:00"):
        zone = "Z"
    return f"{base}.{frac}{zone}" if frac else f"{base}{zone}"


def _go_string(value: str) -> str:
    return dumps(value).decode("utf-8")


def schema1_config(s1: Schema1Manifest, diff_ids: Sequence[Digest]) -> bytes:
    """The schema2 config containers/image builds from a schema1 manifest
    (``Schema1.ToSchema2Config``): the top v1Compatibility object without its
    per-layer ids, plus ``rootfs`` and ``history``; keys sorted as Go sorts map keys."""
    compat = s1.v1_compatibility()
    history: list[dict[str, Any]] = []
    for c in reversed(compat):
        cmd = (c.get("container_config") or {}).get("Cmd") or []
        entry: dict[str, Any] = {"created": go_time(c.get("created"))}
        if c.get("author"):
            entry["author"] = c["author"]
        created_by = " ".join(str(x) for x in cmd)
        if created_by:
            entry["created_by"] = created_by
        if c.get("comment"):
            entry["comment"] = c["comment"]
        if c.get("throwaway"):
            entry["empty_layer"] = True
        history.append(entry)
    rootfs: dict[str, Any] = {"type": "layers"}
    if diff_ids:
        rootfs["diff_ids"] = [str(d) for d in diff_ids]
    members = {k: go_compact(v) for k, v in top_level_members(s1.history[0])}
    for drop in ("id", "parent", "parent_id", "layer_id", "throwaway", "Size"):
        members.pop(drop, None)
    members["rootfs"] = dumps(rootfs).decode("utf-8")
    members["history"] = dumps(history).decode("utf-8")
    body = ",".join(f"{_go_string(k)}:{members[k]}"
                    for k in sorted(members, key=lambda k: k.encode("utf-8")))
    return ("{" + body + "}").encode("utf-8")


def schema1_manifest(config_raw: bytes, layers: Sequence[Descriptor]) -> ImageManifest:
    """The schema2 manifest for converted schema1 layers (gzip layer type, as
    containers/image writes it)."""
    config = Descriptor(MediaType.DOCKER_CONFIG, Digest.from_bytes(config_raw),
                        len(config_raw))
    return ImageManifest(media_type=MediaType.DOCKER_MANIFEST, config=config,
                         layers=tuple(layers))


def is_schema1(media_type: str) -> bool:
    return is_docker_schema1(media_type)

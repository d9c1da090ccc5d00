"""Image manifests and indexes: OCI, Docker schema2, Docker manifest lists, Docker schema1.

Parsing is strict (wrong types, negative sizes, unknown manifest media types and
ambiguous documents are :class:`~oci_image.errors.SpecError`), but unknown *layer*,
*config* and *artifact* media types are accepted as opaque, as the image-spec requires.

Models never own the canonical bytes: whoever fetched a manifest keeps the raw bytes and
its digest is :func:`manifest_digest` of those bytes. ``to_json()`` is only used for
manifests we create or change, and then produces the same bytes containers/image would.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any, Final, TypeAlias

import attrs

from ..errors import NoMatchingPlatformError, SpecError, UnsupportedMediaTypeError
from ._json import (
    DEFAULT_SIZE_LIMIT,
    Fields,
    FrozenDict,
    _reject_constant,
    dumps,
    go_compact,
    go_time,
    load_object,
    to_frozen,
    top_level_members,
)
from .descriptor import Descriptor
from .digest import Digest
from .mediatype import MediaType, is_docker_schema1, is_index, is_manifest
from .platform import Platform, platform_preferences

__all__ = [
    "AnyManifest",
    "ImageIndex",
    "ImageManifest",
    "Schema1Manifest",
    "choose_instance",
    "guess_media_type",
    "manifest_digest",
    "parse_manifest",
    "schema1_config",
]

_OCI_EMPTY_DIGEST: Final = Digest(
    "sha256", "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")


def _descriptors(f: Fields, key: str, *, required: bool) -> tuple[Descriptor, ...]:
    return tuple(Descriptor.from_fields(item) for item in f.object_list(key, required=required))


def _optional_descriptor(f: Fields, key: str) -> Descriptor | None:
    sub = f.fields(key)
    return Descriptor.from_fields(sub) if sub is not None else None


def _check_schema_version(f: Fields, expected: int) -> None:
    version = f.integer("schemaVersion", required=True)
    if version != expected:
        raise SpecError(f"{f.path}.schemaVersion must be {expected}, not {version}")


def _check_unambiguous(f: Fields, media_type: str, allowed: set[str]) -> None:
    """Refuse documents that could be read as another format (containers/image's
    ``validateUnambiguousManifestFormat``): an index with ``layers``, a manifest with
    ``manifests``, and so on. Keys compare case-insensitively, as Go's decoder does."""
    present = {k.lower() for k in f.obj}
    for key in ("config", "layers", "manifests", "fsLayers", "history"):
        if key not in allowed and key.lower() in present:
            raise SpecError(f"{media_type} document has an unexpected {key!r} field; "
                            "refusing an ambiguous manifest")


@attrs.frozen
class ImageManifest:
    """A single-image manifest: OCI image manifest or Docker schema2 (same shape)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...] = ()
    annotations: FrozenDict = attrs.field(factory=FrozenDict, converter=to_frozen)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    #: whether the JSON had a ``mediaType`` field (OCI makes it optional)
    has_media_type_field: bool = True

    @property
    def is_oci(self) -> bool:
        return self.media_type == MediaType.OCI_MANIFEST

    @classmethod
    def from_json(cls, raw: bytes, media_type: str | None = None, *,
                  limit: int | None = DEFAULT_SIZE_LIMIT) -> ImageManifest:
        parsed = parse_manifest(raw, media_type, limit=limit)
        if not isinstance(parsed, ImageManifest):
            raise UnsupportedMediaTypeError(
                f"expected an image manifest, got {type(parsed).__name__}")
        return parsed

    @classmethod
    def _from_fields(cls, f: Fields, media_type: str) -> ImageManifest:
        _check_schema_version(f, 2)
        _check_unambiguous(f, media_type, {"config", "layers"})
        declared = f.string("mediaType")
        if media_type == MediaType.DOCKER_MANIFEST and declared != media_type:
            raise SpecError(f"Docker schema2 manifest must declare mediaType {media_type}")
        config = Descriptor.from_fields(f.fields("config", required=True))  # type: ignore[arg-type]
        if media_type == MediaType.OCI_MANIFEST and f.obj.get("layers") is None:
            raise SpecError("manifest.layers is required in an OCI image manifest")
        manifest = cls(
            media_type=media_type,
            config=config,
            layers=_descriptors(f, "layers", required=False),
            annotations=f.str_map("annotations"),
            subject=_optional_descriptor(f, "subject"),
            artifact_type=f.string("artifactType"),
            has_media_type_field=declared is not None,
        )
        if (media_type == MediaType.OCI_MANIFEST and config.media_type == MediaType.OCI_EMPTY
                and not manifest.artifact_type):
            raise SpecError("OCI manifest with an empty config must set artifactType")
        return manifest

    def to_json(self) -> bytes:
        """Serialise (Go field order, compact)."""
        if self.is_oci:
            out: dict[str, Any] = {"schemaVersion": 2}
            if self.has_media_type_field:
                out["mediaType"] = self.media_type
            if self.artifact_type:
                out["artifactType"] = self.artifact_type
            out["config"] = self.config.to_json()
            out["layers"] = [layer.to_json() for layer in self.layers]
            if self.subject is not None:
                out["subject"] = self.subject.to_json()
            if self.annotations:
                out["annotations"] = self.annotations.to_dict()
            return dumps(out)
        return dumps({
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_docker_json(),
            "layers": [layer.to_docker_json() for layer in self.layers],
        })

    def referenced_blobs(self) -> tuple[Descriptor, ...]:
        return (self.config, *self.layers)


@attrs.frozen
class ImageIndex:
    """An OCI image index or a Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...] = ()
    annotations: FrozenDict = attrs.field(factory=FrozenDict, converter=to_frozen)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    has_media_type_field: bool = True

    @property
    def is_oci(self) -> bool:
        return self.media_type == MediaType.OCI_INDEX

    @classmethod
    def from_json(cls, raw: bytes, media_type: str | None = None, *,
                  limit: int | None = DEFAULT_SIZE_LIMIT) -> ImageIndex:
        parsed = parse_manifest(raw, media_type, limit=limit)
        if not isinstance(parsed, ImageIndex):
            raise UnsupportedMediaTypeError(
                f"expected an image index, got {type(parsed).__name__}")
        return parsed

    @classmethod
    def _from_fields(cls, f: Fields, media_type: str) -> ImageIndex:
        _check_schema_version(f, 2)
        _check_unambiguous(f, media_type, {"manifests"})
        declared = f.string("mediaType")
        if media_type == MediaType.DOCKER_MANIFEST_LIST and declared != media_type:
            raise SpecError(f"Docker manifest list must declare mediaType {media_type}")
        manifests = _descriptors(f, "manifests", required=True)
        if media_type == MediaType.DOCKER_MANIFEST_LIST:
            for i, m in enumerate(manifests):
                if m.platform is None:
                    raise SpecError(f"manifest list entry {i} ({m.digest}) has no platform")
        return cls(
            media_type=media_type,
            manifests=manifests,
            annotations=f.str_map("annotations"),
            subject=_optional_descriptor(f, "subject"),
            artifact_type=f.string("artifactType"),
            has_media_type_field=declared is not None,
        )

    def to_json(self) -> bytes:
        if self.is_oci:
            out: dict[str, Any] = {"schemaVersion": 2}
            if self.has_media_type_field:
                out["mediaType"] = self.media_type
            if self.artifact_type:
                out["artifactType"] = self.artifact_type
            out["manifests"] = [m.to_json() for m in self.manifests]
            if self.subject is not None:
                out["subject"] = self.subject.to_json()
            if self.annotations:
                out["annotations"] = self.annotations.to_dict()
            return dumps(out)
        entries = []
        for m in self.manifests:
            entry = m.to_docker_json()
            platform = m.platform
            entry["platform"] = platform.to_json() if platform else {"architecture": "",
                                                                      "os": ""}
            entries.append(entry)
        return dumps({"schemaVersion": 2, "mediaType": self.media_type,
                      "manifests": entries})


@attrs.frozen
class Schema1Manifest:
    """A Docker schema1 manifest (read only; converted to schema2/OCI when copied).

    ``fs_layers`` and ``history`` are in file order: the *top* layer first. Consecutive
    duplicate entries have already been removed, as containers/image does.
    """

    name: str
    tag: str
    architecture: str
    fs_layers: tuple[Digest, ...]
    history: tuple[str, ...]
    signed: bool
    #: the bytes the manifest digest is computed over (JWS payload for signed manifests)
    payload: bytes

    @property
    def media_type(self) -> str:
        return MediaType.DOCKER_SCHEMA1_SIGNED if self.signed else MediaType.DOCKER_SCHEMA1

    @classmethod
    def _from_fields(cls, f: Fields, raw: bytes) -> Schema1Manifest:
        _check_schema_version(f, 1)
        _check_unambiguous(f, MediaType.DOCKER_SCHEMA1, {"fsLayers", "history"})
        layers = [Digest.parse(x.req_str("blobSum")) for x in f.object_list("fsLayers")]
        history = [x.req_str("v1Compatibility") for x in f.object_list("history")]
        if len(layers) != len(history):
            raise SpecError("schema1 manifest: length of history not equal to number of layers")
        if not layers:
            raise SpecError("schema1 manifest: no fsLayers")
        compat = [_v1_compat(h, i) for i, h in enumerate(history)]
        _check_schema1_chain(compat)
        # drop consecutive duplicates (same v1 id), bottom-up, like containers/image
        i = len(compat) - 2
        while i >= 0:
            if compat[i]["id"] == compat[i + 1]["id"]:
                del layers[i], history[i], compat[i]
            i -= 1
        signatures = f.array("signatures")
        payload = _schema1_payload(raw, signatures) if signatures else raw
        return cls(
            name=f.string("name") or "",
            tag=f.string("tag") or "",
            architecture=f.string("architecture") or "",
            fs_layers=tuple(layers),
            history=tuple(history),
            signed=bool(signatures),
            payload=payload,
        )

    def v1_compatibility(self) -> list[dict[str, Any]]:
        return [_v1_compat(h, i) for i, h in enumerate(self.history)]

    def layer_entries(self) -> list[tuple[Digest, bool]]:
        """``(blobSum, throwaway)`` from the base layer up."""
        compat = self.v1_compatibility()
        return [(self.fs_layers[i], bool(compat[i].get("throwaway")))
                for i in reversed(range(len(self.fs_layers)))]


def _v1_compat(text: str, index: int) -> dict[str, Any]:
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise SpecError(f"schema1 history entry {index} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise SpecError(f"schema1 history entry {index} is not a JSON object")
    f = Fields(value, f"history[{index}].v1Compatibility")
    f.string("id")
    f.string("parent")
    return value


def _check_schema1_chain(compat: list[dict[str, Any]]) -> None:
    import re

    for c in compat:
        if not re.fullmatch(r"[a-f0-9]{64}", str(c.get("id", ""))):
            raise SpecError(f"schema1 manifest: image ID {c.get('id')!r} is invalid")
    if compat[-1].get("parent"):
        raise SpecError("schema1 manifest: invalid parent ID in the base layer")
    seen: set[str] = set()
    last = None
    for c in compat:
        if c["id"] != last and c["id"] in seen:
            raise SpecError(f"schema1 manifest: ID {c['id']} appears multiple times")
        last = c["id"]
        seen.add(last)
    for i in range(len(compat) - 2, -1, -1):
        if compat[i]["id"] != compat[i + 1]["id"] and \
                compat[i].get("parent") != compat[i + 1]["id"]:
            raise SpecError(f"schema1 manifest: invalid parent ID {compat[i].get('parent')!r}")


def _b64url(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded)


def _schema1_payload(raw: bytes, signatures: list[Any]) -> bytes:
    """The signed payload of a JWS "pretty" signed schema1 manifest (libtrust format):
    ``raw[:formatLength] + base64url(formatTail)``. All signatures must agree."""
    payload: bytes | None = None
    for i, sig in enumerate(signatures):
        f = Fields(sig, f"signatures[{i}]")
        try:
            protected = json.loads(_b64url(f.req_str("protected")))
            length = protected["formatLength"]
            tail = _b64url(protected["formatTail"])
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise SpecError(f"schema1 signature {i}: invalid protected header") from exc
        if not isinstance(length, int) or not 0 <= length <= len(raw):
            raise SpecError(f"schema1 signature {i}: invalid formatLength")
        this = raw[:length] + tail
        if payload is not None and this != payload:
            raise SpecError("schema1 signatures disagree on the payload")
        payload = this
    assert payload is not None
    return payload


AnyManifest: TypeAlias = ImageManifest | ImageIndex | Schema1Manifest


def guess_media_type(obj: dict[str, Any]) -> str:
    """The media type of a manifest document whose media type was not given
    (containers/image ``GuessMIMEType``)."""
    declared = obj.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    version = obj.get("schemaVersion")
    if version == 1:
        return MediaType.DOCKER_SCHEMA1_SIGNED if obj.get("signatures") \
            else MediaType.DOCKER_SCHEMA1
    if version == 2:
        config = obj.get("config")
        config_type = config.get("mediaType") if isinstance(config, dict) else None
        if config_type == MediaType.DOCKER_CONFIG:
            return MediaType.DOCKER_MANIFEST
        if "manifests" in obj and config is None:
            return MediaType.OCI_INDEX
        return MediaType.OCI_MANIFEST
    raise SpecError(f"cannot tell the manifest type (schemaVersion {version!r})")


_GENERIC_TYPES: Final = frozenset({"", "text/plain", "application/json",
                                   "application/octet-stream"})


def parse_manifest(raw: bytes, media_type: str | None = None, *,
                   limit: int | None = DEFAULT_SIZE_LIMIT) -> AnyManifest:
    """Parse any supported manifest or index.

    ``media_type`` is what the source said (a Content-Type, an index entry); it must agree
    with the document's own ``mediaType`` field when both are set.
    """
    obj = load_object(raw, "manifest", limit)
    declared = obj.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise SpecError("manifest.mediaType must be a string")
    given = (media_type or "").split(";")[0].strip()
    if given in _GENERIC_TYPES:
        given = ""
    if given and declared and declared != given:
        raise SpecError(f"manifest declares mediaType {declared}, but was served as {given}")
    effective = given or guess_media_type(obj)
    if is_docker_schema1(effective):
        return Schema1Manifest._from_fields(Fields(obj, "manifest"), raw)
    if not is_manifest(effective):
        raise UnsupportedMediaTypeError(f"unsupported manifest media type {effective!r}")
    f = Fields(obj, "manifest")
    if is_index(effective):
        return ImageIndex._from_fields(f, effective)
    return ImageManifest._from_fields(f, effective)


def manifest_digest(raw: bytes, algorithm: str = "sha256") -> Digest:
    """The digest of a manifest as stored or received: of the raw bytes, except for
    signed schema1 manifests, whose digest covers the JWS payload."""
    if b'"signatures"' not in raw:
        return Digest.from_bytes(raw, algorithm)
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return Digest.from_bytes(raw, algorithm)
    if isinstance(obj, dict) and obj.get("schemaVersion") == 1 and obj.get("signatures"):
        return Digest.from_bytes(_schema1_payload(raw, obj["signatures"]), algorithm)
    return Digest.from_bytes(raw, algorithm)


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


# --- Docker schema1 -> schema2 config -----------------------------------------------


def _go_string(value: str) -> str:
    return dumps(value).decode("utf-8")


def schema1_config(s1: Schema1Manifest, diff_ids: Sequence[Digest | str]) -> bytes:
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

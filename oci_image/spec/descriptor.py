"""Content descriptors."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import SpecError
from ._json import Fields, FrozenDict, to_frozen
from .digest import Digest
from .platform import Platform

__all__ = ["Descriptor"]


def _to_tuple(value: Any) -> tuple[str, ...]:
    return tuple(value) if value else ()


@attrs.frozen
class Descriptor:
    """An OCI content descriptor (also used for Docker schema2 descriptors).

    ``size`` is never negative. When ``data`` is given it has been checked against
    ``digest`` and ``size``.
    """

    media_type: str
    digest: Digest
    size: int = attrs.field()
    urls: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    annotations: FrozenDict = attrs.field(factory=FrozenDict, converter=to_frozen)
    data: bytes | None = None
    platform: Platform | None = None
    artifact_type: str | None = None

    @size.validator
    def _check_size(self, _attr: object, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SpecError(f"descriptor {self.digest}: invalid size {value!r}")

    @classmethod
    def from_fields(cls, f: Fields) -> Descriptor:
        media_type = f.req_str("mediaType")
        digest = _parse_digest(f, "digest")
        size = f.req_int("size", minimum=0)
        data: bytes | None = None
        encoded = f.string("data")
        if encoded is not None:
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise SpecError(f"{f.path}.data is not valid base64") from exc
            if len(data) != size or Digest.from_bytes(data, digest.algorithm) != digest:
                raise SpecError(f"{f.path}.data does not match the descriptor's digest/size")
        platform_fields = f.fields("platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            urls=f.str_list("urls"),
            annotations=f.str_map("annotations"),
            data=data,
            platform=Platform.from_fields(platform_fields) if platform_fields else None,
            artifact_type=f.string("artifactType"),
        )

    @classmethod
    def from_json(cls, value: Mapping[str, Any], path: str = "descriptor") -> Descriptor:
        return cls.from_fields(Fields(dict(value), path))

    def to_json(self) -> dict[str, Any]:
        """OCI field order (as Go's image-spec ``Descriptor``)."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = self.annotations.to_dict()
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode("ascii")
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    def to_docker_json(self) -> dict[str, Any]:
        """Docker schema2 field order (containers/image ``Schema2Descriptor``)."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "size": self.size,
            "digest": str(self.digest),
        }
        if self.urls:
            out["urls"] = list(self.urls)
        return out

    def with_annotations(self, annotations: Mapping[str, str]) -> Descriptor:
        return attrs.evolve(self, annotations=FrozenDict(annotations))


def _parse_digest(f: Fields, key: str) -> Digest:
    raw = f.req_str(key)
    try:
        return Digest.parse(raw)
    except SpecError as exc:
        raise type(exc)(f"{f.path}.{key}: {exc}") from exc

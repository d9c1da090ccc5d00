"""The ``manifest.json`` of a docker-save archive."""

from __future__ import annotations

from typing import Any

import attrs

from ...errors import ArchiveError, SpecError
from ...spec._json import Fields, dumps
from .._tar import clean_member_name


@attrs.frozen
class ManifestItem:
    config: str
    repo_tags: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    parent: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Config": self.config, "RepoTags": list(self.repo_tags),
                               "Layers": list(self.layers)}
        if self.parent:
            out["Parent"] = self.parent
        return out


def parse_archive_manifest(raw: bytes, where: str) -> list[ManifestItem]:
    try:
        import json

        value = json.loads(raw)
    except ValueError as exc:
        raise ArchiveError(f"{where}: manifest.json is not valid JSON") from exc
    if not isinstance(value, list):
        raise ArchiveError(f"{where}: manifest.json must be a JSON array")
    items = []
    for i, entry in enumerate(value):
        try:
            f = Fields(entry, f"manifest.json[{i}]")
            config = f.req_str("Config")
            layers = f.str_list("Layers")
            item = ManifestItem(config=config, repo_tags=f.str_list("RepoTags"),
                                layers=layers, parent=f.string("Parent") or "")
        except SpecError as exc:
            raise ArchiveError(f"{where}: {exc}") from exc
        for path in (config, *layers):
            clean_member_name(path, f"{where}: manifest.json[{i}]")
        items.append(item)
    return items


def dump_archive_manifest(items: list[ManifestItem]) -> bytes:
    return dumps([item.to_json() for item in items])



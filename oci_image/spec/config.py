"""Image configuration (OCI ``application/vnd.oci.image.config.v1+json`` and Docker's
``application/vnd.docker.container.image.v1+json``, which share their core fields)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import SpecError
from ._json import (
    DEFAULT_SIZE_LIMIT,
    Fields,
    FrozenDict,
    dumps,
    go_time,
    load_object,
    to_frozen,
)
from .digest import Digest

if TYPE_CHECKING:
    from .platform import Platform

__all__ = ["ContainerConfig", "HistoryEntry", "ImageConfig", "RootFS", "normalize_oci_config"]


def _strslice(f: Fields, key: str) -> tuple[str, ...] | None:
    """Docker's ``strslice``: null, a string, or an array of strings."""
    value = f.obj.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return f.str_list(key)


def _key_set(f: Fields, key: str) -> tuple[str, ...]:
    value = f.obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise SpecError(f"{f.path}.{key} must be an object")
    return tuple(value)


@attrs.frozen
class ContainerConfig:
    """The ``config`` member: how to run a container of the image."""

    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: FrozenDict = attrs.field(factory=FrozenDict, converter=to_frozen)
    stop_signal: str = ""
    args_escaped: bool = False
    shell: tuple[str, ...] | None = None
    healthcheck: Any = None
    on_build: tuple[str, ...] | None = None

    @classmethod
    def from_fields(cls, f: Fields) -> ContainerConfig:
        return cls(
            user=f.string("User") or "",
            exposed_ports=_key_set(f, "ExposedPorts"),
            env=f.str_list("Env"),
            entrypoint=_strslice(f, "Entrypoint"),
            cmd=_strslice(f, "Cmd"),
            volumes=_key_set(f, "Volumes"),
            working_dir=f.string("WorkingDir") or "",
            labels=f.str_map("Labels"),
            stop_signal=f.string("StopSignal") or "",
            args_escaped=bool(f.boolean("ArgsEscaped")),
            shell=_strslice(f, "Shell"),
            healthcheck=f.obj.get("Healthcheck"),
            on_build=_strslice(f, "OnBuild"),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.volumes:
            out["Volumes"] = {v: {} for v in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = self.labels.to_dict()
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.args_escaped:
            out["ArgsEscaped"] = True
        if self.shell is not None:
            out["Shell"] = list(self.shell)
        if self.healthcheck is not None:
            out["Healthcheck"] = self.healthcheck
        if self.on_build is not None:
            out["OnBuild"] = list(self.on_build)
        return out


@attrs.frozen
class RootFS:
    type: str = "layers"
    diff_ids: tuple[Digest, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "diff_ids": [str(d) for d in self.diff_ids]}


@attrs.frozen
class HistoryEntry:
    created: str | None = None
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    @classmethod
    def from_fields(cls, f: Fields) -> HistoryEntry:
        return cls(
            created=f.string("created"),
            created_by=f.string("created_by") or "",
            author=f.string("author") or "",
            comment=f.string("comment") or "",
            empty_layer=bool(f.boolean("empty_layer")),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.created:
            out["created"] = self.created
        if self.created_by:
            out["created_by"] = self.created_by
        if self.author:
            out["author"] = self.author
        if self.comment:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out


@attrs.frozen
class ImageConfig:
    """The parsed image configuration. Keep the raw bytes next to it: the config blob
    is never re-serialised by a copy."""

    architecture: str = ""
    os: str = ""
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    created: str | None = None
    author: str = ""
    config: ContainerConfig = attrs.field(factory=ContainerConfig)
    rootfs: RootFS = attrs.field(factory=RootFS)
    history: tuple[HistoryEntry, ...] = ()
    #: Docker-only fields kept for ``inspect`` (DockerVersion)
    docker_version: str = ""

    @classmethod
    def from_json(cls, raw: bytes, *, limit: int | None = DEFAULT_SIZE_LIMIT) -> ImageConfig:
        f = Fields(load_object(raw, "image config", limit), "config")
        rootfs = f.fields("rootfs")
        diff_ids: tuple[Digest, ...] = ()
        rootfs_type = "layers"
        if rootfs is not None:
            rootfs_type = rootfs.string("type") or ""
            diff_ids = tuple(Digest.parse(d) for d in rootfs.str_list("diff_ids"))
        container = f.fields("config")
        return cls(
            architecture=f.string("architecture") or "",
            os=f.string("os") or "",
            variant=f.string("variant") or "",
            os_version=f.string("os.version") or "",
            os_features=f.str_list("os.features"),
            created=f.string("created"),
            author=f.string("author") or "",
            config=ContainerConfig.from_fields(container) if container else ContainerConfig(),
            rootfs=RootFS(type=rootfs_type, diff_ids=diff_ids),
            history=tuple(HistoryEntry.from_fields(h) for h in f.object_list("history")),
            docker_version=f.string("docker_version") or "",
        )

    @property
    def platform(self) -> Platform:
        from .platform import Platform  # (not loaded for a config that is only read)

        return Platform(os=self.os, architecture=self.architecture, variant=self.variant,
                        os_version=self.os_version, os_features=self.os_features)

    def to_json(self) -> bytes:
        """OCI serialisation (Go ``v1.Image`` field order, compact)."""
        out: dict[str, Any] = {}
        if self.created:
            out["created"] = self.created
        if self.author:
            out["author"] = self.author
        out["architecture"] = self.architecture
        out["os"] = self.os
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        out["config"] = self.config.to_json()  # Go writes the struct even when empty
        out["rootfs"] = self.rootfs.to_json()
        if self.history:
            out["history"] = [h.to_json() for h in self.history]
        return dumps(out)

    def non_empty_history(self) -> int:
        return sum(1 for h in self.history if not h.empty_layer)


def _go_sorted_map(value: object, what: str, *, empty_values: bool) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpecError(f"config {what} must be an object")
    if not value:
        return None
    keys = sorted(value, key=lambda k: k.encode("utf-8"))
    return {k: ({} if empty_values else value[k]) for k in keys}


def _str_list(value: object, what: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise SpecError(f"config {what} must be an array of strings")
    return value or None


def normalize_oci_config(raw: bytes) -> bytes:
    """A config as containers/image's ``OCIConfig()`` sees it: decoded into the image-spec
    ``Image`` type (Docker-only and unknown fields dropped) and encoded again, compactly,
    in Go's field order. This is the config it writes when converting a Docker image to
    OCI, and what ``skopeo inspect --config`` prints."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise SpecError(f"config is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise SpecError("config is not a JSON object")
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
        raise SpecError("config.config must be an object")
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
        raise SpecError("config.rootfs must be an object")
    out["rootfs"] = {"type": rootfs.get("type") or "",
                     "diff_ids": rootfs.get("diff_ids")}
    history_out = []
    for entry in doc.get("history") or []:
        if not isinstance(entry, dict):
            raise SpecError("config.history entries must be objects")
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

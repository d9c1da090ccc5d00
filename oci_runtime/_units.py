"""systemd unit text for system containers: command-line quoting, the default service
template, ``[Unit]`` dependency lines, tmpfiles.d lines and the Quadlet ``.container``
alternative. Pure text in, text out; no I/O.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "DEFAULT_SERVICE_TEMPLATE",
    "add_dependencies",
    "command_line",
    "exec_argv",
    "parse_unit",
    "quadlet_container",
    "systemd_quote",
    "tmpfiles_directories",
]

#: the unit written when the image has no ``/exports/service.template`` (variables are
#: substituted like an image's template)
DEFAULT_SERVICE_TEMPLATE: Final = """\
[Unit]
Description=System container $NAME ($IMAGE_NAME)

[Service]
Type=simple
ExecStartPre=-$EXEC_STARTPRE
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
ExecStopPost=-$EXEC_STOPPOST
Restart=on-failure
WorkingDirectory=$DESTDIR
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
"""

_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./:=@+,-]+")
#: the prefixes systemd allows in front of an Exec*= command
_EXEC_PREFIXES = "-@:+!"


def systemd_quote(word: str) -> str:
    """One argument for an ``Exec*=`` line: double-quoted when needed, with ``%`` and
    ``$`` doubled so that systemd expands neither specifiers nor variables."""
    if not word or not _PLAIN_WORD.fullmatch(word):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word.replace("%", "%%").replace("$", "$$")


def command_line(argv: Sequence[str]) -> str:
    """An ``Exec*=`` command line for ``argv``."""
    return " ".join(systemd_quote(a) for a in argv)


def exec_argv(value: str) -> list[str]:
    """The argv of an ``Exec*=`` value as systemd runs it (prefixes such as ``-`` removed,
    quotes and ``$$``/``%%`` undone); for tests and for running a unit by hand."""
    value = value.lstrip(_EXEC_PREFIXES)
    return [w.replace("$$", "$").replace("%%", "%") for w in shlex.split(value)]


def parse_unit(text: str) -> list[tuple[str, str, str]]:
    """``(section, key, value)`` for each assignment of a unit file, in order."""
    out: list[tuple[str, str, str]] = []
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif "=" in line:
            key, value = line.split("=", 1)
            out.append((section, key.strip(), value.strip()))
    return out


def add_dependencies(text: str, *, requires: Iterable[str] = (), after: Iterable[str] = (),
                     wants: Iterable[str] = ()) -> str:
    """``text`` with ``Requires=``/``After=``/``Wants=`` lines added at the top of its
    ``[Unit]`` section (one is made when missing); lines already there are not
    repeated."""
    present = {(s, k, v) for s, k, v in parse_unit(text)}
    lines = [f"{key}={unit}" for key, units in
             (("Requires", requires), ("Wants", wants), ("After", after))
             for unit in units if ("Unit", key, unit) not in present]
    if not lines:
        return text
    out = text.splitlines(keepends=True)
    for i, line in enumerate(out):
        if line.strip() == "[Unit]":
            out[i + 1:i + 1] = [f"{entry}\n" for entry in lines]
            return "".join(out)
    return "[Unit]\n" + "".join(f"{entry}\n" for entry in lines) + "\n" + text


def _tmpfiles_quote(path: str) -> str:
    if re.search(r"\s|[\"'\\]", path):
        return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return path


def tmpfiles_directories(paths: Iterable[str], uid: str, gid: str) -> str:
    """tmpfiles.d ``d`` lines creating ``paths`` (bind-mount sources the host lacks)."""
    return "".join(f"d {_tmpfiles_quote(p.replace('%', '%%'))} 0700 {uid} {gid} - -\n"
                   for p in paths)


def quadlet_container(*, name: str, image: str, description: str,
                      global_args: Sequence[str] = (),
                      volumes: Iterable[tuple[str, str, bool]] = (),
                      requires: Iterable[str] = (), after: Iterable[str] = (),
                      wants: Iterable[str] = ()) -> str:
    """A Quadlet ``.container`` unit (podman-systemd.unit(5)) running ``image`` as
    container ``name`` with a read-only root, ``volumes`` as ``(source, destination,
    read_only)`` binds and the given ``[Unit]`` dependencies (Quadlet rewrites
    ``x.container`` names to ``x.service``). ``image`` should be a full 64-hex image ID
    or a fully qualified name (Quadlet warns about short names); ``GlobalArgs=`` needs
    podman 4.8 or later."""
    lines = ["[Unit]", f"Description={description}"]
    lines += [f"Requires={u}" for u in requires]
    lines += [f"Wants={u}" for u in wants]
    lines += [f"After={u}" for u in after]
    lines += ["", "[Container]", f"Image={image}", f"ContainerName={name}", "ReadOnly=true"]
    if global_args:
        lines.append(f"GlobalArgs={command_line(global_args)}")
    for source, destination, read_only in volumes:
        lines.append(f"Volume={source}:{destination}{':ro' if read_only else ''}")
    lines += ["", "[Service]", "Restart=on-failure", "", "[Install]",
              "WantedBy=multi-user.target", ""]
    return "\n".join(lines)

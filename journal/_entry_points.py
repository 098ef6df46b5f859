"""Installed entry points of a group, without importing ``importlib.metadata`` on the way.

Every command looks up the installed services (``journal.services``) and providers
(``journal.providers``). ``importlib.metadata`` answers that, but importing it costs about
30 ms (``csv``, ``zipfile``, ``email`` and its own modules), a tenth of a no-op deploy. The
common layout is plain: each distribution is a ``NAME-VERSION.dist-info`` folder in a
directory of ``sys.path`` (editable installs included), with an INI ``entry_points.txt``.
This reads those directly, with the same rules as ``importlib.metadata.entry_points``: the
first distribution of a (normalized) name on ``sys.path`` wins, and entries come in
``sys.path`` order. Anything else on ``sys.path`` (a zip archive, an ``.egg-info``
distribution, an ``.egg``) hands the whole lookup to ``importlib.metadata``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["EntryPoint", "entry_points"]

_NORMALIZE = re.compile(r"[-_.]+")


@dataclass(frozen=True)
class EntryPoint:
    """``name = module[:attr]`` of ``group`` (what ``importlib.metadata.EntryPoint`` gives:
    ``name``, ``value``, ``group`` and ``load()``)."""

    name: str
    value: str
    group: str

    def load(self) -> Any:
        module_name, _, attr = self.value.partition(":")
        module = importlib.import_module(module_name.strip())
        for part in filter(None, attr.strip().split(".")):
            module = getattr(module, part)
        return module


class _Unusual(Exception):
    """Something on ``sys.path`` this reader does not handle."""


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points of ``group`` installed for this interpreter."""
    try:
        return list(_scan(group))
    except _Unusual:
        from importlib.metadata import entry_points as slow

        return [EntryPoint(ep.name, ep.value, ep.group) for ep in slow(group=group)]


def _scan(group: str) -> Iterator[EntryPoint]:
    seen: set[str] = set()
    for entry in sys.path:
        folder = entry or "."
        if not os.path.isdir(folder):
            if os.path.exists(folder):
                raise _Unusual(folder)  # a zip archive or a file
            continue
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            if name.endswith((".egg-info", ".egg")):
                raise _Unusual(name)
            if not name.endswith(".dist-info"):
                continue
            dist = _NORMALIZE.sub("_", name[: -len(".dist-info")].split("-")[0]).lower()
            if dist in seen:
                continue
            seen.add(dist)
            try:
                with open(os.path.join(folder, name, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise _Unusual(name) from exc
            yield from _parse(text, group)


def _parse(text: str, group: str) -> Iterator[EntryPoint]:
    """``[group]`` sections of an ``entry_points.txt``: ``name = value`` lines, ``#`` comments
    (as ``importlib.metadata`` reads them; a line it would refuse is handed to it)."""
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            continue
        if current != group:
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise _Unusual(line)
        yield EntryPoint(name.strip(), value.strip(), group)

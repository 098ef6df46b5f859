"""The program runner: load ``alchemy.run.py`` (or any program), run it under the engine.

The program's folder goes first on ``sys.path`` so it can import its own modules. Every run
starts from fresh module state: modules imported from the program's folder by an earlier run
in this process are dropped first, which is what ``journal dev`` relies on to re-run edited
code in the same process (and so derive the journal's key only once).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import runpy
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .._engine import RunResult
from .._errors import JournalError, ProgramError
from .app import RunSettings, run_settings

__all__ = ["DEFAULT_PROGRAM", "ProgramRun", "program_hash", "resolve_program", "run_program"]

DEFAULT_PROGRAM = "alchemy.run.py"


@dataclass
class ProgramRun:
    path: Path
    results: list[RunResult]
    apps: list[tuple[str, str]]
    #: files of the program's own folder that it imported (what `dev` watches)
    modules: list[Path] = field(default_factory=list)


def resolve_program(program: str | os.PathLike[str] | None) -> Path:
    path = Path(program if program is not None else DEFAULT_PROGRAM)
    if path.is_dir():
        path = path / DEFAULT_PROGRAM
    if not path.is_file():
        raise ProgramError(
            f"no program at {str(path)!r}: pass the path of your program "
            f"(default {DEFAULT_PROGRAM} in the current folder), or create one with `journal init`"
        )
    return path.resolve()


def program_hash(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


#: folders inside a program's folder whose modules are not the program's own
_NOT_OWN: Final = frozenset({"site-packages", ".venv", "venv", ".journal", "node_modules"})


class _Locality:
    """Which module files are a program's own: resolved (symlinks followed) into its folder
    ``root``, not inside an environment kept there. A scan of ``sys.modules`` asks this of
    some hundreds of files, mostly in a few folders: each folder is resolved once (a file
    that is itself a symlink is still followed), and paths are compared as strings."""

    def __init__(self, root: Path) -> None:
        self._prefix = os.path.join(str(root), "")
        self._folders: dict[str, str] = {}

    def resolve(self, module_file: str) -> str | None:
        """The file's real path if it is one of the program's own, else None."""
        try:
            folder, name = os.path.split(os.path.abspath(module_file))
            real = self._folders.get(folder)
            if real is None:
                real = self._folders[folder] = os.path.realpath(folder)
            path = os.path.join(real, name)
            if os.path.islink(path):
                path = os.path.realpath(path)
        except (OSError, ValueError):
            return None
        if not path.startswith(self._prefix):
            return None
        if _NOT_OWN.intersection(path[len(self._prefix) :].split(os.sep)):
            return None
        return path

    def is_local(self, module_file: str | None) -> bool:
        return bool(module_file) and self.resolve(str(module_file)) is not None


def _is_local(module_file: str | None, root: Path) -> bool:
    return _Locality(root).is_local(module_file)


#: names of the modules earlier runs imported from their programs' folders
_LOADED: set[str] = set()


def _drop_local_modules(root: Path) -> None:
    """Forget modules of this program's folder, and those an earlier program in this process
    imported from its own (two projects may both have a ``helpers`` module)."""
    locality = _Locality(root)
    for name, mod in list(sys.modules.items()):
        if name in _LOADED or locality.is_local(getattr(mod, "__file__", None)):
            del sys.modules[name]
    _LOADED.clear()


def local_modules(root: Path) -> list[Path]:
    locality = _Locality(root)
    found = set()
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        path = locality.resolve(str(f)) if f else None
        if path is not None:
            found.add(Path(path))
            _LOADED.add(name)
    return sorted(found)


def run_program(program: str | os.PathLike[str] | None, settings: RunSettings) -> ProgramRun:
    """Run the program once under ``settings``; each ``journal.app`` block in it is one run.

    Raises ProgramError for a program that cannot be loaded, raises, or declares no app
    (runs it did finish are in ``settings.results``); RunError when a resource failed."""
    path = resolve_program(program)
    root = path.parent
    settings.program = str(path)
    settings.program_hash = program_hash(path)
    _drop_local_modules(root)
    sys.path.insert(0, str(root))
    try:
        with run_settings(settings):
            try:
                runpy.run_path(str(path), run_name="__main__")
            except JournalError:
                raise
            except SyntaxError as exc:
                raise ProgramError(
                    f"{exc.filename}:{exc.lineno}: syntax error: {exc.msg}; nothing was changed"
                ) from exc
            except SystemExit as exc:
                if exc.code not in (0, None):
                    raise ProgramError(f"{path.name} exited with status {exc.code}") from exc
            except Exception as exc:
                tb = traceback.extract_tb(exc.__traceback__)
                frames = [f for f in tb if _is_local(f.filename, root)]
                where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
                raise ProgramError(
                    f"{where}the program raised {type(exc).__name__}: {exc}"
                ) from exc
    finally:
        modules = local_modules(root)
        with contextlib.suppress(ValueError):
            sys.path.remove(str(root))
    if not settings.apps:
        raise ProgramError(
            f"{path.name} declares no app: wrap its resources in "
            '`with journal.app("my-app") as app:`'
        )
    return ProgramRun(
        path=path, results=list(settings.results), apps=list(settings.apps), modules=modules
    )

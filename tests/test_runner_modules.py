"""Which imported modules are a program's own (what `journal dev` watches and each run
forgets): files resolved into the program's folder, symlinks followed, environments kept
inside the folder left out."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from journal._program.runner import _drop_local_modules, _is_local, local_modules


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[dict[str, Path]]:
    project = tmp_path / "project"
    outside = tmp_path / "outside"
    (project / "pkg").mkdir(parents=True)
    (project / ".venv" / "lib" / "site-packages").mkdir(parents=True)
    outside.mkdir()
    files = {
        "own": project / "helpers.py",
        "own_pkg": project / "pkg" / "mod.py",
        "venv": project / ".venv" / "lib" / "site-packages" / "dep.py",
        "elsewhere": outside / "other.py",
        "linked_in": outside / "linked_in.py",  # a symlink to a file of the project
        "linked_out": project / "linked_out.py",  # a symlink to a file outside it
        "via_folder": outside / "alias" / "helpers.py",  # a symlinked folder into the project
    }
    for key in ("own", "own_pkg", "venv", "elsewhere"):
        files[key].write_text("")
    (project / "real_target.py").write_text("")
    files["linked_in"].symlink_to(project / "real_target.py")
    files["linked_out"].symlink_to(files["elsewhere"])
    (outside / "alias").symlink_to(project, target_is_directory=True)
    names = {key: f"_test_runner_modules_{key}" for key in files}
    for key, name in names.items():
        module = types.ModuleType(name)
        module.__file__ = str(files[key])
        sys.modules[name] = module
    try:
        yield {"project": project.resolve(), **files}
    finally:
        for name in names.values():
            sys.modules.pop(name, None)


def test_a_programs_own_modules_are_found_through_symlinks(layout: dict[str, Path]) -> None:
    root = layout["project"]
    own = {"own", "own_pkg", "linked_in", "via_folder"}
    for key in ("own", "own_pkg", "venv", "elsewhere", "linked_in", "linked_out", "via_folder"):
        assert _is_local(str(layout[key]), root) is (key in own), key
    assert not _is_local(None, root)
    assert not _is_local("", root)
    found = local_modules(root)
    assert root / "helpers.py" in found
    assert root / "pkg" / "mod.py" in found
    assert root / "real_target.py" in found
    assert all(root in p.parents for p in found)
    assert not any(".venv" in p.parts for p in found)


def test_the_next_run_forgets_them(layout: dict[str, Path]) -> None:
    local_modules(layout["project"])
    _drop_local_modules(layout["project"])
    left = {n for n in sys.modules if n.startswith("_test_runner_modules_")}
    assert left == {
        "_test_runner_modules_venv",
        "_test_runner_modules_elsewhere",
        "_test_runner_modules_linked_out",
    }

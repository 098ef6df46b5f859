"""``journal._entry_points`` reads installed entry points as ``importlib.metadata`` does."""

from __future__ import annotations

import sys
import zipfile
from importlib.metadata import entry_points as reference
from pathlib import Path

import pytest

from journal import _entry_points
from journal._entry_points import EntryPoint, entry_points


@pytest.mark.parametrize(
    "group",
    ["journal.services", "journal.providers", "journal.alchemy", "console_scripts", "pytest11"],
)
def test_the_same_entry_points_as_importlib_metadata(group: str) -> None:
    ours = sorted((ep.name, ep.value) for ep in entry_points(group))
    theirs = sorted((ep.name, ep.value) for ep in reference(group=group))
    assert ours == theirs
    if group.startswith("journal."):
        assert ours, "the project's own entry points are installed"


def test_the_first_distribution_of_a_name_on_sys_path_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, value in ((first, "one:x"), (second, "two:y")):
        info = folder / "My_Pkg-1.0.dist-info"
        info.mkdir(parents=True)
        info.joinpath("entry_points.txt").write_text(
            f"# a comment\n[other]\nz = nope\n\n[demo.group]\nthing = {value}\n# another\n"
        )
    (second / "empty-2.0.dist-info").mkdir()  # no entry_points.txt: nothing
    monkeypatch.setattr(sys, "path", [str(first), str(second), str(tmp_path / "missing")])
    assert entry_points("demo.group") == [EntryPoint("thing", "one:x", "demo.group")]
    assert [(e.name, e.value) for e in reference(group="demo.group")] == [("thing", "one:x")]


def test_anything_unusual_on_sys_path_goes_to_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("zipped-1.0.dist-info/METADATA", "Name: zipped\nVersion: 1.0\n")
        z.writestr("zipped-1.0.dist-info/entry_points.txt", "[demo.zip]\nz = mod:attr\n")
    monkeypatch.setattr(sys, "path", [str(archive)])
    with pytest.raises(_entry_points._Unusual):
        list(_entry_points._scan("demo.zip"))
    assert entry_points("demo.zip") == [EntryPoint("z", "mod:attr", "demo.zip")]


def test_load_imports_the_module_and_attribute() -> None:
    assert EntryPoint("x", "journal._entry_points:EntryPoint.load", "g").load() is EntryPoint.load
    assert EntryPoint("x", "journal._entry_points", "g").load() is _entry_points

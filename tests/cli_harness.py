"""What CLI tests of the one-resource memory program share: the program, a project folder
holding it (stage ``dev``), and ``run``, which checks the exit code and that no traceback
was printed."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from journal.cli import cli

__all__ = ["PROGRAM", "make_project", "run", "write"]

PROGRAM = """
import journal
from memory_provider import Thing

with journal.app("demo") as app:
    Thing("one")
"""


def make_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, program: str = PROGRAM) -> Path:
    """``tmp_path`` as the current folder holding ``program``, stage ``dev``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNAL_STAGE", "dev")
    write(tmp_path, program)
    return tmp_path


def write(folder: Path, source: str, name: str = "alchemy.run.py") -> Path:
    """``source`` (dedented) as ``folder/name``."""
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def run(*args: str, code: int, **kw: Any) -> Result:
    result = CliRunner().invoke(cli, list(args), **kw)
    assert result.exit_code == code, (
        f"exit {result.exit_code}, expected {code}\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}"
    )
    assert "Traceback" not in result.output
    return result

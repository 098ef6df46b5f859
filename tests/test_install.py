"""Installed for editors: mypy type-checks a scaffolded program (`journal init`) against a
plain install and against the editable install scripts/demo makes; and the shell completion
script generates."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner

from journal.cli import cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
#: what a program of the wrong type does, so the check is known to be a real one
WRONG = "\nport: str = connection.port\nuser: int = connection.user\n"


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--no-deps", "--no-build-isolation", *args],
        check=True,
        capture_output=True,
        timeout=600,
    )  # fmt: skip


def _venv(where: Path, *paths: Path) -> Path:
    """A bare virtualenv whose site-packages also holds ``paths`` (a .pth file): the
    dependencies of journal come from the test's own environment, journal itself does not."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "journal-test-deps.pth").write_text("".join(f"{p}\n" for p in paths))
    return python


def _scaffold(folder: Path) -> Path:
    result = CliRunner().invoke(cli, ["init", str(folder), "--name", "typed"])
    assert result.exit_code == 0, result.output
    return folder / "alchemy.run.py"


def _mypy(python: Path, program: Path) -> subprocess.CompletedProcess[str]:
    mypy = Path(sys.executable).parent / "mypy"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    return subprocess.run(
        [str(mypy), "--strict", "--no-incremental", "--python-executable", str(python),
         program.name],
        cwd=program.parent,  # the program's folder, as an editor runs it: no journal source
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )  # fmt: skip


def _check(python: Path, program: Path) -> None:
    ok = _mypy(python, program)
    assert ok.returncode == 0 and "Success: no issues found" in ok.stdout, ok.stdout + ok.stderr
    program.write_text(program.read_text() + WRONG)
    wrong = _mypy(python, program)
    assert wrong.returncode == 1, wrong.stdout
    wrong_type = (
        'Incompatible types in assignment (expression has type "{}", variable has type "{}")'
    )
    assert wrong_type.format("int", "str") in wrong.stdout
    assert wrong_type.format("str", "int") in wrong.stdout, "a connection's user is a plain str"


def _deps() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def test_mypy_checks_a_scaffolded_program_against_a_plain_install(tmp_path: Path) -> None:
    target = tmp_path / "site"
    _pip("--target", str(target), str(ROOT))
    assert (target / "journal" / "py.typed").is_file(), "py.typed is shipped"
    assert not (target / "resources").exists() and not (target / "cli").exists()
    python = _venv(tmp_path / "venv", target, _deps())
    _check(python, _scaffold(tmp_path / "app"))


def test_mypy_checks_a_scaffolded_program_against_the_editable_install(tmp_path: Path) -> None:
    source = tmp_path / "source"  # the editable install writes build/ into the source tree
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info",
                                                    "tests", "bench", "__pycache__", ".journal")
    )  # fmt: skip
    venv = tmp_path / "venv"
    python = _venv(venv, _deps())
    # what scripts/demo runs
    demo = (ROOT / "scripts" / "demo").read_text()
    assert "--config-settings editable_mode=strict" in demo
    # --ignore-installed: never uninstall the install this test runs from
    _pip("--ignore-installed", "--prefix", str(venv), "-e", str(source),
         "--config-settings", "editable_mode=strict")  # fmt: skip
    program = _scaffold(tmp_path / "app")
    _check(python, program)
    # the scaffold's README says how
    assert "mypy --strict alchemy.run.py" in (program.parent / "README.md").read_text()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_script_generates(shell: str) -> None:
    journal = Path(sys.executable).parent / "journal"
    done = subprocess.run(
        [str(journal)],
        env={**os.environ, "_JOURNAL_COMPLETE": f"{shell}_source"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "_JOURNAL_COMPLETE" in done.stdout
    assert f"{shell}_complete" in done.stdout


def test_completion_completes_commands_and_options() -> None:
    journal = Path(sys.executable).parent / "journal"
    env = {**os.environ, "_JOURNAL_COMPLETE": "bash_complete", "COMP_WORDS": "journal out",
           "COMP_CWORD": "1"}  # fmt: skip
    done = subprocess.run([str(journal)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "plain,outputs" in done.stdout, done.stdout
    env |= {"COMP_WORDS": "journal outputs --for", "COMP_CWORD": "2"}
    done = subprocess.run([str(journal)], env=env, capture_output=True, text=True, timeout=120)
    assert "plain,--format" in done.stdout, done.stdout

"""workerd and esbuild from npm (pinned, cached once per machine), and the Worker bundle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _cloudflare import EXAMPLE, bundle_example, example_project, tools

from journal.resources.cloudflare._bundle import BundleError, bundle_worker
from journal.resources.cloudflare._npm import NodeMissingError, npm_install
from journal.resources.cloudflare._toolchain import (
    ESBUILD_VERSION,
    WORKERD_VERSION,
    project_dependencies,
    toolchain,
)


def test_the_pinned_binaries_run() -> None:
    t = tools()
    esbuild = subprocess.run([t.esbuild, "--version"], capture_output=True, text=True, check=True)
    assert esbuild.stdout.strip() == ESBUILD_VERSION
    workerd = subprocess.run([t.workerd, "--version"], capture_output=True, text=True, check=True)
    assert WORKERD_VERSION.split(".")[1][:4] in workerd.stdout  # "workerd 2026-11-17"


def test_missing_npm_is_a_clear_error_naming_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_CACHE_DIR", str(tmp_path / "cache"))  # nothing installed yet
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(NodeMissingError) as info:
        toolchain()
    message = str(info.value)
    assert f"workerd@{WORKERD_VERSION}" in message and f"esbuild@{ESBUILD_VERSION}" in message
    assert "node and npm is not on PATH" in message
    assert "Install Node.js" in message
    assert not (tmp_path / "cache" / "npm").exists() or not any(
        p.name.startswith("cloudflare-toolchain") for p in (tmp_path / "cache" / "npm").iterdir()
    )


def test_an_installed_cache_needs_no_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools()  # the machine's cache has it
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert toolchain().workerd.is_file()


RACE = """
import sys
from pathlib import Path
from journal.resources.cloudflare._npm import npm_install
home = npm_install("race-xtend", {"xtend": "4.0.2"}, root=Path(sys.argv[1]),
                   progress=lambda line: print("PROGRESS", line, flush=True))
print("HOME", home, flush=True)
"""


def test_two_processes_installing_at_once_install_once(tmp_path: Path) -> None:
    tools()  # skips without npm
    root = tmp_path / "npm"
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE, str(root)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sum(out.count("PROGRESS") for out in outs) == 1
    homes = {line for out in outs for line in out.splitlines() if line.startswith("HOME")}
    assert homes == {f"HOME {root / 'race-xtend'}"}
    assert (root / "race-xtend" / "node_modules" / "xtend" / "package.json").is_file()
    assert [p.name for p in root.iterdir() if ".tmp" in p.name] == []
    # and once there, a third asks npm nothing
    assert npm_install("race-xtend", {"xtend": "4.0.2"}, root=root, progress=None) == (
        root / "race-xtend"
    )


def test_the_bundle_hash_follows_the_sources_and_not_where_deps_live(tmp_path: Path) -> None:
    project = example_project(tmp_path)
    first = bundle_example(project, tmp_path / "a")
    again = bundle_example(project, tmp_path / "b")
    assert again.hash == first.hash
    text = first.modules[0].read().decode()
    assert "pg-cloudflare" in text  # the workerd condition picked the socket implementation
    assert ".cache" not in text and str(tmp_path) not in text and os.sep + "root" not in text
    assert '"node_modules/pg/lib/client.js"' in text
    # a module the entrypoint imports, then a change to it
    src = project / "src"
    (src / "query.ts").write_text('export const QUERY = "SELECT * FROM pg_tables";\n')
    worker = src / "worker.ts"
    worker.write_text(
        'import { QUERY } from "./query";\n'
        + worker.read_text().replace('"SELECT * FROM pg_tables"', "QUERY")
    )
    with_import = bundle_example(project, tmp_path / "c")
    assert with_import.hash != first.hash
    assert first.inputs == (worker,)
    assert with_import.inputs == (src / "query.ts", worker)
    (src / "query.ts").write_text('export const QUERY = "SELECT * FROM pg_tables LIMIT 1";\n')
    changed = bundle_example(project, tmp_path / "d")
    assert changed.hash not in (first.hash, with_import.hash)


def test_a_project_with_its_own_node_modules_bundles_the_same(tmp_path: Path) -> None:
    project = example_project(tmp_path)
    from_cache = bundle_example(project, tmp_path / "a")
    cached = project_dependencies(project)
    assert cached is not None and cached.is_dir()
    shutil.copytree(cached, project / "node_modules", symlinks=True)  # as `npm install` makes
    assert project_dependencies(project) is None  # esbuild finds the project's own
    from_project = bundle_example(project, tmp_path / "b")
    assert from_project.hash == from_cache.hash


def test_code_that_does_not_bundle_is_an_error_saying_where(tmp_path: Path) -> None:
    project = example_project(tmp_path)
    (project / "src" / "worker.ts").write_text("export default {\n  fetch( {\n};\n")
    with pytest.raises(BundleError) as info:
        bundle_worker(project / "src" / "worker.ts", tmp_path / "out", tools=tools())
    assert "src/worker.ts:" in str(info.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(BundleError, match="does not exist"):
        bundle_worker(project / "src" / "nope.ts", tmp_path / "out", tools=tools())


def test_the_example_pins_its_dependencies() -> None:
    import json

    manifest = json.loads((EXAMPLE / "package.json").read_text())
    assert manifest["dependencies"] == {"pg": "8.23.1"}
    lock = json.loads((EXAMPLE / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/pg"]["version"] == "8.23.1"

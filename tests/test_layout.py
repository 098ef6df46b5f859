"""Import cycles stay broken: the store package and the local API's backend point one way."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported(path: Path) -> set[str]:
    """The relative modules ``path`` imports from, at any depth (``.`` for ``from . import x``,
    ``._open`` for ``from ._open import y``)."""
    return {
        "." * node.level + (node.module or "")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level
    }


def test_store_implementations_never_import_what_opens_them() -> None:
    store = ROOT / "journal" / "_store"
    for name in ("_base.py", "_rows.py", "_sqlite.py", "_postgres.py"):
        found = imported(store / name)
        assert not any(m in (".", "._open") or m.startswith(".._store") for m in found), (
            name,
            found,
        )
    # and the old flat modules are gone
    assert not (ROOT / "journal" / "_sqlite_store.py").exists()
    assert not (ROOT / "journal" / "_pg_store.py").exists()


def test_the_local_backend_does_not_import_its_postgres_module() -> None:
    local = ROOT / "resources" / "prisma_postgres" / "local"
    assert "._postgres" not in imported(local / "_backend.py")
    assert "._backend" in imported(local / "_postgres.py")


def test_the_journal_protocol_is_defined_once() -> None:
    defined = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "journal").rglob("*.py")
        if "class _Journal(" in p.read_text() or "class JournalLike(" in p.read_text()
    ]
    assert defined == ["journal/_protocols.py"]

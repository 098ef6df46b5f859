"""References inside props: the one walk that finds them.

A prop value may hold, inside dicts, lists and tuples at any depth, a reference to another
resource: its handle (standing for the provider's ``ref_field``, e.g. its id), one of its
outputs read from the handle (``db.id``, ``conn.connection_string``: values that remember
where they came from), or an explicit :class:`Ref`. Everything that cares about
references goes through :func:`walk` here:

- declaring a resource turns handles and remembered outputs into ``Ref``\\s (:func:`to_refs`);
- its dependencies are the ``Ref``\\s found (:func:`find_refs`), which order creation and
  deletion;
- before the provider is called every ``Ref`` is replaced by the value it stands for
  (:func:`resolve`), and the journal records each one with its *path* (``bindings.HYPERDRIVE``)
  next to the resolved props, so destroy and rollback put them back without the program
  (:func:`place`);
- field diffs (``plan``, ``history``) compare props path by path (:func:`flatten`).

A path joins dict keys and list indices with ``.``; a ``.`` or ``\\`` inside a key is escaped
with ``\\``. Journals written before nested references record top-level paths only (the
field name), which read back the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._secret import Secret, is_secret_json

__all__ = [
    "Ref",
    "find_refs",
    "flatten",
    "join_path",
    "place",
    "ref_from_json",
    "ref_to_json",
    "refs_from_json",
    "resolve",
    "split_path",
    "tag_output",
    "to_refs",
    "walk",
]

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Ref:
    """A prop that stands for another resource's output: ``output`` names it (None: the
    provider's ``ref_field``, e.g. its id). Made by passing a handle (or ``handle.ref()``)."""

    resource: str
    output: str | None = None


#: what a visitor returns to go on into a container instead of replacing it
DESCEND: Final = object()


def walk(value: Any, visit: Callable[[Any, Path], Any], path: Path = ()) -> Any:
    """Rebuild ``value`` with every node ``visit(node, path)`` replaced by what it returns;
    where it returns :data:`DESCEND` for a dict, list or tuple, its items are walked (a tuple
    stays a tuple). The one recursion every reference operation shares."""
    out = visit(value, path)
    if out is not DESCEND:
        return out
    if isinstance(value, Mapping) and not is_secret_json(value):
        return {k: walk(v, visit, (*path, k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [walk(v, visit, (*path, i)) for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def join_path(path: Path) -> str:
    return ".".join(
        str(p) if isinstance(p, int) else p.replace("\\", "\\\\").replace(".", "\\.") for p in path
    )


def split_path(text: str) -> list[str]:
    """The segments of a path (keys unescaped; list indices stay digit strings)."""
    parts: list[str] = []
    cur: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            cur.append(next(chars, ""))
        elif ch == ".":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


# --- references ------------------------------------------------------------------------------


def _ref_of(value: Any, owner: object) -> Ref | None:
    """The reference a handle or a remembered output stands for (None: a plain value)."""
    if isinstance(value, Ref):
        return value
    get = getattr(type(value), "__journal_ref__", None)
    if get is None:
        return None
    ref, value_owner = get(value)
    if value_owner is not owner:
        if isinstance(value, _OutputStr | _OutputSecret):
            return None  # an output of another app's resource: just a value here
        raise TypeError(f"{value!r} belongs to another app; pass its outputs instead")
    return ref  # type: ignore[no-any-return]


def to_refs(props: Mapping[str, Any], owner: object) -> dict[str, Any]:
    """Props as declared -> props with every handle and remembered output of ``owner``'s
    resources turned into a :class:`Ref` (outputs of other apps become plain values)."""

    def visit(value: Any, _path: Path) -> Any:
        ref = _ref_of(value, owner)
        if ref is not None:
            return ref
        if isinstance(value, _OutputStr):
            return str.__str__(value)
        if isinstance(value, _OutputSecret):
            return Secret(value.unencrypted)
        return DESCEND

    return {k: walk(v, visit, (k,)) for k, v in props.items()}


def find_refs(props: Mapping[str, Any]) -> list[tuple[str, Ref]]:
    """Every ``Ref`` in ``props`` with its path, in walk order."""
    found: list[tuple[str, Ref]] = []

    def visit(value: Any, path: Path) -> Any:
        if isinstance(value, Ref):
            found.append((join_path(path), value))
            return value
        return DESCEND

    for k, v in props.items():
        walk(v, visit, (k,))
    return found


def resolve(
    props: Mapping[str, Any], value_of: Callable[[Ref], Any]
) -> tuple[dict[str, Any], dict[str, Ref]]:
    """Props with every ``Ref`` replaced by ``value_of(ref)``, and the refs by path."""
    refs: dict[str, Ref] = {}

    def visit(value: Any, path: Path) -> Any:
        if isinstance(value, Ref):
            refs[join_path(path)] = value
            return value_of(value)
        return DESCEND

    return {k: walk(v, visit, (k,)) for k, v in props.items()}, refs


def place(props: dict[str, Any], path: str, ref: Ref) -> dict[str, Any]:
    """Put ``ref`` back at ``path`` inside (decoded) props, in place. A path that no longer
    leads anywhere (props edited by hand) is set at the top level under its full text."""
    parts = split_path(path)
    node: Any = props
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, dict) and (last or part in node):
            if last:
                node[part] = ref
            else:
                node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            if last:
                node[int(part)] = ref
            else:
                node = node[int(part)]
        else:
            props[path] = ref
            return props
    return props


def ref_to_json(ref: Ref) -> Any:
    """A recorded reference: the resource id (its ``ref_field``, the form journals have
    always had), or ``{"resource": id, "output": field}`` for a named output."""
    return ref.resource if ref.output is None else {"resource": ref.resource, "output": ref.output}


def ref_from_json(value: Any) -> Ref:
    if isinstance(value, dict):
        return Ref(str(value["resource"]), value.get("output"))
    return Ref(str(value))


def refs_from_json(refs: Mapping[str, Any]) -> dict[str, Ref]:
    return {path: ref_from_json(v) for path, v in refs.items()}


# --- outputs that remember their resource --------------------------------------------------


class _OutputStr(str):
    """A str output read from a handle: passed in props, it is a reference."""

    _journal_ref: tuple[Ref, object]

    def __journal_ref__(self) -> tuple[Ref, object]:
        return self._journal_ref


class _OutputSecret(Secret):
    """A Secret output read from a handle: passed in props, it is a reference."""

    __slots__ = ("_journal_ref",)
    _journal_ref: tuple[Ref, object]

    def __journal_ref__(self) -> tuple[Ref, object]:
        return self._journal_ref


def tag_output(value: Any, ref: Ref, owner: object) -> Any:
    """``value`` (an output of ``ref.resource``) marked so that props holding it record the
    reference. Only str and Secret values can be marked; others are returned as they are."""
    if isinstance(value, Secret):
        secret = _OutputSecret(value.unencrypted)
        secret._journal_ref = (ref, owner)
        return secret
    if isinstance(value, str):
        text = _OutputStr(value)
        text._journal_ref = (ref, owner)
        return text
    return value


# --- diffs -----------------------------------------------------------------------------------


def flatten(value: Mapping[str, Any]) -> dict[str, Any]:
    """JSON props -> ``{path: leaf}``: nested dicts and lists are opened (an empty one is a
    leaf), secrets (``{"$secret": ...}``) are leaves."""
    out: dict[str, Any] = {}

    def visit(node: Any, path: Path) -> Any:
        if (isinstance(node, dict) and node and not is_secret_json(node)) or (
            isinstance(node, list) and node
        ):
            return DESCEND
        out[join_path(path)] = node
        return node

    for k, v in value.items():
        walk(v, visit, (k,))
    return out

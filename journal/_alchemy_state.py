"""Reading an Alchemy (0.94) state: the folder of JSON files or the SQLite store, decrypted.

Alchemy keeps one record per resource: ``.alchemy/<app>/<stage>/<id>.json`` (nested scopes in
sub-folders, ``:`` in a file name standing for ``/`` in the id), or the same records as rows of
``.alchemy/state.sqlite`` (table ``resources``, ``scope`` a JSON array ``[app, stage, ...]``).
A record is ``{kind, id, fqn, seq, status, data, props, oldProps?, output}``; values carry
markers: ``{"@secret": {version: "v1", ciphertext, iv, salt, tag}}`` (scrypt N=16384 r=8 p=1
of ``ALCHEMY_PASSWORD`` with the salt, then AES-256-GCM), older ``{"@secret": "base64"}``
(libsodium secretbox under a BLAKE2b-256 of the password), ``{"@date"}``, ``{"@symbol"}``,
``{"@scope": null}``, ``{"@buffer"}`` and ``{"@schema"}``. An object whose keys include
``"Symbol(alchemy::ResourceKind)"`` is another resource (a reference, in props).

Nothing here writes anything: the SQLite store is read from a private copy (a reader of a
WAL database writes to its ``-shm`` file), and decrypted values live only in ``Secret``s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ._errors import UsageError, WrongPasswordError
from ._secret import Secret

__all__ = [
    "AlchemyRecord",
    "AlchemyRef",
    "AlchemyStateError",
    "decrypt_secret",
    "find_store",
    "read_records",
]

#: the statuses of a record whose remote object exists as recorded
SETTLED: Final = frozenset({"created", "updated"})
STATUSES: Final = frozenset({"creating", "created", "updating", "updated", "deleting", "deleted"})
SQLITE_NAME: Final = "state.sqlite"

#: what else Alchemy keeps in .alchemy/ (logs, pids, bundles, local dev, miniflare): not state
_NOT_STATE: Final = frozenset({"logs", "pids", "out", "local", "miniflare"})
_KIND: Final = "Symbol(alchemy::ResourceKind)"
_ID: Final = "Symbol(alchemy::ResourceID)"
_FQN: Final = "Symbol(alchemy::ResourceFQN)"
_WRONG: Final = "ALCHEMY_PASSWORD does not decrypt this Alchemy secret"
_SCRYPT: Final = {"n": 16384, "r": 8, "p": 1, "dklen": 32, "maxmem": 64 * 1024 * 1024}


class AlchemyStateError(UsageError):
    """An Alchemy state that cannot be read as it is (names the file; nothing was written)."""


@dataclass(frozen=True)
class AlchemyRef:
    """A resource value inside another record's props: a reference to it."""

    kind: str
    id: str
    fqn: str
    values: dict[str, Any]


@dataclass
class AlchemyRecord:
    """One resource record, deserialized (secrets as ``Secret``, markers resolved)."""

    app: str
    stage: str
    #: nested scopes between the stage and the resource (empty at the top level)
    scope: tuple[str, ...]
    id: str
    kind: str
    fqn: str
    seq: int
    status: str
    props: dict[str, Any]
    old_props: dict[str, Any] | None
    output: dict[str, Any]
    #: where the record was read: the JSON file, or ``state.sqlite#<fqn>``
    source: str
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


# --- locating the store --------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    kind: str  # "folder" | "sqlite"
    path: Path
    #: the folder the Alchemy project lives in (where alchemy.run.ts is)
    project: Path


def find_store(path: Path) -> Store:
    """PATH may be the project folder, its ``.alchemy`` folder, or ``state.sqlite``."""
    path = path.resolve()  # history names the source unambiguously
    if not path.exists():
        raise AlchemyStateError(f"{path}: no such file or folder; give the Alchemy project folder")
    if path.is_file():
        if not _is_sqlite(path):
            raise AlchemyStateError(
                f"{path}: not an Alchemy SQLite state (give the project folder, its .alchemy "
                "folder or .alchemy/state.sqlite)"
            )
        project = path.parent.parent if path.parent.name == ".alchemy" else path.parent
        return Store("sqlite", path, project)
    dot = path / ".alchemy" if (path / ".alchemy").is_dir() else path
    if dot is path and path.name != ".alchemy" and not any(path.glob("*/*/*.json")):
        raise AlchemyStateError(
            f"{path}: no .alchemy folder here; give the folder where you run Alchemy "
            "(the one with alchemy.run.ts and .alchemy/)"
        )
    project = dot.parent
    sqlite_file = dot / SQLITE_NAME
    has_json = any(_state_files(dot))
    if sqlite_file.is_file() and not has_json:
        return Store("sqlite", sqlite_file, project)
    if sqlite_file.is_file() and has_json:
        raise AlchemyStateError(
            f"{dot} holds both JSON state files and {SQLITE_NAME}: give the one to import "
            f"as PATH ({dot} for the files, {sqlite_file} for the SQLite store)"
        )
    if not has_json:
        raise AlchemyStateError(f"{dot}: no Alchemy state in it (no <app>/<stage>/*.json files)")
    return Store("folder", dot, project)


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(16) == b"SQLite format 3\x00"


# --- raw records -----------------------------------------------------------------------------


@dataclass
class RawRecord:
    app: str
    stage: str
    scope: tuple[str, ...]
    body: dict[str, Any]
    source: str


def _check_body(body: object, source: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AlchemyStateError(f"{source}: not an Alchemy resource record (not a JSON object)")
    missing = [k for k in ("kind", "id", "status") if not isinstance(body.get(k), str)]
    if missing:
        raise AlchemyStateError(
            f"{source}: not an Alchemy resource record (no {', '.join(missing)}); "
            "nothing was written"
        )
    if body["status"] not in STATUSES:
        raise AlchemyStateError(
            f"{source}: unknown status {body['status']!r} (Alchemy writes one of "
            f"{', '.join(sorted(STATUSES))})"
        )
    return body


def _state_files(dot: Path) -> Iterator[Path]:
    """``<app>/<stage>/**/<id>.json``, outside the folders Alchemy uses for other things."""
    for app in sorted(dot.iterdir()):
        if app.is_dir() and not app.name.startswith(".") and app.name not in _NOT_STATE:
            yield from sorted(app.glob("*/**/*.json"))


def _folder_records(dot: Path) -> Iterator[RawRecord]:
    for file in _state_files(dot):
        rel = file.relative_to(dot).parts
        app, stage, scope = rel[0], rel[1], tuple(rel[2:-1])
        text = file.read_text(encoding="utf-8", errors="strict")
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AlchemyStateError(
                f"{file}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                "the file may be truncated: restore it (or remove it) and import again; "
                "nothing was written"
            ) from None
        yield RawRecord(app, stage, scope, _check_body(body, str(file)), str(file))


def _sqlite_records(db: Path) -> Iterator[RawRecord]:
    # a private copy: reading a WAL database in place writes its -shm file
    with tempfile.TemporaryDirectory(prefix="journal-alchemy-") as tmp:
        copy = Path(tmp) / SQLITE_NAME
        shutil.copyfile(db, copy)
        wal = db.with_name(db.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        try:
            conn = sqlite3.connect(copy)
            try:
                rows = conn.execute(
                    "SELECT id, scope, status, kind, fqn, seq, data, props, oldProps, output "
                    "FROM resources ORDER BY scope, seq, id"
                ).fetchall()
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise AlchemyStateError(
                f"{db}: not a readable Alchemy SQLite state ({exc}); nothing was written"
            ) from None
    for rid, scope_text, status, kind, fqn, seq, data, props, old, output in rows:
        source = f"{db}#{fqn}"
        try:
            scope = json.loads(scope_text)
            body = {
                "id": rid,
                "status": status,
                "kind": kind,
                "fqn": fqn,
                "seq": seq,
                "data": json.loads(data) if data else {},
                "props": json.loads(props) if props else None,
                "oldProps": json.loads(old) if old else None,
                "output": json.loads(output) if output else {},
            }
        except (json.JSONDecodeError, TypeError) as exc:
            raise AlchemyStateError(
                f"{source}: a column is not valid JSON ({exc}); nothing was written"
            ) from None
        if not (
            isinstance(scope, list) and len(scope) >= 2 and all(isinstance(s, str) for s in scope)
        ):
            raise AlchemyStateError(f"{source}: scope {scope_text!r} is not [app, stage, ...]")
        yield RawRecord(scope[0], scope[1], tuple(scope[2:]), _check_body(body, source), source)


def raw_records(store: Store) -> list[RawRecord]:
    if store.kind == "sqlite":
        return list(_sqlite_records(store.path))
    return list(_folder_records(store.path))


# --- values ----------------------------------------------------------------------------------


def has_secrets(value: Any) -> bool:
    if isinstance(value, dict):
        return "@secret" in value or any(has_secrets(v) for v in value.values())
    if isinstance(value, list):
        return any(has_secrets(v) for v in value)
    return False


def _b64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError(f"{what} is not valid base64") from None


def decrypt_secret(value: object, password: str) -> str:
    """The plaintext of one ``@secret`` value; ``WrongPasswordError`` if it does not open."""
    if isinstance(value, str):
        return _libsodium_open(value, password)
    if not isinstance(value, dict) or value.get("version") != "v1":
        raise ValueError("is not an Alchemy v1 secret (version, ciphertext, iv, salt, tag)")
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt = _b64(value.get("salt"), "salt")
    iv = _b64(value.get("iv"), "iv")
    data = _b64(value.get("ciphertext"), "ciphertext") + _b64(value.get("tag"), "tag")
    key = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    try:
        return AESGCM(key).decrypt(iv, data, None).decode("utf-8")
    except InvalidTag:
        raise WrongPasswordError(_WRONG) from None


def _libsodium_open(text: str, password: str) -> str:
    """Alchemy's older format: secretbox(nonce ‖ box) under BLAKE2b-256(password)."""
    import nacl.exceptions
    import nacl.secret

    combined = _b64(text, "secret")
    key = hashlib.blake2b(password.encode(), digest_size=32).digest()
    nonce, box = combined[:24], combined[24:]
    try:
        return nacl.secret.SecretBox(key).decrypt(box, nonce).decode("utf-8")
    except nacl.exceptions.CryptoError:
        raise WrongPasswordError(_WRONG) from None


class _Decoder:
    def __init__(self, password: Callable[[], str], source: str) -> None:
        self.password = password
        self.source = source

    def value(self, v: Any, where: str) -> Any:
        if isinstance(v, list):
            return [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if not isinstance(v, dict):
            return v
        if "@secret" in v:
            return self.secret(v["@secret"], where)
        for marker in ("@date", "@symbol", "@buffer", "@schema"):
            if marker in v:
                return v[marker]
        if "@scope" in v:
            return None
        if _KIND in v:
            values = {k: self.value(x, f"{where}.{k}") for k, x in v.items() if not _meta(k)}
            return AlchemyRef(str(v[_KIND]), str(v.get(_ID, "")), str(v.get(_FQN, "")), values)
        return {k: self.value(x, f"{where}.{k}") for k, x in v.items() if not _meta(k)}

    def secret(self, v: Any, where: str) -> Secret:
        wrapped = isinstance(v, dict) and "data" in v and "version" not in v
        try:
            plain = decrypt_secret(v["data"] if wrapped else v, self.password())
        except WrongPasswordError:
            raise WrongPasswordError(
                f"ALCHEMY_PASSWORD does not decrypt the secrets in {self.source} ({where}): "
                "set it to the password Alchemy used; nothing was written"
            ) from None
        except ValueError as exc:
            raise AlchemyStateError(f"{self.source}: {where}: the secret {exc}") from None
        return Secret(plain)


def _meta(key: str) -> bool:
    return key.startswith("Symbol(")


def decode_record(raw: RawRecord, password: Callable[[], str]) -> AlchemyRecord:
    """Resolve markers and decrypt the secrets of one record."""
    dec = _Decoder(password, raw.source)
    body = raw.body
    output = dec.value(body.get("output") or {}, "output")
    props = dec.value(body.get("props") or {}, "props")
    old = body.get("oldProps")
    seq = body.get("seq")
    return AlchemyRecord(
        app=raw.app,
        stage=raw.stage,
        scope=raw.scope,
        id=body["id"],
        kind=body["kind"],
        fqn=str(body.get("fqn") or "/".join((raw.app, raw.stage, *raw.scope, body["id"]))),
        seq=seq if isinstance(seq, int) else 0,
        status=body["status"],
        props=props.values if isinstance(props, AlchemyRef) else props,
        old_props=dec.value(old, "oldProps") if isinstance(old, dict) and old else None,
        output=output.values if isinstance(output, AlchemyRef) else output,
        source=raw.source,
        raw=body,
    )


def read_records(
    store: Store,
    password: Callable[[], str],
    *,
    keep: Callable[[RawRecord], bool] = lambda r: True,
) -> list[AlchemyRecord]:
    """Every record of ``store`` that ``keep`` accepts, decoded. ``password`` is asked only
    when a kept record holds a secret."""
    cached: list[str] = []

    def once() -> str:
        if not cached:
            cached.append(password())
        return cached[0]

    return [decode_record(r, once) for r in raw_records(store) if keep(r)]

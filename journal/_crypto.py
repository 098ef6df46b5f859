"""Keys, encoding pipeline and hash chain of the journal.

Everything here is pure: no I/O, no knowledge of a store. The pieces:

* **Key hierarchy.** ``password --Argon2id(salt, opslimit, memlimit)--> KEK`` (key-encryption
  key); the KEK unwraps one or more random 32-byte *data keys*, each named by a ``key_id``.
  A wrapped key is ``nonce ‖ XChaCha20-Poly1305(KEK, data key, AD = "datakey" ‖ journal id ‖
  key id)``, so a wrong password is an AEAD failure and nothing else. Changing the password
  (``rekey``) re-wraps the data keys under a new salt; events are never re-encrypted.
  Argon2 runs at most once per ``(journal id, salt, params, password)`` in a process: the KEK is
  cached in memory under a keyed digest of the password (never the password itself).

* **Encoding pipeline.** ``Codec`` = a serializer (payload → canonical JSON bytes) followed by
  injected ``Step`` objects, each a bytes → bytes transformation that also sees the record's
  associated data; decoding runs the steps backwards. The journal uses one step, ``AeadStep``
  (XChaCha20-Poly1305 with a random 24-byte nonce stored in front of the ciphertext). No
  compression step by default: compressing before encrypting leaks information through lengths.

* **Associated data** binds a sealed record to where it belongs. Every field is length-prefixed
  (4-byte big-endian length for text/bytes, 8-byte big-endian for integers) after a domain tag,
  so two different tuples never give the same bytes:

  - event:    ``"journal/event/v1"    ‖ journal_id ‖ stream ‖ seq ‖ version ‖ key_id ‖ prev_hash``
  - snapshot: ``"journal/snapshot/v2" ‖ journal_id ‖ stream ‖ seq ‖ key_id ‖ hash_seq``: the
    chain hash of the event the snapshot was taken at is bound in, so a snapshot that opens
    proves the chain held that hash there (it is the *anchor* writers check from, see
    ``_chain``). Snapshots written before v2 (``"journal/snapshot/v1"``, no hash) still open.
  - data key: ``"journal/datakey/v1"  ‖ journal_id ‖ key_id``

* **Hash chain.** ``hash_n = BLAKE2b-256(hash_{n-1} ‖ seq as 8 bytes ‖ AD_n ‖ sealed_n)`` where
  ``sealed_n`` is nonce ‖ ciphertext. The AD is self-delimiting, so the concatenation is
  unambiguous. The chain starts from ``genesis = BLAKE2b-256("journal/genesis/v1" ‖ journal_id)``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import nacl.exceptions
import nacl.pwhash.argon2id
import nacl.secret

from ._errors import IntegrityError, UsageError, WrongPasswordError

__all__ = [
    "HASH_BYTES",
    "KEY_BYTES",
    "SALT_BYTES",
    "AeadStep",
    "Codec",
    "JsonSerializer",
    "Serializer",
    "Step",
    "canonical_json",
    "chain_hash",
    "clear_kek_cache",
    "datakey_ad",
    "derive_kek",
    "event_ad",
    "event_hasher",
    "genesis_hash",
    "kek_cache_size",
    "new_data_key",
    "new_key_id",
    "new_salt",
    "snapshot_ad",
    "unwrap_key",
    "wrap_key",
]

KEY_BYTES: Final = nacl.secret.Aead.KEY_SIZE  # 32
SALT_BYTES: Final = nacl.pwhash.argon2id.SALTBYTES  # 16
HASH_BYTES: Final = 32

_EVENT_TAG: Final = b"journal/event/v1"
_SNAPSHOT_TAG: Final = b"journal/snapshot/v2"
_SNAPSHOT_V1_TAG: Final = b"journal/snapshot/v1"
_DATAKEY_TAG: Final = b"journal/datakey/v1"
_GENESIS_TAG: Final = b"journal/genesis/v1"


# --- canonical JSON ------------------------------------------------------------------------


#: what ``json.dumps(value, sort_keys=True, ...)`` builds on every call, built once (the same
#: bytes; it is on the path of every event)
_CANONICAL: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """Serialize to canonical JSON: sorted keys, compact separators, UTF-8, no NaN."""
    try:
        return _CANONICAL.encode(value).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise UsageError(f"cannot store this value in the journal: {exc}") from exc


class Serializer(Protocol):
    """First stage of a codec: a JSON object to bytes and back."""

    def dumps(self, value: Mapping[str, Any]) -> bytes: ...

    def loads(self, data: bytes) -> dict[str, Any]: ...


class JsonSerializer:
    """Canonical JSON; decoding insists on a JSON object."""

    def dumps(self, value: Mapping[str, Any]) -> bytes:
        if not isinstance(value, Mapping):
            raise UsageError(f"a journal record must be a JSON object, not {type(value).__name__}")
        return canonical_json(value if type(value) is dict else dict(value))

    def loads(self, data: bytes) -> dict[str, Any]:
        value = json.loads(data.decode("utf-8"))
        if not isinstance(value, dict):
            raise ValueError("decoded record is not a JSON object")
        return value


# --- pipeline steps ------------------------------------------------------------------------


class Step(Protocol):
    """One bytes -> bytes stage of a codec. ``ad`` is the record's associated data."""

    def encode(self, data: bytes, ad: bytes) -> bytes: ...

    def decode(self, data: bytes, ad: bytes) -> bytes: ...


class AeadStep:
    """XChaCha20-Poly1305 (``nacl.secret.Aead``); output is ``nonce ‖ ciphertext ‖ tag``."""

    __slots__ = ("_box",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"an AEAD key has {KEY_BYTES} bytes")
        self._box = nacl.secret.Aead(key)

    def encode(self, data: bytes, ad: bytes) -> bytes:
        return bytes(self._box.encrypt(data, ad))

    def decode(self, data: bytes, ad: bytes) -> bytes:
        return self._box.decrypt(data, ad)

    def __repr__(self) -> str:
        return "AeadStep(<key>)"


class Codec:
    """serialize → step₁ → … → stepₙ on the way in; the reverse on the way out.

    ``serialize``/``seal`` are separate so that a caller can serialize (and fail on bad input)
    before entering a transaction, and seal inside it once the associated data is known.
    """

    __slots__ = ("_serializer", "_steps")

    def __init__(self, serializer: Serializer, steps: Sequence[Step]) -> None:
        self._serializer = serializer
        self._steps = tuple(steps)

    def serialize(self, value: Mapping[str, Any]) -> bytes:
        return self._serializer.dumps(value)

    def deserialize(self, data: bytes) -> dict[str, Any]:
        return self._serializer.loads(data)

    def seal(self, plain: bytes, ad: bytes) -> bytes:
        data = plain
        for step in self._steps:
            data = step.encode(data, ad)
        return data

    def unseal(self, data: bytes, ad: bytes) -> bytes:
        for step in reversed(self._steps):
            data = step.decode(data, ad)
        return data

    def encode(self, value: Mapping[str, Any], ad: bytes) -> bytes:
        return self.seal(self.serialize(value), ad)

    def decode(self, data: bytes, ad: bytes) -> dict[str, Any]:
        """Open and deserialize; any failure (tampering, wrong key) is ``ValueError``."""
        try:
            return self.deserialize(self.unseal(data, ad))
        except nacl.exceptions.CryptoError as exc:
            raise ValueError("authentication failed (tampered data or wrong key)") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"undecodable record: {exc}") from exc

    @classmethod
    def for_key(cls, key: bytes) -> Codec:
        """The journal's standard pipeline: canonical JSON, then AEAD under ``key``."""
        return cls(JsonSerializer(), [AeadStep(key)])


# --- associated data and the chain ---------------------------------------------------------


def _field(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _text(value: str) -> bytes:
    return _field(value.encode("utf-8"))


def _int(value: int) -> bytes:
    return struct.pack(">Q", value)


def event_ad(
    journal_id: str, stream: str, seq: int, version: int, key_id: str, prev_hash: bytes
) -> bytes:
    return b"".join(
        (
            _field(_EVENT_TAG),
            _text(journal_id),
            _text(stream),
            _int(seq),
            _int(version),
            _text(key_id),
            _field(prev_hash),
        )
    )


def snapshot_ad(
    journal_id: str, stream: str, seq: int, key_id: str, chain_hash: bytes | None
) -> bytes:
    """The snapshot's AD; ``chain_hash`` is the hash of event ``seq`` (None: the v1 AD of a
    snapshot written before anchors, which only opening such a snapshot uses)."""
    common = (_text(journal_id), _text(stream), _int(seq), _text(key_id))
    if chain_hash is None:
        return b"".join((_field(_SNAPSHOT_V1_TAG), *common))
    return b"".join((_field(_SNAPSHOT_TAG), *common, _field(chain_hash)))


def datakey_ad(journal_id: str, key_id: str) -> bytes:
    return b"".join((_field(_DATAKEY_TAG), _text(journal_id), _text(key_id)))


def genesis_hash(journal_id: str) -> bytes:
    return hashlib.blake2b(_GENESIS_TAG + journal_id.encode("utf-8"), digest_size=32).digest()


def chain_hash(prev_hash: bytes, seq: int, ad: bytes, sealed: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=HASH_BYTES)
    h.update(prev_hash)
    h.update(_int(seq))
    h.update(ad)
    h.update(sealed)
    return h.digest()


def event_hasher(journal_id: str) -> Callable[[bytes, int, str, int, str, bytes], bytes]:
    """``(prev, seq, stream, version, key_id, sealed) -> chain_hash(prev, seq,
    event_ad(journal_id, stream, seq, version, key_id, prev), sealed)``, the same bytes, for
    checking many rows: the constant parts of the associated data are encoded once."""
    head = _field(_EVENT_TAG) + _text(journal_id)
    texts: dict[str, bytes] = {}
    pack_int = struct.Struct(">Q").pack
    pack_len = struct.Struct(">I").pack

    def text(value: str) -> bytes:
        found = texts.get(value)
        if found is None:
            found = texts[value] = _text(value)
        return found

    def digest(
        prev: bytes, seq: int, stream: str, version: int, key_id: str, sealed: bytes
    ) -> bytes:
        packed_seq = pack_int(seq)
        h = hashlib.blake2b(prev, digest_size=HASH_BYTES)
        for part in (
            packed_seq,
            head,
            text(stream),
            packed_seq,
            pack_int(version),
            text(key_id),
            pack_len(len(prev)),
            prev,
            sealed,
        ):
            h.update(part)
        return h.digest()

    return digest


# --- keys ----------------------------------------------------------------------------------


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def new_data_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def new_key_id() -> str:
    return "k" + secrets.token_hex(8)


def wrap_key(kek: bytes, data_key: bytes, *, journal_id: str, key_id: str) -> bytes:
    return AeadStep(kek).encode(data_key, datakey_ad(journal_id, key_id))


def unwrap_key(kek: bytes, wrapped: bytes, *, journal_id: str, key_id: str) -> bytes:
    """Unwrap a data key; a wrong password (wrong KEK) raises ``WrongPasswordError``."""
    try:
        key = AeadStep(kek).decode(wrapped, datakey_ad(journal_id, key_id))
    except nacl.exceptions.CryptoError as exc:
        raise WrongPasswordError() from exc
    if len(key) != KEY_BYTES:
        raise IntegrityError(f"the journal's data key {key_id!r} has the wrong length")
    return key


# The KEK cache: Argon2id is slow on purpose, and `journal dev` re-opens the journal on every
# change. Entries are keyed by a digest of the password under a per-process random key, so the
# table holds nothing from which the password could be brute-forced faster than through Argon2.
_CACHE_KEY: Final = secrets.token_bytes(32)
_kek_cache: dict[tuple[str, bytes, int, int, bytes], bytes] = {}
_kek_lock = threading.Lock()


def _password_digest(password: str) -> bytes:
    return hmac.digest(_CACHE_KEY, password.encode("utf-8"), "blake2b")


def derive_kek(
    password: str, *, salt: bytes, opslimit: int, memlimit: int, journal_id: str
) -> bytes:
    """Argon2id(password, salt) -> 32-byte key-encryption key, cached per process."""
    cache_key = (journal_id, salt, opslimit, memlimit, _password_digest(password))
    with _kek_lock:
        cached = _kek_cache.get(cache_key)
        if cached is not None:
            return cached
        # Derive under the lock: two threads opening the same journal pay Argon2 once.
        try:
            kek = nacl.pwhash.argon2id.kdf(
                KEY_BYTES, password.encode("utf-8"), salt, opslimit=opslimit, memlimit=memlimit
            )
        except (nacl.exceptions.ValueError, nacl.exceptions.InvalidkeyError) as exc:
            raise UsageError(f"cannot derive the journal key: {exc}") from exc
        except MemoryError as exc:
            raise UsageError(
                f"not enough memory for the journal's key derivation (memlimit {memlimit} bytes)"
            ) from exc
        _kek_cache[cache_key] = kek
        return kek


def clear_kek_cache() -> None:
    with _kek_lock:
        _kek_cache.clear()


def kek_cache_size() -> int:
    with _kek_lock:
        return len(_kek_cache)

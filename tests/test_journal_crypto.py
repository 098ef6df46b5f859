"""The crypto building blocks: canonical JSON, the codec pipeline, associated data, the
chain hash, key wrapping and the once-per-process key derivation."""

from __future__ import annotations

import itertools
from typing import Any

import nacl.pwhash.argon2id
import pytest

from journal import _crypto
from journal._crypto import AeadStep, Codec, JsonSerializer
from journal._errors import UsageError, WrongPasswordError

KEY = bytes(range(32))


def test_canonical_json() -> None:
    value = {"b": [1, 2.5, None], "a": {"z": True, "é": "✓"}, "type": "t"}
    assert _crypto.canonical_json(value) == (
        '{"a":{"z":true,"é":"✓"},"b":[1,2.5,null],"type":"t"}'.encode()
    )
    assert _crypto.canonical_json({"b": 1, "a": 2}) == _crypto.canonical_json({"a": 2, "b": 1})
    for bad in ({"x": float("nan")}, {"x": float("inf")}, {"x": object()}, {"x": "\ud800"}):
        with pytest.raises(UsageError, match="cannot store this value"):
            _crypto.canonical_json(bad)


class Tag:
    """A test step: appends its tag on the way in, checks and strips it on the way out."""

    def __init__(self, tag: bytes, log: list[str]) -> None:
        self.tag, self.log = tag, log

    def encode(self, data: bytes, ad: bytes) -> bytes:
        self.log.append(f"enc {self.tag.decode()}")
        return data + self.tag

    def decode(self, data: bytes, ad: bytes) -> bytes:
        self.log.append(f"dec {self.tag.decode()}")
        assert data.endswith(self.tag)
        return data[: -len(self.tag)]


def test_codec_runs_injected_steps_in_order_and_back() -> None:
    log: list[str] = []
    codec = Codec(JsonSerializer(), [Tag(b"1", log), Tag(b"2", log)])
    sealed = codec.encode({"type": "t"}, b"ad")
    assert sealed == b'{"type":"t"}12'
    assert codec.decode(sealed, b"ad") == {"type": "t"}
    assert log == ["enc 1", "enc 2", "dec 2", "dec 1"]


def test_aead_step_binds_associated_data() -> None:
    codec = Codec.for_key(KEY)
    payload: dict[str, Any] = {"type": "resource.created", "secret": "s3cret"}
    one = codec.encode(payload, b"ad-1")
    two = codec.encode(payload, b"ad-1")
    assert one != two  # random nonce
    plain = _crypto.canonical_json(payload)
    assert len(one) == 24 + len(plain) + 16
    assert b"resource.created" not in one and b"s3cret" not in one and b"type" not in one
    assert codec.decode(one, b"ad-1") == payload
    with pytest.raises(ValueError, match="authentication failed"):
        codec.decode(one, b"ad-2")
    with pytest.raises(ValueError, match="authentication failed"):
        Codec.for_key(bytes(32)).decode(one, b"ad-1")
    flipped = bytearray(one)
    flipped[30] ^= 1
    with pytest.raises(ValueError):
        codec.decode(bytes(flipped), b"ad-1")
    with pytest.raises(ValueError):
        AeadStep(b"short")
    assert "key" in repr(AeadStep(KEY)) and str(KEY) not in repr(AeadStep(KEY))


def test_decoded_record_must_be_an_object() -> None:
    codec = Codec.for_key(KEY)
    sealed = codec.seal(b"[1, 2]", b"")
    with pytest.raises(ValueError, match="not a JSON object"):
        codec.decode(sealed, b"")
    with pytest.raises(ValueError, match="undecodable"):
        codec.decode(codec.seal(b"\xff", b""), b"")
    with pytest.raises(UsageError, match="JSON object"):
        codec.serialize(["x"])  # type: ignore[arg-type]


def test_associated_data_is_unambiguous() -> None:
    h = b"\x00" * 32
    variants = {
        _crypto.event_ad(j, s, seq, v, k, p)
        for j, s, k in itertools.product(["j", "j1"], ["a/b", "a/b1", "1a/b"], ["k", "1k"])
        for seq, v in [(1, 2), (2, 1), (1, 1)]
        for p in (h, b"\x01" * 32)
    }
    assert len(variants) == 2 * 3 * 2 * 3 * 2
    # moving bytes from one field to the next changes the encoding
    assert _crypto.event_ad("ab", "c", 1, 1, "k", h) != _crypto.event_ad("a", "bc", 1, 1, "k", h)
    assert _crypto.snapshot_ad("j", "s", 1, "k", h) != _crypto.snapshot_ad("j", "s", 2, "k", h)
    # the anchor's hash is bound in; a v1 (anchorless) AD is another domain
    assert _crypto.snapshot_ad("j", "s", 1, "k", h) != _crypto.snapshot_ad(
        "j", "s", 1, "k", h[:31] + b"\x01"
    )
    assert _crypto.snapshot_ad("j", "s", 1, "k", h) != _crypto.snapshot_ad("j", "s", 1, "k", None)
    # domains never collide
    assert _crypto.snapshot_ad("j", "s", 1, "k", h) != _crypto.datakey_ad("j", "k")


def test_the_row_hasher_is_the_chain_formula() -> None:
    hasher = _crypto.event_hasher("jid")
    for prev, seq, stream, version, key_id, sealed in [
        (b"\x00" * 32, 1, "a/b", 1, "k1", b"sealed"),
        (b"\x07" * 32, 2**40, "a/b\u00e9", 7, "k2", b""),
        (b"\x01" * 5, 3, "a/b", 2, "k1", b"x" * 1000),  # a damaged prev_hash of another length
    ]:
        ad = _crypto.event_ad("jid", stream, seq, version, key_id, prev)
        expected = _crypto.chain_hash(prev, seq, ad, sealed)
        assert hasher(prev, seq, stream, version, key_id, sealed) == expected
    assert _crypto.event_hasher("other")(b"\x00" * 32, 1, "a/b", 1, "k1", b"s") != hasher(
        b"\x00" * 32, 1, "a/b", 1, "k1", b"s"
    )


def test_chain_hash_and_genesis() -> None:
    ad = _crypto.event_ad("j", "s", 1, 1, "k", b"p" * 32)
    base = _crypto.chain_hash(b"p" * 32, 1, ad, b"data")
    assert len(base) == 32
    assert base == _crypto.chain_hash(b"p" * 32, 1, ad, b"data")
    assert base != _crypto.chain_hash(b"q" * 32, 1, ad, b"data")
    assert base != _crypto.chain_hash(b"p" * 32, 2, ad, b"data")
    assert base != _crypto.chain_hash(b"p" * 32, 1, ad + b"x", b"data")
    assert base != _crypto.chain_hash(b"p" * 32, 1, ad, b"datb")
    assert _crypto.genesis_hash("a") != _crypto.genesis_hash("b")
    assert len(_crypto.genesis_hash("a")) == 32


def test_key_wrapping() -> None:
    kek, data_key = _crypto.new_data_key(), _crypto.new_data_key()
    wrapped = _crypto.wrap_key(kek, data_key, journal_id="j", key_id="k1")
    assert data_key not in wrapped
    assert _crypto.unwrap_key(kek, wrapped, journal_id="j", key_id="k1") == data_key
    for kw in ({"journal_id": "j2", "key_id": "k1"}, {"journal_id": "j", "key_id": "k2"}):
        with pytest.raises(WrongPasswordError):
            _crypto.unwrap_key(kek, wrapped, **kw)
    with pytest.raises(WrongPasswordError):
        _crypto.unwrap_key(_crypto.new_data_key(), wrapped, journal_id="j", key_id="k1")


def test_derive_kek_is_cached_per_journal_salt_and_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[bytes] = []
    real = nacl.pwhash.argon2id.kdf

    def counting(size: int, password: bytes, salt: bytes, **kw: Any) -> bytes:
        calls.append(password)
        return real(size, password, salt, **kw)

    monkeypatch.setattr(nacl.pwhash.argon2id, "kdf", counting)
    _crypto.clear_kek_cache()
    salt = _crypto.new_salt()
    params = {
        "opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN,
        "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN,
    }
    one = _crypto.derive_kek("pw", salt=salt, journal_id="j", **params)
    assert _crypto.derive_kek("pw", salt=salt, journal_id="j", **params) == one
    assert len(calls) == 1
    assert _crypto.derive_kek("pw2", salt=salt, journal_id="j", **params) != one
    assert _crypto.derive_kek("pw", salt=_crypto.new_salt(), journal_id="j", **params) != one
    assert _crypto.derive_kek("pw", salt=salt, journal_id="j2", **params) == one  # own entry
    assert len(calls) == 4 and _crypto.kek_cache_size() == 4
    # the cache is keyed by a keyed digest, never the password itself
    for key in _crypto._kek_cache:
        assert b"pw" not in key[-1] and "pw" not in key
    _crypto.clear_kek_cache()
    assert _crypto.kek_cache_size() == 0


def test_bad_kdf_parameters_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="cannot derive"):
        _crypto.derive_kek("pw", salt=b"short", opslimit=1, memlimit=8192, journal_id="j")

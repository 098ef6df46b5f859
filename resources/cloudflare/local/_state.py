"""The local Cloudflare API's state: one JSON file, secrets sealed.

``state.json`` (owner-only, replaced atomically on every change) holds the account, the
Hyperdrive configs and the Worker scripts' metadata; the scripts' modules sit beside it in
``scripts/<name>/`` (no secret in them). What must stay secret (Hyperdrive origin passwords,
``secret_text`` bindings) is kept in the file only sealed (XSalsa20-Poly1305) with a random key
in ``state.key`` (owner-only): the server needs the plaintext again to restart its Workers
after a restart, and neither file shows it. Removing ``state.key`` forgets every secret
(a Worker or Hyperdrive config then needs its secrets sent again).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Final

import nacl.exceptions
import nacl.secret
import nacl.utils

from journal import LocalServerError, Secret

__all__ = ["StateFile"]

Json = dict[str, Any]
VERSION: Final = 1


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


class StateFile:
    """Load and save the state; seal and open secrets. Not thread-safe: the server locks."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir
        self.path = data_dir / "state.json"
        self.key_path = data_dir / "state.key"
        self.scripts_dir = data_dir / "scripts"
        self._box: nacl.secret.SecretBox | None = None

    def _key(self) -> nacl.secret.SecretBox:
        if self._box is None:
            if not self.key_path.exists():
                _write_private(self.key_path, nacl.utils.random(nacl.secret.SecretBox.KEY_SIZE))
            key = self.key_path.read_bytes()
            if len(key) != nacl.secret.SecretBox.KEY_SIZE:
                raise LocalServerError(f"{self.key_path} is not a key; remove it to start anew")
            self._box = nacl.secret.SecretBox(key)
        return self._box

    def seal(self, secret: Secret) -> str:
        return base64.b64encode(bytes(self._key().encrypt(secret.unencrypted.encode()))).decode()

    def open(self, sealed: str) -> Secret | None:
        """The secret, or None when it cannot be opened (the key was removed)."""
        try:
            return Secret(self._key().decrypt(base64.b64decode(sealed)).decode())
        except (nacl.exceptions.CryptoError, ValueError):
            return None

    def load(self) -> Json:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if not self.path.exists():
            return {
                "version": VERSION,
                "account": {"id": secrets.token_hex(16), "name": "Local account"},
                "subdomain": "journal-local",
                "hyperdrive": {},
                "scripts": {},
            }
        try:
            state: Json = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise LocalServerError(f"{self.path} cannot be read: {exc}") from exc
        if state.get("version") != VERSION:
            raise LocalServerError(
                f"{self.path} was written by another version of journal (state version "
                f"{state.get('version')!r}); use a new data folder"
            )
        return state

    def save(self, state: Json) -> None:
        _write_private(self.path, json.dumps(state, indent=1, sort_keys=True).encode())

    def script_dir(self, name: str) -> Path:
        return self.scripts_dir / name

"""Where an object lives, and with which credentials: what decides that a 404 means "gone".

Each object's options record the endpoint it was created through (``Provider.endpoint``: an
origin, or ``local:<id>`` for a local API) and a keyed fingerprint of the credential
(``Provider.credential``): ``{"key": hex, "fingerprint": hex}``, the key random per object.
Both sit only inside the encrypted journal; the credential itself is never stored here (a
resource's own ``service_token=`` is kept, as a Secret, in its options, as before).

- An object is never managed through another endpoint than its own (``check_endpoint``).
- A 404 on delete counts as "already gone" only when the credential matches too
  (``gone_for_others`` says why not): a token of another workspace sees nothing of this one's.
- ``local`` alone, what versions before local APIs had identities recorded, matches any
  ``local:<id>``; such objects, like objects recorded without a fingerprint, are taken at the
  API's word, as before. A run that sees them with its own identity records it (the engine's
  noop path), so the next delete is checked.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any, Final

from ._errors import ValidationError
from ._secret import Secret

__all__ = ["check_endpoint", "credential_record", "gone_for_others", "identity"]

#: what versions before local APIs had identities recorded for any loopback API
_LEGACY_LOCAL: Final = "local"
_LOCAL_PREFIX: Final = "local:"


def _same_endpoint(recorded: str, current: str, *, offline: bool = False) -> bool:
    """``local`` (recorded before local APIs had identities) matches any ``local:<id>``; so
    does ``local`` named by a plan (``offline``: it asks the local API nothing, not even its
    identity). A run that calls the API is held to the identity it answers."""
    if recorded == current:
        return True
    if recorded == _LEGACY_LOCAL:
        return current.startswith(_LOCAL_PREFIX)
    return offline and current == _LEGACY_LOCAL and recorded.startswith(_LOCAL_PREFIX)


def _where(endpoint: str) -> str:
    if endpoint.startswith(_LOCAL_PREFIX):
        return f"the local API {endpoint[len(_LOCAL_PREFIX) :]}"
    return "a local API" if endpoint == _LEGACY_LOCAL else endpoint


def _fingerprint(credential: Secret, key: str) -> str:
    digest = hashlib.blake2b(credential.unencrypted.encode(), key=bytes.fromhex(key), digest_size=8)
    return digest.hexdigest()


def credential_record(
    credential: Secret | None, recorded: Mapping[str, Any] | None
) -> dict[str, str] | None:
    """The fingerprint to record for ``credential``, keyed like the recorded one (so that an
    unchanged credential gives unchanged options), else with a new random key."""
    if credential is None:
        return None
    old = (recorded or {}).get("credential")
    key = old.get("key") if isinstance(old, dict) else None
    if not isinstance(key, str) or len(key) != 32:
        key = secrets.token_hex(16)
    return {"key": key, "fingerprint": _fingerprint(credential, key)}


def identity(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: options[k] for k in ("endpoint", "credential") if options.get(k) is not None}


def check_endpoint(
    rid: str, options: Mapping[str, Any], endpoint: str | None, *, offline: bool = False
) -> None:
    """Refuse to manage an object through another API than the one that created it (a
    stage deployed against the local API, then against the real one or another local API)."""
    recorded = options.get("endpoint")
    if (
        recorded is not None
        and endpoint is not None
        and not _same_endpoint(recorded, endpoint, offline=offline)
    ):
        if recorded.startswith(_LOCAL_PREFIX) and endpoint.startswith(_LOCAL_PREFIX):
            back = (
                "run with the local API that holds it (the same PostgreSQL data folder or "
                "server it was created in)"
            )
        elif recorded == _LEGACY_LOCAL or recorded.startswith(_LOCAL_PREFIX):
            # issue 13: say what to type (the CLI sends a stage where it lives by itself)
            back = "run the command without --no-local (or with --local) so it goes there"
        else:
            back = f"point the run back at {recorded} (the provider's API URL setting)"
        raise ValidationError(
            f"was created through {_where(recorded)}, but this run talks to {_where(endpoint)}; "
            f"use another --stage (or --journal) for this API, or {back}",
            resource=rid,
        )


def gone_for_others(
    options: Mapping[str, Any], endpoint: str | None, credential: Secret | None
) -> str | None:
    """Why a 404 on delete does not prove the object gone (None: it does). The caller has
    checked the endpoint (``check_endpoint``) before the call; what is left is the
    credential: a token of another workspace sees nothing of this one's. Objects recorded
    without a fingerprint (by older versions) are taken at the API's word, as before."""
    recorded = options.get("credential")
    if not isinstance(recorded, dict) or not isinstance(recorded.get("key"), str):
        return None
    now = _fingerprint(credential, recorded["key"]) if credential is not None else None
    if now == recorded.get("fingerprint"):
        return None
    where = _where(str(options.get("endpoint") or endpoint or "the API"))
    used = f"credentials {now[:8]}" if now is not None else "no credentials"
    return (
        f"the API answered 404 (not found), but this run used {used} and the object was "
        f"created through {where} with credentials {str(recorded.get('fingerprint'))[:8]} "
        "(fingerprints, not the secrets): the object may well still exist. Nothing was "
        "forgotten; delete it with the credentials that created it (service tokens are "
        "workspace-scoped)"
    )

"""Provider credentials stored in the journal (``journal configure``), by profile.

A credential is a ``credential.stored`` event in the reserved stream ``_profiles/<profile>``:
``{profile, provider, name, value: {"$secret": ...}, actor, host, time}``. Like every payload it
is sealed with the journal's key, so the token is encrypted at rest and never on disk in clear.
The newest event for a name wins; ``name`` is the environment variable a provider's
``Credential`` declares. Runs get the profile's credentials as ``RunSettings.credentials``
(variable name -> Secret); the engine resolves them, after the resource's own value and the
environment, into ``Context.credentials`` (see ``_provider.make_context``).

Reserved streams start with ``_``: they are never taken for an app's stage.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from ._errors import UsageError
from ._events import EVENT_TYPES
from ._protocols import JournalLike as _Journal
from ._secret import Secret, is_secret_json, secret_from_json, secret_to_json
from ._settings import actor as _actor

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILE_PREFIX",
    "StoredCredential",
    "credentials_at",
    "list_credentials",
    "load_credentials",
    "profile_credentials",
    "profile_stream",
    "store_credential",
]

DEFAULT_PROFILE: Final = "default"
PROFILE_PREFIX: Final = "_profiles/"


@dataclass(frozen=True)
class StoredCredential:
    """What is known about a stored credential, without its value."""

    profile: str
    provider: str
    name: str
    seq: int
    time: str | None
    actor: str | None


class _Event(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def payload(self) -> dict[str, Any]: ...


def _check(kind: str, value: str) -> str:
    from ._program.app import check_name

    return check_name(kind, value)


def profile_stream(profile: str) -> str:
    return PROFILE_PREFIX + _check("profile", profile)


def store_credential(
    journal: _Journal,
    profile: str,
    value: Secret | str,
    *,
    provider: str,
    name: str,
) -> StoredCredential:
    """Append ``value`` as credential ``name`` of ``provider`` under ``profile`` (encrypted
    with the rest of the event)."""
    secret = Secret(value) if not isinstance(value, Secret) else value
    if not secret.unencrypted.strip():
        raise UsageError(f"the value for {name} is empty; nothing was stored")
    _check("provider", provider)
    if not name or not name.replace("_", "").isalnum():
        raise UsageError(f"credential name {name!r} is not valid: use letters, digits and '_'")
    when = datetime.now(UTC).isoformat(timespec="milliseconds")
    actor = _actor()
    # not make_event(): its first parameter is called `name`, like this event's field
    # (make_event(name, /, **fields) would fix it); the payload is built the same way
    kind = EVENT_TYPES["credential.stored"]
    payload = {
        "type": kind.name,
        "v": kind.version,
        "profile": profile,
        "provider": provider,
        "name": name,
        "value": secret_to_json(Secret(secret.unencrypted.strip())),
        "actor": actor,
        "host": socket.gethostname(),
        "time": when,
    }
    assert kind.required <= payload.keys()
    events = journal.append(profile_stream(profile), [payload])
    return StoredCredential(profile, provider, name, events[-1].seq, when, actor)


def _events(journal: _Journal, profile: str) -> Iterable[_Event]:
    stream = profile_stream(profile)
    if stream not in journal.streams():
        return []
    return journal.read(stream)


def load_credentials(journal: _Journal, profile: str) -> dict[str, Secret]:
    """The newest value of every credential of ``profile`` (empty if it has none)."""
    out: dict[str, Secret] = {}
    for ev in _events(journal, profile):
        p = ev.payload
        if p.get("type") == "credential.stored" and is_secret_json(p.get("value")):
            out[str(p["name"])] = secret_from_json(p["value"])
    return out


def list_credentials(journal: _Journal, profile: str | None = None) -> list[StoredCredential]:
    """The credentials stored (newest per profile and name), values left out."""
    profiles = (
        [profile]
        if profile is not None
        else sorted(
            s[len(PROFILE_PREFIX) :] for s in journal.streams() if s.startswith(PROFILE_PREFIX)
        )
    )
    found: dict[tuple[str, str], StoredCredential] = {}
    for prof in profiles:
        for ev in _events(journal, prof):
            p = ev.payload
            if p.get("type") != "credential.stored":
                continue
            found[(prof, str(p["name"]))] = StoredCredential(
                prof, str(p["provider"]), str(p["name"]), ev.seq, p.get("time"), p.get("actor")
            )
    return [found[k] for k in sorted(found)]


def profile_credentials(journal: _Journal, profile: str | None) -> dict[str, Secret]:
    """The credentials of ``profile`` (None: the default profile, which may be empty; a
    profile named explicitly must have some)."""
    creds = load_credentials(journal, profile or DEFAULT_PROFILE)
    if not creds and profile is not None and profile != DEFAULT_PROFILE:
        raise UsageError(
            f"no credentials stored for profile {profile!r}: "
            f"store a token with `journal configure --profile {profile}`"
        )
    return creds


def credentials_at(
    location: str | os.PathLike[str] | None, profile: str | None
) -> dict[str, Secret]:
    """:func:`profile_credentials` of the journal at ``location``; a journal that does not
    exist yet holds none (and is not created)."""
    from ._errors import MissingPasswordError, NoJournalError
    from ._journal import Journal
    from ._store import open_store

    try:  # one opening of the store when the journal is there (the common case)
        jr = Journal.open(location, create=False)
    except NoJournalError:
        jr = None
    except MissingPasswordError:  # no password: fine as long as there is no journal either
        store = open_store(location)
        try:
            if store.read_meta() is not None:
                raise
        finally:
            store.close()
        jr = None
    if jr is None:
        if profile is not None and profile != DEFAULT_PROFILE:
            raise UsageError(
                f"no credentials stored for profile {profile!r}: the journal at {location} "
                f"does not exist yet; store a token with `journal configure --profile {profile}`"
            )
        return {}
    with jr:
        return profile_credentials(jr, profile)

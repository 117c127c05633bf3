"""The issuer API's keys: created and revoked by the CLI, checked on every request.

A key is ``fvk_<id>_<secret>`` with scopes (``issue``, ``revoke``, ``read``). Only its SHA-256 is
stored, and the comparison is constant-time, also for an id that does not exist.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from chain.errors import ConfigError
from chain.service.web import Unauthorized, digest_matches, token_digest
from issuer.errors import UnknownApiKey
from issuer.scopes import SCOPES
from issuer.store import ApiKey, Store, utcnow

_TOKEN = re.compile(r"^fvk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_DUMMY_DIGEST = token_digest("fvk_000000000000_" + "A" * 43)


def create_api_key(
    store: Store, name: str, scopes: Sequence[str], *, now: Callable[[], datetime] = utcnow
) -> str:
    """Creates a key and returns its token: shown once, stored only as a SHA-256."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ConfigError(f"scopes must be among {', '.join(SCOPES)} (got {', '.join(unknown) or 'none'})")
    if not name.strip() or len(name) > 200 or not name.isprintable():
        raise ConfigError("an API key needs a name of 1 to 200 printable characters")
    key_id = secrets.token_hex(6)
    token = f"fvk_{key_id}_{secrets.token_urlsafe(32)}"
    with store.transaction() as session:
        session.add(
            ApiKey(
                id=key_id,
                name=name.strip(),
                key_hash=token_digest(token),
                scopes=" ".join(s for s in SCOPES if s in scopes),
                created_at=now(),
            )
        )
    return token


def revoke_api_key(store: Store, key_id: str, *, now: Callable[[], datetime] = utcnow) -> None:
    """Disables a key at once (its rows stay, for the audit trail)."""
    with store.transaction() as session:
        key = session.get(ApiKey, key_id)
        if key is None:
            raise UnknownApiKey(f"no API key {key_id!r}")
        key.revoked_at = key.revoked_at or now()


def list_api_keys(store: Store) -> list[ApiKey]:
    """Every key, oldest first (hashes included: they are not secrets)."""
    with store.reading() as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


@dataclass(frozen=True)
class Principal:
    """The caller, once its token checked out."""

    key_id: str
    scopes: frozenset[str]


def authenticate(store: Store, token: str | None) -> Principal:
    """The key a bearer token belongs to; the same 401 whatever is wrong with it."""
    match = _TOKEN.fullmatch(token or "")
    key = None
    if match is not None:
        with store.reading() as session:
            key = session.get(ApiKey, match.group(1))
    # Compare even when there is no such key, so timing tells nothing about which ids exist.
    valid = digest_matches(token or "", key.key_hash if key else _DUMMY_DIGEST)
    if key is None or not valid or key.revoked_at is not None:
        raise Unauthorized("a valid API key is required (Authorization: Bearer fvk_...)")
    return Principal(key.id, frozenset(key.scopes.split()))

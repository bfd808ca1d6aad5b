"""Requester access keys: a client's SigV4 credentials for the MTurk-compatible API, made,
listed and deleted through the client API (at most two at a time, so a key is rotated by
making the next one before deleting the old)."""
from __future__ import annotations

import secrets
import string
from typing import Any

from chalicelib.domain.cache import MISSING
from chalicelib.domain.jobs import iso
from chalicelib.domain.model import Principal
from chalicelib.domain.ports import RequesterKeyStore
from chalicelib.errors import Conflict, NotFound, TransientError
from chalicelib.handlers.platform import PRINCIPAL_CACHE_SECONDS, Platform
from chalicelib.observability import logger

MAX_KEYS = 2
KEY_ID_PREFIX = "AKCR"
_KEY_ID_ALPHABET = string.ascii_uppercase + "234567"


def new_key_id() -> str:
    """An access key id in AWS's form: 20 upper-case letters and digits."""
    return KEY_ID_PREFIX + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(16))


def _store(p: Platform) -> RequesterKeyStore:
    if p.requester_keys is None:
        raise TransientError("requester keys are not configured on this stage",
                             code="requester_keys_unavailable")
    return p.requester_keys


def create_key(p: Platform, client: Principal) -> dict[str, Any]:
    """A new key pair for the client; the secret is in this answer only."""
    store = _store(p)
    key_id, secret = new_key_id(), secrets.token_urlsafe(30)
    now = p.now()
    if not store.create(client.account_id, key_id, secret, now, MAX_KEYS):
        raise Conflict(f"a client may hold at most {MAX_KEYS} requester keys: delete one "
                       "first", code="requester_key_limit")
    logger.info("requester key created", extra={"access_key_id": key_id})
    return {"access_key_id": key_id, "secret_access_key": secret, "created_at": iso(now)}


def list_keys(p: Platform, client: Principal) -> dict[str, Any]:
    """The client's key ids and when each was made (never a secret)."""
    keys = _store(p).keys(client.account_id)
    return {"requester_keys": [{"access_key_id": key_id, "created_at": iso(created)}
                               for key_id, created in keys]}


def delete_key(p: Platform, client: Principal, key_id: str) -> dict[str, Any]:
    """Delete a key of the client: refused at once on this container, within a minute on
    the others (their cache of verified keys)."""
    if not _store(p).delete(client.account_id, key_id[:64]):
        raise NotFound("no such requester key", code="requester_key_not_found")
    p.cache.requester_keys.forget(key_id)
    return {"access_key_id": key_id, "deleted": True}


def key_for(p: Platform, key_id: str) -> tuple[Principal, str] | None:
    """The live client and secret of an access key id, cached per container for a minute
    (one read and one KMS decryption a key a minute, not a request)."""
    if p.requester_keys is None:
        return None
    now = p.now()
    found = p.cache.requester_keys.get(key_id, now, PRINCIPAL_CACHE_SECONDS)
    if found is MISSING:
        found = p.requester_keys.lookup(key_id)
        if found is None:
            return None
        p.cache.requester_keys.put(key_id, found, now)
    return found


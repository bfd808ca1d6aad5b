"""Accounts and credentials: sign-in by bearer secret, opening, rotating and revoking."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from chalicelib.domain import locales
from chalicelib.domain import validation as v
from chalicelib.domain.cache import MISSING
from chalicelib.domain.ids import hash_secret, new_id, new_secret
from chalicelib.domain.model import CLIENT, OPERATOR, WORKER, Principal
from chalicelib.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from chalicelib.handlers.platform import PRINCIPAL_CACHE_SECONDS, Platform
from chalicelib.observability import logger


def authenticate(p: Platform, secret: str | None, role: str) -> Principal:
    """The principal behind a bearer secret, cached per container; 401/403 otherwise."""
    if not secret:
        raise Unauthorized("missing credentials", code="missing_credentials")
    digest = hash_secret(secret)
    now = p.now()
    principal = p.cache.principals.get(digest, now, PRINCIPAL_CACHE_SECONDS)
    if principal is MISSING:
        principal = p.accounts.principal_for(digest)
        if principal is None:
            raise Unauthorized("unknown or revoked credentials", code="invalid_credentials")
        p.cache.principals.put(digest, principal, now)
    if principal.role != role:
        raise Forbidden(f"this endpoint needs {role} credentials", code="wrong_role")
    return principal


def create_account(p: Platform, role: str, name: str, skills: Iterable[str] = (),
                   country: str | None = None, subdivision: str | None = None
                   ) -> tuple[Principal, str]:
    """A new account and its bearer secret (shown once; only its hash is kept)."""
    prefix = {CLIENT: "ck", WORKER: "wt", OPERATOR: "ok"}[role]
    account_id = new_id({CLIENT: "cli", WORKER: "wrk", OPERATOR: "opr"}[role])
    secret = new_secret(prefix)
    skills = sorted(set(skills))
    p.accounts.create_account(account_id, role, name, skills, hash_secret(secret), p.now(),
                              country, subdivision)
    if role == CLIENT and p.client_keys is not None:
        p.client_keys.register(account_id, secret)
    return Principal(account_id, role, name, frozenset(skills), (), country, subdivision), secret


def open_account(p: Platform, body: Any) -> dict[str, Any]:
    """An operator opens a client or operator account; its key is in the answer, once."""
    body = v.require_object(body)
    v.reject_unknown(body, ("role", "name"))
    role = v.choice(body, "role", (CLIENT, OPERATOR))
    name = v.text(body, "name", max_length=200)
    principal, secret = create_account(p, role, name)
    return {"account_id": principal.account_id, "role": role, "name": name, "api_key": secret}


def rotate_credentials(p: Platform, principal: Principal, secret: str) -> str:
    """A new secret for the caller's account; the one they called with stops working at once
    on this container and within a minute on the others (their credential cache)."""
    prefix = {CLIENT: "ck", WORKER: "wt", OPERATOR: "ok"}[principal.role]
    new = new_secret(prefix)
    # A client's new key joins the usage plan before the old one is revoked, so a failure on
    # the way leaves the old key working (and the new one unknown), never neither.
    keys = p.client_keys if principal.role == CLIENT else None
    gateway_key = keys.register(principal.account_id, new) if keys is not None else None
    if not p.accounts.rotate(principal.account_id, hash_secret(secret), hash_secret(new), p.now()):
        if keys is not None and gateway_key is not None:
            keys.remove(gateway_key)
        raise Conflict("this credential was rotated or revoked meanwhile", code="credential_changed")
    p.cache.principals.forget(hash_secret(secret))
    if keys is not None and gateway_key is not None:
        try:
            keys.remove_others(principal.account_id, keep=gateway_key)
        except Exception:  # noqa: BLE001 (the old key is revoked here: the app refuses it)
            logger.exception("the old key stays in the usage plan",
                             extra={"account_id": principal.account_id})
    return new


def revoke_account(p: Platform, operator: Principal, account_id: str) -> dict[str, Any]:
    """An operator revokes an account's credential (effective within a minute everywhere)."""
    if not p.accounts.revoke(account_id):
        raise NotFound("no such account", code="account_not_found")
    p.cache.principals.clear()
    if p.client_keys is not None:
        p.client_keys.unregister(account_id)
    return {"account_id": account_id, "revoked": True}


def register_worker(p: Platform, body: Any) -> tuple[Principal, str]:
    """Open self-registration of a worker with a name, skills (e.g. languages) and,
    optionally, a country and subdivision."""
    if not p.open_registration:
        raise Forbidden("worker registration is closed on this stage",
                        code="registration_closed")
    body = v.require_object(body)
    v.reject_unknown(body, ("name", "skills", "country", "subdivision"))
    name = v.text(body, "name", max_length=100)
    skills = v.string_list(body, "skills", max_items=50, max_length=64)
    country, subdivision = locales.new_locale(body)
    return create_account(p, WORKER, name.strip(), skills, country, subdivision)


def change_profile(p: Platform, worker: Principal, secret: str, body: Any) -> Principal:
    """A worker changes their country and subdivision (null clears; an absent field keeps
    its value). This container sees the change at once (its cached principal is dropped),
    the others within PRINCIPAL_CACHE_SECONDS."""
    body = v.require_object(body)
    v.reject_unknown(body, ("country", "subdivision"))
    if not body:
        raise InvalidRequest("give 'country' and/or 'subdivision'", field="country")
    country, subdivision = locales.changed_locale(body, (worker.country, worker.subdivision))
    if not p.accounts.set_locale(worker.account_id, country, subdivision):
        raise NotFound("no such account", code="account_not_found")
    p.cache.principals.forget(hash_secret(secret))
    return replace(worker, country=country, subdivision=subdivision)

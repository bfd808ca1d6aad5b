"""Accounts and their credentials: an account and its live credential change together."""
from __future__ import annotations

from collections.abc import Sequence

from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.writes import conditional_update, transact_once
from chalicelib.adapters.models import AccountModel, CredentialModel
from chalicelib.domain.model import Principal
from chalicelib.errors import TransientError


class DynamoAccounts:
    """Accounts and credentials."""

    def create_account(self, account_id: str, role: str, name: str, skills: Sequence[str],
                       token_hash: str, now: float, country: str | None = None,
                       subdivision: str | None = None) -> None:
        """Store the account and its credential in one transaction."""
        with TransactWrite(connection=AccountModel._get_connection().connection) as tx:
            tx.save(AccountModel(account_id, role=role, name=name, skills=set(skills) or None,
                                 country=country, subdivision=subdivision,
                                 created_at=now, token_hash=token_hash),
                    condition=AccountModel.account_id.does_not_exist())
            tx.save(CredentialModel(token_hash, account_id=account_id, role=role, name=name,
                                    skills=set(skills) or None, country=country,
                                    subdivision=subdivision, created_at=now),
                    condition=CredentialModel.token_hash.does_not_exist())

    def principal_for(self, token_hash: str) -> Principal | None:
        """The principal of a credential; None if unknown or revoked."""
        try:
            record = CredentialModel.get(token_hash)
        except CredentialModel.DoesNotExist:
            return None
        if record.revoked:
            return None
        return Principal(record.account_id, record.role, record.name,
                         frozenset(record.skills or ()),
                         tuple(sorted((record.scores or {}).items())),
                         record.country, record.subdivision)

    def grant_skill(self, account_id: str, skill: str, score: float) -> None:
        """Add the skill and its score to the account and its credential, together."""
        account = AccountModel.get(account_id, consistent_read=True)
        scores = {**(account.scores or {}), skill: score}

        def write(tx: TransactWrite) -> None:
            tx.update(AccountModel(account_id), actions=[AccountModel.skills.add({skill}),
                                                         AccountModel.scores.set(scores)])
            if account.token_hash:
                tx.update(CredentialModel(account.token_hash),
                          actions=[CredentialModel.skills.add({skill}),
                                   CredentialModel.scores.set(scores)])

        if not transact_once(write):
            raise TransientError("the skill could not be granted; submit again")

    def set_locale(self, account_id: str, country: str | None, subdivision: str | None
                   ) -> bool:
        """Set or clear the country and subdivision on the account and its live credential in
        one transaction, on condition that the credential is still the account's (a rotation
        meanwhile, which copies the account, cancels it: TransientError)."""
        try:
            account = AccountModel.get(account_id, consistent_read=True)
        except AccountModel.DoesNotExist:
            return False

        def actions(model: type[AccountModel] | type[CredentialModel]) -> list:
            return [model.country.set(country) if country is not None else model.country.remove(),
                    model.subdivision.set(subdivision) if subdivision is not None
                    else model.subdivision.remove()]

        def write(tx: TransactWrite) -> None:
            tx.update(AccountModel(account_id), actions=actions(AccountModel),
                      condition=AccountModel.token_hash == account.token_hash
                      if account.token_hash else AccountModel.token_hash.does_not_exist())
            if account.token_hash:
                tx.update(CredentialModel(account.token_hash), actions=actions(CredentialModel),
                          condition=CredentialModel.token_hash.exists())

        if not transact_once(write):
            raise TransientError("the country could not be changed; submit again")
        return True

    def rotate(self, account_id: str, old_hash: str, new_hash: str, now: float) -> bool:
        """Replace the account's credential: the new one is stored and the old one revoked,
        together; False if old_hash is no longer the account's live credential."""
        account = AccountModel.get(account_id, consistent_read=True)
        old = CredentialModel.get(old_hash, consistent_read=True)

        def write(tx: TransactWrite) -> None:
            tx.save(CredentialModel(new_hash, account_id=account_id, role=account.role,
                                    name=account.name, skills=account.skills or None,
                                    scores=account.scores or None, country=account.country,
                                    subdivision=account.subdivision, created_at=now),
                    condition=CredentialModel.token_hash.does_not_exist())
            tx.update(CredentialModel(old_hash), actions=[CredentialModel.revoked.set(True)],
                      condition=(CredentialModel.revoked == False)  # noqa: E712
                      & (CredentialModel.account_id == account_id))
            tx.update(AccountModel(account_id), actions=[AccountModel.token_hash.set(new_hash)],
                      condition=AccountModel.token_hash == old_hash)

        return old.account_id == account_id and transact_once(write)

    def revoke(self, account_id: str) -> bool:
        """Revoke the account's live credential; False if there is no such account."""
        try:
            account = AccountModel.get(account_id, consistent_read=True)
        except AccountModel.DoesNotExist:
            return False
        if account.token_hash:
            conditional_update(CredentialModel, account.token_hash, None,
                               [CredentialModel.revoked.set(True)],
                               CredentialModel.token_hash.exists())
        return True

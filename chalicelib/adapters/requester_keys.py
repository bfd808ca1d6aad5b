"""Requester access keys in DynamoDB, their secrets sealed with KMS.

SigV4 verification needs the secret itself (a hash would not do), so it is stored as KMS
ciphertext whose encryption context names the key id and the account: a record copied onto
another key id does not decrypt. Each key is an item of the credentials table
(`rk#<key id>`, a name no credential hash can take); the account keeps the set of its key ids,
whose size bounds how many it may hold.
"""
from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DeleteError, UpdateError
from pynamodb.expressions.condition import size

from chalicelib.adapters.aws_errors import error_code
from chalicelib.adapters.dynamo.accounts import DynamoAccounts
from chalicelib.adapters.models import AccountModel, CredentialModel
from chalicelib.domain.model import Principal

KEY_PREFIX = "rk#"
REQUESTER_KEY_ROLE = "requester_key"


def _is_condition_failure(error: Exception) -> bool:
    return error_code(error) == "ConditionalCheckFailedException"


class DynamoRequesterKeys:
    """Requester access keys: items of the credentials table, secrets sealed by a KMS key."""

    def __init__(self, kms: Any, kms_key: str) -> None:
        self._kms = kms
        self._kms_key = kms_key

    def create(self, account_id: str, key_id: str, secret: str, now: float, limit: int
               ) -> bool:
        """Reserve a place in the account's key set (only while it holds fewer than limit),
        then store the sealed key; a failure storing it gives the place back."""
        try:
            AccountModel(account_id).update(
                actions=[AccountModel.requester_keys.add({key_id})],
                condition=AccountModel.account_id.exists() & (
                    AccountModel.requester_keys.does_not_exist()
                    | (size(AccountModel.requester_keys) < limit)))
        except UpdateError as error:
            if _is_condition_failure(error):
                return False
            raise
        try:
            sealed = self._kms.encrypt(KeyId=self._kms_key, Plaintext=secret.encode("utf-8"),
                                       EncryptionContext=_context(account_id, key_id))
            CredentialModel(KEY_PREFIX + key_id, account_id=account_id,
                            role=REQUESTER_KEY_ROLE, name=key_id, created_at=now,
                            sealed_secret=sealed["CiphertextBlob"]).save(
                condition=CredentialModel.token_hash.does_not_exist())
        except Exception:
            AccountModel(account_id).update(actions=[AccountModel.requester_keys.delete({key_id})])
            raise
        return True

    def keys(self, account_id: str) -> list[tuple[str, float]]:
        """The account's keys (id, created at), oldest first."""
        try:
            account = AccountModel.get(account_id, consistent_read=True,
                                       attributes_to_get=["requester_keys"])
        except AccountModel.DoesNotExist:
            return []
        ids = sorted(account.requester_keys or ())
        if not ids:
            return []
        records = CredentialModel.batch_get([KEY_PREFIX + key_id for key_id in ids])
        found = [(r.name, float(r.created_at)) for r in records if r.account_id == account_id]
        return sorted(found, key=lambda pair: (pair[1], pair[0]))

    def delete(self, account_id: str, key_id: str) -> bool:
        """Delete the key item (only the account's own), then its place in the set."""
        try:
            CredentialModel(KEY_PREFIX + key_id).delete(
                condition=CredentialModel.account_id == account_id)
        except DeleteError as error:
            if _is_condition_failure(error):
                return False
            raise
        AccountModel(account_id).update(actions=[AccountModel.requester_keys.delete({key_id})])
        return True

    def lookup(self, key_id: str) -> tuple[Principal, str] | None:
        """The key's live account and its secret, unsealed."""
        try:
            record = CredentialModel.get(KEY_PREFIX + key_id)
        except CredentialModel.DoesNotExist:
            return None
        if record.role != REQUESTER_KEY_ROLE or record.sealed_secret is None:
            return None
        try:
            account = AccountModel.get(record.account_id)
        except AccountModel.DoesNotExist:
            return None
        # the account's live credential: none once it is revoked
        principal = DynamoAccounts().principal_for(account.token_hash) \
            if account.token_hash else None
        if principal is None:
            return None
        opened = self._kms.decrypt(CiphertextBlob=bytes(record.sealed_secret),
                                   EncryptionContext=_context(record.account_id, key_id))
        return principal, opened["Plaintext"].decode("utf-8")


def _context(account_id: str, key_id: str) -> dict[str, str]:
    return {"account_id": account_id, "access_key_id": key_id}

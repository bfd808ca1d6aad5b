"""Client keys in the stage's API Gateway usage plan, which caps each key's request rate.

API Gateway checks `X-Api-Key` against the API keys it holds before a client route runs, and
throttles each key by the plan. So every client key is also registered there (named by its
account id), and removed when it is rotated or revoked.
"""
from __future__ import annotations

from typing import Any


class ApiGatewayKeys:
    """Registers client keys as API Gateway API keys of one usage plan."""

    def __init__(self, apigateway: Any, usage_plan_id: str) -> None:
        self._api = apigateway
        self._plan = usage_plan_id

    def register(self, account_id: str, secret: str) -> str:
        """Add a key of the account to the plan; its API Gateway id. The account's other keys
        stay until remove_others (a rotation adds the new key before the old one goes)."""
        key = self._api.create_api_key(name=account_id, value=secret, enabled=True,
                                       description="client key")
        try:
            self._api.create_usage_plan_key(usagePlanId=self._plan, keyId=key["id"],
                                            keyType="API_KEY")
        except Exception:
            self._api.delete_api_key(apiKey=key["id"])
            raise
        return str(key["id"])

    def remove(self, key_id: str) -> None:
        """Delete one API Gateway key."""
        self._api.delete_api_key(apiKey=key_id)

    def remove_others(self, account_id: str, keep: str | None = None) -> None:
        """Delete the account's API Gateway keys but keep (all of them when keep is None)."""
        paginator = self._api.get_paginator("get_api_keys")
        for page in paginator.paginate(nameQuery=account_id, includeValues=False):
            for key in page.get("items", []):
                if key.get("name") == account_id and key["id"] != keep:
                    self._api.delete_api_key(apiKey=key["id"])

    def unregister(self, account_id: str) -> None:
        """Remove every API Gateway key of the account (a missing one is fine)."""
        self.remove_others(account_id)

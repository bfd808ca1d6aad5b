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

    def register(self, account_id: str, secret: str) -> None:
        """Add the key to the plan (the account's earlier keys are removed)."""
        self.unregister(account_id)
        key = self._api.create_api_key(name=account_id, value=secret, enabled=True,
                                       description="client key")
        self._api.create_usage_plan_key(usagePlanId=self._plan, keyId=key["id"],
                                        keyType="API_KEY")

    def unregister(self, account_id: str) -> None:
        """Remove every API Gateway key of the account (a missing one is fine)."""
        paginator = self._api.get_paginator("get_api_keys")
        for page in paginator.paginate(nameQuery=account_id, includeValues=False):
            for key in page.get("items", []):
                if key.get("name") == account_id:
                    self._api.delete_api_key(apiKey=key["id"])

"""Accounts for the local stack: a client key, a worker token and an operator key to try the
API with."""
from __future__ import annotations

from chalicelib.deps import platform
from chalicelib.domain.services import CLIENT, OPERATOR, WORKER, create_account


def seed_local_accounts() -> dict[str, str]:
    """Create a demo client and a demo worker; return their ids and secrets."""
    p = platform()
    client, client_key = create_account(p, CLIENT, "Local client")
    worker, worker_token = create_account(p, WORKER, "Local worker", ["en"])
    operator, operator_key = create_account(p, OPERATOR, "Local operator")
    return {"client_id": client.account_id, "client_key": client_key,
            "worker_id": worker.account_id, "worker_token": worker_token,
            "operator_id": operator.account_id, "operator_key": operator_key}

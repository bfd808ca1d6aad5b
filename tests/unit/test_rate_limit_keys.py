"""A client's key rotation adds the new API Gateway key before the old one goes."""
from __future__ import annotations

import pytest

from chalicelib.domain import services
from chalicelib.errors import Conflict
from tests.fakes import make_platform


class Keys:
    """Records what would happen in the usage plan."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, str]] = {}  # gateway id -> (account, secret)
        self.calls: list[str] = []

    def register(self, account_id: str, secret: str) -> str:
        key_id = f"k{len(self.calls)}"
        self.calls.append("register")
        self.keys[key_id] = (account_id, secret)
        return key_id

    def remove(self, key_id: str) -> None:
        self.calls.append("remove")
        self.keys.pop(key_id, None)

    def remove_others(self, account_id: str, keep: str | None = None) -> None:
        self.calls.append("remove_others")
        for key_id in [k for k, (a, _) in self.keys.items() if a == account_id and k != keep]:
            del self.keys[key_id]

    def unregister(self, account_id: str) -> None:
        self.remove_others(account_id)


def test_rotation_registers_first_and_a_failed_rotation_keeps_the_old_key():
    p = make_platform()
    p.client_keys = Keys()
    client, old = services.create_account(p, services.CLIENT, "Acme")
    assert [s for _, s in p.client_keys.keys.values()] == [old]
    new = services.rotate_credentials(p, client, old)
    assert [s for _, s in p.client_keys.keys.values()] == [new]
    assert p.client_keys.calls[-2:] == ["register", "remove_others"]
    # a rotation with a key that no longer works: the new gateway key is taken back
    with pytest.raises(Conflict):
        services.rotate_credentials(p, client, old)
    assert [s for _, s in p.client_keys.keys.values()] == [new]
    # (revocation removing the key is tested on moto: tests/functional/test_rate_limits.py)

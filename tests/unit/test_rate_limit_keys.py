"""A client's key rotation adds the new API Gateway key before the old one goes."""
from __future__ import annotations

import pytest

from chalicelib.domain.model import CLIENT
from chalicelib.errors import Conflict
from chalicelib.handlers import accounts
from tests.fakes import FakeClientKeys, make_platform


def test_rotation_registers_first_and_a_failed_rotation_keeps_the_old_key():
    p = make_platform()
    keys = p.client_keys = FakeClientKeys()
    client, old = accounts.create_account(p, CLIENT, "Acme")
    assert [s for _, s in keys.keys.values()] == [old]
    new = accounts.rotate_credentials(p, client, old)
    assert [s for _, s in keys.keys.values()] == [new]
    assert keys.calls[-2:] == ["register", "remove_others"]
    # a rotation with a key that no longer works: the new gateway key is taken back
    with pytest.raises(Conflict):
        accounts.rotate_credentials(p, client, old)
    assert [s for _, s in keys.keys.values()] == [new]
    # (revocation removing the key is tested on moto: tests/functional/test_rate_limits.py)

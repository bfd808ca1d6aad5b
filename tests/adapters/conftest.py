"""Fixtures of the adapter tests: one moto stack per module, and ids no other test uses.

Deploying the stack costs a second or more, a test on it a few milliseconds, so each module
deploys it once and its tests share it. They stay independent by writing only under ids of
their own: jobs, quotes and accounts get fresh random ids when created; names inside a test's
own job (its items, the workers leasing them) cannot meet another test's; whatever else a test
names (a worker's stats, a job's results, a key in the bucket, a state machine, a queue
message) carries the test's `uid` or a fresh job id. A listing across jobs (jobs in a state)
is checked whole and compared on the test's own jobs.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.conftest import Stack, deployed_stack


@pytest.fixture(scope="module")
def module_stack() -> Iterator[Stack]:
    """The app on a moto stack deployed once for the module's tests."""
    with pytest.MonkeyPatch.context() as env, deployed_stack(env) as deployed:
        yield deployed


@pytest.fixture
def uid() -> str:
    """A suffix of this test's own, for the ids it names itself on a shared stack."""
    return secrets.token_hex(4)

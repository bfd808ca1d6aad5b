"""Every port's implementations (the in-memory fakes and the AWS adapters) offer each method
the port declares, with the same parameters and defaults: a fake that drifts from its port
tests something the platform does not run."""
from __future__ import annotations

import inspect

import pytest

from chalicelib.adapters import (
    dynamo, idempotency, messaging, mturk_records, rate_limits, requester_keys, storage,
    webhooks,
)
from chalicelib.domain import ports
from tests import fakes

IMPLEMENTATIONS = {
    ports.AccountStore: (fakes.FakeAccounts, dynamo.DynamoAccounts),
    ports.QuoteStore: (fakes.FakeQuotes, dynamo.DynamoQuotes),
    ports.JobStore: (fakes.FakeJobs, dynamo.DynamoJobs),
    ports.ItemStore: (fakes.FakeItems, dynamo.DynamoItems),
    ports.ResultStore: (fakes.FakeResults, dynamo.DynamoResults),
    ports.WorkerStatsStore: (fakes.FakeWorkerStats, dynamo.DynamoWorkerStats),
    ports.LedgerStore: (fakes.FakeLedger, dynamo.DynamoLedger),
    ports.CatalogStore: (fakes.FakeCatalog, dynamo.DynamoCatalog),
    ports.BlobStore: (fakes.FakeBlobs, storage.S3Blobs),
    ports.MessageQueue: (fakes.FakeQueue, messaging.SqsQueue),
    ports.Workflow: (fakes.FakeWorkflow, messaging.StepFunctionsWorkflow),
    ports.WebhookStore: (fakes.FakeWebhooks, webhooks.DynamoWebhooks),
    ports.EventBus: (fakes.FakeBus, webhooks.EventBridgeBus),
    ports.ClientKeys: (fakes.FakeClientKeys, rate_limits.ApiGatewayKeys),
    ports.RequesterKeyStore: (fakes.FakeRequesterKeys, requester_keys.DynamoRequesterKeys),
    ports.MTurkRecords: (fakes.FakeMTurkRecords, mturk_records.DynamoMTurkRecords),
    # No fake: a Platform without one runs every request (the tests of keys run on moto).
    ports.IdempotencyStore: (idempotency.DynamoIdempotency,),
}


def _declared(port: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(port).items()
            if inspect.isfunction(member) and not name.startswith("_")}


def _shape(signature: inspect.Signature) -> list[tuple[str, object]]:
    """Parameter names and defaults, self left out (annotations are strings here)."""
    return [(p.name, p.default) for p in signature.parameters.values() if p.name != "self"]


def mismatches(port: type, implementation: type) -> list[str]:
    """What implementation lacks of port, or offers with other parameters."""
    found = []
    for name, signature in _declared(port).items():
        member = inspect.getattr_static(implementation, name, None)
        if member is None or not callable(member):
            found.append(f"{implementation.__name__}.{name} is missing")
        elif _shape(inspect.signature(member)) != _shape(signature):
            found.append(f"{implementation.__name__}.{name}{inspect.signature(member)} is not "
                         f"{port.__name__}.{name}{signature}")
    return found


def test_every_port_is_declared_with_its_implementations():
    declared = {member for _, member in inspect.getmembers(ports, inspect.isclass)
                if getattr(member, "_is_protocol", False) and member.__module__ == ports.__name__}
    assert declared == set(IMPLEMENTATIONS)


@pytest.mark.parametrize("port", list(IMPLEMENTATIONS), ids=lambda port: port.__name__)
def test_fakes_and_adapters_match_their_port(port):
    assert _declared(port), port
    problems = [m for implementation in IMPLEMENTATIONS[port] for m in mismatches(port, implementation)]
    assert problems == []


def test_the_check_catches_a_drifted_fake():
    class Drifted:
        def revoke(self, token_hash):
            return None

    assert mismatches(ports.AccountStore, Drifted)[0].startswith("Drifted.create_account is missing")
    assert any("Drifted.revoke(self, token_hash)" in m
               for m in mismatches(ports.AccountStore, Drifted))

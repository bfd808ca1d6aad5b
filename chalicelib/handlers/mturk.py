"""The MTurk-compatible requester API: who signed a request, and the operations served so far
(every other operation of the API answers a RequestError saying it is not supported yet)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.adapters import sigv4
from chalicelib.domain import mturk
from chalicelib.domain.model import CLIENT, Principal
from chalicelib.handlers import mturk_assignments, mturk_events, mturk_hits, mturk_quals
from chalicelib.handlers.platform import Platform
from chalicelib.handlers.requester_keys import key_for

# Clients' jobs read a page at a time when summing what they have not spent.
JOBS_PAGE = 100


def requester(p: Platform, request: sigv4.SignedRequest) -> Principal:
    """The client whose requester key signed the request; MTurk's errors otherwise."""
    credential = sigv4.credential_of(request, mturk.SIGNING_SERVICE)
    found = key_for(p, credential.access_key_id)
    if found is None:
        raise mturk.MTurkError("UnrecognizedClientException",
                               "The security token included in the request is invalid.", 400)
    principal, secret = found
    sigv4.verify(request, credential, secret, p.now())
    if principal.role != CLIENT:
        raise mturk.MTurkError("AccessDeniedException",
                               "requester keys belong to client accounts", 400)
    return principal


def get_account_balance(p: Platform, client: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """What the client has paid and not yet committed: the pools of its jobs (the money
    bonuses are paid from), in dollars. There is no prepaid account balance: each job is
    bought from its quote, so this is the figure a requester can still spend here."""
    cents, cursor = 0, None
    while True:
        jobs, cursor = p.jobs.jobs_of_client(client.account_id, JOBS_PAGE, cursor)
        cents += sum(max(job.pool_cents, 0) for job in jobs)
        if cursor is None:
            break
    return {"AvailableBalance": mturk.money(cents)}


Operation = Callable[[Platform, Principal, dict[str, Any]], dict[str, Any]]

# Each area's operations are in a module of its own (chalicelib.handlers.mturk_*), each with
# an OPERATIONS table of the same shape, merged here.
OPERATIONS: dict[str, Operation] = {
    "GetAccountBalance": get_account_balance,
    **mturk_hits.OPERATIONS, **mturk_assignments.OPERATIONS, **mturk_quals.OPERATIONS,
    **mturk_events.OPERATIONS,
}



def call(p: Platform, client: Principal, operation: str, body: dict[str, Any]
         ) -> dict[str, Any]:
    """Run one operation for the client; a RequestError for those not served yet."""
    handler = OPERATIONS.get(operation)
    if handler is None:
        raise mturk.request_error(f"This operation is not supported yet: {operation}",
                                  "AWS.MechanicalTurk.OperationNotSupported")
    return handler(p, client, body)

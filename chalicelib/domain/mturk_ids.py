"""MTurk's identifier formats for the marketplace's own ids, both ways, without lookups.

MTurk ids are upper-case letters and digits (`EntityId`, at most 64 characters; tools keep
them in 50-character columns), worker ids start with `A`. Each mapping is reversible, so an id
a tool sends back names our record directly:

- a HIT is a job of one item: HITId is the job id's 16 hex digits in upper case;
- an assignment is a lease (and its answer): the lease's assignment id re-spelled (job hex,
  item number, `Z`, the lease's random part, its time in ms, `V`, the instructions version);
- a worker is a worker account: `A` and the account id's hex digits;
- a HIT type is a digest of the properties that define it (CreateHITType is idempotent by
  value: the same properties give the same HITTypeId); a HIT group is the HIT type's id with
  a different prefix letter, as every HIT of a type shares its group.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

_HIT = re.compile(r"^[0-9A-F]{16}$")
_ASSIGNMENT = re.compile(r"^([0-9A-F]{16})(\d{6,12})Z([0-9A-F]{8})(\d{1,15})V(\d{1,6})$")
_OUR_ASSIGNMENT = re.compile(r"^asg_([0-9a-f]{16})_(\d{6,12})_([0-9a-f]{8})_(\d{1,15})_v(\d{1,6})$")
_WORKER = re.compile(r"^A([0-9A-F]{16})$")
_OUR_WORKER = re.compile(r"^wrk_([0-9a-f]{16})$")
HIT_TYPE_DIGITS = 30


def hit_id(job_id: str) -> str:
    """The HITId of a HIT's job ('job_3f9c...' -> '3F9C...')."""
    return job_id.removeprefix("job_").upper()


def job_of_hit(value: str) -> str | None:
    """The job id a HITId names; None when it is not one of ours."""
    return f"job_{value.lower()}" if isinstance(value, str) and _HIT.match(value) else None


def assignment_id(ours: str) -> str:
    """The MTurk AssignmentId of one of our assignment ids."""
    match = _OUR_ASSIGNMENT.match(ours)
    if not match:
        raise ValueError(f"not an assignment id: {ours!r}")
    job, item, secret, millis, version = match.groups()
    return f"{job.upper()}{item}Z{secret.upper()}{millis}V{version}"


def our_assignment(value: str) -> str | None:
    """Our assignment id for an MTurk AssignmentId; None when it is not one of ours."""
    match = _ASSIGNMENT.match(value) if isinstance(value, str) else None
    if not match:
        return None
    job, item, secret, millis, version = match.groups()
    return f"asg_{job.lower()}_{item}_{secret.lower()}_{millis}_v{version}"


def worker_id(account_id: str) -> str:
    """The MTurk WorkerId of a worker account ('wrk_3f9c...' -> 'A3F9C...')."""
    match = _OUR_WORKER.match(account_id)
    return f"A{match.group(1).upper()}" if match else account_id


def worker_account(value: str) -> str | None:
    """The worker account a WorkerId names; None when it is not one of ours."""
    match = _WORKER.match(value) if isinstance(value, str) else None
    return f"wrk_{match.group(1).lower()}" if match else None


def hit_type_id(client_id: str, properties: dict[str, Any]) -> str:
    """The HITTypeId of a client's HIT type: a digest of its defining properties (so
    registering the same properties again gives the same id), upper-case letters and digits."""
    canonical = json.dumps({"client": client_id, **properties}, sort_keys=True,
                           separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.b32encode(digest).decode("ascii")[:HIT_TYPE_DIGITS]


def hit_group_id(type_id: str) -> str:
    """The HITGroupId every HIT of a type shares."""
    return "G" + type_id[1:]


"""Identifier formats: one place builds and parses them."""
from __future__ import annotations

import hashlib
import re
import secrets

from chalicelib.errors import NotFound

_ASSIGNMENT = re.compile(r"^asg_([0-9a-f]{16})_(\d{6})_([0-9a-f]{8})_(\d{1,15})_v(\d{1,4})$")
_JOB = re.compile(r"^job_[0-9a-f]{16}$")


def new_id(prefix: str) -> str:
    """A random id such as 'job_3f9c...' (16 hex digits)."""
    return f"{prefix}_{secrets.token_hex(8)}"


def new_secret(prefix: str) -> str:
    """A bearer secret such as an API key; only its hash is stored."""
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def hash_secret(secret: str) -> str:
    """The stored form of a bearer secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def item_id(index: int) -> str:
    """The platform's id of the index-th item of a job."""
    return f"{index:06d}"


def is_job_id(value: str) -> bool:
    """True when value has the form of a job id."""
    return bool(_JOB.match(value or ""))


def new_assignment_id(job_id: str, item: str, leased_at: float, instruction_version: int = 1) -> str:
    """An assignment id naming its job, item, lease time and the version of the instructions
    the worker was shown, so submit needs no lookup.

    The id is checked against the stored lease on submit, so a forged one gets nowhere.
    """
    return (f"asg_{job_id[4:]}_{item}_{secrets.token_hex(4)}_{int(leased_at * 1000)}"
            f"_v{instruction_version}")


def parse_assignment_id(assignment_id: str) -> tuple[str, str, float, int]:
    """(job_id, item_id, leased_at, instruction_version) of an assignment id; NotFound when
    it is not one of ours."""
    match = _ASSIGNMENT.match(assignment_id or "")
    if not match:
        raise NotFound("no such assignment", code="assignment_not_found")
    return f"job_{match.group(1)}", match.group(2), int(match.group(4)) / 1000, int(match.group(5))

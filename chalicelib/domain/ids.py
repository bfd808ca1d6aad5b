"""Identifier formats: one place builds and parses them."""
from __future__ import annotations

import hashlib
import random
import re
import secrets

from chalicelib.errors import NotFound

_ASSIGNMENT = re.compile(r"^asg_([0-9a-f]{16})_(\d{6,12})_([0-9a-f]{8})_(\d{1,15})_v(\d{1,6})$")
_JOB = re.compile(r"^job_[0-9a-f]{16}$")
_UPLOAD = re.compile(r"^up_[0-9a-f]{16}$")


def new_id(prefix: str) -> str:
    """A random id such as 'job_3f9c...' (16 hex digits)."""
    return f"{prefix}_{secrets.token_hex(8)}"


def new_secret(prefix: str) -> str:
    """A bearer secret such as an API key; only its hash is stored."""
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def hash_secret(secret: str) -> str:
    """The stored form of a bearer secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


ITEM_ID_DIGITS = 6


def item_id(index: int, items: int = 0) -> str:
    """The platform's id of the index-th item of a job of `items` items: its number with
    leading zeros, six digits or as many as the job's last number needs, so the ids of one job
    all have one width and sort in item order however many items it holds."""
    return f"{index:0{item_id_width(items)}d}"


def random_item_id(rng: random.Random, id_space: int) -> str:
    """An item id drawn at random from a job's id space (Job.id_space), in the job's width:
    where a refill, a progress sample or a refit starts, so each draws on the whole job."""
    return item_id(rng.randrange(max(id_space, 1)), id_space)


def item_id_width(items: int) -> int:
    """How many digits a job of `items` items numbers its items with (6 up to a million)."""
    return max(ITEM_ID_DIGITS, len(str(max(items - 1, 0))))


def is_job_id(value: str) -> bool:
    """True when value has the form of a job id."""
    return bool(_JOB.match(value or ""))


def is_upload_id(value: str) -> bool:
    """True when value has the form of an upload id (so it is safe in an S3 key)."""
    return bool(_UPLOAD.match(value or ""))


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

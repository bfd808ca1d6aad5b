"""A client's one-label-question job posted straight through the stores, its items written
and the job active: what the adapter tests that look at records need before they start."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from chalicelib.domain.jobs import build_job, parse_items
from chalicelib.domain.model import ACTIVE, CLIENT, INGESTING, Job
from chalicelib.handlers import accounts, jobs


def active_job(p: Any, client_name: str, items: list[dict[str, Any]],
               gold: dict[str, Any] | None = None, slots: int | None = None,
               **changes: Any) -> Job:
    """The job of a new client, redundancy 1, with these items (each gold, with slots, when
    gold is given), active; changes are set with the move to active."""
    client, _ = accounts.create_account(p, CLIENT, client_name)
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": len(items),
                                          "redundancy": 1})
    job, _ = build_job(quote, client.account_id, {
        "instructions": "Pick one.", "answer_schema": {"labels": ["yes", "no"]},
        "items": items}, p.now())
    p.jobs.create_job(job)
    new = parse_items(items, len(items))
    if gold is not None:
        new = [replace(item, gold=gold, slots=slots) for item in new]
    p.items.put_items(job.job_id, 1, new)
    assert p.jobs.transition(job.job_id, (INGESTING,), ACTIVE, **changes)
    return job

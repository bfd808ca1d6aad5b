"""Adaptive redundancy: one more answer for an item whose calibrated confidence is still below
the job's target, and the online model that judges it, refitted (and recalibrated on the job's
gold) as answers come in.

numpy (through chalicelib.domain.adaptive and the aggregation engine) is loaded here only when
an adaptive job's answer is counted: the API routes never import this module.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from chalicelib.domain.adaptive import OnlineModel, fit_online, refit_every
from chalicelib.domain.aggregation import vote
from chalicelib.domain.cache import MISSING
from chalicelib.domain.ids import random_item_id
from chalicelib.domain.keys import online_model_key
from chalicelib.domain.model import CountedAnswer, ItemState, Job
from chalicelib.domain.redundancy import AdaptiveRedundancy, wants_more
from chalicelib.errors import NotFound
from chalicelib.handlers.platform import Platform
from chalicelib.handlers.quality import is_left_out, left_out_workers

# Items a refit reads at most: a job of at most this many items is refitted on every answer,
# a larger one on this many consecutive items from a random item on (wrapping), and at most
# REFIT_GOLD of its gold items; pages of REFIT_PAGE items, one Query each.
REFIT_ITEMS = 5000
REFIT_PAGE = 200
REFIT_GOLD = 200


def _online_model(p: Platform, job: Job) -> Any:
    """The job's last online model, or None before its first refit (cached per container
    until the next refit is due)."""
    model = p.cache.models.get(job.job_id, p.now(), p.cache_seconds)
    if model is not MISSING:
        return model
    try:
        model = OnlineModel.from_dict(json.loads(p.blobs.get_text(online_model_key(job.job_id))))
    except NotFound:
        model = None
    return p.cache.models.put(job.job_id, model, p.now())


def adapt(p: Platform, job: Job, answer: CountedAnswer, ordinal: int | None) -> CountedAnswer:
    """For an answer that filled its item's last slot: if the item's confidence is still below
    the job's target (and it has fewer than max answers), open one more slot, paid from the
    pool in the same write (a crash cannot take the money without the slot), before the
    answer is counted, so the item is not counted complete. Idempotent: a
    redelivered answer finds the slot already added and is counted as not completing."""
    item = p.items.get_item(job.job_id, answer.item_id)
    if item is None or ordinal is None or item.gold is not None:
        return answer
    if ordinal + 1 < item.redundancy:  # a slot was added for this answer before
        return replace(answer, item_complete=False)
    policy = AdaptiveRedundancy(**job.adaptive)
    left_out = left_out_workers(p, job, item.answers)
    votes = [(worker, vote(a.answer)) for worker, a in item.answers.items()
             if not is_left_out(a, worker, left_out)]
    model = _online_model(p, job)
    confidence = model.confidence(votes) if model is not None else None
    if not wants_more(policy, item.answer_count, confidence):
        return answer
    extended = p.items.extend(job.job_id, item.item_id, item.redundancy, job.reward_cents)
    if extended is None:
        return answer  # the budget has no more: the item is done
    if extended:
        return replace(answer, item_complete=False)
    now = p.items.get_item(job.job_id, item.item_id)
    return replace(answer, item_complete=False) if now and ordinal + 1 < now.redundancy else answer


def refit_online_model(p: Platform, job_id: str, new: int) -> None:
    """Refit the job's online model when the answers just counted cross a multiple of
    refit_every(the job's most answers); the fit is the aggregation's default model on the
    answers of the items refit_sample reads (every answer of a job of at most REFIT_ITEMS
    items; left-out answers excluded, gold clamped), so one consumer call reads a bounded
    number of items whatever the job's size. Workers outside the sample get the fit's mean
    confusion matrix when an item's confidence is judged. The same refit fits the model's
    calibration map on the sample's answered gold items (adaptive.fit_online), so the
    calibrated confidence costs no read beyond the refit's."""
    job = p.jobs.get_job(job_id)
    if job is None:
        return
    every = refit_every((job.item_count - job.gold_items) * int(job.adaptive["max"]))
    mark = job.answered // every
    if mark == 0 or not p.jobs.claim_refit(job_id, mark):
        return
    items: list[str] = []
    workers: list[str] = []
    labels: list[str] = []
    gold: dict[str, str] = {}
    everything = refit_sample(p, job)
    left_out = left_out_workers(p, job, {w for item in everything for w in item.answers})
    for item in everything:
        if item.gold is not None:
            gold[item.item_id] = item.gold["label"]
        for worker, answer in item.answers.items():
            if not is_left_out(answer, worker, left_out):
                items.append(item.item_id)
                workers.append(worker)
                labels.append(vote(answer.answer))
    if not items:
        return
    model = fit_online(items, workers, labels, gold, job.answer_schema["labels"])
    p.blobs.put_text(online_model_key(job_id), json.dumps(model.to_dict()), "application/json")
    p.cache.models.forget(job_id)


def refit_sample(p: Platform, job: Job) -> list[ItemState]:
    """The items a refit reads: every item of a job of at most REFIT_ITEMS items; of a larger
    one, REFIT_ITEMS consecutive items from a random item on (wrapping to the first), and its
    first REFIT_GOLD gold items from its gold listing (a gold answer clamps its worker's
    matrix), each item once."""
    if job.item_count <= REFIT_ITEMS:
        return _pages(p, job.job_id, None, None, REFIT_ITEMS)
    start = random_item_id(p.rng, job.id_space)
    items = _pages(p, job.job_id, start, None, REFIT_ITEMS)
    if len(items) < REFIT_ITEMS:
        items += _pages(p, job.job_id, None, start, REFIT_ITEMS - len(items))
    known = {item.item_id for item in items}
    gold, _ = p.items.gold_items(job.job_id, None, REFIT_GOLD)
    return items + [item for item in gold if item.item_id not in known]


def _pages(p: Platform, job_id: str, after: str | None, until: str | None, limit: int
           ) -> list[ItemState]:
    """At most limit items after `after` (from the first if None), up to and including
    `until` (to the last if None), REFIT_PAGE a query."""
    items: list[ItemState] = []
    while len(items) < limit:
        page, after = p.items.item_page(job_id, after, min(REFIT_PAGE, limit - len(items)))
        items += [item for item in page if until is None or item.item_id <= until]
        if after is None or (until is not None and after >= until):
            break
    return items

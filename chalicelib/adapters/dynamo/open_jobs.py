"""The open-jobs index: one small record per active job in the catalog table, under
`open#<key>` (a skill the job requires, or one of the shards of jobs requiring none), sorted by
the job's creation time. Workers' job lists and leases read it instead of every job's record;
DynamoJobs.transition writes it in the same transaction as the job's state."""
from __future__ import annotations

from dataclasses import asdict

from chalicelib.adapters.models import CatalogModel
from chalicelib.domain.model import Offer

PREFIX = "open#"


def _name(offer: Offer) -> str:
    # Fixed-width seconds first, so the index sorts oldest first.
    return f"{offer.created_at:020.6f}#{offer.job_id}"


def open_job_record(offer: Offer) -> CatalogModel:
    """The index record of an active job."""
    body = asdict(offer)
    body["required_skills"] = list(offer.required_skills)
    return CatalogModel(PREFIX + offer.key, _name(offer), body=body, created_at=offer.created_at)


def open_job_key(offer: Offer) -> CatalogModel:
    """The index record's key alone (to delete it)."""
    return CatalogModel(PREFIX + offer.key, _name(offer))


def _offer_from(body: dict) -> Offer:
    return Offer(**{**body, "required_skills": tuple(body.get("required_skills") or ()),
                    "min_skill_scores": dict(body.get("min_skill_scores") or {})})


def open_jobs(key: str) -> list[Offer]:
    """The active jobs listed under key, oldest first (eventually consistent: a job that just
    opened or closed may take a moment to show)."""
    return [_offer_from(record.body) for record in CatalogModel.query(PREFIX + key)]

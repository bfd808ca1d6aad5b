"""Cohorts and qualification tests, stored whole as JSON in the catalog table."""
from __future__ import annotations

import time
from typing import Any

from chalicelib.adapters.models import CatalogModel
from chalicelib.domain.qualifications import Cohort, Qualification


class DynamoCatalog:
    """Cohorts and qualification tests, stored whole as JSON."""

    def put_cohort(self, cohort: Any) -> None:
        """Create or replace a cohort."""
        CatalogModel("cohort", cohort.name, body={"skills": list(cohort.skills),
                                                  "unit_cents": cohort.unit_cents},
                     created_at=time.time()).save()

    def get_cohort(self, name: str) -> Any | None:
        """A cohort by name."""
        try:
            r = CatalogModel.get("cohort", name)
        except CatalogModel.DoesNotExist:
            return None
        return Cohort(r.name, tuple(r.body["skills"]), dict(r.body["unit_cents"]))

    def cohorts(self) -> list[Any]:
        """Every cohort, by name."""
        return [self.get_cohort(r.name) for r in CatalogModel.query("cohort")]

    def put_qualification(self, qualification: Any) -> None:
        """Store a new test (its id is fresh, so nothing is overwritten)."""
        body = {k: v for k, v in vars(qualification).items() if k != "qual_id"}
        body["items"] = list(body["items"])
        CatalogModel("qualification", qualification.qual_id, body=body,
                     created_at=time.time()).save(CatalogModel.name.does_not_exist())

    def get_qualification(self, qual_id: str) -> Any | None:
        """A test by id."""
        try:
            r = CatalogModel.get("qualification", qual_id)
        except CatalogModel.DoesNotExist:
            return None
        return Qualification(qual_id=r.name, **{**r.body, "items": tuple(r.body["items"])})

    def qualifications(self) -> list[Any]:
        """Every test, by id."""
        return [Qualification(qual_id=r.name, **{**r.body, "items": tuple(r.body["items"])})
                for r in CatalogModel.query("qualification")]

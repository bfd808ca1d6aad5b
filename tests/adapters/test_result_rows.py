"""A result row is stored compressed: a categorical item's line with three answers and their
lineage takes one write unit, not two, and reads back as it was written; rows written before
(the line in body) still read."""
from __future__ import annotations

import time
from typing import Any

import pytest

from bench.billing import item_size
from chalicelib import deps
from chalicelib.adapters.models import ResultModel
from chalicelib.domain.aggregation import Posterior, aggregate_item
from chalicelib.domain.ids import new_assignment_id, new_id
from chalicelib.workflows.aggregation import result_line


LABELS = ["positive", "negative", "neutral"]


@pytest.fixture
def p(module_stack: Any) -> Any:
    return deps.platform()


def _line(job_id: str, item_id: str) -> dict[str, Any]:
    """The line aggregation makes for an item of a three-label job answered three times, with
    the fitted model's probabilities."""
    now = time.time()
    answers = [{"worker_id": new_id("acct"), "answer": {"label": label},
                "assignment_id": new_assignment_id(job_id, item_id, now + n, 1),
                "leased_at": now + n, "submitted_at": now + n + 12.5, "instruction_version": 1}
               for n, label in enumerate(("positive", "positive", "neutral"))]
    return result_line(aggregate_item(item_id, "categorical",
                                      {"labels": LABELS}, answers,
                                      f"review-{item_id}",
                                      Posterior("dawid_skene", LABELS, [0.91234, 0.01766, 0.07])))


def test_a_result_row_is_one_write_unit_and_reads_back_as_written(p):
    # GIVEN a line over 1 KB as JSON (two write units stored as it is)
    job_id = new_id("job")
    lines = [_line(job_id, f"{n:06d}") for n in range(3)]
    assert all(len(ResultModel(job_id, line["item_id"], body=line).serialize()["body"]["S"])
               > 1024 for line in lines)
    # WHEN the rows are written
    p.results.put_results(job_id, lines)
    # THEN each row as stored is under 1 KB, as DynamoDB sizes it
    for line in lines:
        raw = ResultModel._get_connection().get_item(job_id, line["item_id"],
                                                     consistent_read=True)["Item"]
        assert item_size(raw) <= 1024
    # AND a page reads the lines back as they were made
    assert p.results.page(job_id, 10, None).entries == lines


def test_a_row_written_before_rows_were_compressed_still_reads(p):
    # GIVEN a row holding its line in body
    job_id = new_id("job")
    line = _line(job_id, "000001")
    ResultModel(job_id, line["item_id"], body=line).save()
    # WHEN the job's results are read THEN the line is there as it was
    assert p.results.page(job_id, 10, None).entries == [line]

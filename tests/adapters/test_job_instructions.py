"""A job's instructions are a record of their own in the jobs table (`<job_id>#instructions`):
written with the job and with each revision, read with the job in one BatchGetItem, never
listed as a job; a job stored before that record existed keeps its instructions on the job
record and reads them from there until they are revised."""
from __future__ import annotations

from typing import Any

import botocore.client
import pytest

from chalicelib import deps
from chalicelib.adapters.dynamo import DynamoJobs
from chalicelib.adapters.dynamo.jobs import HeldInstructions
from chalicelib.adapters.models import (
    JobInstructionsModel, JobModel, counts_key, instructions_key, money_key,
)
from chalicelib.domain.jobs import build_job
from chalicelib.domain.model import (
    ACTIVE, AGGREGATING, CANCELLED, CLIENT, CLOSING, DONE, FAILED, INGESTING, PAUSED, Job,
)
from chalicelib.handlers import accounts, jobs

STATES = (INGESTING, ACTIVE, PAUSED, CLOSING, CANCELLED, AGGREGATING, DONE, FAILED)


@pytest.fixture
def p(module_stack: Any) -> Any:
    return deps.platform()


def _job(p: Any, instructions: str = "Pick one.") -> Job:
    """A job stored as this release stores it, from a fresh client's quote."""
    client, _ = accounts.create_account(p, CLIENT, "Instructions client")
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 1,
                                          "redundancy": 1})
    job, _ = build_job(quote, client.account_id, {
        "instructions": instructions, "answer_schema": {"labels": ["yes", "no"]},
        "items": [{"data": {"text": "one"}}]}, p.now())
    p.jobs.create_job(job)
    return job


def _raw(key: str) -> dict[str, Any] | None:
    """A jobs-table item as DynamoDB holds it, strongly consistent (None: there is none)."""
    response = JobModel._get_connection().get_item(key, None, consistent_read=True)
    return response.get("Item")


def _calls(monkeypatch: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every DynamoDB call made from now on, with its parameters."""
    calls: list[tuple[str, dict[str, Any]]] = []
    original = botocore.client.BaseClient._make_api_call

    def record(self: Any, name: str, params: dict[str, Any]) -> Any:
        calls.append((name, params))
        return original(self, name, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    return calls


def _keys(calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, list[str]]]:
    """Each call's name with the jobs-table keys it asked for, sorted."""
    asked = []
    for name, params in calls:
        if name == "BatchGetItem":
            [request] = params["RequestItems"].values()
            keys = [key["job_id"]["S"] for key in request["Keys"]]
        else:
            keys = [params["Key"]["job_id"]["S"]] if "Key" in params else []
        asked.append((name, sorted(keys)))
    return asked


def test_the_instructions_are_written_beside_the_job_and_read_with_it(p, monkeypatch):
    # WHEN a job is created THEN its instructions are a record of their own, not on the job
    job = _job(p, "Read the whole review first.")
    record = _raw(job.job_id)
    assert record is not None and "instructions" not in record
    assert _raw(instructions_key(job.job_id)) == {
        "job_id": {"S": instructions_key(job.job_id)},
        "instructions": {"S": "Read the whole review first."}, "version": {"N": "1"}}
    here, elsewhere = DynamoJobs(), DynamoJobs()  # two containers
    key, counts, instructions = job.job_id, counts_key(job.job_id), instructions_key(job.job_id)
    money = money_key(job.job_id)
    # AND a container reading the job asks for its four records in one BatchGetItem
    calls = _calls(monkeypatch)
    read = here.get_job(job.job_id)
    assert (read.instructions, read.instruction_version) == ("Read the whole review first.", 1)
    assert _keys(calls) == [("BatchGetItem", sorted([key, counts, instructions, money]))]
    # AND reading it again asks only for the job, counters and money records: it holds the
    # text
    calls.clear()
    again = here.get_job(job.job_id, consistent=False)
    assert (again.instructions, again.instruction_version) == ("Read the whole review first.", 1)
    assert _keys(calls) == [("BatchGetItem", sorted([key, counts, money]))]
    # AND a listing takes the job from its index, and reads only the three records beside it
    calls.clear()
    page, _ = elsewhere.jobs_of_client(job.client_id, 10, None)
    assert [(j.job_id, j.instructions) for j in page] == [
        (job.job_id, "Read the whole review first.")]
    assert [entry for entry in _keys(calls) if entry[0] == "BatchGetItem"] == [
        ("BatchGetItem", sorted([counts, instructions, money]))]
    # WHEN another container revises them THEN this one reads the new version at once
    assert elsewhere.transition(job.job_id, (INGESTING,), PAUSED, instructions="Pick two.",
                                instruction_version=2)
    calls.clear()
    revised = here.get_job(job.job_id)
    assert (revised.instructions, revised.instruction_version) == ("Pick two.", 2)
    assert _keys(calls) == [("BatchGetItem", sorted([key, counts, money])),
                            ("GetItem", [instructions])]
    calls.clear()
    assert here.get_job(job.job_id).instructions == "Pick two."
    assert _keys(calls) == [("BatchGetItem", sorted([key, counts, money]))]


def test_no_listing_takes_the_counters_money_or_instructions_records_for_jobs(p):
    # GIVEN jobs with their counters, money and instructions records, in several states
    made = [_job(p) for _ in range(3)]
    assert p.jobs.transition(made[1].job_id, (INGESTING,), ACTIVE)
    assert p.jobs.transition(made[2].job_id, (INGESTING,), PAUSED)
    assert p.jobs.transition(made[2].job_id, (PAUSED,), PAUSED, instructions="Pick two.",
                             instruction_version=2)
    # THEN the three records carry none of the indexes' keys
    for job in made:
        for key in (counts_key(job.job_id), instructions_key(job.job_id), money_key(job.job_id)):
            assert not {"state", "client_id", "review_queue", "events_queue"} & set(_raw(key))
    # AND every listing by state or by client holds jobs only, each once
    listed = [j.job_id for state in STATES for j in p.jobs.jobs_in_state(state)]
    for job in made:
        page, _ = p.jobs.jobs_of_client(job.client_id, 10, None)
        assert [j.job_id for j in page] == [job.job_id]
        listed += [j.job_id for j in page]
    assert not [job_id for job_id in listed if "#" in job_id]
    assert {job.job_id for job in made} <= set(listed)


def test_a_job_stored_with_its_instructions_on_its_record_still_reads_them(p):
    # GIVEN a job as the release before stored it: its instructions and their version on the
    # job record, no instructions record
    job = _job(p)
    JobModel(job.job_id).update(actions=[JobModel.instructions.set("Old text."),
                                         JobModel.instruction_version.set(3)])
    JobInstructionsModel(instructions_key(job.job_id)).delete()
    assert _raw(instructions_key(job.job_id)) is None
    # THEN every read of it shows them, from the job record and from the indexes' copies
    assert p.jobs.transition(job.job_id, (INGESTING,), PAUSED)
    page, _ = p.jobs.jobs_of_client(job.client_id, 10, None)
    reads = [p.jobs.get_job(job.job_id), p.jobs.get_job(job.job_id, consistent=False), *page,
             *[j for j in p.jobs.jobs_in_state(PAUSED) if j.job_id == job.job_id]]
    assert [(j.instructions, j.instruction_version) for j in reads] == [("Old text.", 3)] * 4
    # WHEN they are revised THEN the new version is a record of its own and the old text
    # leaves the job record
    assert p.jobs.transition(job.job_id, (PAUSED,), ACTIVE, instructions="New text.",
                             instruction_version=4)
    revised = p.jobs.get_job(job.job_id)
    assert (revised.instructions, revised.instruction_version) == ("New text.", 4)
    assert "instructions" not in _raw(job.job_id)
    assert _raw(job.job_id)["instruction_version"] == {"N": "4"}
    assert _raw(instructions_key(job.job_id))["version"] == {"N": "4"}


def test_a_refused_revision_writes_neither_record(p):
    # GIVEN an active job at version 1
    job = _job(p)
    assert p.jobs.transition(job.job_id, (INGESTING,), ACTIVE)
    # WHEN a revision is refused by the job's round THEN the instructions record is as it was
    assert not p.jobs.transition(job.job_id, (ACTIVE,), ACTIVE, expect_round=9,
                                 instructions="Pick two.", instruction_version=2)
    assert _raw(instructions_key(job.job_id))["version"] == {"N": "1"}
    assert _raw(job.job_id)["instruction_version"] == {"N": "1"}


def test_abandoning_a_job_deletes_its_four_records(p):
    job = _job(p)
    p.jobs.abandon_job(job.job_id, job.quote_id)
    assert [_raw(key) for key in (job.job_id, counts_key(job.job_id), instructions_key(job.job_id),
                                  money_key(job.job_id))] == [None, None, None, None]


def test_a_container_holds_the_instructions_it_read_last_up_to_its_size():
    held = HeldInstructions(size=2)
    records = {job_id: JobInstructionsModel(instructions_key(job_id), instructions=job_id,
                                            version=1) for job_id in ("a", "b", "c")}
    held.put("a", records["a"])
    held.put("b", records["b"])
    held.put("a", records["a"])  # read again: now the most recent
    held.put("c", records["c"])
    assert [held.get(job_id) for job_id in ("a", "b", "c")] == [records["a"], None, records["c"]]

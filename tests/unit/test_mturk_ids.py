"""MTurk's id formats for our ids: each mapping goes both ways and refuses what is not ours."""
from __future__ import annotations

import re

from chalicelib.domain import mturk_ids
from chalicelib.domain.ids import new_assignment_id

ENTITY = re.compile(r"^[A-Z0-9]+$")


def test_a_hit_id_names_its_job() -> None:
    hit = mturk_ids.hit_id("job_0123456789abcdef")
    assert hit == "0123456789ABCDEF" and ENTITY.match(hit)
    assert mturk_ids.job_of_hit(hit) == "job_0123456789abcdef"
    assert mturk_ids.job_of_hit("0123456789abcdeF") is None
    assert mturk_ids.job_of_hit("3PR3LXCWSFNV4OJWZBHIMQOIJVSX9G") is None


def test_an_assignment_id_round_trips_within_fifty_characters() -> None:
    ours = new_assignment_id("job_0123456789abcdef", "000042", 1_795_850_000.123, 3)
    theirs = mturk_ids.assignment_id(ours)
    assert ENTITY.match(theirs) and len(theirs) <= 50
    assert mturk_ids.our_assignment(theirs) == ours
    assert mturk_ids.our_assignment(theirs.lower()) is None
    assert mturk_ids.our_assignment("ASSIGNMENT_ID_NOT_AVAILABLE") is None


def test_a_worker_id_starts_with_a_and_round_trips() -> None:
    worker = mturk_ids.worker_id("wrk_00ff00ff00ff00ff")
    assert worker == "A00FF00FF00FF00FF"
    assert re.match(r"^A[A-Z0-9]+$", worker)
    assert mturk_ids.worker_account(worker) == "wrk_00ff00ff00ff00ff"
    assert mturk_ids.worker_account("AZZZ") is None


def test_a_hit_type_is_the_same_for_the_same_properties_of_the_same_client() -> None:
    props = {"Title": "t", "Reward": "0.05", "AssignmentDurationInSeconds": 600}
    first = mturk_ids.hit_type_id("cli_1", props)
    assert first == mturk_ids.hit_type_id("cli_1", dict(reversed(list(props.items()))))
    assert first != mturk_ids.hit_type_id("cli_2", props)
    assert first != mturk_ids.hit_type_id("cli_1", {**props, "Reward": "0.06"})
    assert ENTITY.match(first) and len(first) == 30
    group = mturk_ids.hit_group_id(first)
    assert ENTITY.match(group) and group != first

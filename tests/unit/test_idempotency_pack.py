"""A keyed request's stored response: a large body is kept compressed to fit in its record."""
from __future__ import annotations

import base64
import json
import random

from chalicelib.adapters.idempotency import PACK_ABOVE, pack, unpack

RECORD_LIMIT = 400 * 1024  # bytes in a DynamoDB item


def test_a_small_response_is_stored_as_it_is():
    result = {"status": 201, "body": {"job_id": "job_1", "note": "caf\u00e9"}}
    assert pack(result) == result and unpack(result) == result


def test_a_suite_of_twenty_long_tasks_fits_in_the_record_and_comes_back_whole():
    # GIVEN a suite submit's response with 20 tasks, each with 20,000 characters of
    # instructions no ASCII escape keeps short, and 8 KB of item data that does not compress
    rng = random.Random(7)
    instructions = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(20_000))
    tasks = [{"assignment_id": f"asg_{n}", "instructions": instructions,
              "item": {"item_id": f"{n:06d}",
                       "data": {"text": base64.b64encode(rng.randbytes(6000)).decode()}}}
             for n in range(20)]
    result = {"status": 200, "body": {"results": [], "next": {"tasks": tasks, "suite_size": 20}}}
    assert len(json.dumps(result, sort_keys=True)) > 6 * RECORD_LIMIT
    # WHEN it is packed THEN the record's JSON fits, and unpacking gives the response back
    stored = pack(result)
    assert len(json.dumps(stored, sort_keys=True)) < RECORD_LIMIT * 0.7
    assert unpack(json.loads(json.dumps(stored))) == result
    # a response just over the threshold is packed too, a replay's mark kept
    near = {"status": 200, "body": {"text": "x" * PACK_ABOVE}}
    assert "packed" in pack(near)
    assert unpack({**pack(near), "replayed": True}) == {**near, "replayed": True}

"""Gold, worker quality and blocks over HTTP and DynamoDB (moto), racing workers included."""
import pytest

from chalicelib import deps
from chalicelib.domain.model import OPERATOR
from chalicelib.handlers.accounts import create_account
from tests.functional.marketplace import Api, race

GOLD = {n: {"label": "pos"} for n in range(20, 25)}


def test_twenty_racing_workers_never_overdraw_the_gold_pool_or_the_budget(stack):
    # GIVEN 20 regular items x 2 answers and 5 gold items, quoted as 25 x 2 answers without
    # a gold overhead: the gold items' 10 answers are their slots, while the job asks for
    # gold on half of the tasks
    api = Api(stack)
    job = api.job(items=25, redundancy=2, gold=GOLD, quote={"gold_rate": 0}, pilot={"items": 0},
                  quality={"gold_rate": 0.5, "block_after": 0})
    assert job["pool_cents"] == 0 and job["money"]["reserved_cents"] == 50 * job["reward_cents"]
    tokens = [api.worker(f"w{n}") for n in range(20)]
    # WHEN they all lease and answer at once, each on a container of its own
    accepted = [item for item, _, _ in race(tokens, job["job_id"], {"label": "pos"})]
    # THEN every regular item has exactly 2 answers and gold took at most what was paid for
    gold = [item for item in accepted if int(item) >= 20]
    regular = [item for item in accepted if int(item) < 20]
    assert sorted(set(regular)) == [f"{n:06d}" for n in range(20)] and len(regular) == 40
    assert 1 <= len(gold) <= 10
    final = stack.wait_for_state(job["job_id"], api.key, ("done", "failed"))
    assert final["state"] == "done" and final["pool_cents"] >= 0
    assert final["pool_cents"] == (10 - len(gold)) * job["reward_cents"]
    assert final["spent_cents"] == len(accepted) * job["reward_cents"] <= final["budget_cents"]


def test_quality_views_and_blocks_over_http(stack):
    api = Api(stack)
    job = api.job(items=6, redundancy=2, gold={0: {"label": "pos"}, 1: {"label": "neg"}},
                  quality={"gold_rate": 0.5, "block_after": 0})
    token = api.worker("w")
    status, task = api.lease(token, job["job_id"])
    assert status == 200
    assert api.submit(token, task["assignment_id"], {"label": "pos"})[0] == 200
    status, me = api.as_worker(token, "GET", "/workers/me")
    assert status == 200 and me["quality"]["gold_answers"] == 0  # nothing published yet
    assert me["quality"]["blocked_everywhere"] is False
    # once their answer is counted, the client blocks the worker from the job, with a reason
    stack.drain()
    worker_id = me["worker_id"]
    path = f"/jobs/{job['job_id']}/workers/{worker_id}/block"
    status, error = api.as_client("POST", path, {})
    assert status == 400 and error["field"] == "reason"
    status, line = api.as_client("POST", path, {"reason": "copies the example"})
    assert status == 200 and line["blocked"] is True
    status, error = api.lease(token, job["job_id"])
    assert status == 403 and error["error"] == "blocked_from_job"
    status, workers = api.as_client("GET", f"/jobs/{job['job_id']}/workers")
    assert status == 200 and [w["worker_id"] for w in workers["workers"] if w["blocked"]] == [worker_id]
    assert workers["next_cursor"] is None
    paged, cursor = [], ""
    while cursor is not None:
        status, page = api.as_client(
            "GET", f"/jobs/{job['job_id']}/workers?limit=1" + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200 and len(page["workers"]) <= 1
        paged, cursor = paged + page["workers"], page["next_cursor"]
    assert paged == workers["workers"]
    status, error = api.as_client("GET", f"/jobs/{job['job_id']}/workers?limit=0")
    assert status == 400 and error["field"] == "limit"
    status, me = api.as_worker(token, "GET", "/workers/me")
    assert me["quality"]["jobs"][0]["blocked"] is True
    # an operator blocks another worker everywhere; a client key cannot
    other = api.worker("other")
    _, other_me = api.as_worker(other, "GET", "/workers/me")
    path = f"/operator/workers/{other_me['worker_id']}/block"
    status, error = api.as_client("POST", path, {"reason": "fraud"})
    assert status == 403 and error["error"] == "wrong_role"
    _, operator_key = create_account(deps.platform(), OPERATOR, "Ops")
    status, body = api.as_client("POST", path, {"reason": "fraud"}, key=operator_key)
    assert status == 200 and body["blocked_everywhere"] is True
    status, error = api.lease(other)
    assert status == 403 and error["error"] == "worker_blocked"
    status, body = api.as_client("POST", path.replace("/block", "/unblock"), key=operator_key)
    assert status == 200 and body["blocked_everywhere"] is False
    assert api.lease(other)[0] in (200, 204)


def test_twenty_racing_workers_on_an_adaptive_job_never_overdraw_its_pool(stack):
    # GIVEN 20 items taking 2 to 4 answers, quoted for 4, and a pool left with 5 extra answers
    api = Api(stack)
    job = api.job(items=20, quote={"redundancy": {"min": 2, "max": 4, "target_confidence": 0.9},
                                   "gold_rate": 0}, pilot={"items": 0})
    assert job["redundancy"] == {"min": 2, "max": 4, "target_confidence": 0.9}
    assert job["pool_cents"] == 20 * 2 * job["reward_cents"]
    assert deps.platform().jobs.reserve(job["job_id"], job["pool_cents"] - 5 * job["reward_cents"])
    # WHEN 20 workers lease and answer at once, while counting opens extra slots (before any
    # refit every item wants up to max), until the job closes
    accepted = []
    for wave in range(4):
        tokens = [api.worker(f"w{wave}-{n}") for n in range(20)]
        accepted += race(tokens, job["job_id"], {"label": "pos"})
        stack.drain()
    # THEN exactly 5 items got one extra answer, the pool is empty, never below zero
    per_item = {}
    for item, _, _ in accepted:
        per_item[item] = per_item.get(item, 0) + 1
    assert sorted(per_item.values()) == [2] * 15 + [3] * 5
    final = stack.wait_for_state(job["job_id"], api.key, ("done", "failed"))
    assert final["state"] == "done" and final["pool_cents"] == 0
    assert final["spent_cents"] == 45 * job["reward_cents"] <= final["budget_cents"]


def _answer_regular_and_one_gold(api, job, token, gold_ids, answer):
    """The worker answers every regular item and the first gold item it is served, and
    skips (releases) the other gold items; returns the gold items it answered."""
    answered = []
    while True:
        status, task = api.lease(token, job["job_id"])
        if status == 204:
            return answered
        assert status == 200, task
        item_id = task["item"]["item_id"]
        if item_id in gold_ids and answered:
            status, _ = api.as_worker(token, "POST", f"/assignments/{task['assignment_id']}/release")
            assert status == 200
            continue
        answered += [item_id] if item_id in gold_ids else []
        assert api.submit(token, task["assignment_id"], answer)[0] == 200


@pytest.mark.parametrize("task_type, schema, gold, answer", [
    ("categorical", None, {"label": "neg"}, {"label": "pos"}),
    ("numeric", {"min": 0, "max": 10}, {"value": 7}, {"value": 2}),
])
def test_gold_items_nobody_answered_report_their_known_answer_and_the_done_job_reads_complete(
        stack, task_type, schema, gold, answer):
    # GIVEN 5 regular items and 3 gold ones, gold served on half of the tasks
    api = Api(stack)
    job = api.job(items=8, redundancy=1, task_type=task_type, gold={n: gold for n in (5, 6, 7)},
                  quote={"gold_rate": 0}, pilot={"items": 0},
                  quality={"gold_rate": 0.5, "block_after": 0},
                  **({"answer_schema": schema} if schema else {}))
    gold_ids = {f"{n:06d}" for n in (5, 6, 7)}
    # WHEN one worker answers the regular items and at most one gold item, and the job ends
    answered = _answer_regular_and_one_gold(api, job, api.worker("w"), gold_ids, answer)
    final = stack.wait_for_state(job["job_id"], api.key, ("done", "failed"))
    assert final["state"] == "done"
    status, page = api.as_client("GET", f"/jobs/{job['job_id']}/results")
    assert status == 200 and page["next_cursor"] is None
    lines = {line["item_id"]: line for line in page["results"]}
    # THEN every gold item has its known answer as result, made by the gold method, sure of it,
    # the unanswered ones with no answers
    assert len(lines) == 8 and len(answered) <= 1
    for item_id in gold_ids:
        line = lines[item_id]
        assert (line["answer"], line["method"], line["confidence"], line["gold"]) == (
            gold, "gold", 1.0, gold)
        assert line.get("confidence_raw", 1.0) == 1.0
        assert line["n_answers"] == len(line["answers"]) == (item_id in answered)
    assert all(lines[f"{n:06d}"]["method"] != "gold" for n in range(5))
    if task_type == "categorical":
        assert lines["000005"]["probabilities"] == {"pos": 0.0, "neg": 1.0, "neutral": 0.0}
    # AND the finished job's progress counts every item done, gold included
    assert final["counts"]["done"] == final["counts"]["items"] == 8
    assert final["counts"]["gold"] == 3
    # AND the report counts the unanswered gold items as items, not as answered items
    status, report = api.as_client("GET", f"/jobs/{job['job_id']}/report")
    assert status == 200
    assert (report["items"], report["answered_items"]) == (8, 5 + len(answered))
    assert report["methods"]["gold"] == 3 and report["gold"]["items"] == 3

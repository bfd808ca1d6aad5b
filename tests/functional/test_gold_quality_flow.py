"""Gold, worker quality and blocks over HTTP and DynamoDB (moto), racing workers included."""
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

"""Leases are exclusive, answers count once, and spending stays within the budget."""
import time

from chalicelib import deps
from tests.functional.marketplace import Api, race


class Clock:
    """A settable clock for the platform."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _with_clock() -> Clock:
    clock = Clock()
    deps.platform().clock = clock
    return clock


def test_a_lease_is_exclusive_until_it_expires_and_then_frees_its_slot(stack):
    # GIVEN one item that takes one answer, leased by w1
    api = Api(stack)
    clock = _with_clock()
    job = api.job(items=1, redundancy=1, lease_seconds=60)
    w1, w2 = api.worker("w1"), api.worker("w2")
    status, first = api.lease(w1)
    assert status == 200
    # WHEN w2 asks while the lease is live THEN there is nothing for w2
    assert api.lease(w2)[0] == 204
    # WHEN the lease expires THEN w2 gets the slot and w1's late submit is refused, uncounted
    clock.now += 61
    status, second = api.lease(w2)
    assert status == 200 and second["item"]["item_id"] == first["item"]["item_id"]
    status, error = api.submit(w1, first["assignment_id"], {"label": "pos"})
    assert status == 409 and error["error"] in {"lease_expired", "assignment_not_active"}
    status, _ = api.submit(w2, second["assignment_id"], {"label": "neg"})
    assert status == 200
    final = stack.wait_for_state(job["job_id"], api.key, ("done",))
    assert final["counts"]["answered"] == 1
    status, page = api.as_client("GET", f"/jobs/{job['job_id']}/results")
    assert page["results"][0]["answer"] == {"label": "neg"}


def test_a_submit_after_expiry_is_409_and_not_counted(stack):
    api = Api(stack)
    clock = _with_clock()
    job = api.job(items=1, redundancy=2, lease_seconds=30)
    token = api.worker()
    _, task = api.lease(token)
    clock.now += 31
    status, error = api.submit(token, task["assignment_id"], {"label": "pos"})
    assert status == 409 and error["error"] == "lease_expired"
    stack.drain()
    _, state = api.as_client("GET", f"/jobs/{job['job_id']}")
    assert state["counts"]["answered"] == 0 and state["spent_cents"] == 0


def test_a_worker_never_gets_the_same_item_twice(stack):
    # GIVEN two items taking three answers each and one worker
    api = Api(stack)
    api.job(items=2, redundancy=3)
    token = api.worker()
    seen = []
    # WHEN the worker answers one and skips (releases) the other
    _, task = api.lease(token)
    api.submit(token, task["assignment_id"], {"label": "pos"})
    seen.append(task["item"]["item_id"])
    _, task = api.lease(token)
    assert task["item"]["item_id"] not in seen
    status, _ = api.as_worker(token, "POST", f"/assignments/{task['assignment_id']}/release")
    assert status == 200
    # THEN neither item is offered to them again
    assert api.lease(token)[0] == 204


def test_a_repeated_submit_returns_the_first_result_and_changes_nothing(stack):
    api = Api(stack)
    job = api.job(items=1, redundancy=2)
    token = api.worker()
    _, task = api.lease(token)
    status, first = api.submit(token, task["assignment_id"], {"label": "pos"})
    status2, again = api.submit(token, task["assignment_id"], {"label": "neg"})
    assert status == status2 == 200 and first == again
    stack.drain()
    _, state = api.as_client("GET", f"/jobs/{job['job_id']}")
    assert state["counts"]["answered"] == 1 and state["spent_cents"] == job["reward_cents"]


def test_released_slots_go_to_other_workers(stack):
    api = Api(stack)
    api.job(items=1, redundancy=1)
    w1, w2 = api.worker("w1"), api.worker("w2")
    _, task = api.lease(w1)
    assert api.lease(w2)[0] == 204
    api.as_worker(w1, "POST", f"/assignments/{task['assignment_id']}/release")
    status, task2 = api.lease(w2)
    assert status == 200 and task2["item"]["item_id"] == task["item"]["item_id"]
    status, error = api.as_worker(w1, "POST", f"/assignments/{task['assignment_id']}/submit",
                                  {"label": "pos"})
    assert status == 409 and error["error"] == "assignment_not_active"


def test_racing_workers_never_overfill_an_item_or_the_budget(stack):
    # GIVEN 6 items taking 2 answers each and 8 workers, each on its own container
    api = Api(stack)
    job = api.job(items=6, redundancy=2)
    tokens = [api.worker(f"w{n}") for n in range(8)]
    # WHEN they all lease and answer at once
    accepted = race(tokens, job["job_id"], {"label": "pos"})
    # THEN each item has exactly its redundancy, no worker answered an item twice,
    # and the job's spend equals the accepted answers' rewards, within budget
    per_item = {}
    for item_id, worker_id, _ in accepted:
        per_item.setdefault(item_id, []).append(worker_id)
    assert len(per_item) == 6
    assert all(len(ws) == 2 and len(set(ws)) == 2 for ws in per_item.values())
    final = stack.wait_for_state(job["job_id"], api.key, ("done",))
    assert final["counts"]["answered"] == 12
    assert final["spent_cents"] == 12 * job["reward_cents"] <= final["budget_cents"]

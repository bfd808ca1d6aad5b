"""One job from quote to results through the API, the queues and the state machine."""
from tests.functional.marketplace import Api


def test_a_job_goes_from_quote_to_published_results(stack):
    # GIVEN a client with an active 3-item job (redundancy 2) and two workers
    api = Api(stack)
    job = api.job(items=3, redundancy=2)
    workers = [api.worker(f"w{n}") for n in range(2)]
    # WHEN each worker leases and answers until nothing is left
    answered = 0
    for token in workers:
        while True:
            status, task = api.lease(token)
            if status == 204:
                break
            assert status == 200, task
            label = "pos" if task["item"]["data"]["text"] != "item 2" else "neg"
            status, receipt = api.submit(token, task["assignment_id"], {"label": label})
            assert status == 200, receipt
            answered += 1
    # THEN every slot was answered once, and aggregation publishes the majority answers
    assert answered == 6
    final = stack.wait_for_state(job["job_id"], api.key, ("done", "failed"))
    assert final["state"] == "done", final
    assert final["counts"]["answered"] == 6 and final["counts"]["done"] == 3
    assert final["spent_cents"] <= final["budget_cents"]
    status, page = api.as_client("GET", f"/jobs/{job['job_id']}/results")
    assert status == 200
    by_ext = {r["external_id"]: r for r in page["results"]}
    assert by_ext["ext-2"]["answer"] == {"label": "neg"}
    assert by_ext["ext-0"]["answer"] == {"label": "pos"}
    # the confidence is the posterior of the label under the round's Dawid-Skene model
    assert by_ext["ext-0"]["method"] == "DawidSkene" and by_ext["ext-0"]["n_answers"] == 2
    assert by_ext["ext-0"]["confidence"] == round(by_ext["ext-0"]["probabilities"]["pos"], 4) > 0.5
    assert len(by_ext["ext-0"]["answers"]) == 2
    status, link = api.as_client("GET", f"/jobs/{job['job_id']}/results/download")
    assert status == 200 and link["url"].startswith("http")

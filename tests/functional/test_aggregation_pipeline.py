"""The whole aggregation state machine with its real stages: load (looping), fit, Map, publish."""
import json

import boto3
import pytest

from chalicelib import deps
from chalicelib.domain.aggregation.categorical import default_model
from chalicelib.workflows import aggregation as stages
from tests.functional.marketplace import Api

LABELS = ["pos", "neg", "neutral"]


def _answer(api, job, plan):
    """Each worker answers every item it is offered with plan[worker](external n)."""
    for name, choose in plan.items():
        token = api.worker(name)
        while True:
            status, task = api.lease(token, job["job_id"])
            if status != 200 or not task:
                break
            n = int(task["item"]["data"]["text"].split()[1])
            assert api.submit(token, task["assignment_id"], choose(n))[0] == 200


def _states_entered(job_id):
    """Names of the states the job's first round entered, from the execution history."""
    sfn = boto3.client("stepfunctions")
    (machine,) = sfn.list_state_machines()["stateMachines"]
    (execution,) = [e for e in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])
                    ["executions"] if e["name"] == f"{job_id}-r1"]
    events = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def _results(stack, api, job):
    final = stack.wait_for_state(job["job_id"], api.key, ("done", "failed"))
    assert final["state"] == "done", final
    body = deps.platform().blobs.get_text(f"jobs/{job['job_id']}/results.jsonl")
    return [json.loads(line) for line in body.splitlines()]


@pytest.mark.parametrize("distributed", [False, True], ids=["inline-map", "distributed-map"])
def test_a_categorical_round_is_fitted_once_and_applied_per_shard(stack, monkeypatch, distributed):
    # GIVEN shards of 3 items, 2 shards per load call, and (for the distributed case) an
    # inline Map for at most 1 shard, so a 10-item job loads in 2 calls and 4 shards
    monkeypatch.setattr(stages, "SHARD_ITEMS", 3)
    monkeypatch.setattr(stages, "LOAD_SHARDS_PER_CALL", 2)
    monkeypatch.setattr(stages, "INLINE_MAX_SHARDS", 1 if distributed else 10)
    api = Api(stack)
    job = api.job(items=10, redundancy=3, not_applicable="allowed_with_reason")
    # AND three workers: a careful one, one who calls every neg "neutral", one who guesses,
    # and the last item marked not applicable by all of them
    truth = {n: LABELS[n % 3] for n in range(10)}

    def careful(n):
        return {"not_applicable": "empty"} if n == 9 else {"label": truth[n]}

    def confused(n):
        return careful(n) if truth[n] != "neg" or n == 9 else {"label": "neutral"}

    def guesser(n):
        return {"not_applicable": "blank"} if n == 9 else {"label": LABELS[(n * 7) % 3]}

    _answer(api, job, {"careful": careful, "confused": confused, "guesser": guesser})

    # WHEN the round is aggregated by the state machine
    lines = _results(stack, api, job)

    # THEN the machine looped LoadAnswers and took the Map the round's size calls for
    entered = _states_entered(job["job_id"])
    assert entered.count("LoadAnswers") == 2 and entered.count("FitModel") == 1
    assert ("AggregateDistributed" in entered) is distributed
    assert ("AggregateInline" in entered) is not distributed
    # AND every item is published once, in item order, fitted by one model
    assert [line["item_id"] for line in lines] == [f"{n:06d}" for n in range(10)]
    prefix = f"jobs/{job['job_id']}/rounds/1"
    manifest = json.loads(deps.platform().blobs.get_text(f"{prefix}/manifest.json"))
    assert [entry["shard"] for entry in manifest] == [0, 1, 2, 3]
    assert [entry["posteriors_key"] for entry in manifest] == [
        f"{prefix}/posteriors/{n:05d}.json" for n in range(4)]
    # AND each result is the posterior of the default model, refitted here on the whole
    # round from the published lineage
    votes = [(line["item_id"], a["worker_id"],
              "\x00not_applicable" if "not_applicable" in a["answer"] else a["answer"]["label"])
             for line in lines for a in line["answers"]]
    model = default_model(label_order=LABELS).fit(*zip(*votes))
    for line in lines:
        posterior = model.probas_[line["item_id"]]
        expected = {("not_applicable" if k.startswith("\x00") else k): round(v, 6)
                    for k, v in posterior.items()}
        assert line["probabilities"] == expected
        assert line["confidence"] == round(max(posterior.values()), 4)
        # (which of the two candidates wins is a near tie on 10 items and 3 workers; the
        # pipeline must pick the one the same fit picks)
        assert line["method"] == model.chosen_
    # AND the model's estimate of each worker's accuracy is kept for the round
    skills = json.loads(deps.platform().blobs.get_text(f"{prefix}/workers.json"))["skills"]
    assert len(skills) == 3 and all(0 < skill < 1 for skill in skills.values())
    # AND the all-N/A item is not applicable with its reasons
    assert lines[9]["not_applicable"] and sorted(lines[9]["na_reasons"]) == ["blank", "empty", "empty"]
    assert lines[9]["probabilities"]["not_applicable"] == max(lines[9]["probabilities"].values())


def test_numeric_and_transcription_jobs_run_through_the_same_machine(stack):
    api = Api(stack)
    job = api.job(items=2, redundancy=3, task_type="numeric",
                  answer_schema={"min": 0, "max": 100, "integer": True})
    values = {"a": [40, 10], "b": [42, 11], "c": [95, 12]}
    _answer(api, job, {name: (lambda n, v=v: {"value": v[n]}) for name, v in values.items()})
    numbers = _results(stack, api, job)
    assert [line["answer"] for line in numbers] == [{"value": 42}, {"value": 11}]
    assert {line["method"] for line in numbers} == {"median"}
    # the item with an outlier is less certain than the one where all agree
    assert numbers[0]["confidence"] < numbers[1]["confidence"]

    spoken = api.job(items=1, redundancy=3, task_type="transcription")
    texts = ["the quick brown fox", "the quick brown box", "a quick brown fox"]
    _answer(api, spoken, {f"t{n}": (lambda _, t=t: {"text": t}) for n, t in enumerate(texts)})
    (line,) = _results(stack, api, spoken)
    assert line["answer"] == {"text": "the quick brown fox"} and line["method"] == "rover"


@pytest.mark.parametrize("schema, field", [
    ({"min": 0}, "answer_schema.max"),
    ({"min": 5, "max": 5}, "answer_schema.max"),
    ({"min": 0, "max": "10"}, "answer_schema.max"),
    ({"min": 0, "max": 10, "integer": "yes"}, "answer_schema.integer"),
    ({"min": 0, "max": 10, "step": 1}, "answer_schema.step"),
])
def test_a_numeric_schema_is_checked_field_by_field(stack, schema, field):
    api = Api(stack)
    _, quote = api.as_client("POST", "/quotes", {"task_type": "numeric", "items": 1})
    status, body = api.as_client("POST", "/jobs", {
        "quote_id": quote["quote_id"], "instructions": "Rate it.", "answer_schema": schema,
        "items": [{"data": {"text": "item 0"}}]})
    assert status == 400 and body["field"] == field, body


@pytest.mark.parametrize("answer, field", [
    ({"value": 101}, "value"), ({"value": 4.5}, "value"), ({"value": True}, "value"),
    ({"value": "7"}, "value"), ({"label": "pos"}, "label"),
])
def test_a_numeric_answer_out_of_range_or_not_whole_is_refused_and_the_lease_kept(stack, answer, field):
    api = Api(stack)
    job = api.job(items=1, redundancy=1, task_type="numeric",
                  answer_schema={"min": 0, "max": 100, "integer": True})
    token = api.worker()
    _, task = api.lease(token, job["job_id"])
    status, body = api.submit(token, task["assignment_id"], answer)
    assert status == 400 and body["field"] == field, body
    assert api.submit(token, task["assignment_id"], {"value": 7})[0] == 200


@pytest.mark.parametrize("labels, field", [
    (["applicable", "not_applicable"], "answer_schema.labels[1]"),
    (["a", "\x00not_applicable"], "answer_schema.labels[1]"),
    (["a\tb", "c"], "answer_schema.labels[0]"),
])
def test_labels_the_results_would_confuse_with_not_applicable_are_refused(stack, labels, field):
    api = Api(stack)
    _, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 1})
    status, body = api.as_client("POST", "/jobs", {
        "quote_id": quote["quote_id"], "instructions": "Label it.",
        "answer_schema": {"labels": labels}, "items": [{"data": {"text": "item 0"}}]})
    assert status == 400 and body["field"] == field, body


def test_a_number_too_big_for_a_float_is_a_400_not_a_500(stack):
    api = Api(stack)
    job = api.job(items=1, redundancy=1, task_type="numeric",
                  answer_schema={"min": 0, "max": 100, "integer": True})
    token = api.worker()
    _, task = api.lease(token, job["job_id"])
    # a raw body: a 401-digit integer (json.dumps of a Python int would write it the same)
    status, body = api.as_worker(token, "POST", f"/assignments/{task['assignment_id']}/submit",
                                 '{"value": 1' + "0" * 400 + "}")
    assert status == 400 and body["field"] == "value", body


def test_the_client_reads_the_rounds_quality_report_once_results_are_published(stack):
    # GIVEN a 4-item job for three workers
    api = Api(stack)
    job = api.job(items=4, redundancy=3)
    # WHEN the client asks for the report before the results exist
    status, body = api.as_client("GET", f"/jobs/{job['job_id']}/report")
    # THEN it is not ready yet
    assert status == 409 and body["error"] == "results_not_ready"
    # WHEN three workers answer and the round is published
    _answer(api, job, {name: (lambda n, v=v: {"label": v[n]}) for name, v in {
        "a": ["pos", "neg", "pos", "neutral"], "b": ["pos", "neg", "neg", "neutral"],
        "c": ["pos", "neg", "pos", "pos"]}.items()})
    lines = _results(stack, api, job)
    status, report = api.as_client("GET", f"/jobs/{job['job_id']}/report")
    # THEN the report describes the round from its published results
    assert status == 200
    assert (report["items"], report["answers"], report["workers"]) == (4, 12, 3)
    assert -1 <= report["agreement"]["krippendorff_alpha"] <= 1
    assert report["agreement"]["fleiss_kappa"] is not None  # 3 answers on every item
    assert [e["item_id"] for e in report["lowest_confidence"]] == \
        [l["item_id"] for l in sorted(lines, key=lambda l: (l["confidence"], l["item_id"]))]
    assert report["median_seconds_per_task"] >= 0
    assert {w["worker_id"] for w in report["worker_summary"]} == \
        {a["worker_id"] for l in lines for a in l["answers"]}
    assert all("estimated_accuracy" in w for w in report["worker_summary"])


def test_a_report_shows_skew_by_the_attributes_the_client_tagged(stack):
    # GIVEN a job whose items carry a source, with an expected label split for the report
    api = Api(stack)
    items = [{"data": {"text": f"item {n}", "source": "web" if n < 2 else "app"},
              "external_id": f"ext-{n}"} for n in range(4)]
    _, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 4,
                                                 "redundancy": 2})
    status, job = api.as_client("POST", "/jobs", {
        "quote_id": quote["quote_id"], "instructions": "Label it.",
        "answer_schema": {"labels": LABELS}, "items": items,
        "report": {"attributes": ["source"],
                   "expected_distribution": {"pos": 1, "neg": 1, "neutral": 2}}})
    assert status == 202, job
    assert job["report"] == {"attributes": ["source"], "expected_distribution":
                             {"pos": 0.25, "neg": 0.25, "neutral": 0.5}}
    stack.drain()
    # WHEN web items get "pos" and app items "neg" from both workers
    _answer(api, job, {name: (lambda n: {"label": "pos" if n < 2 else "neg"})
                       for name in ("a", "b")})
    lines = _results(stack, api, job)
    _, report = api.as_client("GET", f"/jobs/{job['job_id']}/report")
    # THEN results carry the tagged attribute, and the report shows each source's labels
    assert [line["attributes"] for line in lines] == [{"source": s} for s in ("web", "web", "app", "app")]
    values = report["by_attribute"]["source"]["values"]
    assert values["web"]["result_distribution"] == {"pos": 1.0}
    assert values["app"]["result_distribution"] == {"neg": 1.0}
    # AND how far the results are from the expected split (half pos, half neg vs 1:1:2)
    assert report["distance_from_expected"] == 0.5


@pytest.mark.parametrize("report, field", [
    ({"expected_distribution": {"maybe": 1}}, "report.expected_distribution.maybe"),
    ({"expected_distribution": {"pos": -1}}, "report.expected_distribution.pos"),
    ({"expected_distribution": {"pos": 0}}, "report.expected_distribution"),
    ({"attributes": "source"}, "report.attributes"),
    ({"colour": True}, "report.colour"),
])
def test_report_settings_are_checked_field_by_field(stack, report, field):
    api = Api(stack)
    _, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 1})
    status, body = api.as_client("POST", "/jobs", {
        "quote_id": quote["quote_id"], "instructions": "Label it.",
        "answer_schema": {"labels": LABELS}, "items": [{"data": {"text": "item 0"}}],
        "report": report})
    assert status == 400 and body["field"] == field, body


def test_gold_items_are_never_shown_as_gold_clamp_their_result_and_score_the_workers(stack):
    # GIVEN a 6-item job whose first two items are gold, served on half the tasks
    api = Api(stack)
    gold = {0: {"label": "neg"}, 1: {"label": "pos"}}
    _, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 6,
                                                 "redundancy": 2, "gold_rate": 0.5})
    status, job = api.as_client("POST", "/jobs", {
        "quote_id": quote["quote_id"], "instructions": "Label it.",
        "answer_schema": {"labels": LABELS}, "quality": {"gold_rate": 0.5, "block_after": 0},
        "items": [{"data": {"text": f"item {n}"}, "external_id": f"ext-{n}",
                   **({"gold": gold[n]} if n in gold else {})} for n in range(6)]})
    assert status == 202, job
    stack.drain()
    # WHEN three workers answer everything "pos", recording every task they are shown
    shown = []
    for name in ("a", "b", "c"):
        token = api.worker(name)
        while True:
            status, task = api.lease(token, job["job_id"])
            if status != 200 or not task:
                break
            shown.append(task)
            assert api.submit(token, task["assignment_id"], {"label": "pos"})[0] == 200
    lines = _results(stack, api, job)
    gold_shown = [task for task in shown if task["item"]["item_id"] in ("000000", "000001")]
    # THEN gold was served, beside the 8 regular answers, and no task said anything about
    # gold: same fields, and no "gold" anywhere
    assert len(shown) - len(gold_shown) == 8 and gold_shown
    assert all("gold" not in json.dumps(task) for task in shown)
    assert len({tuple(sorted(task)) for task in shown}) == 1
    assert len({tuple(sorted(task["item"])) for task in shown}) == 1
    # AND gold items publish their known label with full confidence, and say they are gold
    assert [line.get("gold") for line in lines] == [{"label": "neg"}, {"label": "pos"}] + [None] * 4
    assert lines[0]["answer"] == {"label": "neg"} and lines[0]["confidence"] == 1.0
    # AND the report scores the workers on gold: "pos" is right on item 1 only
    right = sum(task["item"]["item_id"] == "000001" for task in gold_shown)
    _, report = api.as_client("GET", f"/jobs/{job['job_id']}/report")
    assert report["gold"] == {"items": 2, "answers": len(gold_shown),
                              "accuracy": round(right / len(gold_shown), 4)}
    assert sum(w.get("gold_answers", 0) for w in report["worker_summary"]) == len(gold_shown)
    # AND the client's live view of the job's workers agrees
    _, workers = api.as_client("GET", f"/jobs/{job['job_id']}/workers")
    assert sum(w["gold_answers"] for w in workers["workers"]) == len(gold_shown)
    assert sum(w["gold_correct"] for w in workers["workers"]) == right


@pytest.mark.parametrize("gold, field", [
    ({"label": "maybe"}, "items[0].gold.label"),
    ({"not_applicable": "x"}, "items[0].gold"),
    ("pos", "items[0].gold"),
    ({"text": "hi"}, "items[0].gold.text"),
])
def test_a_gold_answer_is_checked_like_a_workers_answer(stack, gold, field):
    api = Api(stack)
    _, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 1})
    status, body = api.as_client("POST", "/jobs", {
        "quote_id": quote["quote_id"], "instructions": "Label it.",
        "answer_schema": {"labels": LABELS}, "items": [{"data": {"text": "item 0"}, "gold": gold}]})
    assert status == 400 and body["field"] == field, body


def test_the_report_comes_as_an_html_page_with_charts_and_escaped_labels(stack):
    # GIVEN a finished job whose labels and N/A reasons carry markup
    api = Api(stack)
    labels = ["<b>pos</b>", "neg & co"]
    _, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 2,
                                                 "redundancy": 2})
    _, job = api.as_client("POST", "/jobs", {
        "quote_id": quote["quote_id"], "instructions": "Label it.", "answer_schema": {"labels": labels},
        "not_applicable": "allowed_with_reason", "items": [{"data": {"text": f"item {n}"}} for n in range(2)],
        "report": {"expected_distribution": {"<b>pos</b>": 1, "neg & co": 1}}})
    stack.drain()
    _answer(api, job, {"a": lambda n: {"label": labels[n]},
                       "b": lambda n: {"not_applicable": "<script>alert(1)</script>"}})
    _results(stack, api, job)
    # WHEN the client asks for HTML, by query or by Accept header
    for path, headers in ((f"/jobs/{job['job_id']}/report?format=html", {}),
                          (f"/jobs/{job['job_id']}/report", {"Accept": "text/html"})):
        response = api.http.get(path, headers={"X-Api-Key": api.key, **headers})
        page = response.body.decode()
        # THEN it is a page with SVG charts, and nothing from the job is markup
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        assert page.startswith("<!doctype html>") and page.count("<svg") == 2
        assert "<script>" not in page and "&lt;script&gt;" in page
        assert "<b>pos</b>" not in page and "&lt;b&gt;pos&lt;/b&gt;" in page
        assert "neg &amp; co" in page and "Krippendorff" in page
    # AND without asking, it is still JSON
    status, report = api.as_client("GET", f"/jobs/{job['job_id']}/report")
    assert status == 200 and report["job_id"] == job["job_id"]

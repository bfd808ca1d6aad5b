"""Gold served at a rate, worker gold accuracy, block rules, time-floor flags (on the fakes)."""
from __future__ import annotations

import json

import pytest

from chalicelib.api.views import assignment_view, receipt_view
from chalicelib.domain.answers import matches_gold
from chalicelib.domain.aggregation import NA_CLASS
from chalicelib.domain.model import AGGREGATING, CLIENT, DONE, NA_ALLOWED, OPERATOR, WORKER
from chalicelib.errors import Forbidden, NotFound
from chalicelib.handlers import accounts, jobs, quality, rounds, tasks
from chalicelib.workflows import aggregation as stages
from tests.fakes import FakeClock, count_all, ingest_all, make_platform


@pytest.fixture
def p():
    return make_platform(FakeClock())


def _post(p, items=40, gold=(), redundancy=2, quality=None, quote=None, **extra):
    """A job whose item n is gold with label 'pos' when n is in gold (no pilot); extra goes
    into the posted body."""
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    q = jobs.create_quote(p, client, {"task_type": "categorical", "items": items,
                                          "redundancy": redundancy, **(quote or {})})
    body = {"quote_id": q.quote_id, "instructions": "Pick the sentiment.",
            "answer_schema": {"labels": ["pos", "neg"]}, "pilot": {"items": 0},
            "quality": quality or {}, **extra,
            "items": [{"data": {"n": n}, **({"gold": {"label": "pos"}} if n in gold else {})}
                      for n in range(items)]}
    job = jobs.post_job(p, client, body)
    ingest_all(p)
    return client, p.jobs.get_job(job.job_id)


def _worker(p, name="w"):
    return accounts.create_account(p, WORKER, name)[0]


def _work(p, job, worker, label="pos", limit=None, seconds=5):
    """The worker answers what they are offered; return the item ids, in order."""
    done = []
    while limit is None or len(done) < limit:
        task = tasks.lease_next_task(p, worker, job.job_id)
        if task is None:
            break
        p.clock.advance(seconds)
        tasks.submit_answer(p, worker, task.assignment_id, {"label": label})
        done.append(task.item.item_id)
    count_all(p)
    ingest_all(p)  # the pass over the items before a round closes, a page per message
    return done


def _run_round(p, job_id):
    job = p.jobs.get_job(job_id)
    loaded = stages.load_answers(p, {"job_id": job_id, "round": job.round})
    fitted = stages.fit_model(p, loaded)
    for shard in fitted["shards"]:
        stages.aggregate_shard(p, shard)
    published = stages.publish_results(p, fitted)
    stages.mark_done(p, published)
    return [json.loads(line) for line in p.blobs.get_text(published["results_key"]).splitlines()]


def test_gold_is_served_at_the_jobs_rate_and_reused_across_workers(p):
    gold = set(range(0, 96, 8))  # 12 gold items among 100
    _, job = _post(p, items=100, gold=gold, redundancy=1, quality={"gold_rate": 0.25},
                   quote={"gold_rate": 0.5})
    served = []
    for n in range(4):
        served += _work(p, job, _worker(p, f"w{n}"), limit=30)
    gold_ids = {f"{n:06d}" for n in gold}
    share = sum(item in gold_ids for item in served) / len(served)
    assert 0.15 <= share <= 0.35, share
    # more gold answers were served than there are gold items: the same gold item went to
    # several workers, each gold item to no more than its slots (its share of the gold
    # answers quoted and its own quoted slot)
    assert max(served.count(item) for item in gold_ids) >= 2
    assert all(served.count(item) <= p.items.get_item(job.job_id, item).redundancy
               for item in gold_ids)
    # and regular items never get more answers than the redundancy
    regular = [item for item in served if item not in gold_ids]
    assert len(regular) == len(set(regular))


def test_nothing_a_worker_receives_tells_gold_apart(p):
    _, job = _post(p, items=30, gold={0, 1, 2, 3, 4}, quality={"gold_rate": 0.5, "block_after": 0})
    worker = _worker(p)
    views = {"gold": [], "regular": []}
    for _ in range(20):
        task = tasks.lease_next_task(p, worker, job.job_id)
        if task is None:
            break
        receipt = tasks.submit_answer(p, worker, task.assignment_id, {"label": "neg"})
        kind = "gold" if task.item.item_id in {f"{n:06d}" for n in range(5)} else "regular"
        views[kind].append((assignment_view(task), receipt_view(receipt)))
    assert views["gold"] and views["regular"]
    shape = {(tuple(sorted(a)), tuple(sorted(a["item"])), tuple(sorted(r))) for kind in views
             for a, r in views[kind]}
    assert len(shape) == 1  # the same fields for gold and regular tasks and receipts
    for kind in views:
        for assignment, receipt in views[kind]:
            text = json.dumps([assignment, receipt])
            assert "gold" not in text and '"pos"' not in text.replace('"labels": ["pos"', "")
            assert assignment["assignment_id"].startswith("asg_")


def test_gold_is_never_served_alone_and_its_paid_slots_cap_gold_answers(p):
    # GIVEN 10 regular items and 2 gold x 1 answer: the quote pays for 12 slots and 2 gold
    # answers (12 x 0.1 / 0.9); those 2 and the 2 slots quoted for the items that turned out
    # gold become 2 slots on each gold item, leaving nothing in the pool
    client, job = _post(p, items=12, gold={10, 11}, redundancy=1, quality={"gold_rate": 0.5})
    assert job.gold_slots == 4 and job.pool_cents == 0
    assert [p.items.get_item(job.job_id, i).redundancy for i in ("000010", "000011")] == [2, 2]
    served = []
    for n in range(6):
        served += _work(p, job, _worker(p, f"w{n}"))
    gold = [item for item in served if item in ("000010", "000011")]
    assert 1 <= len(gold) <= 4
    # leasing gold takes nothing from the pool: its slots were paid for at posting
    assert p.jobs.get_job(job.job_id).pool_cents == 0
    assert len(served) - len(gold) == 10
    # every worker stopped when the regular work was gone, with gold left for them
    assert tasks.lease_next_task(p, _worker(p, "late"), job.job_id) is None


def test_a_released_gold_task_frees_its_slot_and_moves_no_money(p):
    _, job = _post(p, items=12, gold={0, 1, 2, 3}, redundancy=1, quality={"gold_rate": 0.5})
    worker, before = _worker(p), p.jobs.get_job(job.job_id).pool_cents
    for _ in range(10):
        task = tasks.lease_next_task(p, worker, job.job_id)
        item_id = task.item.item_id
        if item_id in ("000000", "000001", "000002", "000003"):
            free = p.items.get_item(job.job_id, item_id).free
            assert p.jobs.get_job(job.job_id).pool_cents == before
            tasks.release_assignment(p, worker, task.assignment_id)
            assert p.items.get_item(job.job_id, item_id).free == free + 1
            assert p.jobs.get_job(job.job_id).pool_cents == before
            return
        tasks.release_assignment(p, worker, task.assignment_id)
    pytest.fail("no gold task was served in 10 leases at a rate of 0.5")


def test_gold_matching_per_answer_kind(p):
    _, job = _post(p, items=2)
    assert matches_gold(job, {"label": "pos"}, {"label": "pos"})
    assert not matches_gold(job, {"not_applicable": "x"}, {"label": "pos"})
    numeric = type(job)(**{**vars(job), "task_type": "numeric",
                           "answer_schema": {"min": 0, "max": 200, "integer": False}})
    assert matches_gold(numeric, {"value": 101.9}, {"value": 100})
    assert not matches_gold(numeric, {"value": 102.5}, {"value": 100})
    text = type(job)(**{**vars(job), "task_type": "transcription"})
    assert matches_gold(text, {"text": "The  quick brown fox"}, {"text": "the quick brown fox."})
    assert not matches_gold(text, {"text": "a slow red dog"}, {"text": "the quick brown fox"})


def test_a_worker_failing_gold_is_blocked_their_answers_left_out_and_their_slots_reoffered(p):
    # GIVEN 12 regular items and 8 gold (all "pos"), gold served on half the tasks, and the
    # rule: blocked after 3 gold answers below 0.6 smoothed accuracy
    client, job = _post(p, items=20, gold=set(range(12, 20)), redundancy=2,
                        quality={"gold_rate": 0.5, "block_after": 3, "block_below": 0.6},
                        quote={"gold_rate": 0.5})
    spammer, careful = _worker(p, "spammer"), _worker(p, "careful")
    # WHEN the spammer answers "neg" to everything (counted as they go) until the rule trips
    spammed = []
    while not p.stats.blocks_in_job(job.job_id):
        task = tasks.lease_next_task(p, spammer, job.job_id)
        assert task is not None
        tasks.submit_answer(p, spammer, task.assignment_id, {"label": "neg"})
        spammed.append(task.item.item_id)
        count_all(p)
    job = p.jobs.get_job(job.job_id)
    assert set(p.stats.blocks_in_job(job.job_id)) == {spammer.account_id}
    # THEN the block refuses their leases only after a delay, not at the next lease
    start = p.stats.blocks_in_job(job.job_id)[spammer.account_id]
    assert start >= p.now() + quality.BLOCK_DELAY_SECONDS[0]
    task = tasks.lease_next_task(p, spammer, job.job_id)
    assert task is not None
    tasks.release_assignment(p, spammer, task.assignment_id)
    p.clock.set(start)
    with pytest.raises(Forbidden) as caught:
        tasks.lease_next_task(p, spammer, job.job_id)
    assert caught.value.code == "blocked_from_job"
    # THEN the client sees the block with its reason and the spammer's gold record
    (line,) = [w for w in quality.job_workers(p, client, job.job_id, {})[0]
               if w["worker_id"] == spammer.account_id]
    assert line["blocked"] and line["gold_answers"] == 3 and line["gold_correct"] == 0
    assert "below 0.6" in line["blocked_reason"] and "(by rule)" in line["blocked_reason"]
    # AND other workers answer everything; the spammer's regular items get replacement slots
    # before the round closes, so they end with two answers from others
    for n in range(4):
        _work(p, job, _worker(p, f"w{n}"))
        _work(p, job, careful)
    job = p.jobs.get_job(job.job_id)
    assert job.state == AGGREGATING, job.state
    lines = {line["item_id"]: line for line in _run_round(p, job.job_id)}
    for item in set(spammed) - {f"{n:06d}" for n in range(12, 20)}:
        workers = [a["worker_id"] for a in lines[item]["answers"]]
        assert spammer.account_id not in workers and len(workers) == 2
    assert all(spammer.account_id not in [a["worker_id"] for a in line["answers"]]
               for line in lines.values())
    assert p.jobs.get_job(job.job_id).pool_cents >= 0
    report = jobs.job_report(p, client, job.job_id)
    assert report["blocked_workers"] == [spammer.account_id]


def test_a_retried_gold_submit_is_scored_once(p):
    # a job of gold only has no regular work: nothing is served
    _, job = _post(p, items=6, gold={0, 1, 2, 3, 4, 5}, quality={"gold_rate": 0.5})
    worker = _worker(p)
    assert tasks.lease_next_task(p, worker, job.job_id) is None
    _, job = _post(p, items=12, gold={0, 1, 2, 3, 4, 5}, quality={"gold_rate": 0.5},
                   quote={"gold_rate": 0.5})
    while int((task := tasks.lease_next_task(p, worker, job.job_id)).item.item_id) >= 6:
        tasks.release_assignment(p, worker, task.assignment_id)
    for _ in range(3):
        tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
    count_all(p)
    (record,) = p.stats.of_job(job.job_id, 1000, None)[0]
    assert (record.gold_answers, record.gold_correct) == (1, 1)


def test_fast_answers_are_flagged_in_the_lineage_and_the_report(p):
    client, job = _post(p, items=3, redundancy=2, quality={"min_seconds": 3})
    _work(p, job, _worker(p, "quick"), seconds=1)
    _work(p, job, _worker(p, "slow"), seconds=10)
    lines = _run_round(p, job.job_id)
    flags = {(a["worker_id"], tuple(a.get("flags", ()))) for line in lines for a in line["answers"]}
    assert len({flag for _, flag in flags}) == 2 and ("too_fast",) in {f for _, f in flags}
    report = jobs.job_report(p, client, job.job_id)
    assert report["too_fast_answers"] == 3
    assert sorted(w["too_fast"] for w in report["worker_summary"]) == [0, 3]


def test_workers_see_their_gold_accuracy_only_as_of_published_rounds(p):
    client, job = _post(p, items=12, gold=set(range(6)), redundancy=1,
                        quality={"gold_rate": 0.5, "block_after": 0}, quote={"gold_rate": 0.5})
    worker = _worker(p)
    _work(p, job, worker)
    seen = quality.worker_quality(p, worker)
    # nothing, not even the job, shows before a round is published: a job appearing at the
    # first gold answer would tell which task was gold
    assert seen["gold_answers"] == 0 and seen["jobs"] == []
    # and no gold answers is no accuracy, not the Beta(1, 1) prior's 0.5
    assert seen["gold_accuracy"] is None
    _run_round(p, job.job_id)
    seen = quality.worker_quality(p, worker)
    assert seen["gold_answers"] == seen["gold_correct"] > 0
    assert seen["jobs"][0]["job_id"] == job.job_id and not seen["blocked_everywhere"]


def test_a_block_written_by_another_container_refuses_leases_here_within_a_minute(p):
    client, job = _post(p, items=6, redundancy=2)
    worker = _worker(p)
    _work(p, job, worker, limit=1)  # this container has read the worker's block record
    # WHEN another container writes the client's block
    p.stats.mark_blocked(worker.account_id, job.job_id, "spam (by client)", p.now())
    # THEN this container may lease for up to a minute more, not longer
    task = tasks.lease_next_task(p, worker, job.job_id)
    assert task is not None
    tasks.release_assignment(p, worker, task.assignment_id)
    p.clock.advance(quality.PRINCIPAL_CACHE_SECONDS)
    with pytest.raises(Forbidden):
        tasks.lease_next_task(p, worker, job.job_id)
    assert tasks.available_jobs(p, worker) == []


def test_an_operator_block_stops_leasing_everywhere_and_leaves_answers_out(p):
    operator = accounts.create_account(p, OPERATOR, "Ops")[0]
    client, job = _post(p, items=3, redundancy=2)
    bad, good = _worker(p, "bad"), _worker(p, "good")
    _work(p, job, bad, label="neg")
    view = quality.operator_block(p, operator, bad.account_id, {"reason": "fraud"})
    assert view["blocked_everywhere"] and view["blocked_reason"].startswith("fraud")
    with pytest.raises(Forbidden) as caught:
        tasks.lease_next_task(p, bad)
    assert caught.value.code == "worker_blocked"
    _work(p, job, good)
    # the round would close now: the bad worker's answers are rejected (their rewards back in
    # the pool) and their items reopened for someone else
    job = p.jobs.get_job(job.job_id)
    assert job.state == "active" and job.rejected_answers == 3
    third = _worker(p, "third")
    assert len(_work(p, job, third)) == 3
    lines = _run_round(p, job.job_id)
    assert all(sorted(a["worker_id"] for a in line["answers"])
               == sorted([good.account_id, third.account_id]) for line in lines)
    assert p.jobs.get_job(job.job_id).state == DONE
    history = p.ledger.entries(bad.account_id, 10, None)[0]
    assert {(e.kind, e.amount_cents, e.reason) for e in history} == {
        ("rejection", 0, "left out: the worker was blocked")}
    quality.operator_block(p, operator, bad.account_id, None, blocked=False)
    assert tasks.lease_next_task(p, bad) is None  # unblocked: nothing left, no error


def test_a_client_can_block_a_worker_from_their_job(p):
    client, job = _post(p, items=3, redundancy=2)
    worker = _worker(p)
    _work(p, job, worker, limit=1)
    assert p.cache.job_blocks.get((worker.account_id, job.job_id), p.now(), 60) is None
    line = quality.client_blocks_worker(p, client, job.job_id, worker.account_id,
                                         {"reason": "ignores the instructions"})
    assert line["blocked"] and client.account_id in line["blocked_reason"]
    # the very next lease in this container is refused, though it read the worker's
    # (then missing) block record moments before
    with pytest.raises(Forbidden) as caught:
        tasks.lease_next_task(p, worker, job.job_id)
    assert caught.value.code == "blocked_from_job"
    assert quality.blocked_workers(p, job.job_id) == [worker.account_id]
    with pytest.raises(NotFound):
        quality.client_blocks_worker(p, client, job.job_id, "wrk_nobody", {"reason": "x"})


CACHE_READS = {"jobs.get_job", "items.open_items", "stats.blocked_everywhere",
               "stats.blocks_in_job"}


class _Recorder:
    """Wraps a port and records the name of every method called on it."""

    def __init__(self, name, inner, calls):
        self._name, self._inner, self._calls = name, inner, calls

    def __getattr__(self, attribute):
        value = getattr(self._inner, attribute)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            self._calls.append(f"{self._name}.{attribute}")
            return value(*args, **kwargs)
        return call


def test_a_gold_task_is_leased_and_submitted_with_the_same_calls_as_any_other(p):
    # GIVEN a job serving gold on half of the tasks
    _, job = _post(p, items=40, gold=set(range(0, 40, 4)), quality={"gold_rate": 0.5},
                   quote={"gold_rate": 0.5})
    gold_ids = {f"{n:06d}" for n in range(0, 40, 4)}
    calls: list[str] = []
    for port in ("accounts", "quotes", "jobs", "items", "results", "blobs", "ingest_queue",
                 "results_queue", "workflow", "stats", "ledger", "catalog"):
        setattr(p, port, _Recorder(port, getattr(p, port), calls))
    # WHEN workers lease and submit, each task's calls recorded apart
    paths = {"gold": set(), "regular": set()}
    for n in range(6):
        worker = _worker(p, f"w{n}")
        for _ in range(5):
            calls.clear()
            task = tasks.lease_next_task(p, worker, job.job_id)
            # reads that refresh this container's caches come and go with the time, not
            # with the task (the job, the task pool, operator blocks)
            lease = tuple(c for c in calls if c not in CACHE_READS)
            calls.clear()
            tasks.submit_answer(p, worker, task.assignment_id, {"label": "neg"})
            kind = "gold" if task.item.item_id in gold_ids else "regular"
            paths[kind].add((lease, tuple(c for c in calls if c not in CACHE_READS)))
    # THEN gold and regular tasks made exactly the same calls, one write each way
    assert paths["gold"] and paths["regular"]
    assert paths["gold"] == paths["regular"] == {
        (("items.try_lease",), ("items.try_submit", "results_queue.send"))}


def test_a_workers_view_of_a_block_by_the_rule_gives_no_figures_and_waits_for_its_start(p):
    _, job = _post(p, items=20, gold=set(range(12, 20)), redundancy=2,
                   quality={"gold_rate": 0.5, "block_after": 3, "block_below": 0.6},
                   quote={"gold_rate": 0.5})
    spammer = _worker(p, "spammer")
    while not p.stats.blocks_in_job(job.job_id):
        _work(p, job, spammer, label="neg", limit=1)
    start = p.stats.blocks_in_job(job.job_id)[spammer.account_id]
    # before the block starts, the worker's view shows neither the job nor the block
    assert quality.worker_quality(p, spammer)["jobs"] == []
    p.clock.set(start)
    seen = quality.worker_quality(p, spammer)
    (line,) = seen["jobs"]
    assert line["blocked"] and line["blocked_reason"] == quality.BLOCKED_BY_RULE
    assert not any(ch.isdigit() for ch in line["blocked_reason"])
    assert seen["gold_answers"] == 0  # still nothing published: no per-answer feedback


def test_block_starts_vary_so_no_single_task_is_pointed_at(p):
    starts = []
    for n in range(8):
        _, job = _post(p, items=20, gold=set(range(12, 20)), redundancy=2,
                       quality={"gold_rate": 0.5, "block_after": 3, "block_below": 0.6},
                       quote={"gold_rate": 0.5})
        spammer = _worker(p, f"spammer{n}")
        while not (blocked := p.stats.blocks_in_job(job.job_id)):
            _work(p, job, spammer, label="neg", limit=1)
        starts.append(blocked[spammer.account_id] - p.now())
    low, high = quality.BLOCK_DELAY_SECONDS
    assert all(low <= delay <= high for delay in starts)
    assert max(starts) - min(starts) > 60  # drawn at random, not a fixed delay


def test_gold_items_have_results_with_their_known_answer_and_count_as_done(p):
    # GIVEN 8 regular items and 4 gold ones, gold served on half the tasks, and one worker
    client, job = _post(p, items=12, gold={8, 9, 10, 11}, redundancy=1,
                        quality={"gold_rate": 0.5, "block_after": 0})
    assert jobs.job_progress(p, job)["done"] == 4  # known answers: done from the start
    _work(p, job, _worker(p, "a"), label="neg")
    lines = {line["item_id"]: line for line in _run_round(p, job.job_id)}
    job = p.jobs.get_job(job.job_id)
    # THEN every gold item, answered or not, has a result: its known answer, confidence 1
    for n in (8, 9, 10, 11):
        line = lines[f"{n:06d}"]
        assert line["method"] == "gold" and line["answer"] == {"label": "pos"}
        assert line["confidence"] == 1.0 and line["probabilities"]["pos"] == 1.0
        assert line["gold"] == {"label": "pos"}
    # (one worker meets each gold item at most once; whatever they did not meet has none)
    assert sum(lines[f"{n:06d}"]["n_answers"] for n in (8, 9, 10, 11)) <= 4
    assert all(lines[f"{n:06d}"]["method"] != "gold" for n in range(8))
    # AND the finished job's progress counts every item done
    assert job.state == DONE and job.result_count == 12
    progress = jobs.job_progress(p, job)
    assert progress["done"] == progress["items"] == 12 and progress["gold"] == 4


def test_an_unanswered_gold_item_still_has_its_known_answer_as_result(p):
    _, job = _post(p, items=6, gold={5}, redundancy=1, quality={"gold_rate": 0})
    _work(p, job, _worker(p))
    lines = {line["item_id"]: line for line in _run_round(p, job.job_id)}
    gold = lines["000005"]
    assert (gold["method"], gold["answer"], gold["n_answers"], gold["answers"]) == (
        "gold", {"label": "pos"}, 0, [])


def test_an_unanswered_gold_item_lists_the_same_labels_as_its_round_n_a_included(p):
    # GIVEN a round in which one answer was N/A, and a gold item nobody answered
    _, job = _post(p, items=4, gold={3}, redundancy=1, quality={"gold_rate": 0},
                   not_applicable=NA_ALLOWED)
    worker = _worker(p)
    while (task := tasks.lease_next_task(p, worker, job.job_id)) is not None:
        answer = {"not_applicable": "blurry"} if task.item.item_id == "000000" else {"label": "neg"}
        tasks.submit_answer(p, worker, task.assignment_id, answer)
    count_all(p)
    ingest_all(p)
    lines = {line["item_id"]: line for line in _run_round(p, job.job_id)}
    # THEN its probabilities are one-hot on its known label over the round's classes
    assert set(lines["000001"]["probabilities"]) == {"pos", "neg", "not_applicable"}
    assert lines["000003"]["n_answers"] == 0
    assert lines["000003"]["probabilities"] == {"pos": 1.0, "neg": 0.0, "not_applicable": 0.0}


def test_a_gold_line_is_sure_of_its_known_answer_in_every_confidence_figure():
    line = {"item_id": "000001", "answer": {"label": "pos"}, "confidence": 0.7,
            "confidence_raw": 0.93, "n_answers": 2, "method": "gold",
            "probabilities": {"pos": 0.7, "neg": 0.3}}
    classes = ["pos", "neg", NA_CLASS]
    sure = stages.gold_line(line, {"label": "pos"}, classes)
    assert (sure["confidence"], sure["confidence_raw"], sure["gold"]) == (1.0, 1.0, {"label": "pos"})
    assert sure["probabilities"] == {"pos": 1.0, "neg": 0.0, "not_applicable": 0.0}
    # a line without a raw figure or probabilities (text) gets none
    text = stages.gold_line({"answer": {"text": "hi"}, "confidence": 0.5}, {"text": "hi"}, None)
    assert text == {"answer": {"text": "hi"}, "confidence": 1.0, "gold": {"text": "hi"}}


def test_a_redelivered_gold_message_applies_the_rule_a_crash_lost(p):
    _, job = _post(p, items=20, gold=set(range(12, 20)), redundancy=2,
                   quality={"gold_rate": 0.5, "block_after": 3, "block_below": 0.6},
                   quote={"gold_rate": 0.5})
    spammer = _worker(p, "spammer")
    # the worker's gold answers are scored, but the block is "lost" (as if the consumer died
    # between scoring the third and blocking)
    messages = []
    while len([m for m in messages if "gold_correct" in m]) < 3:
        task = tasks.lease_next_task(p, spammer, job.job_id)
        tasks.submit_answer(p, spammer, task.assignment_id, {"label": "neg"})
        messages += p.results_queue.take()
    gold = [m for m in messages if "gold_correct" in m]
    for m in gold:
        p.stats.record_gold(m["worker_id"], m["job_id"], m["assignment_id"], m["gold_correct"])
    assert not p.stats.blocks_in_job(job.job_id)
    # WHEN SQS redelivers the messages THEN the rule blocks the worker, scoring nothing twice
    rounds.count_answers(p, messages)
    assert set(p.stats.blocks_in_job(job.job_id)) == {spammer.account_id}
    (record,) = p.stats.of_job(job.job_id, 1000, None)[0]
    assert (record.gold_answers, record.gold_correct) == (3, 0)


class _NoItemWalks:
    """The items port with its whole-job read refused: checks must not walk the job."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, attribute):
        if attribute == "iter_items":
            raise AssertionError("a whole-job read of the items")
        return getattr(self._inner, attribute)


def _first_task_gold(p, job, gold_ids):
    """A worker whose first task is a gold item, answered and counted."""
    for n in range(40):
        worker = _worker(p, f"g{n}")
        task = tasks.lease_next_task(p, worker, job.job_id)
        if task.item.item_id in gold_ids:
            p.clock.advance(5)
            tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
            count_all(p)
            return worker
        tasks.release_assignment(p, worker, task.assignment_id)
    raise AssertionError("no gold task was served")


def test_a_worker_of_the_job_is_found_without_reading_its_items(p):
    # GIVEN a job with gold, a worker who answered a regular item, one who answered only a
    # gold item, one who holds a lease they never answered, and one who never came
    client, job = _post(p, items=40, gold=set(range(0, 40, 4)), quality={"gold_rate": 0.5},
                        quote={"gold_rate": 0.5})
    gold_ids = {f"{n:06d}" for n in range(0, 40, 4)}
    gold_only = _first_task_gold(p, job, gold_ids)
    regular = None
    for n in range(40):
        worker = _worker(p, f"r{n}")
        task = tasks.lease_next_task(p, worker, job.job_id)
        if task.item.item_id not in gold_ids:
            p.clock.advance(5)
            tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
            regular = worker
            break
        tasks.release_assignment(p, worker, task.assignment_id)
    assert regular is not None
    count_all(p)
    leased_only = _worker(p, "lease")
    tasks.lease_next_task(p, leased_only, job.job_id)
    p.items = _NoItemWalks(p.items)
    # WHEN the client blocks each; THEN those with an answer counted are found, gold or not
    for worker in (regular, gold_only):
        line = quality.client_blocks_worker(p, client, job.job_id, worker.account_id,
                                            {"reason": "careless"})
        assert line["worker_id"] == worker.account_id and line["blocked"]
    for worker_id in (leased_only.account_id, "wrk_nobody"):
        with pytest.raises(NotFound) as caught:
            quality.client_blocks_worker(p, client, job.job_id, worker_id, {"reason": "x"})
        assert caught.value.code == "worker_not_found"
    # a worker of another job is not one of this job's
    other_client, other = _post(p, items=4)
    with pytest.raises(NotFound):
        quality.client_blocks_worker(p, other_client, other.job_id, regular.account_id,
                                     {"reason": "x"})


def test_a_jobs_end_gives_back_unused_gold_slots_reading_its_gold_items_only(p, monkeypatch):
    # GIVEN a job of 20 items, 5 of them gold, read 2 a page: one gold answer, one gold lease
    # left to expire, the other gold slots never taken
    monkeypatch.setattr(quality, "GOLD_PAGE", 2)
    _, job = _post(p, items=20, gold=set(range(0, 20, 4)), quality={"gold_rate": 0.5},
                   quote={"gold_rate": 0.5})
    gold_ids = {f"{n:06d}" for n in range(0, 20, 4)}
    _first_task_gold(p, job, gold_ids)
    for n in range(40):
        worker = _worker(p, f"x{n}")
        task = tasks.lease_next_task(p, worker, job.job_id)
        if task.item.item_id in gold_ids:
            break
        tasks.release_assignment(p, worker, task.assignment_id)
    p.clock.advance(job.lease_seconds + 1)
    gold = [p.items.get_item(job.job_id, item_id) for item_id in sorted(gold_ids)]
    unused = sum(item.free + len(item.leases) for item in gold)
    assert unused == job.gold_slots - 1 and sum(len(item.leases) for item in gold) == 1
    pool, reads = p.jobs.get_job(job.job_id).pool_cents, p.items.item_reads
    p.items.iter_items = lambda *args, **kwargs: pytest.fail("a whole-job read of the items")
    # WHEN the job's end releases what it held; THEN every unused gold slot's reward is back
    # in the pool, from the 5 gold items read and no other item, and a repeat releases none
    released = quality.release_leftovers(p, p.jobs.get_job(job.job_id))
    assert released == unused * job.reward_cents > 0
    assert p.jobs.get_job(job.job_id).pool_cents == pool + released
    assert p.items.item_reads - reads == len(gold_ids)
    assert quality.release_leftovers(p, p.jobs.get_job(job.job_id)) == 0


def test_the_backfill_lists_blocks_made_before_listings_in_pages_and_again_changes_nothing(p):
    # GIVEN blocks from a job and everywhere made before blocks were listed beside them
    client, job = _post(p, items=4)
    operator = accounts.create_account(p, OPERATOR, "Ops")[0]
    workers = [_worker(p, f"w{n}") for n in range(4)]
    quality.operator_block(p, operator, workers[0].account_id, {"reason": "fraud"})
    for worker in workers[1:3]:
        quality.block_in_job(p, job, worker.account_id, client.account_id, "spam")
    p.stats.record_gold(workers[3].account_id, job.job_id, "asg_unused", True)  # not blocked
    p.stats.unlist_blocks()
    assert quality.blocked_workers(p, job.job_id) == [] and \
        p.stats.blocked_everywhere_ids(10) == []
    # WHEN the backfill runs two records a page, one page a call, from the cursor it gave
    calls, cursor = [], None
    while True:
        outcome = quality.backfill_block_listings(p, cursor, pages=1, limit=2)
        calls.append(outcome)
        cursor = outcome["next_cursor"]
        if cursor is None:
            break
    # THEN every block is listed again, in pages, and a second whole run changes nothing
    assert len(calls) > 2 and all(c["pages"] == 1 for c in calls)
    assert sum(c["listed"] for c in calls) == 3
    assert quality.blocked_workers(p, job.job_id) == sorted(w.account_id for w in workers[1:3])
    assert p.stats.blocked_everywhere_ids(10) == [workers[0].account_id]
    again = quality.backfill_block_listings(p)
    assert again["listed"] == 3 and again["next_cursor"] is None
    assert quality.blocked_workers(p, job.job_id) == sorted(w.account_id for w in workers[1:3])
    assert p.stats.blocked_everywhere_ids(10) == [workers[0].account_id]

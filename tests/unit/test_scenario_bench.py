"""bench.scenario's crowd: workers are sent to a job while it may hold work for them, and not
while its last answers are being counted (each idle lease would be a request per worker that
no judgment needs, counted in bench.cost's requests per judgment)."""
import pytest

from bench import scenario


@pytest.fixture(autouse=True)
def no_waits(monkeypatch):
    """The harness's half-second waits between reads of the job, skipped."""
    monkeypatch.setattr(scenario.time, "sleep", lambda seconds: None)


class CountingJob:
    """A job of `items` items taking `per_item` answers each, leased out to whoever asks first,
    whose counting lags: each read of its view counts `pace` more of the accepted answers;
    it leaves `active` on the read after the last item is done."""

    def __init__(self, items: int, per_item: int, pace: int) -> None:
        self.open = items * per_item
        self.items, self.per_item, self.pace = items, per_item, pace
        self.counted = 0
        self.leases = 0  # lease requests the workers made
        self.idle_leases = 0  # those the job had nothing for
        self.posted = scenario.Posted("job_1", {}, None)

    def work(self, worker, job_id, truth, accepted, take=None):
        """A worker leases and answers until the job has nothing for them (or `take` tasks)."""
        taken = 0
        while take is None or taken < take:
            self.leases += 1
            if self.open == 0:
                self.idle_leases += 1
                return
            self.open -= 1
            taken += 1
            accepted.append(f"asg_{len(accepted)}")

    def poll(self, job_id):
        accepted = len(self.posted.accepted)
        done_before = self.counted >= self.items * self.per_item
        self.counted = min(accepted, self.counted + self.pace)
        return {"state": "aggregating" if done_before else "active",
                "counts": {"items": self.items, "answered": self.counted,
                           "done": self.counted // self.per_item}}


def test_workers_are_not_sent_again_while_the_last_answers_are_counted():
    # GIVEN a job of 30 items x 3 answers whose counting lags well behind three workers
    job = CountingJob(items=30, per_item=3, pace=5)
    # WHEN the crowd answers it until it leaves active
    scenario.answer_until_filled(job.posted, ["a", "b", "c"], job.poll, job.work)
    # THEN every slot was answered, and each worker was told "nothing" once, not once a wait
    assert len(job.posted.accepted) == 90 and job.posted.state == "aggregating"
    assert job.idle_leases == 3 and job.leases == 93


def test_workers_come_back_once_counting_shows_items_left():
    # GIVEN a job whose first wave leaves work (each worker took only five tasks)
    job = CountingJob(items=10, per_item=3, pace=4)
    rounds = []

    def work(worker, job_id, truth, accepted):
        rounds.append(worker)
        job.work(worker, job_id, truth, accepted, take=5 if len(rounds) <= 3 else None)
    # WHEN the crowd answers it
    scenario.answer_until_filled(job.posted, ["a", "b", "c"], job.poll, work)
    # THEN once the 15 answers were counted the workers were sent again and filled it
    assert len(rounds) == 6 and len(job.posted.accepted) == 30
    assert job.posted.state == "aggregating"


def test_a_job_that_stays_active_with_nothing_left_is_an_error():
    posted = scenario.Posted("job_1", {}, None, accepted=["asg_0"])
    view = {"state": "active", "counts": {"items": 1, "answered": 1, "done": 1}}
    with pytest.raises(RuntimeError, match="stays active"):
        scenario.until_more_work(posted, lambda job_id: view, timeout=0)

"""The data stack and the local-AWS harness behave on moto as the app relies on them to on AWS."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra import moto_shims
from infra.local_aws import SqsPump, sqs_batch_sizes, sqs_concurrency, wait_for_execution
from infra.stack import APP_ENVIRONMENT_OUTPUTS, STAGE_FUNCTIONS, app_environment, deploy_stack, render_template

STACK = "crowd-dev-data"
REGION = "us-east-1"


class TransientError(Exception):
    """Stands in for the app's retryable error: the state machine retries on this class name."""


@pytest.fixture(scope="module")
def aws() -> Iterator[None]:
    """moto with Step Functions executing for real, fake credentials, and the project's shims.

    Module-scoped so the stack deploys once (moto's first deploy costs ~1.5 s of
    imports); each test uses its own messages and job ids.
    """
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }.items():
            env.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            env.delenv(name, raising=False)
        moto_shims.install_all()
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            yield


@pytest.fixture(scope="module")
def outputs(aws: None) -> dict[str, str]:
    """The data stack deployed as the local stack deploys it."""
    return deploy_stack(boto3.client("cloudformation"), STACK, "crowd", "dev")


@pytest.fixture
def instant_retries() -> Iterator[None]:
    """Retry back-off without the real sleeps."""
    with moto_shims.make_step_functions_instant():
        yield


class StageRecorder:
    """Stub stage functions that follow the state machine's data contract and record their events."""

    def __init__(self, bucket: str, shards: int = 3, per_call: int = 2) -> None:
        """shards: how many shards load_answers writes in all, per_call: at most per call."""
        self.bucket = bucket
        self.shards = shards
        self.per_call = per_call
        self.distributed = False
        self.calls: dict[str, list[dict[str, Any]]] = {name: [] for name in STAGE_FUNCTIONS}
        self.failures: dict[str, tuple[BaseException, int | None]] = {}
        self._lock = threading.Lock()

    def fail(self, stage: str, error: BaseException, times: int | None = None) -> None:
        """Make stage raise error on its next `times` calls (None: every call)."""
        self.failures[stage] = (error, times)

    def _maybe_fail(self, stage: str) -> None:
        """Raise the error planned for this call of stage, if any."""
        with self._lock:
            if stage not in self.failures:
                return
            error, times = self.failures[stage]
            if times is not None:
                if times <= 0:
                    return
                self.failures[stage] = (error, times - 1)
        raise error

    def handlers(self) -> dict[str, Any]:
        """handler per stage name, for route_lambda_invocations."""

        def make(stage: str) -> Any:
            """The recording handler of one stage."""
            def handler(event: dict[str, Any], context: Any) -> Any:
                """Record the event, fail if planned, else answer like the real stage."""
                with self._lock:
                    self.calls[stage].append(event)
                self._maybe_fail(stage)
                return getattr(self, stage)(event, context)

            return handler

        return {stage: make(stage) for stage in STAGE_FUNCTIONS}

    def load_answers(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Up to per_call more shards per call, `more` until all are written."""
        assert context.function_name.endswith("-load_answers")
        written = min(event.get("shard_count", 0) + self.per_call, self.shards)
        return {"job_id": event["job_id"], "round": event["round"], "kind": "categorical",
                "after": f"item-{written}", "shard_count": written, "more": written < self.shards}

    def fit_model(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The shard list inline, or (distributed) only in an S3 manifest."""
        job, round_ = event["job_id"], event["round"]
        shards = [{"job_id": job, "round": round_, "shard": n, "key": f"answers/{job}/{round_}/{n}.json",
                   "posteriors_key": f"jobs/{job}/rounds/{round_}/posteriors/{n:05d}.json"} for n in range(event["shard_count"])]
        manifest = f"jobs/{job}/rounds/{round_}/manifest.json"
        boto3.client("s3").put_object(Bucket=self.bucket, Key=manifest, Body=json.dumps(shards).encode())
        return {"job_id": job, "round": round_, "shard_count": event["shard_count"],
                "manifest_key": manifest,
                "distributed": self.distributed, "shards": [] if self.distributed else shards}

    def aggregate_shard(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """A count that identifies the shard."""
        return {"shard": event["shard"], "count": 10 + event["shard"]}

    def publish_results(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The published key and the sum of what the shards would count."""
        return {
            "job_id": event["job_id"],
            "round": event["round"],
            "results_key": f"results/{event['job_id']}/{event['round']}.jsonl",
            "count": sum(10 + n for n in range(event["shard_count"])),
        }

    def mark_done(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The round's final state."""
        return {"job_id": event["job_id"], "round": event["round"], "state": "done"}

    def mark_failed(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The round's failed state."""
        return {"job_id": event["job_id"], "state": "failed"}


@pytest.fixture
def stages(aws: None, outputs: dict[str, str]) -> Iterator[StageRecorder]:
    """Stage functions created on moto and routed to a StageRecorder in-process."""
    recorder = StageRecorder(outputs["ResultsBucketName"])
    with moto_shims.routed_stage_functions(boto3.client("lambda"), boto3.client("iam"), recorder.handlers()):
        yield recorder


def run_aggregation(outputs: dict[str, str], job_id: str = "job-1", round_: int = 1) -> dict[str, Any]:
    """Start one aggregation execution and wait for it to stop."""
    sfn = boto3.client("stepfunctions")
    started = sfn.start_execution(
        stateMachineArn=outputs["AggregationStateMachineArn"], input=json.dumps({"job_id": job_id, "round": round_})
    )
    return wait_for_execution(sfn, started["executionArn"], timeout=30)


# ------------------------------------------------------------------ template


def test_rendered_template_inlines_the_state_machine_with_context_paths_intact() -> None:
    # GIVEN the repo template and the ASL file
    # WHEN the template is rendered for a stage
    template = json.loads(render_template("crowd", "prod"))

    # THEN the state machine definition is the ASL with every Lambda placeholder
    # replaced by a stage function ARN, and `$$` context paths survive
    definition = template["Resources"]["AggregationStateMachine"]["Properties"]["DefinitionString"]["Fn::Sub"]
    assert isinstance(definition, str)
    assert "__AGGREGATION_ASL__" not in definition
    for fn in STAGE_FUNCTIONS:
        assert f"function:${{AppName}}-${{Stage}}-{fn}\"" in definition
    assert "$$.Execution.Input.job_id" in definition
    assert template["Parameters"]["Stage"]["Default"] == "prod"


def test_stack_creates_every_table_with_its_keys_indexes_ttl_and_recovery(outputs: dict[str, str]) -> None:
    # GIVEN the stack deployed on moto (fixture)
    ddb = boto3.client("dynamodb")

    # WHEN the tables are described
    def describe(suffix: str) -> dict[str, Any]:
        return ddb.describe_table(TableName=f"crowd-dev-{suffix}")["Table"]

    def keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
        return [(k["AttributeName"], k["KeyType"]) for k in schema]

    # THEN each table has the declared keys, on-demand billing and PITR
    expected_keys = {
        "accounts": [("account_id", "HASH")],
        "credentials": [("token_hash", "HASH")],
        "quotes": [("quote_id", "HASH")],
        "jobs": [("job_id", "HASH")],
        "items": [("job_id", "HASH"), ("item_id", "RANGE")],
        "results": [("job_id", "HASH"), ("item_id", "RANGE")],
        "worker-stats": [("worker_id", "HASH"), ("scope", "RANGE")],
        "ledger": [("account_id", "HASH"), ("entry_id", "RANGE")],
        "catalog": [("kind", "HASH"), ("name", "RANGE")],
        "idempotency": [("id", "HASH")],
        "webhooks": [("account_id", "HASH"), ("key", "RANGE")],
    }
    for suffix, key_schema in expected_keys.items():
        table = describe(suffix)
        assert keys(table["KeySchema"]) == key_schema, suffix
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST", suffix
        backups = ddb.describe_continuous_backups(TableName=f"crowd-dev-{suffix}")["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED", suffix

    # AND the indexes the app queries exist, with full projection but for the bulk approval
    # queue (the sweeper reads only job ids from it)
    jobs_gsis = {g["IndexName"]: g for g in describe("jobs")["GlobalSecondaryIndexes"]}
    assert keys(jobs_gsis["by_state"]["KeySchema"]) == [("state", "HASH"), ("finalize_at", "RANGE")]
    assert keys(jobs_gsis["by_client"]["KeySchema"]) == [("client_id", "HASH"), ("created_at", "RANGE")]
    review_queue = jobs_gsis.pop("reviews_due")
    assert keys(review_queue["KeySchema"]) == [("review_queue", "HASH"), ("review_due_at", "RANGE")]
    assert review_queue["Projection"]["ProjectionType"] == "KEYS_ONLY"
    events_due = jobs_gsis.pop("events_due")
    assert keys(events_due["KeySchema"]) == [("events_queue", "HASH"), ("events_due_at", "RANGE")]
    assert events_due["Projection"]["ProjectionType"] == "KEYS_ONLY"
    items_gsis = {g["IndexName"]: g for g in describe("items")["GlobalSecondaryIndexes"]}
    open_slots = items_gsis.pop("open_slots")
    assert keys(open_slots["KeySchema"]) == [("open_job", "HASH"), ("item_id", "RANGE")]
    # the task pool's index holds only what a lease changes: no submit, count or review
    # writes an entry of it
    assert open_slots["Projection"]["ProjectionType"] == "INCLUDE"
    assert not {"leases", "answers", "answer_count", "counted", "reviews", "data"} \
        & set(open_slots["Projection"]["NonKeyAttributes"])
    stats_gsis = {g["IndexName"]: g for g in describe("worker-stats")["GlobalSecondaryIndexes"]}
    assert keys(stats_gsis["by_scope"]["KeySchema"]) == [("scope", "HASH"), ("worker_id", "RANGE")]
    (by_time,) = describe("ledger")["LocalSecondaryIndexes"]
    assert keys(by_time["KeySchema"]) == [("account_id", "HASH"), ("created_at", "RANGE")]
    # AND the accruals' indexes beside the ledger's entries hold keys only: the sweeper's due
    # index (spread over shards) and a job's accruals for a bulk approval
    ledger_gsis = {g["IndexName"]: g for g in describe("ledger")["GlobalSecondaryIndexes"]}
    assert keys(ledger_gsis["accruals_due"]["KeySchema"]) == [("due_shard", "HASH"), ("due_at", "RANGE")]
    assert keys(ledger_gsis["accruals_by_job"]["KeySchema"]) == [("accrual_job", "HASH"), ("entry_id", "RANGE")]
    assert {g["Projection"]["ProjectionType"] for g in ledger_gsis.values()} == {"KEYS_ONLY"}
    for index in [*jobs_gsis.values(), *items_gsis.values(), *stats_gsis.values(), by_time]:
        assert index["Projection"]["ProjectionType"] == "ALL"
    attribute_types = {a["AttributeName"]: a["AttributeType"] for a in describe("jobs")["AttributeDefinitions"]}
    assert attribute_types["finalize_at"] == "N"

    # AND quotes expire through TTL on expires_ttl
    ttl = ddb.describe_time_to_live(TableName="crowd-dev-quotes")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_ttl"}


def test_stack_creates_queues_with_redrive_to_their_dlq_bucket_and_state_machine(outputs: dict[str, str]) -> None:
    # GIVEN the stack deployed on moto (fixture)
    sqs = boto3.client("sqs")

    # THEN each main queue redrives to its own DLQ after 5 receives, with a 6 x 60 s visibility timeout
    for name in ("ingest", "results"):
        url = sqs.get_queue_url(QueueName=f"crowd-dev-{name}")["QueueUrl"]
        dlq_url = sqs.get_queue_url(QueueName=f"crowd-dev-{name}-dlq")["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        dlq_attrs = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attrs["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == dlq_attrs["QueueArn"]
        assert int(redrive["maxReceiveCount"]) == 5
        assert attrs["VisibilityTimeout"] == "360"
        assert dlq_attrs["MessageRetentionPeriod"] == str(14 * 24 * 3600)

    # AND the results bucket is encrypted and closed to the public
    s3 = boto3.client("s3")
    bucket = outputs["ResultsBucketName"]
    assert bucket == "crowd-dev-results"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block[k] for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))

    # AND the state machine is STANDARD and invokes this stage's functions only
    sm = boto3.client("stepfunctions").describe_state_machine(stateMachineArn=outputs["AggregationStateMachineArn"])
    assert sm["name"] == "crowd-dev-aggregation"
    assert sm["type"] == "STANDARD"
    resources = _task_resources(json.loads(sm["definition"]))
    assert {r.rsplit(":", 1)[-1] for r in resources} == {f"crowd-dev-{fn}" for fn in STAGE_FUNCTIONS}
    assert all(r.startswith(f"arn:aws:lambda:{REGION}:") for r in resources)

    # AND the app environment resolves to those resources
    env = app_environment(outputs)
    assert set(env) == set(APP_ENVIRONMENT_OUTPUTS)
    assert env["JOBS_TABLE"] == "crowd-dev-jobs"
    assert env["INGEST_QUEUE_NAME"] == "crowd-dev-ingest"
    assert env["RESULTS_QUEUE_NAME"] == "crowd-dev-results"
    assert env["AGGREGATION_STATE_MACHINE_ARN"] == sm["stateMachineArn"]


def test_second_deploy_is_a_no_op(outputs: dict[str, str]) -> None:
    # GIVEN the stack already deployed, with data in a table
    cfn = boto3.client("cloudformation")
    boto3.client("dynamodb").put_item(TableName="crowd-dev-jobs", Item={"job_id": {"S": "keep-me"}})

    # WHEN it is deployed again with the same template and parameters
    again = deploy_stack(cfn, STACK, "crowd", "dev")

    # THEN nothing changes: same outputs, no update, data intact
    assert again == outputs
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    item = boto3.client("dynamodb").get_item(TableName="crowd-dev-jobs", Key={"job_id": {"S": "keep-me"}})
    assert "Item" in item


def _task_resources(definition: dict[str, Any]) -> set[str]:
    """Resource of every Task, including those inside Map item processors."""
    found: set[str] = set()
    for state in definition["States"].values():
        if "Resource" in state:
            found.add(state["Resource"])
        if "ItemProcessor" in state:
            found |= _task_resources(state["ItemProcessor"])
    return found


# ---------------------------------------------------------------------- SQS


def _send(queue: str, body: dict[str, Any]) -> None:
    """Send one JSON message with a string attribute."""
    sqs = boto3.client("sqs")
    sqs.send_message(
        QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"],
        MessageBody=json.dumps(body),
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
    )


def _queue_bodies(queue: str) -> list[str]:
    """Bodies of the messages currently visible on a queue (receiving them)."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    return [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]


def test_pump_gathers_a_batch_as_big_as_the_event_source_says(outputs: dict[str, str]) -> None:
    # GIVEN 25 messages on the results queue, whose event source takes batches of up to 100
    # (SQS hands out 10 a receive)
    for n in range(25):
        _send("crowd-dev-results", {"n": n})
    sizes: list[int] = []
    app = type("App", (), {"event_sources": [
        type("Source", (), {"queue": "crowd-dev-results", "batch_size": 100})()]})()
    pump = SqsPump(boto3.client("sqs"), {"crowd-dev-results": lambda event, context:
                                         sizes.append(len(event["Records"]))},
                   batch_sizes=sqs_batch_sizes(app))
    # WHEN the pump gives the queue one batch
    delivered = pump.pump_once()
    # THEN the handler got all 25 at once, and they are gone from the queue
    assert delivered == 25 and sizes == [25]
    assert _queue_bodies("crowd-dev-results") == []


def test_pump_delivers_a_lambda_shaped_batch_and_deletes_it_when_the_handler_returns(outputs: dict[str, str]) -> None:
    # GIVEN two messages on the ingest queue and a handler that succeeds
    _send("crowd-dev-ingest", {"n": 1})
    _send("crowd-dev-ingest", {"n": 2})
    events: list[dict[str, Any]] = []
    pump = SqsPump(boto3.client("sqs"), {"crowd-dev-ingest": lambda event, context: events.append(event)})

    # WHEN the pump drains the queues
    delivered = pump.drain()

    # THEN the handler saw both messages in the Lambda SQS event shape, and the queue is empty
    assert delivered == 2
    records = [r for e in events for r in e["Records"]]
    assert sorted(json.loads(r["body"])["n"] for r in records) == [1, 2]
    for record in records:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == outputs["IngestQueueArn"]
        assert record["awsRegion"] == REGION
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert record["messageAttributes"]["kind"]["stringValue"] == "test"
        assert record["receiptHandle"] and record["messageId"]
    assert _queue_bodies("crowd-dev-ingest") == []


def test_a_queue_pumped_from_its_own_thread_is_not_held_up_by_a_slow_handler_of_another(
        outputs: dict[str, str]) -> None:
    # GIVEN an ingest handler that blocks until released, and a message on each queue
    _send("crowd-dev-ingest", {"n": 1})
    _send("crowd-dev-results", {"assignment_id": "a-2"})
    release, counted = threading.Event(), threading.Event()
    pump = SqsPump(boto3.client("sqs"), {
        "crowd-dev-ingest": lambda event, context: release.wait(10),
        "crowd-dev-results": lambda event, context: counted.set()})
    stop = threading.Event()
    threads = [threading.Thread(target=pump.run_forever, args=(stop, 0.05),
                                kwargs={"queues": [name]}) for name in pump.queue_names]

    # WHEN each queue is pumped from its own thread
    for thread in threads:
        thread.start()
    try:
        # THEN the results queue's batch is delivered while the ingest handler still runs
        assert counted.wait(5)
        assert not release.is_set()
    finally:
        release.set()
        stop.set()
        for thread in threads:
            thread.join(10)
    assert _queue_bodies("crowd-dev-ingest") == _queue_bodies("crowd-dev-results") == []


def test_a_queue_with_a_maximum_concurrency_has_that_many_batches_handled_at_once(
        outputs: dict[str, str]) -> None:
    # GIVEN 30 messages on the results queue, whose event source takes batches of 10 and
    # declares a maximum concurrency of 3, and a handler that waits until 3 batches are in it
    for n in range(30):
        _send("crowd-dev-results", {"n": n})
    app = type("App", (), {"event_sources": [type("Source", (), {
        "queue": "crowd-dev-results", "batch_size": 10, "maximum_concurrency": 3})()]})()
    all_in = threading.Barrier(3, timeout=10)
    seen: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        """Record the batch, then wait for two others to be handled beside it."""
        seen.extend(json.loads(r["body"])["n"] for r in event["Records"])
        all_in.wait()

    pump = SqsPump(boto3.client("sqs"), {"crowd-dev-results": handler},
                   batch_sizes=sqs_batch_sizes(app), concurrency=sqs_concurrency(app))
    stop = threading.Event()
    threads = [threading.Thread(target=pump.run_forever, args=(stop, 0.05),
                                kwargs={"queues": ["crowd-dev-results"]})
               for _ in range(pump.concurrency["crowd-dev-results"])]

    # WHEN the queue is pumped by as many threads as its concurrency
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(seen) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)

    # THEN three batches were in the handler at once (the barrier let them through, none
    # broke it), each message was handled once, and the queue is empty
    assert not all_in.broken
    assert sorted(seen) == list(range(30))
    assert _queue_bodies("crowd-dev-results") == []


def test_a_pump_gives_a_queue_without_a_declared_concurrency_one_batch_at_a_time(
        outputs: dict[str, str]) -> None:
    # GIVEN an app whose results queue declares no maximum concurrency
    app = type("App", (), {"event_sources": [type("Source", (), {
        "queue": "crowd-dev-results", "batch_size": 10, "maximum_concurrency": None})()]})()
    # WHEN a pump is made from it
    pump = SqsPump(boto3.client("sqs"), {"crowd-dev-results": lambda event, context: None},
                   concurrency=sqs_concurrency(app))
    # THEN the queue is pumped one batch at a time
    assert sqs_concurrency(app) == {}
    assert pump.concurrency == {"crowd-dev-results": 1}


def test_message_a_handler_keeps_failing_ends_in_the_dlq_after_max_receives(outputs: dict[str, str]) -> None:
    # GIVEN a message on the results queue and a handler that always raises
    _send("crowd-dev-results", {"assignment_id": "a-1"})
    receive_counts: list[str] = []

    def broken(event: dict[str, Any], context: Any) -> None:
        """Record the receive counts, then fail like a buggy consumer."""
        receive_counts.extend(r["attributes"]["ApproximateReceiveCount"] for r in event["Records"])
        raise RuntimeError("handler bug")

    pump = SqsPump(boto3.client("sqs"), {"crowd-dev-results": broken})

    # WHEN the pump drains the queues
    pump.drain()

    # THEN the handler got it maxReceiveCount (5) times, then SQS moved it to the DLQ
    assert receive_counts == ["1", "2", "3", "4", "5"]
    assert _queue_bodies("crowd-dev-results") == []
    assert _queue_bodies("crowd-dev-results-dlq") == [json.dumps({"assignment_id": "a-1"})]


# ------------------------------------------------------------ Step Functions


def test_aggregation_passes_data_from_stage_to_stage_through_the_map(
    outputs: dict[str, str], stages: StageRecorder
) -> None:
    # GIVEN the real state machine with stub stage functions routed in-process
    # WHEN one job round of 3 shards is aggregated, at most 2 shards loaded per call
    execution = run_aggregation(outputs, "job-7", 2)

    # THEN it succeeds with MarkDone's result
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert json.loads(execution["output"]) == {"job_id": "job-7", "round": 2, "state": "done"}

    # AND LoadAnswers ran again with its own output while it said `more`
    first, second = stages.calls["load_answers"]
    assert first == {"job_id": "job-7", "round": 2}
    assert (second["shard_count"], second["more"], second["after"]) == (2, True, "item-2")
    # AND FitModel got the last load's output; each listed shard went to aggregate_shard
    (fit_input,) = stages.calls["fit_model"]
    assert (fit_input["shard_count"], fit_input["more"]) == (3, False)
    assert sorted(e["shard"] for e in stages.calls["aggregate_shard"]) == [0, 1, 2]
    assert stages.calls["aggregate_shard"][0].keys() == {"job_id", "round", "shard", "key", "posteriors_key"}
    # AND Publish got FitModel's output, the Map's results left out of the state
    (publish_input,) = stages.calls["publish_results"]
    assert (publish_input["shard_count"], publish_input["distributed"]) == (3, False)
    assert "aggregated" not in publish_input and len(publish_input["shards"]) == 3

    # AND MarkDone got Publish's output unwrapped (no Lambda `Payload` envelope)
    assert stages.calls["mark_done"] == [
        {"job_id": "job-7", "round": 2, "results_key": "results/job-7/2.jsonl", "count": 33}
    ]
    assert stages.calls["mark_failed"] == []


def test_a_big_round_runs_its_shards_in_a_distributed_map_read_from_the_s3_manifest(
    outputs: dict[str, str], stages: StageRecorder
) -> None:
    # GIVEN a round of 5 shards that FitModel lists only in the S3 manifest
    stages.shards, stages.distributed = 5, True

    # WHEN it is aggregated
    execution = run_aggregation(outputs, "job-8", 1)

    # THEN every shard of the manifest went to aggregate_shard (as child executions)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert sorted(e["shard"] for e in stages.calls["aggregate_shard"]) == [0, 1, 2, 3, 4]
    assert {e["posteriors_key"] for e in stages.calls["aggregate_shard"]} == {
        f"jobs/job-8/rounds/1/posteriors/{n:05d}.json" for n in range(5)}
    # AND the state never carried the shard list; Publish and MarkDone still ran once
    (publish_input,) = stages.calls["publish_results"]
    assert publish_input["shards"] == [] and publish_input["distributed"] is True
    assert [c["count"] for c in stages.calls["mark_done"]] == [sum(range(10, 15))]


def test_transient_error_is_retried(outputs: dict[str, str], stages: StageRecorder, instant_retries: None) -> None:
    # GIVEN load_answers fails once with TransientError, then works
    stages.fail("load_answers", TransientError("throttled"), times=1)

    # WHEN the round is aggregated
    execution = run_aggregation(outputs)

    # THEN the task was retried and the execution succeeded without MarkFailed
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    retried, again, continued = stages.calls["load_answers"]
    assert retried == again == {"job_id": "job-1", "round": 1}
    assert continued["shard_count"] == 2
    assert len(stages.calls["mark_done"]) == 1
    assert stages.calls["mark_failed"] == []


@pytest.mark.parametrize("stage", ["load_answers", "fit_model", "aggregate_shard", "publish_results", "mark_done"])
def test_non_retryable_error_in_any_stage_marks_the_round_failed(
    outputs: dict[str, str], stages: StageRecorder, instant_retries: None, stage: str
) -> None:
    # GIVEN one stage always raises ValueError (not in the Retry list)
    stages.fail(stage, ValueError(f"bad data in {stage}"))

    # WHEN the round is aggregated
    execution = run_aggregation(outputs, "job-9", 3)

    # THEN the execution FAILED with the stage's error, the stage was not retried,
    # and MarkFailed got the job and round from the execution input plus the error
    assert execution["status"] == "FAILED"
    assert execution["error"] == "ValueError"
    assert json.loads(execution["cause"])["errorMessage"] == f"bad data in {stage}"
    if stage != "aggregate_shard":
        assert len(stages.calls[stage]) == 1
    (failed_input,) = stages.calls["mark_failed"]
    assert failed_input["job_id"] == "job-9"
    assert failed_input["round"] == 3
    assert failed_input["error"] == "ValueError"
    assert json.loads(failed_input["cause"])["errorType"] == "ValueError"
    if stage != "mark_done":
        assert stages.calls["mark_done"] == []


def test_transient_error_that_persists_exhausts_retries_then_marks_failed(
    outputs: dict[str, str], stages: StageRecorder, instant_retries: None
) -> None:
    # GIVEN publish_results always raises TransientError
    stages.fail("publish_results", TransientError("still down"))

    # WHEN the round is aggregated
    execution = run_aggregation(outputs)

    # THEN it was tried 1 + MaxAttempts (3) times, then the round was marked failed
    assert execution["status"] == "FAILED"
    assert execution["error"] == "TransientError"
    assert len(stages.calls["publish_results"]) == 4
    assert [c["error"] for c in stages.calls["mark_failed"]] == ["TransientError"]


# -------------------------------------------------------------------- shims


def test_routed_function_invoked_directly_returns_the_handler_result_or_a_function_error(aws: None) -> None:
    # GIVEN the stage functions routed to handlers that echo or raise
    lam = boto3.client("lambda")

    def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Return the event and what the context says."""
        return {"echo": event, "fn": context.function_name, "ms_left": context.get_remaining_time_in_millis() > 0}

    def boom(event: dict[str, Any], context: Any) -> None:
        """Fail with a retryable error."""
        raise TransientError("try later")

    with moto_shims.routed_stage_functions(lam, boto3.client("iam"), {"load_answers": echo, "mark_done": boom}):
        # WHEN they are invoked through the Lambda API
        ok = lam.invoke(FunctionName="crowd-dev-load_answers", Payload=json.dumps({"a": 1}))
        err = lam.invoke(FunctionName="crowd-dev-mark_done", Payload=b"{}")

        # THEN the result is the handler's JSON, and an exception is a function error named after its class
        assert json.loads(ok["Payload"].read()) == {"echo": {"a": 1}, "fn": "crowd-dev-load_answers", "ms_left": True}
        assert "FunctionError" not in ok
        assert err["FunctionError"]
        payload = json.loads(err["Payload"].read())
        assert payload["errorType"] == "TransientError"
        assert payload["errorMessage"] == "try later"

    # AND once the block ends moto's own invocation is back
    from moto.awslambda.models import LambdaFunction

    assert LambdaFunction._invoke_lambda.__module__ == "moto.awslambda.models"


def test_shims_are_idempotent() -> None:
    # GIVEN the shims installed
    moto_shims.install_all()
    from moto.dynamodb.models import DynamoDBBackend

    put_item = DynamoDBBackend.put_item

    # WHEN they are installed again
    moto_shims.install_all()

    # THEN the methods are wrapped once, not twice
    assert DynamoDBBackend.put_item is put_item
    assert not getattr(put_item.__wrapped__, "__crowd_dynamodb_locked__", False)  # type: ignore[attr-defined]


def test_concurrent_transactional_claims_have_exactly_one_winner(outputs: dict[str, str]) -> None:
    # GIVEN 8 threads that each try to claim the same free slot with a conditional transaction
    ddb = boto3.client("dynamodb")
    winners_per_round: list[int] = []
    race = f"race-{uuid.uuid4().hex[:8]}"  # the module's stack is shared: this test's own key

    def claim(slot: str, worker: str, wins: list[str], start: threading.Barrier) -> None:
        """Lease the slot and record a companion write, atomically."""
        start.wait()
        try:
            ddb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": "crowd-dev-items",
                            "Key": {"job_id": {"S": race}, "item_id": {"S": slot}},
                            "UpdateExpression": "SET lease_owner = :w",
                            "ConditionExpression": "attribute_not_exists(lease_owner)",
                            "ExpressionAttributeValues": {":w": {"S": worker}},
                        }
                    },
                    {"Put": {"TableName": "crowd-dev-results", "Item": {"job_id": {"S": race}, "item_id": {"S": f"{slot}#{worker}"}}}},
                ]
            )
            wins.append(worker)
        except ddb.exceptions.TransactionCanceledException:
            pass

    # WHEN they race, round after round
    for n in range(15):
        slot, start = f"slot-{n}", threading.Barrier(8)
        wins: list[str] = []
        threads = [threading.Thread(target=claim, args=(slot, f"w{i}", wins, start)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners_per_round.append(len(wins))
        # THEN the slot is held by the one winner, whose companion write survived the losers' rollbacks
        item = ddb.get_item(TableName="crowd-dev-items", Key={"job_id": {"S": race}, "item_id": {"S": slot}})["Item"]
        assert [item["lease_owner"]["S"]] == wins
        companion = ddb.get_item(TableName="crowd-dev-results", Key={"job_id": {"S": race}, "item_id": {"S": f"{slot}#{wins[0]}"}})
        assert "Item" in companion
    assert winners_per_round == [1] * 15


def test_executions_started_without_a_name_get_distinct_names(outputs: dict[str, str], stages: StageRecorder) -> None:
    # GIVEN the aggregation state machine
    sfn = boto3.client("stepfunctions")

    # WHEN two executions are started without a name
    arns = [
        sfn.start_execution(stateMachineArn=outputs["AggregationStateMachineArn"], input=json.dumps({"job_id": j, "round": 1}))["executionArn"]
        for j in ("job-a", "job-b")
    ]

    # THEN both start and run, each under its own generated name
    assert arns[0] != arns[1]
    assert [wait_for_execution(sfn, arn)["status"] for arn in arns] == ["SUCCEEDED", "SUCCEEDED"]


def test_gateway_responses_speak_the_error_shape_and_a_second_run_changes_nothing(aws: None) -> None:
    from infra.gateway_responses import RESPONSES, ensure_gateway_responses

    # GIVEN a REST API with a deployed stage, as `chalice deploy` leaves it
    apigateway = boto3.client("apigateway")
    api_id = apigateway.create_rest_api(name="crowd-gateway-responses")["id"]
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    apigateway.put_method(restApiId=api_id, resourceId=root, httpMethod="GET",
                          authorizationType="NONE")
    apigateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
    apigateway.create_deployment(restApiId=api_id, stageName="api")

    def deployments() -> int:
        return len(apigateway.get_deployments(restApiId=api_id)["items"])

    # WHEN the deploy step sets the gateway responses
    assert set(ensure_gateway_responses(apigateway, api_id, "api")) == set(RESPONSES)
    # THEN an unknown route is a 404 in the error shape, throttling a 429, a bad key a 403
    # naming the header, and the rest keep API Gateway's status with its message
    got = {r["responseType"]: r for r in apigateway.get_gateway_responses(restApiId=api_id)["items"]}
    missing = got["MISSING_AUTHENTICATION_TOKEN"]
    assert missing["statusCode"] == "404"
    assert json.loads(missing["responseTemplates"]["application/json"]) == {
        "error": "not_found", "message": "no such route: check the method and the path"}
    assert got["THROTTLED"]["statusCode"] == got["QUOTA_EXCEEDED"]["statusCode"] == "429"
    assert '"error": "rate_limited"' in got["THROTTLED"]["responseTemplates"]["application/json"]
    key = json.loads(got["INVALID_API_KEY"]["responseTemplates"]["application/json"])
    assert got["INVALID_API_KEY"]["statusCode"] == "403" and key["field"] == "X-Api-Key"
    assert key["error"] == "invalid_credentials"
    assert "'Content-Type: application/json'" in \
        got["UNSUPPORTED_MEDIA_TYPE"]["responseTemplates"]["application/json"]
    assert "statusCode" not in got["DEFAULT_4XX"]
    assert got["DEFAULT_4XX"]["responseTemplates"]["application/json"] == \
        '{"error": "invalid_request", "message": $context.error.messageString}'
    # AND the stage was deployed again so it serves them
    assert deployments() == 2
    # WHEN the step runs again THEN nothing is set and nothing deployed
    assert ensure_gateway_responses(apigateway, api_id, "api") == []
    assert deployments() == 2
    # AND one changed by hand is put back
    apigateway.put_gateway_response(restApiId=api_id, responseType="THROTTLED", statusCode="429",
                                    responseTemplates={"application/json": '{"message": "x"}'})
    assert ensure_gateway_responses(apigateway, api_id, "api") == ["THROTTLED"]
    assert deployments() == 3


class _RecordingStacks:
    """A CloudFormation client holding one deployed stack: it records each update's items
    table indexes and takes the update's template as the stack's own."""

    class exceptions:  # noqa: N801 - the name botocore gives it
        ClientError = RuntimeError

    def __init__(self, template: dict[str, Any]) -> None:
        self.template = template
        self.updates: list[list[str]] = []

    def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803
        return {"Stacks": [{"StackStatus": "UPDATE_COMPLETE", "Outputs": []}]}

    def get_template(self, StackName: str) -> dict[str, Any]:  # noqa: N803
        return {"TemplateBody": json.dumps(self.template)}

    def update_stack(self, **params: Any) -> None:
        self.template = json.loads(params["TemplateBody"])
        self.updates.append(sorted(
            index["IndexName"] for index in
            self.template["Resources"]["ItemsTable"]["Properties"]["GlobalSecondaryIndexes"]))

    def get_waiter(self, name: str) -> Any:
        return type("Waiter", (), {"wait": lambda self, **kwargs: None})()


def test_a_stack_with_the_old_open_items_index_moves_to_open_slots_in_two_updates() -> None:
    # GIVEN a stack deployed with the layout before: the items table's open_items index
    # (whole items) and no open_slots
    old = json.loads(render_template("crowd", "dev"))
    items = old["Resources"]["ItemsTable"]["Properties"]
    items["GlobalSecondaryIndexes"] = [dict(index, IndexName="open_items",
                                            Projection={"ProjectionType": "ALL"})
                                       for index in items["GlobalSecondaryIndexes"]]
    cfn = _RecordingStacks(old)
    # WHEN it is deployed
    deploy_stack(cfn, STACK, "crowd", "dev")
    # THEN the first update adds open_slots beside open_items, the second deletes open_items
    # (CloudFormation adds or deletes one index of a table per update)
    assert cfn.updates == [["open_items", "open_slots"], ["open_slots"]]
    # AND a stack already moved is updated once
    deploy_stack(cfn, STACK, "crowd", "dev")
    assert cfn.updates[2:] == [["open_slots"]]

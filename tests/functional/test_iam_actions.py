"""Every AWS action the code performs is granted by the stage policy, and nothing more."""
from dataclasses import replace

import boto3
import requests

from chalicelib import deps
from chalicelib.adapters import aws
from chalicelib.adapters.models import ALL_MODELS
from chalicelib.domain.mturk_notifications import Spec
from chalicelib.handlers import mturk_events, requester_keys, rounds
from infra.deploy import render_policy
from tests.functional.marketplace import Api

TRANSACTION_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                       "ConditionCheck": "ConditionCheckItem"}
# What Lambda's SQS event source does with the consumers' role (not the code).
EVENT_SOURCE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
# Only on a failure path; none at the moment (a streamed upload that breaks half-way aborts,
# as a client's DELETE /uploads/{id} does below).
FAILURE_PATH_ACTIONS: set = set()
# Multipart calls are authorised as s3:PutObject, HeadObject as s3:GetObject, ListParts as
# s3:ListMultipartUploadParts.
S3_PUT_CALLS = {"CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}
S3_GET_CALLS = {"HeadObject"}
S3_RENAMED = {"ListParts": "s3:ListMultipartUploadParts"}
IAM_PREFIX = {"dynamodb": "dynamodb", "sqs": "sqs", "s3": "s3", "stepfunctions": "states",
              "events": "events", "kms": "kms", "sns": "sns"}
# API Gateway's management calls are authorised by HTTP method.
APIGATEWAY_ACTIONS = {"CreateApiKey": "POST", "CreateUsagePlanKey": "POST",
                      "GetApiKeys": "GET", "DeleteApiKey": "DELETE"}


def _record_actions(used: set) -> None:
    def before_call(model, params, **_):
        service = model.service_model.service_name
        if service == "apigateway":
            used.add(f"apigateway:{APIGATEWAY_ACTIONS[model.name]}")
            return
        prefix = IAM_PREFIX[service]
        if model.name == "TransactWriteItems":
            for entry in params["TransactItems"]:
                used.update(f"dynamodb:{TRANSACTION_ACTIONS[kind]}" for kind in entry)
        elif model.name == "SendMessageBatch":
            used.add("sqs:SendMessage")
        elif model.name in S3_PUT_CALLS:
            used.add("s3:PutObject")
        elif model.name in S3_GET_CALLS:
            used.add("s3:GetObject")
        elif model.name in S3_RENAMED:
            used.add(S3_RENAMED[model.name])
        else:
            used.add(f"{prefix}:{model.name}")

    deps.platform()
    for model in ALL_MODELS:
        model._get_connection().connection.client.meta.events.register("before-parameter-build.*.*", before_call)
    for client in list(aws._clients.values()):
        client.meta.events.register("before-parameter-build.*.*", before_call)


def test_the_policy_grants_exactly_the_actions_the_code_performs(stack, monkeypatch):
    # GIVEN every AWS call the app makes is recorded (the SNS client, made at the first
    # notification, made now so that its calls are seen)
    used: set = set()
    aws.client("sns", "us-east-1")
    _record_actions(used)
    # WHEN a whole job runs: quote, post, ingest, lease, release, submit, count, aggregate,
    # results, a cancel, a sweep, and a post whose items cannot be queued
    api = Api(stack)
    job = api.job(items=2, redundancy=1)
    token = api.worker()
    _, task = api.lease(token)
    api.as_worker(token, "POST", f"/assignments/{task['assignment_id']}/release")
    for n in range(2):
        other = api.worker(f"w{n}")
        _, task = api.lease(other)
        assert api.submit(other, task["assignment_id"], {"label": "pos"})[0] == 200
    assert stack.wait_for_state(job["job_id"], api.key, ("done",))["state"] == "done"
    assert api.as_client("GET", f"/jobs/{job['job_id']}/results")[0] == 200
    assert api.as_client("GET", f"/jobs/{job['job_id']}/results/download")[0] == 200
    assert api.as_client("GET", f"/jobs/{job['job_id']}/results/download?format=csv")[0] == 200
    assert api.as_client("GET", "/jobs")[0] == 200
    second = api.job(items=1, redundancy=1)
    assert api.as_client("POST", f"/jobs/{second['job_id']}/cancel")[0] == 200
    rounds.finalize_due_jobs(deps.platform())
    # an item file uploaded to its presigned URL, a job posted naming it and ingested
    body = b'{"data": {"n": 1}}\n{"data": {"n": 2}}\n'
    _, target = api.as_client("POST", "/uploads", {"format": "jsonl", "bytes": len(body)})
    assert requests.put(target["url"], data=body, headers=target["headers"],
                        timeout=30).status_code == 200
    _, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 2})
    status, uploaded = api.as_client("POST", "/jobs", {
        "quote_id": quote["quote_id"], "instructions": "x", "answer_schema": {"labels": ["a", "b"]},
        "items_from": {"upload_id": target["upload_id"]}})
    assert status == 202, uploaded
    stack.pump.drain()
    assert api.as_client("GET", f"/jobs/{uploaded['job_id']}/ingest")[1]["state"] == "active"
    # a file uploaded in parts: its parts listed, completed; another one aborted
    _, target = api.as_client("POST", "/uploads", {"format": "jsonl", "bytes": len(body),
                                                   "multipart": True})
    assert requests.put(target["part_urls"][0]["url"], data=body, timeout=30).status_code == 200
    assert api.as_client("GET", f"/uploads/{target['upload_id']}")[1]["missing"] == []
    assert api.as_client("POST", f"/uploads/{target['upload_id']}/parts",
                         {"parts": [1]})[0] == 200
    assert api.as_client("POST", f"/uploads/{target['upload_id']}/complete")[0] == 200
    _, target = api.as_client("POST", "/uploads", {"format": "csv", "bytes": 10,
                                                   "multipart": True})
    assert api.as_client("DELETE", f"/uploads/{target['upload_id']}")[0] == 200
    _, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 1})
    monkeypatch.setattr(deps.platform().ingest_queue, "send_many",
                        lambda messages: (_ for _ in ()).throw(RuntimeError("down")))
    status, _ = api.as_client("POST", "/jobs", {"quote_id": quote["quote_id"], "instructions": "x",
                                                "answer_schema": {"labels": ["a", "b"]},
                                                "items": [{"data": {"n": 1}}]})
    assert status == 503
    # and a client key rotated (the old key leaves the usage plan, the new one joins it)
    monkeypatch.undo()
    status, rotated = api.as_client("POST", "/keys/rotate")
    assert status == 200
    # and a requester key made (its secret sealed) and opened to verify a signature
    status, requester = api.as_client("POST", "/requester-keys", key=rotated["api_key"])
    assert status == 201
    assert requester_keys.key_for(deps.platform(), requester["access_key_id"]) is not None
    # and a HIT's event published to its requester's SNS topic (an MTurk notification)
    p = deps.platform()
    topic = boto3.client("sns").create_topic(Name="lab-topic")["TopicArn"]
    hit = p.jobs.get_job(job["job_id"])
    p.mturk.put_new(f"mturk#notify#{hit.client_id}", "HT1",
                    Spec(topic, "SNS", "2006-05-05", ("HITCreated",)).to_body(), p.now())
    mturk_events.emit(p, replace(hit, mturk={"hit_type_id": "HT1"}), "HITCreated")
    stack.pump.drain()
    # THEN the policy grants exactly those actions (plus logging, the SQS event source's and
    # the failure-path ones)
    granted = {action for statement in render_policy("dev")["Statement"]
               if statement["Sid"] != "Logs" for action in statement["Action"]}
    assert used <= granted, used - granted
    unexercised = EVENT_SOURCE_ACTIONS | FAILURE_PATH_ACTIONS
    assert granted - unexercised == used, (granted - unexercised) - used

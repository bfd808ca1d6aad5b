"""The operator's deploy path on a moto server: deploy, deploy again, check drift, destroy.

`chalice deploy` runs as a subprocess on a temporary copy of the project, so the repo's
`.chalice/deployed/` is never touched. Packaging downloads the Lambda wheels from PyPI.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = {"load_answers", "aggregate_shard", "publish_results", "mark_done", "mark_failed",
             "ingest_items", "count_answers", "deliver_webhooks", "finalize_due_jobs"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def moto_server(monkeypatch):
    """A moto server in this process (with the project's shims), and an env pointing at it."""
    from moto.server import ThreadedMotoServer

    from infra import moto_shims

    port = _free_port()
    monkeypatch.setenv("MOTO_PORT", str(port))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    moto_shims.install_all()
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)
    yield endpoint, env
    server.stop()


def _copy_project(target: Path) -> Path:
    for name in ("app.py", "requirements.txt"):
        shutil.copy(ROOT / name, target / name)
    for name in ("chalicelib", "infra"):
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / ".chalice", target / ".chalice",
                    ignore=shutil.ignore_patterns("deployed", "deployments"))
    return target


def _operator(project: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra.deploy", *args, "--stage", "dev",
                           "--project-dir", str(project)], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)


def _inventory(endpoint: str) -> dict:
    def client(name):
        return boto3.client(name, endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    functions = {f["FunctionName"] for f in client("lambda").list_functions()["Functions"]}
    mappings = client("lambda").list_event_source_mappings()["EventSourceMappings"]
    apis = client("apigateway").get_rest_apis()["items"]
    routes = set()
    for api in apis:
        for resource in client("apigateway").get_resources(restApiId=api["id"])["items"]:
            routes.update(f"{method} {resource['path']}" for method in resource.get("resourceMethods", {}))
    sqs = client("sqs")
    redrives = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        if "RedrivePolicy" in attributes:
            redrives[url.rsplit("/", 1)[-1]] = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].split(":")[-1]
    machines = client("stepfunctions").list_state_machines()["stateMachines"]
    definition = (client("stepfunctions").describe_state_machine(
        stateMachineArn=machines[0]["stateMachineArn"])["definition"] if machines else "")
    return {
        "functions": functions,
        "mappings": sorted((m["FunctionArn"].split(":")[-1], m["EventSourceArn"].split(":")[-1])
                           for m in mappings),
        "apis": [api["name"] for api in apis],
        "usage_plans": [(plan["name"], [(s["apiId"], s["stage"]) for s in plan.get("apiStages", [])],
                         plan.get("throttle"))
                        for plan in client("apigateway").get_usage_plans()["items"]],
        "api_ids": [api["id"] for api in apis],
        "gateway_responses": {api["id"]: {
            r["responseType"]: (r.get("statusCode"), r.get("responseTemplates"))
            for r in client("apigateway").get_gateway_responses(restApiId=api["id"])["items"]}
            for api in apis},
        "routes": routes,
        "tables": set(client("dynamodb").list_tables()["TableNames"]),
        "queues": sorted(url.rsplit("/", 1)[-1] for url in client("sqs").list_queues().get("QueueUrls", [])),
        "definition": definition,
        "redrives": redrives,
        "stacks": [s["StackName"] for s in client("cloudformation").list_stacks()["StackSummaries"]
                   if s["StackStatus"] != "DELETE_COMPLETE"],
    }


def test_deploy_is_complete_idempotent_checkable_and_destroyable(moto_server, tmp_path):
    endpoint, env = moto_server
    project = _copy_project(tmp_path)
    # WHEN an operator deploys the dev stage
    result = _operator(project, env, "deploy")
    assert result.returncode == 0, result.stdout + result.stderr
    first = _inventory(endpoint)
    # THEN every function, route, SQS mapping, table, queue and the state machine exist
    assert {f"crowd-dev-{name}" for name in FUNCTIONS} | {"crowd-dev"} <= first["functions"]
    assert first["mappings"] == [("crowd-dev-count_answers", "crowd-dev-results"),
                                 ("crowd-dev-deliver_webhooks", "crowd-dev-webhooks"),
                                 ("crowd-dev-ingest_items", "crowd-dev-ingest")]
    assert first["apis"] == ["crowd"]
    # AND the usage plan caps the API's stage, and the stage knows the plan's id
    ((plan_name, stages, throttle),) = first["usage_plans"]
    assert plan_name == "crowd-dev-clients" and stages == [(first["api_ids"][0], "api")]
    assert throttle == {"rateLimit": 20.0, "burstLimit": 40}
    # AND API Gateway's own answers (an unknown route, a bad key, throttling...) are set in
    # the error shape
    from infra.gateway_responses import RESPONSES, template

    responses = first["gateway_responses"][first["api_ids"][0]]
    assert responses == {kind: (status, {"application/json": template(body)})
                         for kind, (status, body) in RESPONSES.items()}
    assert responses["MISSING_AUTHENTICATION_TOKEN"][0] == "404"
    assert "gateway responses set" in result.stdout
    assert {"POST /quotes", "POST /jobs", "GET /jobs/{job_id}", "GET /tasks/next",
            "POST /assignments/{assignment_id}/submit"} <= first["routes"]
    assert {f"crowd-dev-{t}" for t in ("accounts", "credentials", "quotes", "jobs", "items",
                                       "results", "worker-stats", "ledger", "catalog",
                                       "idempotency", "webhooks")} <= first["tables"]
    assert first["queues"] == ["crowd-dev-ingest", "crowd-dev-ingest-dlq", "crowd-dev-results",
                               "crowd-dev-results-dlq", "crowd-dev-webhooks",
                               "crowd-dev-webhooks-dlq"]
    assert first["redrives"] == {"crowd-dev-ingest": "crowd-dev-ingest-dlq",
                                 "crowd-dev-results": "crowd-dev-results-dlq",
                                 "crowd-dev-webhooks": "crowd-dev-webhooks-dlq"}
    for stage_function in ("load_answers", "aggregate_shard", "publish_results", "mark_done"):
        assert f"function:crowd-dev-{stage_function}" in first["definition"]
    # AND the stage now points at the stack
    config = json.loads((project / ".chalice" / "config.json").read_text())
    env_vars = config["stages"]["dev"]["environment_variables"]
    assert env_vars["AGGREGATION_STATE_MACHINE_ARN"].endswith(":stateMachine:crowd-dev-aggregation")
    assert env_vars["USAGE_PLAN_ID"]
    assert (project / ".chalice" / "deployed" / "dev.json").exists()
    assert not (ROOT / ".chalice" / "deployed").exists()
    # WHEN it deploys again THEN it succeeds and nothing new appears
    again = _operator(project, env, "deploy")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _inventory(endpoint) == first
    assert "gateway responses set" not in again.stdout
    # AND check finds no drift, until config.json is edited by hand
    assert _operator(project, env, "check").returncode == 0
    assert _operator(project, env, "deploy", "--check").returncode == 0
    config["stages"]["dev"]["environment_variables"]["JOBS_TABLE"] = "crowd-dev-other"
    (project / ".chalice" / "config.json").write_text(json.dumps(config, indent=2))
    drifted = _operator(project, env, "check")
    assert drifted.returncode == 1 and "JOBS_TABLE" in drifted.stdout
    # WHEN it destroys the stage THEN nothing is left
    refused = _operator(project, env, "destroy")
    assert refused.returncode == 2 and "--delete-data" in refused.stderr
    gone = _operator(project, env, "destroy", "--delete-data")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    left = _inventory(endpoint)
    assert not (left["functions"] & first["functions"]) and left["apis"] == []
    assert left["tables"] == set() and left["queues"] == [] and left["stacks"] == []
    assert left["usage_plans"] == []

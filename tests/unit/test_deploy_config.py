"""Static checks of what gets deployed: timeouts, environment, IAM policies, the template."""
import json
import re
from pathlib import Path

import yaml

from chalicelib.domain.keys import upload_key
from chalicelib.settings import _REQUIRED
from infra.deploy import lint, render_policy
from infra.stack import APP_ENVIRONMENT_OUTPUTS

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
TEMPLATE = yaml.safe_load((ROOT / "infra" / "template.yaml").read_text())
CONSUMERS = {"ingest_items": "IngestQueue", "count_answers": "ResultsQueue",
             "deliver_webhooks": "WebhookQueue"}
OPTIONAL = {"OPEN_WORKER_REGISTRATION", "CACHE_SECONDS", "AWS_REGION", "AWS_DEFAULT_REGION",
            "WEBHOOK_RETRY_BASE_SECONDS", "WEBHOOK_RETRY_MAX_SECONDS", "WEBHOOK_WINDOW_SECONDS",
            "WEBHOOK_ALLOW_INSECURE", "USAGE_PLAN_ID"}


def _timeout(stage: str, function: str) -> int:
    functions = CONFIG["stages"][stage].get("lambda_functions", {})
    return functions.get(function, {}).get(
        "lambda_timeout", CONFIG["stages"][stage].get("lambda_timeout", CONFIG["lambda_timeout"]))


def test_every_queue_outlasts_six_consumer_timeouts_in_every_stage():
    for stage in CONFIG["stages"]:
        for function, queue in CONSUMERS.items():
            visibility = TEMPLATE["Resources"][queue]["Properties"]["VisibilityTimeout"]
            assert visibility >= 6 * _timeout(stage, function), (stage, function)


def test_every_variable_the_code_reads_is_set_in_every_stage():
    # GIVEN every environment variable named in chalicelib and app.py
    read = set()
    for path in [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]:
        read |= set(re.findall(r'"([A-Z][A-Z0-9_]{3,})"', path.read_text()))
    read = {name for name in read if name.endswith(("_TABLE", "_QUEUE_NAME", "_BUS_NAME", "_BUCKET", "_ARN"))
            or name in OPTIONAL}
    required = set(_REQUIRED.values())
    assert required <= read
    # THEN each stage sets it in config.json, or `make deploy` writes it from the stack
    for stage, settings in CONFIG["stages"].items():
        provided = set(settings.get("environment_variables", {})) | set(APP_ENVIRONMENT_OUTPUTS)
        assert read - OPTIONAL <= provided, (stage, read - OPTIONAL - provided)


def test_each_stage_has_its_least_privilege_policy():
    for stage, settings in CONFIG["stages"].items():
        policy = json.loads((ROOT / ".chalice" / settings["iam_policy_file"]).read_text())
        assert policy == render_policy(stage), f"run: python -m infra.deploy policy --stage {stage}"
        for statement in policy["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert all("*" not in action for action in actions)
            if statement["Sid"] not in ("Logs", "ClientKeys"):
                assert all(f"crowd-{stage}-" in resource for resource in resources)


def test_the_template_has_alarms_on_dead_letters_and_failed_executions():
    alarms = {name: r["Properties"] for name, r in TEMPLATE["Resources"].items()
              if r["Type"] == "AWS::CloudWatch::Alarm"}
    metrics = sorted(a["MetricName"] for a in alarms.values())
    assert metrics == ["ApproximateNumberOfMessagesVisible"] * 3 + ["ExecutionsFailed"]


def test_the_template_is_clean_under_cfn_lint():
    for stage in CONFIG["stages"]:
        lint("crowd", stage)  # raises DeployError with the findings


def _asl_tasks(states):
    for name, state in states.items():
        if state["Type"] == "Task":
            yield name, state
        if state["Type"] == "Map":
            yield from _asl_tasks(state["ItemProcessor"]["States"])


def test_step_functions_waits_longer_than_each_stage_function_may_run():
    # GIVEN each Task of the state machine and the Lambda function its ARN names
    asl = json.loads((ROOT / "infra" / "aggregation.asl.json").read_text())
    arn_to_function = {
        name: value["Fn::Sub"].rsplit("-", 1)[-1]
        for name, value in TEMPLATE["Resources"]["AggregationStateMachine"]["Properties"]
        ["DefinitionString"]["Fn::Sub"][1].items() if name.endswith("Arn")}
    tasks = dict(_asl_tasks(asl["States"]))
    assert {"LoadAnswers", "FitModel", "AggregateShard", "Publish", "MarkDone", "MarkFailed"} <= set(tasks)
    for stage in CONFIG["stages"]:
        for name, task in tasks.items():
            function = arn_to_function[task["Resource"][2:-1]]
            # THEN the Task's timeout outlasts the function's own, so a slow run is not cut
            # short by Step Functions while Lambda would still let it finish
            assert task["TimeoutSeconds"] > _timeout(stage, function), (stage, name, function)


def test_the_results_bucket_aborts_uploads_cut_short_and_expires_item_files():
    # moto's CloudFormation does not apply bucket lifecycle rules, so this is read from the template
    rule, uploads = TEMPLATE["Resources"]["ResultsBucket"]["Properties"][
        "LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    # clients' item files live under uploads/ (chalicelib.domain.keys.upload_key) for a week
    assert upload_key("cli_1", "up_1", "jsonl").startswith(uploads["Prefix"])
    assert (uploads["Status"], uploads["ExpirationInDays"]) == ("Enabled", 7)

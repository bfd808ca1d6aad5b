"""Static checks of what gets deployed: timeouts, environment, log levels, memory sizes, IAM
policies, the template."""
import json
import re
from pathlib import Path

import pytest
import yaml

from chalicelib.domain.keys import upload_key
from chalicelib.settings import _REQUIRED
from infra.deploy import DeployError, lint, render_policy, write_stage_settings
from infra.stack import APP_ENVIRONMENT_OUTPUTS
from infra.stage_settings import (
    LOG_LEVEL_VARIABLE, MEMORY_MB, StageSettings, apply_settings, settings_for,
)

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
            resource = statement.get("Resource", statement.get("NotResource"))
            resources = resource if isinstance(resource, list) else [resource]
            assert all("*" not in action for action in actions)
            if statement["Sid"] == "RequesterKeys":
                # A KMS key's ARN holds no name: the stage's key is found by its tag.
                assert statement["Condition"] == {"StringEquals": {
                    "aws:ResourceTag/crowd-stage": f"crowd-{stage}"}}
            elif statement["Sid"] == "MTurkNotifications":
                # Requesters' topics and queues have their own names: any in the account.
                assert statement["Condition"] == {"StringEquals": {
                    "aws:ResourceAccount": "${aws:PrincipalAccount}"}}
                assert set(actions) == {"sns:Publish", "sqs:SendMessage"}
                # ... except this app's own topics and queues, of every stage
                assert "Resource" not in statement and statement["NotResource"] == [
                    "arn:aws:sns:*:*:crowd-*", "arn:aws:sqs:*:*:crowd-*"]
            elif statement["Sid"] not in ("Logs", "ClientKeys"):
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


def _deployed_functions() -> set[str]:
    """The Lambda functions Chalice deploys: the API's, and each decorated function of app.py."""
    source = (ROOT / "app.py").read_text()
    names = re.findall(r"@app\.(?:on_sqs_message|schedule|lambda_function)\([^\n]*\n"
                       r"(?:@[^\n]*\n)*def (\w+)\(", source)
    return {"api_handler", *names}


def test_each_stage_in_config_json_carries_its_settings():
    for stage in CONFIG["stages"]:
        # THEN config.json is what the stage's settings write into it
        assert apply_settings(CONFIG, stage) == CONFIG, \
            f"run: python -m infra.deploy settings --stage {stage}"
        variables = CONFIG["stages"][stage]["environment_variables"]
        assert variables[LOG_LEVEL_VARIABLE] == settings_for(stage).log_level
    # AND no other variable names a level (powertools reads LOG_LEVEL too, below this one)
    assert "LOG_LEVEL" not in CONFIG.get("environment_variables", {})
    assert all("LOG_LEVEL" not in s.get("environment_variables", {})
               for s in CONFIG["stages"].values())
    # AND prod logs no per-request INFO line; dev shows them
    assert (settings_for("prod").log_level, settings_for("dev").log_level) == ("WARNING", "DEBUG")


def test_every_function_has_its_measured_memory_size_and_no_other_name_is_sized():
    # GIVEN the functions Chalice deploys
    deployed = _deployed_functions()
    assert {"api_handler", "count_answers", "fit_model", "finalize_due_jobs"} <= deployed
    # THEN each has a size of its own, in Lambda's range
    assert set(MEMORY_MB) == deployed
    assert all(128 <= mb <= 10240 for mb in MEMORY_MB.values())
    for stage, settings in CONFIG["stages"].items():
        functions = settings["lambda_functions"]
        # AND config.json names no function that does not exist (Chalice would ignore it)
        assert set(functions) <= deployed, (stage, set(functions) - deployed)
        assert {name: functions[name]["lambda_memory_size"] for name in deployed} == MEMORY_MB


def test_writing_the_stage_settings_changes_config_json_once(tmp_path):
    # GIVEN a project whose config.json has a stale level and sizes
    (tmp_path / ".chalice").mkdir()
    stale = json.loads(json.dumps(CONFIG))
    stale["stages"]["prod"]["environment_variables"][LOG_LEVEL_VARIABLE] = "DEBUG"
    stale["stages"]["prod"]["lambda_functions"]["fit_model"]["lambda_memory_size"] = 3008
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(stale))
    # WHEN the settings are written, twice
    assert write_stage_settings(tmp_path, "prod") is True
    assert write_stage_settings(tmp_path, "prod") is False
    # THEN the stage has its own level and sizes, and its other settings are as they were
    written = json.loads((tmp_path / ".chalice" / "config.json").read_text())
    assert written["stages"]["prod"] == CONFIG["stages"]["prod"]
    with pytest.raises(DeployError):
        write_stage_settings(tmp_path, "qa")


def test_a_stage_setting_names_a_level_powertools_knows():
    with pytest.raises(ValueError):
        StageSettings(log_level="VERBOSE")
    assert settings_for("qa") == StageSettings(log_level="INFO")

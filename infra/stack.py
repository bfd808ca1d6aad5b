"""Render and deploy the data stack (infra/template.yaml + infra/aggregation.asl.json).

The template in the repo is the source of truth. Its state machine carries a
placeholder instead of a definition::

    DefinitionString:
      Fn::Sub:
        - __AGGREGATION_ASL__
        - {LoadAnswersArn: {Fn::Sub: "arn:${AWS::Partition}:lambda:...-load_answers"}, ...}

`render_template()` loads the YAML (long-form intrinsics only, so `yaml.safe_load`
works), puts the compact ASL text in place of the placeholder, and folds the
variable map into the string, leaving the single-string form
`{"Fn::Sub": "<ASL with arn:${AWS::Partition}:lambda:...>"}`. Both forms mean the
same to CloudFormation; the single-string form is used because moto's list-form
Fn::Sub runs `string.Template` over the body, which turns the ASL's `$$` (context
object paths) into `$`. The result is returned as JSON, which CloudFormation
accepts as a template body and cfn-lint reads.

The state machine names the Lambda functions Chalice will create
(`<app>-<stage>-<function>`), so this stack deploys before `chalice deploy`
without a dependency cycle.

CLI: `python -m infra.stack render [--app-name crowd] [--stage dev]` prints the
rendered template; `python -m infra.stack deploy --stage dev` deploys it with the
default boto3 credentials and prints the app environment as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

INFRA_DIR = Path(__file__).resolve().parent
TEMPLATE_PATH = INFRA_DIR / "template.yaml"
ASL_PATH = INFRA_DIR / "aggregation.asl.json"
ASL_PLACEHOLDER = "__AGGREGATION_ASL__"
STATE_MACHINE_LOGICAL_ID = "AggregationStateMachine"

STAGE_FUNCTIONS = ("load_answers", "fit_model", "aggregate_shard", "publish_results", "mark_done", "mark_failed")

# Environment variable the app reads -> stack output that holds its value.
APP_ENVIRONMENT_OUTPUTS: dict[str, str] = {
    "ACCOUNTS_TABLE": "AccountsTableName",
    "CREDENTIALS_TABLE": "CredentialsTableName",
    "QUOTES_TABLE": "QuotesTableName",
    "JOBS_TABLE": "JobsTableName",
    "ITEMS_TABLE": "ItemsTableName",
    "RESULTS_TABLE": "ResultsTableName",
    "WORKER_STATS_TABLE": "WorkerStatsTableName",
    "LEDGER_TABLE": "LedgerTableName",
    "CATALOG_TABLE": "CatalogTableName",
    "IDEMPOTENCY_TABLE": "IdempotencyTableName",
    "WEBHOOKS_TABLE": "WebhooksTableName",
    "WEBHOOK_QUEUE_NAME": "WebhookQueueName",
    "WEBHOOK_DEAD_LETTER_QUEUE_NAME": "WebhookDeadLetterQueueName",
    "EVENT_BUS_NAME": "EventBusName",
    "INGEST_QUEUE_NAME": "IngestQueueName",
    "RESULTS_QUEUE_NAME": "ResultsQueueName",
    "RESULTS_BUCKET": "ResultsBucketName",
    "AGGREGATION_STATE_MACHINE_ARN": "AggregationStateMachineArn",
    "REQUESTER_KEYS_KMS_KEY": "RequesterKeysKmsKeyArn",
}

_NO_UPDATES = "No updates are to be performed"


def stack_name_for(app_name: str = "crowd", stage: str = "dev") -> str:
    """Conventional name of the data stack of one stage, e.g. `crowd-dev-data`."""
    return f"{app_name}-{stage}-data"


# libyaml's safe loader when PyYAML has it: the same dict, read some thirty times faster
# (every local deploy, and every test stack, renders the template).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_template() -> dict[str, Any]:
    """The repo template as a dict (placeholder not yet filled)."""
    return yaml.load(TEMPLATE_PATH.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)


def load_asl() -> dict[str, Any]:
    """The aggregation state machine definition with its `${...Arn}` placeholders."""
    return json.loads(ASL_PATH.read_text(encoding="utf-8"))


def _fold_sub_variables(body: str, variables: Mapping[str, Any]) -> str:
    """Replace `${Name}` in body by each variable's own single-string Fn::Sub text."""
    for name, value in variables.items():
        if isinstance(value, Mapping) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            text = value["Fn::Sub"]
        elif isinstance(value, str):
            # A literal must not be re-read as a substitution.
            text = value.replace("${", "${!")
        else:
            raise ValueError(f"cannot fold Fn::Sub variable {name!r}: {value!r}")
        body = body.replace("${" + name + "}", text)
    leftover = re.findall(r"\$\{([A-Za-z0-9]+Arn)\}", body)
    if leftover:
        raise ValueError(f"state machine placeholders without a value: {sorted(set(leftover))}")
    return body


# An index of an earlier layout, replaced by one of another name with the same keys:
# CloudFormation adds or deletes one index of a table per update, so a stack that has the old
# one is moved in two updates (the first keeps both).
# {(table logical id, old index): (new index, the old index's projection)}
_REPLACED_INDEXES = {("ItemsTable", "open_items"): ("open_slots", {"ProjectionType": "ALL"})}


def _indexes(template: Mapping[str, Any], table: str) -> list[dict[str, Any]]:
    resource = template.get("Resources", {}).get(table, {})
    return list(resource.get("Properties", {}).get("GlobalSecondaryIndexes", []))


def render_template(app_name: str = "crowd", stage: str = "dev",
                    keep: Sequence[tuple[str, str]] = ()) -> str:
    """The deployable template (JSON) with the ASL inlined and parameter defaults set; with
    keep, the replaced indexes named there kept beside their replacements."""
    template = load_template()
    for table, name in keep:
        new, projection = _REPLACED_INDEXES[(table, name)]
        indexes = template["Resources"][table]["Properties"]["GlobalSecondaryIndexes"]
        replacement = next(index for index in indexes if index["IndexName"] == new)
        indexes.append(dict(replacement, IndexName=name, Projection=projection))
    template["Parameters"]["AppName"]["Default"] = app_name
    template["Parameters"]["Stage"]["Default"] = stage
    props = template["Resources"][STATE_MACHINE_LOGICAL_ID]["Properties"]
    sub = props["DefinitionString"]["Fn::Sub"]
    if not (isinstance(sub, list) and sub[0] == ASL_PLACEHOLDER):
        raise ValueError(f"{TEMPLATE_PATH.name}: DefinitionString must be Fn::Sub [{ASL_PLACEHOLDER}, {{...}}]")
    asl_text = json.dumps(load_asl(), separators=(",", ":"))
    props["DefinitionString"] = {"Fn::Sub": _fold_sub_variables(asl_text, sub[1])}
    return json.dumps(template, indent=1)


def stack_outputs(cloudformation_client: Any, stack_name: str) -> dict[str, str]:
    """Outputs of a deployed stack as {OutputKey: OutputValue}."""
    stack = cloudformation_client.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _stack_status(cloudformation_client: Any, stack_name: str) -> str | None:
    """Status of the named stack, or None if there is none."""
    try:
        stacks = cloudformation_client.describe_stacks(StackName=stack_name)["Stacks"]
    except cloudformation_client.exceptions.ClientError as err:
        if "does not exist" in str(err):
            return None
        raise
    return stacks[0]["StackStatus"] if stacks else None


def deploy_stack(
    cloudformation_client: Any,
    stack_name: str,
    app_name: str = "crowd",
    stage: str = "dev",
    *,
    waiter_delay: int = 1,
) -> dict[str, str]:
    """Create or update the data stack, wait for it, and return its outputs."""
    # boto3 create/update + waiters rather than `aws cloudformation deploy`
    # (change sets), which loses the stack outputs on moto.
    params = {
        "StackName": stack_name,
        "TemplateBody": render_template(app_name, stage),
        "Parameters": [
            {"ParameterKey": "AppName", "ParameterValue": app_name},
            {"ParameterKey": "Stage", "ParameterValue": stage},
        ],
        "Capabilities": ["CAPABILITY_IAM"],
        "Tags": [{"Key": "app", "Value": app_name}, {"Key": "stage", "Value": stage}],
    }
    waiter_config = {"Delay": waiter_delay, "MaxAttempts": 1800 // max(waiter_delay, 1)}
    status = _stack_status(cloudformation_client, stack_name)
    if status == "ROLLBACK_COMPLETE":
        # A stack whose first create failed can only be deleted, then created again.
        cloudformation_client.delete_stack(StackName=stack_name)
        cloudformation_client.get_waiter("stack_delete_complete").wait(StackName=stack_name, WaiterConfig=waiter_config)
        status = None
    if status in (None, "DELETE_COMPLETE"):
        cloudformation_client.create_stack(**params, OnFailure="ROLLBACK")
        cloudformation_client.get_waiter("stack_create_complete").wait(
            StackName=stack_name, WaiterConfig=waiter_config
        )
    else:
        keep = _indexes_to_keep(cloudformation_client, stack_name)
        if keep:
            _update(cloudformation_client, {**params,
                                            "TemplateBody": render_template(app_name, stage, keep)},
                    waiter_config)
        _update(cloudformation_client, params, waiter_config)
    return stack_outputs(cloudformation_client, stack_name)


def _indexes_to_keep(cloudformation_client: Any, stack_name: str) -> list[tuple[str, str]]:
    """The replaced indexes the deployed stack still has without their replacements."""
    body = cloudformation_client.get_template(StackName=stack_name)["TemplateBody"]
    deployed = body if isinstance(body, dict) else yaml.load(body, Loader=_SAFE_LOADER)
    keep = []
    for (table, old), (new, _) in _REPLACED_INDEXES.items():
        names = {index.get("IndexName") for index in _indexes(deployed, table)}
        if old in names and new not in names:
            keep.append((table, old))
    return keep


def _update(cloudformation_client: Any, params: dict[str, Any], waiter_config: dict[str, int]
            ) -> None:
    """One stack update, waited for (none needed is not an error)."""
    try:
        cloudformation_client.update_stack(**params)
    except cloudformation_client.exceptions.ClientError as err:
        if _NO_UPDATES not in str(err):
            raise
    else:
        cloudformation_client.get_waiter("stack_update_complete").wait(
            StackName=params["StackName"], WaiterConfig=waiter_config
        )


def app_environment(outputs: Mapping[str, str]) -> dict[str, str]:
    """The environment variables the app reads, taken from the stack outputs."""
    missing = [key for key in APP_ENVIRONMENT_OUTPUTS.values() if key not in outputs]
    if missing:
        raise KeyError(f"stack outputs missing: {missing}")
    return {env: outputs[key] for env, key in APP_ENVIRONMENT_OUTPUTS.items()}


def main(argv: list[str] | None = None) -> int:
    """CLI: render the template or deploy it with the default boto3 session."""
    parser = argparse.ArgumentParser(prog="python -m infra.stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("render", "deploy"))
    parser.add_argument("--app-name", default="crowd")
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--stack-name", default=None, help="default: <app>-<stage>-data")
    args = parser.parse_args(argv)
    if args.command == "render":
        sys.stdout.write(render_template(args.app_name, args.stage) + "\n")
        return 0
    import boto3

    stack_name = args.stack_name or stack_name_for(args.app_name, args.stage)
    outputs = deploy_stack(boto3.client("cloudformation"), stack_name, args.app_name, args.stage, waiter_delay=10)
    sys.stdout.write(json.dumps(app_environment(outputs), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

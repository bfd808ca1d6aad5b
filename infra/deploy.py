"""The operator's path: lint, deploy the data stack, point the stage at it, `chalice deploy`.

    python -m infra.deploy deploy  --stage dev    # idempotent: a second run changes nothing
    python -m infra.deploy check   --stage dev    # drift between stack outputs and config.json
                                                  # (also: deploy --check)
    python -m infra.deploy destroy --stage dev    # chalice delete, then the stack
    python -m infra.deploy policy  --stage dev    # (re)write .chalice/policy-dev.json
    python -m infra.deploy settings --stage dev   # (re)write the stage's log level and memory
                                                  # sizes (infra/stage_settings.py) into config.json
    python -m infra.deploy backfill-blocks --stage dev [--cursor C]
                                                  # list blocks made before block listings

Credentials, region and (for the local stack) AWS_ENDPOINT_URL come from the environment,
as for any boto3 program.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from infra.gateway_responses import ensure_gateway_responses
from infra.rate_limits import attach_stage, delete_usage_plan, ensure_usage_plan, plan_name
from infra.stack import app_environment, deploy_stack, render_template, stack_name_for, stack_outputs
from infra.stage_settings import apply_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
APP_NAME = "crowd"
QUEUE_VARIABLES = ("INGEST_QUEUE_NAME", "RESULTS_QUEUE_NAME", "WEBHOOK_QUEUE_NAME")


class DeployError(Exception):
    """A deploy step failed; the message says which and why."""


def _chalice_bin() -> str:
    candidate = Path(sys.executable).with_name("chalice")
    return str(candidate) if candidate.exists() else "chalice"


def render_policy(stage: str, app_name: str = APP_NAME) -> dict[str, Any]:
    """The least-privilege IAM policy of a stage's functions: each statement names its resources."""
    prefix = f"{app_name}-{stage}"
    table = f"arn:aws:dynamodb:*:*:table/{prefix}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Logs", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": "arn:aws:logs:*:*:*"},
            {"Sid": "Tables", "Effect": "Allow",
             "Action": ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem",
                        "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem", "dynamodb:GetItem",
                        "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"],
             "Resource": [f"{table}-accounts", f"{table}-credentials", f"{table}-quotes",
                          f"{table}-jobs", f"{table}-jobs/index/*", f"{table}-items",
                          f"{table}-items/index/*", f"{table}-results",
                          f"{table}-worker-stats", f"{table}-worker-stats/index/*",
                          f"{table}-ledger", f"{table}-ledger/index/*", f"{table}-catalog",
                          f"{table}-idempotency", f"{table}-webhooks"]},
            # Receive, Delete and GetQueueAttributes are what Lambda's SQS event source
            # needs from the consumers' role; the code itself sends.
            {"Sid": "Queues", "Effect": "Allow",
             "Action": ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
                        "sqs:ReceiveMessage", "sqs:SendMessage"],
             "Resource": [f"arn:aws:sqs:*:*:{prefix}-ingest", f"arn:aws:sqs:*:*:{prefix}-results",
                          f"arn:aws:sqs:*:*:{prefix}-webhooks",
                          f"arn:aws:sqs:*:*:{prefix}-webhooks-dlq"]},
            # MTurk notifications go to the requesters' own SNS topics and SQS queues, which
            # must be in the deployment's account, and never to this app's topics and queues
            # of any stage (named <app>-<stage>-...; the app also refuses its own stage's by
            # name, with a clear error). The stage's own queues are granted above.
            {"Sid": "MTurkNotifications", "Effect": "Allow",
             "Action": ["sns:Publish", "sqs:SendMessage"],
             "NotResource": [f"arn:aws:sns:*:*:{app_name}-*", f"arn:aws:sqs:*:*:{app_name}-*"],
             "Condition": {"StringEquals": {"aws:ResourceAccount": "${aws:PrincipalAccount}"}}},
            # Client keys are registered in the stage's usage plan (its id is known only after
            # the first deploy; API keys are not named per stage).
            {"Sid": "ClientKeys", "Effect": "Allow",
             "Action": ["apigateway:DELETE", "apigateway:GET", "apigateway:POST"],
             "Resource": ["arn:aws:apigateway:*::/apikeys", "arn:aws:apigateway:*::/apikeys/*",
                          "arn:aws:apigateway:*::/usageplans/*/keys"]},
            {"Sid": "Events", "Effect": "Allow", "Action": ["events:PutEvents"],
             "Resource": f"arn:aws:events:*:*:event-bus/{prefix}-events"},
            # PutObject also covers the multipart calls of streamed results and of clients'
            # uploads in parts (their part URLs are signed with it); a streamed upload that
            # fails half-way, or a client's aborted upload, is aborted so its parts are not
            # left behind; ListParts tells a client which parts of its upload are there.
            {"Sid": "Results", "Effect": "Allow",
             "Action": ["s3:AbortMultipartUpload", "s3:GetObject",
                        "s3:ListMultipartUploadParts", "s3:PutObject"],
             "Resource": f"arn:aws:s3:::{prefix}-results/*"},
            {"Sid": "Aggregation", "Effect": "Allow", "Action": ["states:StartExecution"],
             "Resource": f"arn:aws:states:*:*:stateMachine:{prefix}-aggregation"},
            # Requester access keys' secrets are sealed and opened with the stage's KMS key
            # (its id is known only after the stack deploys: it is found by its tag).
            {"Sid": "RequesterKeys", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:Encrypt"],
             "Resource": "arn:aws:kms:*:*:key/*",
             "Condition": {"StringEquals": {"aws:ResourceTag/crowd-stage": prefix}}},
        ],
    }


def write_json_if_changed(path: Path, data: Any) -> bool:
    """Write data as indented JSON unless the file already says the same; True if written."""
    text = json.dumps(data, indent=2) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def lint(app_name: str, stage: str) -> None:
    """cfn-lint on the template as it will be deployed; DeployError with its findings."""
    with tempfile.TemporaryDirectory() as folder:
        rendered = Path(folder) / "template.json"
        rendered.write_text(render_template(app_name, stage), encoding="utf-8")
        linter = Path(sys.executable).with_name("cfn-lint")
        result = subprocess.run([str(linter) if linter.exists() else "cfn-lint", str(rendered)],
                                capture_output=True, text=True)
    if result.returncode != 0:
        raise DeployError(f"cfn-lint found problems:\n{result.stdout}{result.stderr}")


def stage_environment(project_dir: Path, stage: str) -> dict[str, str]:
    """The stage's environment variables as config.json holds them."""
    config = json.loads((project_dir / ".chalice" / "config.json").read_text(encoding="utf-8"))
    stages = config.get("stages", {})
    if stage not in stages:
        raise DeployError(f"stage '{stage}' is not in .chalice/config.json")
    return dict(stages[stage].get("environment_variables", {}))


def point_stage_at_stack(project_dir: Path, stage: str, environment: dict[str, str]) -> bool:
    """Put the stack's outputs into the stage's environment in config.json; True if it changed."""
    path = project_dir / ".chalice" / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["stages"][stage].setdefault("environment_variables", {}).update(environment)
    return write_json_if_changed(path, config)


def write_stage_settings(project_dir: Path, stage: str) -> bool:
    """Write the stage's log level and memory sizes (infra/stage_settings.py) into config.json;
    True if it changed."""
    path = project_dir / ".chalice" / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if stage not in config.get("stages", {}):
        raise DeployError(f"stage '{stage}' is not in .chalice/config.json")
    return write_json_if_changed(path, apply_settings(config, stage))


def drift(project_dir: Path, stage: str, environment: dict[str, str]) -> dict[str, tuple[str | None, str]]:
    """Variables whose config.json value differs from the stack's: name -> (config, stack)."""
    current = stage_environment(project_dir, stage)
    return {name: (current.get(name), value) for name, value in environment.items()
            if current.get(name) != value}


def _run(command: list[str], project_dir: Path, stage: str) -> None:
    # app.py names its SQS sources from these variables when Chalice imports it to deploy.
    stage_env = stage_environment(project_dir, stage)
    env = {**os.environ, **{name: stage_env[name] for name in QUEUE_VARIABLES if name in stage_env}}
    print("+", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=project_dir, env=env)
    if result.returncode != 0:
        raise DeployError(f"{' '.join(command)} exited with {result.returncode}")


def deploy(project_dir: Path, stage: str, app_name: str = APP_NAME) -> dict[str, str]:
    """Lint, create or update the stack, write its outputs and the stage's settings (log level,
    memory sizes) into config.json, chalice deploy,
    then attach the stage to the usage plan and set API Gateway's responses in the error shape."""
    import boto3

    stage_environment(project_dir, stage)
    lint(app_name, stage)
    print(f"deploying stack {stack_name_for(app_name, stage)}", flush=True)
    outputs = deploy_stack(boto3.client("cloudformation"), stack_name_for(app_name, stage),
                           app_name, stage, waiter_delay=5)
    environment = app_environment(outputs)
    apigateway = boto3.client("apigateway")
    environment["USAGE_PLAN_ID"] = ensure_usage_plan(apigateway, app_name, stage)
    if point_stage_at_stack(project_dir, stage, environment):
        print(f"updated .chalice/config.json stage '{stage}' with the stack's outputs", flush=True)
    if write_stage_settings(project_dir, stage):
        print(f"updated .chalice/config.json stage '{stage}' with its log level and memory sizes",
              flush=True)
    _run([_chalice_bin(), "deploy", "--stage", stage], project_dir, stage)
    api_id, api_stage = deployed_rest_api(project_dir, stage)
    if attach_stage(apigateway, environment["USAGE_PLAN_ID"], api_id, api_stage):
        print(f"usage plan {plan_name(app_name, stage)} now caps {api_id}/{api_stage}", flush=True)
    changed = ensure_gateway_responses(apigateway, api_id, api_stage)
    if changed:
        print(f"gateway responses set and {api_id}/{api_stage} deployed again: "
              f"{', '.join(changed)}", flush=True)
    return environment


def backfill_blocks(environment: dict[str, str], cursor: str | None = None,
                    out: Any = None) -> None:
    """List every block beside it in the stage's tables (blocks made before the listings
    existed), a page at a time from cursor, printing the cursor after each page so an
    interrupted run goes on from there; a run again changes nothing."""
    os.environ.update(environment)
    from chalicelib.deps import platform
    from chalicelib.handlers.quality import backfill_block_listings

    out = out or sys.stdout
    listed = 0
    while True:
        page = backfill_block_listings(platform(), cursor, pages=1)
        listed += page["listed"]
        cursor = page["next_cursor"]
        print(f"listed {listed} blocks; next cursor: {cursor}", file=out, flush=True)
        if cursor is None:
            return


def deployed_rest_api(project_dir: Path, stage: str) -> tuple[str, str]:
    """The REST API id and stage name `chalice deploy` recorded for the stage."""
    record = json.loads((project_dir / ".chalice" / "deployed" / f"{stage}.json")
                        .read_text(encoding="utf-8"))
    for resource in record.get("resources", []):
        if resource.get("resource_type") == "rest_api":
            config = json.loads((project_dir / ".chalice" / "config.json").read_text())
            api_stage = config["stages"][stage].get("api_gateway_stage",
                                                    config.get("api_gateway_stage", "api"))
            return resource["rest_api_id"], api_stage
    raise DeployError(f".chalice/deployed/{stage}.json names no REST API")


def check(project_dir: Path, stage: str, app_name: str = APP_NAME) -> int:
    """Report drift between the stack outputs and config.json; 0 when there is none."""
    import boto3

    outputs = stack_outputs(boto3.client("cloudformation"), stack_name_for(app_name, stage))
    differences = drift(project_dir, stage, app_environment(outputs))
    for name, (configured, actual) in sorted(differences.items()):
        print(f"drift: {name}: config.json has {configured!r}, the stack has {actual!r}")
    if not differences:
        print(f"no drift: stage '{stage}' points at stack {stack_name_for(app_name, stage)}")
    return 1 if differences else 0


def destroy(project_dir: Path, stage: str, app_name: str = APP_NAME, *,
            delete_data: bool = False) -> None:
    """chalice delete, then empty the results bucket and delete the stack (data goes too)."""
    import boto3

    if not delete_data:
        raise DeployError("destroy deletes the stage's tables and results: pass --delete-data")
    if (project_dir / ".chalice" / "deployed" / f"{stage}.json").exists():
        _run([_chalice_bin(), "delete", "--stage", stage], project_dir, stage)
    delete_usage_plan(boto3.client("apigateway"), app_name, stage)
    cloudformation = boto3.client("cloudformation")
    name = stack_name_for(app_name, stage)
    try:
        outputs = stack_outputs(cloudformation, name)
    except cloudformation.exceptions.ClientError:
        print(f"stack {name} does not exist")
        return
    bucket = boto3.resource("s3").Bucket(outputs["ResultsBucketName"])
    bucket.objects.all().delete()
    cloudformation.delete_stack(StackName=name)
    cloudformation.get_waiter("stack_delete_complete").wait(
        StackName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 360})
    print(f"deleted stack {name}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("deploy", "check", "destroy", "policy",
                                            "settings", "backfill-blocks"))
    parser.add_argument("--stage", required=True)
    parser.add_argument("--project-dir", default=str(PROJECT_ROOT))
    parser.add_argument("--delete-data", action="store_true", help="destroy: yes, delete the data")
    parser.add_argument("--check", action="store_true", help="deploy: only report drift, change nothing")
    parser.add_argument("--cursor", help="backfill-blocks: go on from this cursor")
    args = parser.parse_args(argv)
    project_dir = Path(args.project_dir).resolve()
    try:
        if args.command == "deploy" and not args.check:
            deploy(project_dir, args.stage)
        elif args.command == "check" or args.check:
            return check(project_dir, args.stage)
        elif args.command == "destroy":
            destroy(project_dir, args.stage, delete_data=args.delete_data)
        elif args.command == "backfill-blocks":
            backfill_blocks(stage_environment(project_dir, args.stage), args.cursor)
        elif args.command == "settings":
            changed = write_stage_settings(project_dir, args.stage)
            print(("wrote " if changed else "unchanged ") + f"stage '{args.stage}' settings in "
                  f"{project_dir / '.chalice' / 'config.json'}")
        else:
            path = project_dir / ".chalice" / f"policy-{args.stage}.json"
            print(("wrote " if write_json_if_changed(path, render_policy(args.stage)) else "unchanged ") + str(path))
    except DeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
